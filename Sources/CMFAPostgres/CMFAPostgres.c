// SPDX-License-Identifier: Apache-2.0
/* Forwarders from libpq's names to the library loaded by mfa_libpq_load (see CMFAPostgres.h).
 * Each definition must match libpq-fe.h exactly: the compiler checks it against the header. */
#define _GNU_SOURCE
#include "CMFAPostgres.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* return type | name | parameters | arguments */
#define MFA_LIBPQ_FUNCTIONS(X) \
    X(PGconn *, PQconnectStartParams, (const char *const *keywords, const char *const *values, int expand_dbname), (keywords, values, expand_dbname)) \
    X(PostgresPollingStatusType, PQconnectPoll, (PGconn *conn), (conn)) \
    X(void, PQfinish, (PGconn *conn), (conn)) \
    X(ConnStatusType, PQstatus, (const PGconn *conn), (conn)) \
    X(char *, PQerrorMessage, (const PGconn *conn), (conn)) \
    X(int, PQsocket, (const PGconn *conn), (conn)) \
    X(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *conn, PQnoticeProcessor proc, void *arg), (conn, proc, arg)) \
    X(int, PQsetnonblocking, (PGconn *conn, int arg), (conn, arg)) \
    X(int, PQsendQueryParams, (PGconn *conn, const char *command, int nParams, const Oid *paramTypes, \
                               const char *const *paramValues, const int *paramLengths, const int *paramFormats, \
                               int resultFormat), \
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat)) \
    X(int, PQsendPrepare, (PGconn *conn, const char *stmtName, const char *query, int nParams, \
                           const Oid *paramTypes), \
      (conn, stmtName, query, nParams, paramTypes)) \
    X(int, PQsendQueryPrepared, (PGconn *conn, const char *stmtName, int nParams, const char *const *paramValues, \
                                 const int *paramLengths, const int *paramFormats, int resultFormat), \
      (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat)) \
    X(int, PQflush, (PGconn *conn), (conn)) \
    X(int, PQconsumeInput, (PGconn *conn), (conn)) \
    X(int, PQisBusy, (PGconn *conn), (conn)) \
    X(PGresult *, PQgetResult, (PGconn *conn), (conn)) \
    X(void, PQclear, (PGresult *res), (res)) \
    X(ExecStatusType, PQresultStatus, (const PGresult *res), (res)) \
    X(char *, PQresultErrorMessage, (const PGresult *res), (res)) \
    X(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode)) \
    X(char *, PQcmdTuples, (PGresult *res), (res)) \
    X(int, PQntuples, (const PGresult *res), (res)) \
    X(int, PQnfields, (const PGresult *res), (res)) \
    X(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num), (res, tup_num, field_num)) \
    X(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num), (res, tup_num, field_num)) \
    X(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg), (conninfo, errmsg)) \
    X(void, PQconninfoFree, (PQconninfoOption *connOptions), (connOptions)) \
    X(void, PQfreemem, (void *ptr), (ptr))

#define MFA_POINTER(ret, name, params, args) static ret (*p_##name) params;
MFA_LIBPQ_FUNCTIONS(MFA_POINTER)

static int loaded;

int mfa_libpq_load(char *error, size_t size)
{
    if (loaded)
        return 0;
    void *library = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(error, size, "store = postgresql needs libpq.so.5 (Debian package libpq5): %s", dlerror());
        return -1;
    }
#define MFA_RESOLVE(ret, name, params, args)                                                          \
    if ((*(void **)&p_##name = dlsym(library, #name)) == NULL) {                                     \
        snprintf(error, size, "libpq.so.5 lacks %s (libpq5 older than PostgreSQL 14?)", #name);     \
        dlclose(library);                                                                             \
        return -1;                                                                                    \
    }
    MFA_LIBPQ_FUNCTIONS(MFA_RESOLVE)
    loaded = 1;
    return 0;
}

/* Called before mfa_libpq_load succeeded: a programming error, not a state to run on in. */
static void not_loaded(const char *name)
{
    fprintf(stderr, "mfagated: %s called before libpq was loaded\n", name);
    abort();
}

#define MFA_FORWARD(ret, name, params, args)  \
    ret name params                           \
    {                                         \
        if (!loaded)                          \
            not_loaded(#name);                \
        return p_##name args;                 \
    }
MFA_LIBPQ_FUNCTIONS(MFA_FORWARD)
