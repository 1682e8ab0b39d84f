// SPDX-License-Identifier: Apache-2.0
/* A small NSS module of the tests' own (libnss_mfatest.so.2), answering `passwd` and `shadow` lookups the way
 * SSSD or winbind do on a host whose accounts come from a directory: a name in any case, and
 * `name@example.test`, reaches the account whose own name (pw_name) is the lowercase one.
 *
 * The accounts are those of the file named by $MFATEST_NSS_PASSWD (passwd format), else of
 * /etc/passwd. Used only inside a private mount namespace whose /etc/nsswitch.conf says
 * `passwd: files mfatest` (Tests/integration/test_accounts.py), found through LD_LIBRARY_PATH by
 * the (non-setuid) daemon and by the test's sshd. Never installed, never named in the host's nsswitch.conf.
 *
 * With $MFATEST_NSS_NUMBERED (comma-separated prefixes, e.g. "mf,su") it answers instead for every
 * name made of one of the prefixes and 1 to 9 digits, in constant time, as a directory cache
 * would: the benchmark's 100,000 users (bench/bench.py) without a 100,000-line /etc/passwd. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOMAIN "@example.test"

enum nss_status _nss_mfatest_getpwnam_r(const char *name, struct passwd *result, char *buffer, size_t buflen,
                                        int *errnop);
enum nss_status _nss_mfatest_getspnam_r(const char *name, struct spwd *result, char *buffer, size_t buflen,
                                        int *errnop);

/* The account name a spelling stands for: `name@example.test` loses its domain (any case). */
static int base_name(const char *name, char *base, size_t size) {
    size_t n = strlen(name), d = strlen(DOMAIN);
    if (n >= size) return -1;
    memcpy(base, name, n + 1);
    if (n > d && strcasecmp(base + n - d, DOMAIN) == 0) base[n - d] = '\0';
    return 0;
}

/* A numbered account: prefix number p (0-based) and number n give uid 1000000 * (p + 1) + n. */
static enum nss_status numbered(const char *prefixes, const char *name, struct passwd *result, char *buffer,
                                size_t buflen, int *errnop) {
    int index = 0;
    for (const char *p = prefixes; *p; index++) {
        size_t len = strcspn(p, ",");
        size_t digits = strspn(name + (strncmp(name, p, len) == 0 ? len : 0), "0123456789");
        if (len > 0 && strncmp(name, p, len) == 0 && digits >= 1 && digits <= 9 && name[len + digits] == '\0'
            && index < 4000) {
            static const char dir[] = "/nonexistent", shell[] = "/usr/sbin/nologin";
            size_t need = strlen(name) + 1 + 2 + sizeof dir + sizeof shell;
            if (buflen < need) {
                *errnop = ERANGE;
                return NSS_STATUS_TRYAGAIN;
            }
            char *out = buffer;
            result->pw_name = strcpy(out, name);
            out += strlen(name) + 1;
            result->pw_passwd = strcpy(out, "x");
            out += 2;
            result->pw_gecos = result->pw_passwd + 1; /* "" */
            result->pw_dir = strcpy(out, dir);
            out += sizeof dir;
            result->pw_shell = strcpy(out, shell);
            result->pw_uid = (uid_t)(1000000u * (unsigned)(index + 1) + (unsigned)strtoul(name + len, NULL, 10));
            result->pw_gid = 65534;
            return NSS_STATUS_SUCCESS;
        }
        p += len;
        if (*p == ',') p++;
    }
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_mfatest_getpwnam_r(const char *name, struct passwd *result, char *buffer, size_t buflen,
                                        int *errnop) {
    const char *prefixes = getenv("MFATEST_NSS_NUMBERED");
    if (prefixes && *prefixes) return numbered(prefixes, name, result, buffer, buflen, errnop);
    char base[256];
    if (base_name(name, base, sizeof base) != 0) return NSS_STATUS_NOTFOUND;

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

/* The same spellings for /etc/shadow (or $MFATEST_NSS_SHADOW), so pam_unix checks the password of
 * `ALICE` against alice's entry, as pam_sss would against the directory. */
enum nss_status _nss_mfatest_getspnam_r(const char *name, struct spwd *result, char *buffer, size_t buflen,
                                        int *errnop) {
    char base[256];
    if (base_name(name, base, sizeof base) != 0) return NSS_STATUS_NOTFOUND;
    const char *path = getenv("MFATEST_NSS_SHADOW");
    FILE *f = fopen(path && *path ? path : "/etc/shadow", "re");
    if (!f) {
        *errnop = errno;
        return NSS_STATUS_UNAVAIL;
    }
    enum nss_status status = NSS_STATUS_NOTFOUND;
    struct spwd *entry = NULL;
    for (;;) {
        int rc = fgetspent_r(f, result, buffer, buflen, &entry);
        if (rc == ERANGE) {
            *errnop = ERANGE;
            status = NSS_STATUS_TRYAGAIN;
            break;
        }
        if (rc != 0 || !entry) break;
        if (strcasecmp(entry->sp_namp, base) == 0) {
            status = NSS_STATUS_SUCCESS;
            break;
        }
    }
    fclose(f);
    if (status == NSS_STATUS_NOTFOUND) *errnop = ENOENT;
    return status;
}
