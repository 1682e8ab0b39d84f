// SPDX-License-Identifier: Apache-2.0
/*
 * bench_driver - the measuring half of `make bench` (bench/bench.py drives it).
 *
 *   bench_driver drain SOCKET
 *       Binds a datagram socket at SOCKET (the benchmark's private /dev/log) and reads and
 *       discards whatever arrives, so modules that syslog pay a cheap sendto, not a console.
 *
 *   bench_driver auth CONFDIR [--count N | --duration S] [--wrong] [--until-ok]
 *                [--t0-ns NS] SERVICE:USERS:FIRST:END ...
 *       Loops pam_start_confdir -> pam_authenticate -> pam_end for each SERVICE in turn
 *       (interleaved, so the modules share the machine's noise), answering every prompt with
 *       the TOTP of the login's user computed here with libcrypto's HMAC (RFC 6238: SHA1,
 *       6 digits, 30 s), never with mfagate's code. USERS is a file of `name hexsecret` lines;
 *       users FIRST..END-1 are used once each, in order: every module refuses a code reused
 *       within its 30 s step, so a user is never asked twice in one benchmark run.
 *       --count N: N logins per service (fewer if its range runs out).
 *       --duration S: log in until S seconds have passed or a range runs out.
 *       --wrong: answer a wrong code and cycle over the range forever (a flood; needs --duration).
 *       --until-ok: retry one login until it succeeds (daemon starting); with --t0-ns, report
 *       the time from NS (CLOCK_MONOTONIC) to that first success.
 *       Prints one JSON object per service: counts, elapsed seconds, p50/p99/max/mean in µs of
 *       the whole start->authenticate->end iteration.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <security/pam_appl.h>

#define MAX_SERVICES 8
#define MAX_SECRET 64

struct user {
    char name[33];
    unsigned char secret[MAX_SECRET];
    int secret_len;
};

struct service {
    const char *name;
    struct user *users;
    long first, end, next;
    long ok, fail;
    long *lat_us;
    long lat_n, lat_cap;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_driver: %s\n", what);
    exit(2);
}

/* ---- TOTP, independent of mfagate (RFC 6238 over RFC 4226) -------------- */

static unsigned totp(const struct user *u, int64_t unix_time)
{
    unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    uint64_t counter = (uint64_t)(unix_time / 30);
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    if (HMAC(EVP_sha1(), u->secret, u->secret_len, msg, sizeof msg, mac, &mac_len) == NULL)
        die("HMAC failed");
    int off = mac[mac_len - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    return bin % 1000000;
}

/* ---- users files ------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static struct user *load_users(const char *path, long need)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) die("cannot open a users file");
    struct user *users = calloc((size_t)need, sizeof *users);
    if (users == NULL) die("out of memory");
    char name[64], hex[2 * MAX_SECRET + 2];
    long n = 0;
    while (n < need && fscanf(f, "%32s %129s", name, hex) == 2) {
        size_t len = strlen(hex);
        if (len % 2 != 0 || len / 2 > MAX_SECRET) die("bad secret in a users file");
        strcpy(users[n].name, name);
        for (size_t i = 0; i < len / 2; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) die("bad secret in a users file");
            users[n].secret[i] = (unsigned char)(hi << 4 | lo);
        }
        users[n].secret_len = (int)(len / 2);
        n++;
    }
    fclose(f);
    if (n < need) die("a users file has fewer users than the range asks for");
    return users;
}

/* ---- the PAM conversation: every prompt gets the prepared code ----------- */

static int conv(int n, const struct pam_message **msg, struct pam_response **out, void *data)
{
    const char *code = data;
    struct pam_response *resp = calloc((size_t)n, sizeof *resp);
    if (resp == NULL) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        int style = msg[i]->msg_style;
        if (style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON) {
            if ((resp[i].resp = strdup(code)) == NULL) {
                for (int j = 0; j < i; j++) free(resp[j].resp);
                free(resp);
                return PAM_BUF_ERR;
            }
        }
    }
    *out = resp;
    return PAM_SUCCESS;
}

