// SPDX-License-Identifier: Apache-2.0
#ifndef CMFAPOSTGRES_H
#define CMFAPOSTGRES_H
/* libpq's API for the fleet store (Debian's libpq-dev), loaded at run time.
 *
 * Only a daemon with `store = postgresql` needs libpq, and libpq brings GnuTLS, Kerberos, LDAP and
 * p11-kit with it: linked in, they cost every host about 4 MB of resident memory at idle
 * (docs/performance.md). So the daemon is not linked with -lpq; mfa_libpq_load() dlopens
 * libpq.so.5 when the fleet store is created, and the PQ* functions below forward to it. */
#include <stddef.h>
#include <postgresql/libpq-fe.h>

/* Loads libpq.so.5 and resolves every function the fleet store calls. Returns 0, or -1 with one
 * sentence in `error` (naming the library and the package that has it). Safe to call again. */
int mfa_libpq_load(char *error, size_t size);

#endif
