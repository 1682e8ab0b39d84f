// SPDX-License-Identifier: Apache-2.0
/*
 * mfg_options.c - the module arguments of pam_mfagate.so (man/pam_mfagate.8):
 *   socket=PATH  timeout=SECONDS (1..300)  failmode=secure|safe  forward_pass  debug
 * Anything else, or a bad value, refuses the login (PAM_SERVICE_ERR): a typo must not quietly
 * change behaviour.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <syslog.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "mfg_login.h"

#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 300

static int parse_timeout(const char *s, int *ms)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '+' || s[0] == '-' || v < 1 ||
        v > MAX_TIMEOUT_S)
        return -1;
    *ms = (int)v * 1000;
    return 0;
}

static int parse_socket(const char *s, const char **path)
{
    struct sockaddr_un sun;
    /* Absolute only (a relative path would depend on the host program's cwd), and it
     * must fit sun_path with its NUL. */
    if (s[0] != '/' || strlen(s) >= sizeof sun.sun_path)
        return -1;
    *path = s;
    return 0;
}

int mfg_parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o)
{
    o->socket_path = MFG_DEFAULT_SOCKET;
    o->timeout_ms = DEFAULT_TIMEOUT_S * 1000;
    o->failmode_safe = 0;
    o->forward_pass = 0;
    o->debug = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (strncmp(a, "socket=", 7) == 0)
            bad = parse_socket(a + 7, &o->socket_path);
        else if (strncmp(a, "timeout=", 8) == 0)
            bad = parse_timeout(a + 8, &o->timeout_ms);
        else if (strcmp(a, "failmode=secure") == 0)
            o->failmode_safe = 0;
        else if (strcmp(a, "failmode=safe") == 0)
            o->failmode_safe = 1;
        else if (strcmp(a, "forward_pass") == 0)
            o->forward_pass = 1;
        else if (strcmp(a, "debug") == 0)
            o->debug = 1;
        else
            bad = -1;
        /* A typo must not silently change behaviour (e.g. "failmode=saef"): refuse. */
        if (bad != 0) {
            pam_syslog(pamh, LOG_ERR, "bad module argument: %s", a);
            return PAM_SERVICE_ERR;
        }
    }
    return PAM_SUCCESS;
}