/* One start -> authenticate -> end; returns the PAM code and the iteration's µs. */
static int one_login(const char *confdir, const char *service, const char *user, const char *code,
                     long *us)
{
    struct pam_conv pc = {conv, (void *)code};
    pam_handle_t *h = NULL;
    int64_t t0 = now_ns();
    int rc = pam_start_confdir(service, user, &pc, confdir, &h);
    if (rc == PAM_SUCCESS) {
        rc = pam_authenticate(h, PAM_SILENT);
        pam_end(h, rc);
    }
    *us = (long)((now_ns() - t0) / 1000);
    return rc;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long percentile(const long *sorted, long n, double p)
{
    if (n == 0) return -1;
    long idx = (long)(p * (double)(n - 1) + 0.5);
    return sorted[idx];
}

static void record(struct service *s, long us)
{
    if (s->lat_n == s->lat_cap) {
        s->lat_cap = s->lat_cap ? s->lat_cap * 2 : 1024;
        s->lat_us = realloc(s->lat_us, (size_t)s->lat_cap * sizeof *s->lat_us);
        if (s->lat_us == NULL) die("out of memory");
    }
    s->lat_us[s->lat_n++] = us;
}

static int drain(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof a.sun_path) die("cannot make the log socket");
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("cannot bind the log socket");
    chmod(path, 0666);
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    printf("ready\n");
    fflush(stdout);
    char buf[65536];
    for (;;) {
        if (recv(fd, buf, sizeof buf, 0) < 0 && errno != EINTR) return 1;
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "drain") == 0) return drain(argv[2]);
    if (argc < 4 || strcmp(argv[1], "auth") != 0) {
        fprintf(stderr, "usage: bench_driver drain SOCKET | bench_driver auth CONFDIR [--count N | "
                        "--duration S] [--wrong] [--until-ok] [--t0-ns NS] SERVICE:USERS:FIRST:END...\n");
        return 2;
    }
    const char *confdir = argv[2];
    long count = -1;
    double duration = -1;
    int wrong = 0, until_ok = 0;
    int64_t t0_ns = 0;
    struct service svc[MAX_SERVICES];
    int nsvc = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) count = atol(argv[++i]);
        else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) duration = atof(argv[++i]);
        else if (strcmp(argv[i], "--wrong") == 0) wrong = 1;
        else if (strcmp(argv[i], "--until-ok") == 0) until_ok = 1;
        else if (strcmp(argv[i], "--t0-ns") == 0 && i + 1 < argc) t0_ns = atoll(argv[++i]);
        else if (nsvc < MAX_SERVICES) {
            char *spec = strdup(argv[i]);
            char *name = strtok(spec, ":"), *file = strtok(NULL, ":"), *a = strtok(NULL, ":"),
                 *b = strtok(NULL, ":");
            if (name == NULL || file == NULL || a == NULL || b == NULL) die("bad SERVICE:USERS:FIRST:END");
            struct service *s = &svc[nsvc++];
            memset(s, 0, sizeof *s);
            s->name = name;
            s->first = s->next = atol(a);
            s->end = atol(b);
            if (s->end <= s->first) die("empty user range");
            s->users = load_users(file, s->end);
        } else die("too many services");
    }
    if (nsvc == 0 || (count < 0) == (duration < 0)) die("give services and exactly one of --count, --duration");

    int64_t start = now_ns(), stop_at = duration > 0 ? start + (int64_t)(duration * 1e9) : INT64_MAX;
    int64_t first_ok_ns = -1;
    char code[16];
    for (long i = 0; count < 0 || i < count; i++) {
        int progressed = 0;
        if (now_ns() >= stop_at) break;
        for (int k = 0; k < nsvc; k++) {
            struct service *s = &svc[k];
            if (s->next >= s->end) {
                if (!wrong) continue;
                s->next = s->first;
            }
            struct user *u = &s->users[s->next];
            unsigned value = totp(u, (int64_t)time(NULL));
            if (wrong) value = (value + 500000) % 1000000;
            snprintf(code, sizeof code, "%06u", value);
            long us;
            int rc = one_login(confdir, s->name, u->name, code, &us);
            if (until_ok && rc != PAM_SUCCESS) {
                usleep(200);
                i--;
                progressed = 1;
                continue;
            }
            s->next++;
            if (rc == PAM_SUCCESS) s->ok++;
            else s->fail++;
            if (until_ok && first_ok_ns < 0) first_ok_ns = now_ns();
            record(s, us);
            progressed = 1;
        }
        if (!progressed || (until_ok && first_ok_ns >= 0)) break;
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    for (int k = 0; k < nsvc; k++) {
        struct service *s = &svc[k];
        qsort(s->lat_us, (size_t)s->lat_n, sizeof *s->lat_us, cmp_long);
        double sum = 0;
        for (long j = 0; j < s->lat_n; j++) sum += (double)s->lat_us[j];
        printf("{\"service\": \"%s\", \"ok\": %ld, \"fail\": %ld, \"elapsed_s\": %.4f, \"p50_us\": %ld, "
               "\"p99_us\": %ld, \"max_us\": %ld, \"mean_us\": %.1f",
               s->name, s->ok, s->fail, elapsed, percentile(s->lat_us, s->lat_n, 0.50),
               percentile(s->lat_us, s->lat_n, 0.99), s->lat_n ? s->lat_us[s->lat_n - 1] : -1,
               s->lat_n ? sum / (double)s->lat_n : -1.0);
        if (until_ok && first_ok_ns >= 0 && t0_ns > 0)
            printf(", \"first_ok_since_t0_us\": %lld", (long long)((first_ok_ns - t0_ns) / 1000));
        printf("}\n");
    }
    return 0;
}
