// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "CMFASys.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

/* The flush thread of the replay journal (see ReplayJournal.startBackgroundSync). It shares no
 * memory with the daemon: requests (a descriptor number) and results (0 or an errno) travel
 * through two pipes, so the daemon's single-threaded Swift code needs no locks. */
struct sync_worker_pipes {
    int requests;
    int results;
};

static void *sync_worker_main(void *arg) {
    struct sync_worker_pipes pipes = *(struct sync_worker_pipes *)arg;
    free(arg);
    for (;;) {
        int fd;
        ssize_t n = read(pipes.requests, &fd, sizeof fd);
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof fd) break; /* the daemon closed its end (or a short read: stop) */
        int result = fdatasync(fd) == 0 ? 0 : errno;
        while (write(pipes.results, &result, sizeof result) < 0 && errno == EINTR) {}
    }
    close(pipes.requests);
    close(pipes.results);
    return NULL;
}

int mfa_sync_worker_start(int *request_fd, int *result_fd) {
    int requests[2], results[2];
    if (pipe2(requests, O_CLOEXEC) != 0) return -1;
    if (pipe2(results, O_CLOEXEC) != 0) {
        close(requests[0]);
        close(requests[1]);
        return -1;
    }
    struct sync_worker_pipes *pipes = malloc(sizeof *pipes);
    if (pipes == NULL) goto fail;
    pipes->requests = requests[0];
    pipes->results = results[1];
    /* The thread takes no signals: they reach the daemon's signalfd on the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, sync_worker_main, pipes);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(pipes);
        errno = rc;
        goto fail;
    }
    *request_fd = requests[1];
    *result_fd = results[0];
    return 0;
fail:
    close(requests[0]);
    close(requests[1]);
    close(results[0]);
    close(results[1]);
    return -1;
}

int mfa_sync_worker_request(int request_fd, int fd) {
    for (;;) {
        ssize_t n = write(request_fd, &fd, sizeof fd);
        if (n == (ssize_t)sizeof fd) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n >= 0) errno = EIO;
        return -1;
    }
}

int mfa_sync_worker_result(int result_fd) {
    for (;;) {
        int result;
        ssize_t n = read(result_fd, &result, sizeof result);
        if (n == (ssize_t)sizeof result) return result;
        if (n < 0 && errno == EINTR) continue;
        return n < 0 ? errno : EIO;
    }
}
