/*  jm_db.c - SQLite helpers: WAL, cached statements, batched transactions. */
#include "jm_db.h"

#include "jm_log.h"
#include "jm_util.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

struct _jm_db_t {
    sqlite3 *db;
    char *path;
    zhashx_t *stmts; /* SQL text -> sqlite3_stmt* */
    bool in_tx;
};

static void
s_stmt_destroy (void **item)
{
    sqlite3_stmt *stmt = (sqlite3_stmt *)*item;
    sqlite3_finalize (stmt);
    *item = NULL;
}

jm_db_t *
jm_db_open (const char *path, char *err, size_t errlen)
{
    assert (path);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        jm_err (err, errlen, "cannot open database '%s': %s", path,
                db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
        sqlite3_close (db);
        return NULL;
    }
    sqlite3_busy_timeout (db, 5000);
    char *msg = NULL;
    rc = sqlite3_exec (db,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                       "PRAGMA foreign_keys=ON;",
                       NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        jm_err (err, errlen, "cannot set up database '%s': %s", path,
                msg ? msg : sqlite3_errstr (rc));
        sqlite3_free (msg);
        sqlite3_close (db);
        return NULL;
    }
    jm_db_t *self = calloc (1, sizeof *self);
    assert (self);
    self->db = db;
    self->path = strdup (path);
    self->stmts = zhashx_new ();
    zhashx_set_destructor (self->stmts, s_stmt_destroy);
    return self;
}

void
jm_db_destroy (jm_db_t **self_p)
{
    assert (self_p);
    jm_db_t *self = *self_p;
    if (!self)
        return;
    if (self->in_tx)
        jm_db_commit (self);
    zhashx_destroy (&self->stmts);
    sqlite3_close (self->db);
    free (self->path);
    free (self);
    *self_p = NULL;
}

sqlite3 *
jm_db_handle (jm_db_t *self)
{
    assert (self);
    return self->db;
}

int
jm_db_exec (jm_db_t *self, const char *sql, char *err, size_t errlen)
{
    assert (self && sql);
    char *msg = NULL;
    int rc = sqlite3_exec (self->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        jm_err (err, errlen, "database '%s': %s", self->path, msg ? msg : sqlite3_errstr (rc));
        sqlite3_free (msg);
        return -1;
    }
    return 0;
}

sqlite3_stmt *
jm_db_stmt (jm_db_t *self, const char *sql)
{
    assert (self && sql);
    sqlite3_stmt *stmt = (sqlite3_stmt *)zhashx_lookup (self->stmts, sql);
    if (stmt) {
        sqlite3_reset (stmt);
        sqlite3_clear_bindings (stmt);
        return stmt;
    }
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        jm_error ("database '%s': cannot prepare '%s': %s", self->path, sql,
                  sqlite3_errmsg (self->db));
        return NULL;
    }
    zhashx_insert (self->stmts, sql, stmt);
    return stmt;
}

int
jm_db_begin (jm_db_t *self)
{
    assert (self);
    if (self->in_tx)
        return 0;
    char err[512];
    if (jm_db_exec (self, "BEGIN", err, sizeof err)) {
        jm_error ("%s", err);
        return -1;
    }
    self->in_tx = true;
    return 0;
}

int
jm_db_commit (jm_db_t *self)
{
    assert (self);
    if (!self->in_tx)
        return 0;
    char err[512];
    if (jm_db_exec (self, "COMMIT", err, sizeof err)) {
        jm_error ("commit failed: %s", err);
        /* leave no half-open transaction behind */
        if (!sqlite3_get_autocommit (self->db))
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        self->in_tx = false;
        return -1;
    }
    self->in_tx = false;
    return 0;
}

int
jm_db_rollback (jm_db_t *self)
{
    assert (self);
    if (!self->in_tx)
        return 0;
    self->in_tx = false;
    if (sqlite3_get_autocommit (self->db))
        return 0; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
    char err[512];
    if (jm_db_exec (self, "ROLLBACK", err, sizeof err)) {
        jm_error ("rollback failed: %s", err);
        return -1;
    }
    return 0;
}

bool
jm_db_in_tx (jm_db_t *self)
{
    assert (self);
    return self->in_tx;
}

const char *
jm_db_errmsg (jm_db_t *self)
{
    assert (self);
    return sqlite3_errmsg (self->db);
}
