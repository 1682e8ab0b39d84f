// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_conv.c - the PAM conversation relay: one CONVERSE round from the daemon shown through the
 * application's conversation and answered with a REPLY, and forward_pass's one combined prompt
 * "Password and code: " (the code goes to the daemon, the password to PAM_AUTHTOK for the next
 * module; the split rule is mfg_split_combined in mfg_frame.c). See man/pam_mfagate.8.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfg_login.h"

/* ---- conversation ------------------------------------------------------ */

static void free_responses(struct pam_response *resp, int n)
{
    if (resp == NULL)
        return;
    for (int i = 0; i < n; i++) {
        if (resp[i].resp != NULL) {
            explicit_bzero(resp[i].resp, strlen(resp[i].resp));
            free(resp[i].resp);
        }
    }
    free(resp);
}

/* The conversation failed: tell the daemon (best effort, it ends the login) and give up. */
static int cancel(struct login *l, int pam_code)
{
    (void)mfg_send_frame(l, mfg_encode_cancel(l->buf->frame, sizeof l->buf->frame));
    return pam_code;
}

/* ---- forward_pass: one answer, password then code ------------------------ */

#define COMBINED_PROMPT "Password and code: "

/* The round is the login's code prompt and this module asks one combined question. */
static int combined_round(const struct login *l, int prompt_idx)
{
    return l->opt->forward_pass && l->code_digits > 0 && prompt_idx >= 0 && !l->password_forwarded;
}

/* Puts answer[0..split) in PAM_AUTHTOK (libpam keeps its own copy). The caller has sent the code;
 * it wipes the whole answer afterwards. */
static int forward_password(struct login *l, char *answer, size_t split)
{
    int rc;
    char saved = answer[split];
    answer[split] = '\0';
    rc = pam_set_item(l->pamh, PAM_AUTHTOK, answer);
    answer[split] = saved;
    if (rc == PAM_SUCCESS)
        l->password_forwarded = 1;
    return rc;
}

/* The login ended without a combined prompt (no code asked: not enrolled, mode optional or off,
 * a remembered host, a trusted network, the daemon down with failmode=safe, or refused): the
 * password is still asked, with libpam's own "Password: " prompt, for the next module, unless an
 * earlier module has set it. */
static int ask_password(struct login *l)
{
    const void *item = NULL;
    const char *tok = NULL;
    if (pam_get_item(l->pamh, PAM_AUTHTOK, &item) == PAM_SUCCESS && item != NULL)
        return PAM_SUCCESS;
    return pam_get_authtok(l->pamh, PAM_AUTHTOK, &tok, NULL);
}

/* Turns a CONVERSE into pam_messages, with NUL-terminated copies of the texts in buf->text.
 * Info and error texts are dropped under PAM_SILENT. Returns the number kept. */
static int build_messages(struct login *l, const struct mfg_daemon_msg *m,
                          struct pam_message *pm, int *prompt_idx)
{
    char *text = l->buf->text;
    int n = 0;
    *prompt_idx = -1;
    l->code_digits = 0;
    for (int i = 0; i < m->u.converse.count; i++) {
        const struct mfg_message *src = &m->u.converse.msgs[i];
        int prompt = src->style == MFG_STYLE_PROMPT_ECHO_OFF ||
                     src->style == MFG_STYLE_PROMPT_ECHO_ON;
        if (src->style == MFG_STYLE_CODE_DIGITS) { /* a mark, never shown (forward_pass) */
            l->code_digits = mfg_code_digits(&src->text);
            continue;
        }
        if (l->silent && !prompt)
            continue;
        memcpy(text, src->text.ptr, src->text.len);
        text[src->text.len] = '\0';
        /* mfg styles are PAM's numbers (checked by the decoder). */
        pm[n].msg_style = src->style;
        pm[n].msg = text;
        text += src->text.len + 1;
        note_used(&l->text_used, (size_t)(text - l->buf->text));
        if (prompt)
            *prompt_idx = n;
        n++;
    }
    return n;
}

