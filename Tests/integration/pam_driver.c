// SPDX-License-Identifier: Apache-2.0
/*
 * pam_driver - runs one pam_authenticate through the real libpam, reading the service
 * file from CONFDIR (pam_start_confdir), so tests never touch the host's /etc/pam.d.
 *
 * usage: pam_driver CONFDIR SERVICE USER [--rhost H] [--silent] [--setcred] [--answer A]...
 *
 * An --answer of "-" is read as one line from stdin when its prompt comes (after the prompt is
 * printed), so a test can answer with a code it learns only then (a mailed code).
 *
 * Prints each conversation message as "STYLE: text", then "RESULT: PAM_NAME",
 * "ELAPSED_MS: n", "OPEN_FDS: before after" (descriptors open around pam_authenticate) and, with --setcred, "SETCRED: PAM_NAME". Exits 0 whatever PAM answered
 * (tests read RESULT), 2 on a usage error, 1 if pam_start itself fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>

#include <security/pam_appl.h>

#define MAX_ANSWERS 32

struct answers {
    const char *items[MAX_ANSWERS];
    int count;
    int next;
};

static const char *pam_name(int rc, char *buf, size_t n)
{
    switch (rc) {
    case PAM_SUCCESS: return "PAM_SUCCESS";
    case PAM_AUTH_ERR: return "PAM_AUTH_ERR";
    case PAM_IGNORE: return "PAM_IGNORE";
    case PAM_AUTHINFO_UNAVAIL: return "PAM_AUTHINFO_UNAVAIL";
    case PAM_MAXTRIES: return "PAM_MAXTRIES";
    case PAM_SERVICE_ERR: return "PAM_SERVICE_ERR";
    case PAM_CONV_ERR: return "PAM_CONV_ERR";
    case PAM_USER_UNKNOWN: return "PAM_USER_UNKNOWN";
    case PAM_PERM_DENIED: return "PAM_PERM_DENIED";
    case PAM_BUF_ERR: return "PAM_BUF_ERR";
    case PAM_SYSTEM_ERR: return "PAM_SYSTEM_ERR";
    case PAM_CRED_INSUFFICIENT: return "PAM_CRED_INSUFFICIENT";
    default:
        snprintf(buf, n, "PAM_%d", rc);
        return buf;
    }
}

static const char *style_name(int style)
{
    switch (style) {
    case PAM_PROMPT_ECHO_OFF: return "PROMPT_ECHO_OFF";
    case PAM_PROMPT_ECHO_ON: return "PROMPT_ECHO_ON";
    case PAM_ERROR_MSG: return "ERROR_MSG";
    case PAM_TEXT_INFO: return "TEXT_INFO";
    default: return "UNKNOWN_STYLE";
    }
}

static void free_resp(struct pam_response *resp, int n)
{
    for (int i = 0; i < n; i++)
        free(resp[i].resp);
    free(resp);
}

/* Prints every message; answers prompts with the next --answer, or fails the conversation
 * (PAM_CONV_ERR) when none are left, which is how tests exercise the module's CANCEL path. */
static int conv(int n, const struct pam_message **msg, struct pam_response **out, void *data)
{
    struct answers *a = data;
    struct pam_response *resp;
    if (n <= 0 || n > PAM_MAX_NUM_MSG)
        return PAM_CONV_ERR;
    resp = calloc((size_t)n, sizeof *resp);
    if (resp == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        int style = msg[i]->msg_style;
        printf("%s: %s\n", style_name(style), msg[i]->msg ? msg[i]->msg : "(null)");
        fflush(stdout);
        if (style != PAM_PROMPT_ECHO_OFF && style != PAM_PROMPT_ECHO_ON)
            continue;
        const char *answer = a->next < a->count ? a->items[a->next++] : NULL;
        char line[512];
        if (answer != NULL && strcmp(answer, "-") == 0) {
            answer = fgets(line, sizeof line, stdin);
            if (answer != NULL)
                line[strcspn(line, "\n")] = '\0';
        }
        if (answer == NULL || (resp[i].resp = strdup(answer)) == NULL) {
            free_resp(resp, n);
            return PAM_CONV_ERR;
        }
    }
    *out = resp;
    return PAM_SUCCESS;
}

/* Open descriptors of this process, so tests can check the module closes what it opens. */
static int count_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the DIR's own descriptor */
}

static int usage(void)
{
    fprintf(stderr, "usage: pam_driver CONFDIR SERVICE USER [--rhost H] [--silent] [--setcred] "
                    "[--answer A]... [--pam-env NAME=VALUE]...\n");
    return 2;
}

static long long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(int argc, char **argv)
{
    struct answers answers = {.count = 0};
    struct pam_conv pc = {conv, &answers};
    const char *rhost = NULL;
    int silent = 0, setcred = 0, rc;
    /* --pam-env NAME=VALUE: put into the PAM environment (pam_putenv), as sshd does with SSH_AUTH_INFO_0 */
    const char *env[MAX_ANSWERS];
    int envs = 0;
    pam_handle_t *h = NULL;
    struct timespec t0;
    char name[32];

    if (argc < 4)
        return usage();
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--rhost") == 0 && i + 1 < argc)
            rhost = argv[++i];
        else if (strcmp(argv[i], "--answer") == 0 && i + 1 < argc && answers.count < MAX_ANSWERS)
            answers.items[answers.count++] = argv[++i];
        else if (strcmp(argv[i], "--silent") == 0)
            silent = 1;
        else if (strcmp(argv[i], "--setcred") == 0)
            setcred = 1;
        else if (strcmp(argv[i], "--pam-env") == 0 && i + 1 < argc && envs < MAX_ANSWERS)
            env[envs++] = argv[++i];
        else
            return usage();
    }

    rc = pam_start_confdir(argv[2], argv[3], &pc, argv[1], &h);
    if (rc != PAM_SUCCESS) {
        printf("START: %s\n", pam_name(rc, name, sizeof name));
        return 1;
    }
    if (rhost != NULL && (rc = pam_set_item(h, PAM_RHOST, rhost)) != PAM_SUCCESS) {
        printf("SET_RHOST: %s\n", pam_name(rc, name, sizeof name));
        pam_end(h, rc);
        return 1;
    }
    for (int i = 0; i < envs; i++) {
        if ((rc = pam_putenv(h, env[i])) != PAM_SUCCESS) {
            printf("PUTENV: %s\n", pam_name(rc, name, sizeof name));
            pam_end(h, rc);
            return 1;
        }
    }
    int fds_before = count_open_fds();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = pam_authenticate(h, silent ? PAM_SILENT : 0);
    long long ms = elapsed_ms(&t0);
    printf("RESULT: %s\n", pam_name(rc, name, sizeof name));
    printf("ELAPSED_MS: %lld\n", ms);
    printf("OPEN_FDS: %d %d\n", fds_before, count_open_fds());
    if (setcred) {
        int sc = pam_setcred(h, PAM_ESTABLISH_CRED);
        printf("SETCRED: %s\n", pam_name(sc, name, sizeof name));
    }
    pam_end(h, rc);
    return 0;
}
