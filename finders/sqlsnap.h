/*
 * finders/sqlsnap.h -- a snapshot of a module database's names
 * (mh_sqs_*): every name of its sqlar table, and the recorded SHA-256 rows
 * (finders/sqlar.h, MH_SAR_SHA_CREATE), read once in one read transaction,
 * so that the SQLite finder answers a find -- a module mapped from its
 * copy, a module this database does not have, a package -- without a
 * statement.  The finder keeps it only while the database file is the
 * very file it was read from (finders/sqlite.c says when).
 */
#ifndef MH_FINDERS_SQLSNAP_H
#define MH_FINDERS_SQLSNAP_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_host;

typedef struct mh_sqs mh_sqs;

/* A module file's row, as its recorded hash row gives it. */
typedef struct mh_sqs_row {
    int64_t row, mode, mtime, sz, len;
    char sha[65];
} mh_sqs_row;

/* Read the snapshot from db (a connection with no transaction open): NULL
 * when it cannot be had (WAL mode, no hashes table or not all its
 * triggers, a name twice, a failing statement, memory), the reason traced,
 * and *again set when that may pass (busy, memory). */
mh_sqs *mh_sqs_read(struct mh_host *h, sqlite3 *db, const char *shown,
                    bool *again);

void mh_sqs_free(struct mh_host *h, mh_sqs *q);

/* Has the table a row named exactly name (n bytes)? */
bool mh_sqs_has(const mh_sqs *q, const char *name, size_t n);

/* Has it a row named dir (n bytes) or under dir + "/"? */
bool mh_sqs_has_under(const mh_sqs *q, const char *dir, size_t n);

/* The hash row of name, or NULL. */
const mh_sqs_row *mh_sqs_hash(const mh_sqs *q, const char *name, size_t n);

#endif /* MH_FINDERS_SQLSNAP_H */