/* One CONVERSE round: show the messages, send the REPLY. Returns CONTINUE or a final code. */
int mfg_converse_round(struct login *l, const struct mfg_daemon_msg *m)
{
    struct pam_message pm[MFG_MAX_MESSAGES];
    const struct pam_message *pmp[MFG_MAX_MESSAGES];
    struct pam_response *resp = NULL;
    const struct pam_conv *conv = NULL;
    const char *answer = "";
    size_t answer_len, split;
    int prompt_idx, combined;
    long len;
    int n = build_messages(l, m, pm, &prompt_idx);

    combined = combined_round(l, prompt_idx);
    if (combined) {
        pm[prompt_idx].msg_style = PAM_PROMPT_ECHO_OFF;
        pm[prompt_idx].msg = COMBINED_PROMPT;
    }

    if (n > 0) {
        int rc = pam_get_item(l->pamh, PAM_CONV, (const void **)&conv);
        if (rc != PAM_SUCCESS || conv == NULL || conv->conv == NULL) {
            pam_syslog(l->pamh, LOG_ERR, "no conversation function");
            return cancel(l, PAM_CONV_ERR);
        }
        for (int i = 0; i < n; i++)
            pmp[i] = &pm[i];
        rc = conv->conv(n, pmp, &resp, conv->appdata_ptr);
        if (rc != PAM_SUCCESS || (prompt_idx >= 0 && resp == NULL)) {
            free_responses(resp, n);
            pam_syslog(l->pamh, LOG_ERR, "conversation failed: %s", pam_strerror(l->pamh, rc));
            return cancel(l, PAM_CONV_ERR);
        }
        if (prompt_idx >= 0 && resp[prompt_idx].resp != NULL)
            answer = resp[prompt_idx].resp;
    }
    /* The answer goes straight from the application's buffer into the frame; both are wiped.
     * forward_pass: only the code goes (the part after `split`); the password goes to PAM_AUTHTOK. */
    answer_len = strnlen(answer, (size_t)MFG_MAX_STR + 1);
    split = combined ? mfg_split_combined(answer, answer_len, l->code_digits) : 0;
    len = mfg_encode_reply(l->buf->frame, sizeof l->buf->frame, answer + split, answer_len - split);
    if (combined && len >= 0 && resp != NULL && resp[prompt_idx].resp != NULL) {
        int rc = forward_password(l, resp[prompt_idx].resp, split);
        if (rc != PAM_SUCCESS) {
            explicit_bzero(l->buf->frame, (size_t)len);
            free_responses(resp, n);
            pam_syslog(l->pamh, LOG_ERR, "cannot set the password for the next module: %s", pam_strerror(l->pamh, rc));
            return cancel(l, rc);
        }
    }
    free_responses(resp, n);
    if (len < 0) {
        /* Only an absurdly long answer gets here; no code is that long. Whatever the encoder
         * wrote before it refused is wiped with the whole frame at the end. */
        note_used(&l->frame_used, sizeof l->buf->frame);
        pam_syslog(l->pamh, LOG_ERR, "answer too long for the protocol");
        return cancel(l, PAM_AUTH_ERR);
    }
    if (mfg_send_frame(l, len) != 0)
        return mfg_unavailable(l, "sending to mfagated: %s", strerror(errno));
    return CONTINUE;
}

/* forward_pass, at the end of every login whose user is known: the password still reaches the next
 * module when no combined prompt took it (ask_password). A conversation that fails then turns a
 * success or "no opinion" into PAM_CONV_ERR; any other result stays. */
int mfg_forward_pass_end(struct login *l, int retval)
{
    int rc;
    if (l->password_forwarded || retval == PAM_CONV_ERR)
        return retval;
    rc = ask_password(l);
    if (rc != PAM_SUCCESS && (retval == PAM_SUCCESS || retval == PAM_IGNORE))
        return rc;
    return retval;
}
