/*  jm_db.h - SQLite helpers: WAL mode, cached statements, batched
    transactions (one per event-loop pass).                               */
#ifndef JM_DB_H
#define JM_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _jm_db_t jm_db_t;

/* Open (creating) path with journal_mode=WAL, synchronous=NORMAL,
   foreign_keys=ON, busy_timeout 5 s.  NULL + err naming the file. */
jm_db_t *jm_db_open (const char *path, char *err, size_t errlen);
void jm_db_destroy (jm_db_t **self_p);
sqlite3 *jm_db_handle (jm_db_t *self);

/* Run one or more statements without results. 0 or -1 + err. */
int jm_db_exec (jm_db_t *self, const char *sql, char *err, size_t errlen);

/* A prepared statement cached by SQL text, reset and with bindings cleared;
   owned by the db.  NULL on error (logged). */
sqlite3_stmt *jm_db_stmt (jm_db_t *self, const char *sql);

/* Batching: begin() opens a transaction if none is open (cheap to call
   before every write); commit() commits it if open.  0 or -1 (logged). */
int jm_db_begin (jm_db_t *self);
int jm_db_commit (jm_db_t *self);
/* Roll back the open transaction, if any (added; backward compatible). */
int jm_db_rollback (jm_db_t *self);
bool jm_db_in_tx (jm_db_t *self);

/* Last error text. */
const char *jm_db_errmsg (jm_db_t *self);

#endif
