/* A small NSS module of the tests' own (libnss_mfatest.so.2), answering `passwd` lookups the way
 * SSSD or winbind do on a host whose accounts come from a directory: a name in any case, and
 * `name@example.test`, reaches the account whose own name (pw_name) is the lowercase one.
 *
 * The accounts are those of the file named by $MFATEST_NSS_PASSWD (passwd format), else of
 * /etc/passwd. Used only inside a private mount namespace whose /etc/nsswitch.conf says
 * `passwd: files mfatest` (Tests/integration/test_accounts.py), found through LD_LIBRARY_PATH by
 * the (non-setuid) daemon. Never installed, never named in the host's nsswitch.conf. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOMAIN "@example.test"

enum nss_status _nss_mfatest_getpwnam_r(const char *name, struct passwd *result, char *buffer, size_t buflen,
                                        int *errnop);

enum nss_status _nss_mfatest_getpwnam_r(const char *name, struct passwd *result, char *buffer, size_t buflen,
                                        int *errnop) {
    char base[256];
    size_t n = strlen(name);
    size_t d = strlen(DOMAIN);
    if (n >= sizeof base) return NSS_STATUS_NOTFOUND;
    memcpy(base, name, n + 1);
    if (n > d && strcasecmp(base + n - d, DOMAIN) == 0) base[n - d] = '\0';

    const char *path = getenv("MFATEST_NSS_PASSWD");
    FILE *f = fopen(path && *path ? path : "/etc/passwd", "re");
    if (!f) {
        *errnop = errno;
        return NSS_STATUS_UNAVAIL;
    }
    enum nss_status status = NSS_STATUS_NOTFOUND;
    struct passwd *entry = NULL;
    for (;;) {
        int rc = fgetpwent_r(f, result, buffer, buflen, &entry);
        if (rc == ERANGE) {
            *errnop = ERANGE;
            status = NSS_STATUS_TRYAGAIN;
            break;
        }
        if (rc != 0 || !entry) break;
        if (strcasecmp(entry->pw_name, base) == 0) {
            status = NSS_STATUS_SUCCESS;
            break;
        }
    }
    fclose(f);
    if (status == NSS_STATUS_NOTFOUND) *errnop = ENOENT;
    return status;
}
