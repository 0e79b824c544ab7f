/*  jm_coord_db.c - coordinator state in memory and in SQLite. */
#include "jm_coord_db.h"

#include "jm_log.h"
#include "jm_util.h"

#include <stdlib.h>
#include <string.h>

static const char *s_sub_names[] = {"ACTIVE", "DONE", "FAILED", "CANCELLED"};

const char *
jm_sub_state_name (jm_sub_state_t state)
{
    if ((int)state < 0 || state > JM_SUB_CANCELLED)
        return "?";
    return s_sub_names[state];
}

int
jm_sub_state_from_name (const char *name)
{
    for (int i = 0; name && i <= JM_SUB_CANCELLED; i++)
        if (strcmp (name, s_sub_names[i]) == 0)
            return i;
    return -1;
}

void
jm_wfiles_clear (jm_wfiles_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free (list->v[i].path);
    free (list->v);
    list->v = NULL;
    list->n = 0;
}

void
jm_strs_clear (jm_strs_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free (list->v[i]);
    free (list->v);
    list->v = NULL;
    list->n = 0;
}

static char *
s_dup (const char *s)
{
    char *d = strdup (s ? s : "");
    assert (d);
    return d;
}

jm_csub_t *
jm_csub_new (const char *id, int64_t created, const char *work_base, uint64_t group_size,
             uint64_t para_deg, size_t ntasks)
{
    jm_csub_t *self = calloc (1, sizeof *self);
    assert (self);
    self->id = s_dup (id);
    self->created = created;
    self->work_base = s_dup (work_base);
    self->group_size = group_size;
    self->para_deg = para_deg;
    self->resources = s_dup ("");
    self->state = JM_SUB_ACTIVE;
    self->ntasks = ntasks;
    self->tasks = calloc (ntasks ? ntasks : 1, sizeof (jm_ctask_t));
    assert (self->tasks);
    for (size_t i = 0; i < ntasks; i++) {
        self->tasks[i].sub = self;
        self->tasks[i].idx = (uint32_t)i;
        self->tasks[i].state = JM_TASK_PENDING;
        self->tasks[i].machine = -1;
    }
    return self;
}

bool
jm_ctask_state_out (jm_task_state_t state)
{
    return state == JM_TASK_STAGING || state == JM_TASK_QUEUED || state == JM_TASK_RUNNING;
}

void
jm_csub_machines_alloc (jm_csub_t *self)
{
    free (self->m_assigned);
    free (self->m_out);
    free (self->m_cpu);
    free (self->m_gpu);
    size_t n = self->machines.n + 1;
    self->m_assigned = calloc (n, sizeof (size_t));
    self->m_out = calloc (n, sizeof (size_t));
    self->m_cpu = calloc (n, sizeof (uint64_t));
    self->m_gpu = calloc (n, sizeof (uint64_t));
    assert (self->m_assigned && self->m_out && self->m_cpu && self->m_gpu);
    self->need_known = false;
}

void
jm_ctask_results_clear (jm_ctask_t *task)
{
    jm_wfiles_clear (&task->results);
    free (task->result_done);
    task->result_done = NULL;
    free (task->result_wait);
    task->result_wait = NULL;
    task->results_left = 0;
    task->results_waiting = 0;
}

void
jm_csub_destroy (jm_csub_t **self_p)
{
    assert (self_p);
    jm_csub_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->ntasks; i++) {
        jm_ctask_t *t = &self->tasks[i];
        free (t->path);
        free (t->command);
        free (t->outlog);
        free (t->errlog);
        free (t->reason);
        free (t->site);
        jm_wfiles_clear (&t->forward);
        jm_strs_clear (&t->backward);
        jm_ctask_results_clear (t);
    }
    free (self->tasks);
    for (size_t i = 0; i < self->machines.n; i++) {
        jm_wmachine_t *m = &self->machines.v[i];
        free (m->name);
        free (m->site);
        free (m->host);
        free (m->command);
        free (m->root);
        free (m->resources);
    }
    free (self->machines.v);
    free (self->m_assigned);
    free (self->m_out);
    free (self->m_cpu);
    free (self->m_gpu);
    jm_wfiles_clear (&self->common);
    jm_strs_clear (&self->backward_common);
    free (self->pending);
    free (self->id);
    free (self->work_base);
    free (self->resources);
    free (self);
    *self_p = NULL;
}

void
jm_csub_recount (jm_csub_t *self)
{
    memset (self->counts, 0, sizeof self->counts);
    for (size_t i = 0; i < self->ntasks; i++)
        self->counts[self->tasks[i].state]++;
    if (!self->m_assigned)
        jm_csub_machines_alloc (self);
    for (size_t m = 0; m < self->machines.n; m++)
        self->m_assigned[m] = self->m_out[m] = 0;
    for (size_t i = 0; i < self->ntasks; i++) {
        const jm_ctask_t *t = &self->tasks[i];
        if (t->machine < 0 || (size_t)t->machine >= self->machines.n)
            continue;
        self->m_assigned[t->machine]++;
        if (jm_ctask_state_out (t->state))
            self->m_out[t->machine]++;
    }
}

void
jm_csub_pending_push (jm_csub_t *self, uint32_t idx)
{
    if (self->pend_tail == self->pend_cap) {
        if (self->pend_head > 0) {
            memmove (self->pending, self->pending + self->pend_head,
                     (self->pend_tail - self->pend_head) * sizeof (uint32_t));
            self->pend_tail -= self->pend_head;
            self->pend_head = 0;
        }
        if (self->pend_tail == self->pend_cap) {
            self->pend_cap = self->pend_cap ? self->pend_cap * 2 : 64;
            self->pending = realloc (self->pending, self->pend_cap * sizeof (uint32_t));
            assert (self->pending);
        }
    }
    self->pending[self->pend_tail++] = idx;
}

int64_t
jm_csub_pending_pop (jm_csub_t *self)
{
    while (self->pend_head < self->pend_tail) {
        uint32_t idx = self->pending[self->pend_head++];
        if (idx < self->ntasks && self->tasks[idx].state == JM_TASK_PENDING)
            return idx;
    }
    self->pend_head = self->pend_tail = 0;
    return -1;
}

bool
jm_csub_has_pending (jm_csub_t *self)
{
    while (self->pend_head < self->pend_tail) {
        uint32_t idx = self->pending[self->pend_head];
        if (idx < self->ntasks && self->tasks[idx].state == JM_TASK_PENDING)
            return true;
        self->pend_head++;
    }
    return false;
}

/* ---------------------------------------------------------------- SQL */

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS submissions ("
    "  id TEXT PRIMARY KEY, created INTEGER NOT NULL, work_base TEXT NOT NULL,"
    "  group_size INTEGER NOT NULL, para_deg INTEGER NOT NULL, state TEXT NOT NULL,"
    "  total INTEGER NOT NULL, bytes_sent INTEGER NOT NULL DEFAULT 0,"
    "  resources TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE IF NOT EXISTS tasks ("
    "  sub_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL,"
    "  command TEXT NOT NULL, outlog TEXT NOT NULL, errlog TEXT NOT NULL,"
    "  backward TEXT NOT NULL, state TEXT NOT NULL, exit_code INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '', site TEXT NOT NULL DEFAULT '',"
    "  job_id INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sub_id, idx));"
    "CREATE TABLE IF NOT EXISTS task_files ("
    "  sub_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL,"
    "  hash TEXT NOT NULL, size INTEGER NOT NULL, mode INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS task_files_sub ON task_files (sub_id, idx);"
    "CREATE TABLE IF NOT EXISTS common_files ("
    "  sub_id TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL,"
    "  size INTEGER NOT NULL, mode INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS common_files_sub ON common_files (sub_id);"
    "CREATE TABLE IF NOT EXISTS backward_common (sub_id TEXT NOT NULL, pattern TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS backward_common_sub ON backward_common (sub_id);"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id INTEGER PRIMARY KEY, sub_id TEXT NOT NULL, site TEXT NOT NULL,"
    "  state TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sites ("
    "  name TEXT PRIMARY KEY, pubkey TEXT NOT NULL, scheduler TEXT NOT NULL,"
    "  slots INTEGER NOT NULL, host TEXT NOT NULL, state TEXT NOT NULL,"
    "  last_seen INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS files (hash TEXT PRIMARY KEY, size INTEGER NOT NULL);"
    /* added within schema version 1 (created when missing, ignored by
       older builds): result lists of FETCHING tasks, counters */
    "CREATE TABLE IF NOT EXISTS task_results ("
    "  sub_id TEXT NOT NULL, idx INTEGER NOT NULL, path TEXT NOT NULL,"
    "  hash TEXT NOT NULL, size INTEGER NOT NULL, mode INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS task_results_sub ON task_results (sub_id, idx);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    /* machine entries of a submission (thkit MACHINE.yml / machine.json) */
    "CREATE TABLE IF NOT EXISTS sub_machines ("
    "  sub_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, site TEXT NOT NULL,"
    "  host TEXT NOT NULL, command TEXT NOT NULL, root TEXT NOT NULL, resources TEXT NOT NULL,"
    "  submit_size INTEGER NOT NULL, ratio INTEGER NOT NULL, PRIMARY KEY (sub_id, idx));";

/* Columns that came within schema version 1: a database made before
   gets them with their defaults ("" = default resources, not
   speculative, no machine entry, not drained). */
static int
s_add_column (jm_db_t *db, const char *table, const char *column, const char *decl, char *err,
              size_t errlen)
{
    char sql[512];
    snprintf (sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'",
              table, column);
    sqlite3_stmt *st = jm_db_stmt (db, sql);
    if (!st || sqlite3_step (st) != SQLITE_ROW)
        return jm_err (err, errlen, "cannot read the %s table: %s", table, jm_db_errmsg (db));
    int have = sqlite3_column_int (st, 0);
    sqlite3_reset (st);
    if (have)
        return 0;
    snprintf (sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, column, decl);
    return jm_db_exec (db, sql, err, errlen);
}

static int
s_add_columns (jm_db_t *db, char *err, size_t errlen)
{
    if (s_add_column (db, "submissions", "resources", "TEXT NOT NULL DEFAULT ''", err, errlen) ||
        s_add_column (db, "submissions", "speculative", "INTEGER NOT NULL DEFAULT 0", err,
                      errlen) ||
        s_add_column (db, "tasks", "machine", "INTEGER NOT NULL DEFAULT -1", err, errlen) ||
        s_add_column (db, "sites", "drained", "INTEGER NOT NULL DEFAULT 0", err, errlen))
        return -1;
    return 0;
}

int
jm_coord_db_init (jm_db_t *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = jm_db_stmt (db, "PRAGMA user_version");
    if (!st || sqlite3_step (st) != SQLITE_ROW)
        return jm_err (err, errlen, "cannot read schema version: %s", jm_db_errmsg (db));
    int version = sqlite3_column_int (st, 0);
    sqlite3_reset (st);
    if (version > JM_COORD_SCHEMA_VERSION)
        return jm_err (err, errlen,
                       "state database has schema version %d, this jobman-coord knows %d: "
                       "upgrade jobman",
                       version, JM_COORD_SCHEMA_VERSION);
    bool was_in_tx = jm_db_in_tx (db);
    if (!was_in_tx && jm_db_exec (db, "BEGIN", err, errlen))
        return -1;
    char sql[64];
    snprintf (sql, sizeof sql, "PRAGMA user_version=%d", JM_COORD_SCHEMA_VERSION);
    if (jm_db_exec (db, s_schema, err, errlen) || s_add_columns (db, err, errlen) ||
        jm_db_exec (db, sql, err, errlen)) {
        if (!was_in_tx)
            jm_db_exec (db, "ROLLBACK", NULL, 0);
        return -1;
    }
    if (!was_in_tx && jm_db_exec (db, "COMMIT", err, errlen))
        return -1;
    return 0;
}

static char *
s_join (const jm_strs_t *list)
{
    size_t len = 1;
    for (size_t i = 0; i < list->n; i++)
        len += strlen (list->v[i]) + 1;
    char *out = malloc (len);
    assert (out);
    char *p = out;
    for (size_t i = 0; i < list->n; i++) {
        if (i)
            *p++ = '\n';
        size_t l = strlen (list->v[i]);
        memcpy (p, list->v[i], l);
        p += l;
    }
    *p = 0;
    return out;
}

static void
s_split (jm_strs_t *list, const char *text)
{
    if (!text || !*text)
        return;
    const char *p = text;
    while (true) {
        const char *nl = strchr (p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen (p);
        char *s = strndup (p, l);
        jm_strs_push (list, s);
        free (s);
        if (!nl)
            break;
        p = nl + 1;
    }
}

#define BIND_TEXT(st, i, s) sqlite3_bind_text (st, i, (s) ? (s) : "", -1, SQLITE_STATIC)

static int
s_step_done (jm_db_t *db, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
{
    int rc = sqlite3_step (st);
    if (rc != SQLITE_DONE) {
        jm_err (err, errlen, "cannot write %s to the state database: %s", what, jm_db_errmsg (db));
        sqlite3_reset (st);
        return -1;
    }
    sqlite3_reset (st);
    return 0;
}

int
jm_coord_db_insert_sub (jm_db_t *db, const jm_csub_t *sub, char *err, size_t errlen)
{
    if (jm_db_begin (db))
        return jm_err (err, errlen, "cannot begin a transaction: %s", jm_db_errmsg (db));
    sqlite3_stmt *st = jm_db_stmt (db, "INSERT INTO submissions (id, created, work_base, "
                                       "group_size, para_deg, state, total, bytes_sent, "
                                       "resources, speculative) VALUES (?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return jm_err (err, errlen, "cannot prepare: %s", jm_db_errmsg (db));
    BIND_TEXT (st, 1, sub->id);
    sqlite3_bind_int64 (st, 2, sub->created);
    BIND_TEXT (st, 3, sub->work_base);
    sqlite3_bind_int64 (st, 4, (int64_t)sub->group_size);
    sqlite3_bind_int64 (st, 5, (int64_t)sub->para_deg);
    BIND_TEXT (st, 6, jm_sub_state_name (sub->state));
    sqlite3_bind_int64 (st, 7, (int64_t)sub->ntasks);
    sqlite3_bind_int64 (st, 8, (int64_t)sub->bytes_sent);
    BIND_TEXT (st, 9, sub->resources);
    sqlite3_bind_int (st, 10, sub->speculative ? 1 : 0);
    if (s_step_done (db, st, err, errlen, "submission"))
        return -1;

    st = jm_db_stmt (db, "INSERT INTO sub_machines (sub_id, idx, name, site, host, command, root, "
                         "resources, submit_size, ratio) VALUES (?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return jm_err (err, errlen, "cannot prepare: %s", jm_db_errmsg (db));
    for (size_t i = 0; i < sub->machines.n; i++) {
        const jm_wmachine_t *m = &sub->machines.v[i];
        BIND_TEXT (st, 1, sub->id);
        sqlite3_bind_int64 (st, 2, (int64_t)i);
        BIND_TEXT (st, 3, m->name);
        BIND_TEXT (st, 4, m->site);
        BIND_TEXT (st, 5, m->host);
        BIND_TEXT (st, 6, m->command);
        BIND_TEXT (st, 7, m->root);
        BIND_TEXT (st, 8, m->resources);
        sqlite3_bind_int64 (st, 9, (int64_t)m->submit_size);
        sqlite3_bind_int64 (st, 10, (int64_t)m->ratio);
        if (s_step_done (db, st, err, errlen, "machine entry"))
            return -1;
    }

    st = jm_db_stmt (db, "INSERT INTO common_files (sub_id, path, hash, size, mode) "
                         "VALUES (?,?,?,?,?)");
    if (!st)
        return jm_err (err, errlen, "cannot prepare: %s", jm_db_errmsg (db));
    for (size_t i = 0; i < sub->common.n; i++) {
        const jm_wfile_t *f = &sub->common.v[i];
        BIND_TEXT (st, 1, sub->id);
        BIND_TEXT (st, 2, f->path);
        BIND_TEXT (st, 3, f->hash);
        sqlite3_bind_int64 (st, 4, (int64_t)f->size);
        sqlite3_bind_int64 (st, 5, f->mode);
        if (s_step_done (db, st, err, errlen, "common file"))
            return -1;
    }
    st = jm_db_stmt (db, "INSERT INTO backward_common (sub_id, pattern) VALUES (?,?)");
    if (!st)
        return jm_err (err, errlen, "cannot prepare: %s", jm_db_errmsg (db));
    for (size_t i = 0; i < sub->backward_common.n; i++) {
        BIND_TEXT (st, 1, sub->id);
        BIND_TEXT (st, 2, sub->backward_common.v[i]);
        if (s_step_done (db, st, err, errlen, "backward common pattern"))
            return -1;
    }
    sqlite3_stmt *ts = jm_db_stmt (db, "INSERT INTO tasks (sub_id, idx, path, command, outlog, "
                                       "errlog, backward, state, exit_code, reason, site, "
                                       "job_id, machine) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    sqlite3_stmt *fs = jm_db_stmt (db, "INSERT INTO task_files (sub_id, idx, path, hash, size, "
                                       "mode) VALUES (?,?,?,?,?,?)");
    if (!ts || !fs)
        return jm_err (err, errlen, "cannot prepare: %s", jm_db_errmsg (db));
    for (size_t i = 0; i < sub->ntasks; i++) {
        const jm_ctask_t *t = &sub->tasks[i];
        char *backward = s_join (&t->backward);
        sqlite3_reset (ts);
        sqlite3_clear_bindings (ts);
        BIND_TEXT (ts, 1, sub->id);
        sqlite3_bind_int64 (ts, 2, t->idx);
        BIND_TEXT (ts, 3, t->path);
        BIND_TEXT (ts, 4, t->command);
        BIND_TEXT (ts, 5, t->outlog);
        BIND_TEXT (ts, 6, t->errlog);
        BIND_TEXT (ts, 7, backward);
        BIND_TEXT (ts, 8, jm_task_state_name (t->state));
        sqlite3_bind_int64 (ts, 9, t->exit_code);
        BIND_TEXT (ts, 10, t->reason);
        BIND_TEXT (ts, 11, t->site);
        sqlite3_bind_int64 (ts, 12, (int64_t)t->job_id);
        sqlite3_bind_int (ts, 13, t->machine);
        int rc = s_step_done (db, ts, err, errlen, "task");
        free (backward);
        if (rc)
            return -1;
        for (size_t j = 0; j < t->forward.n; j++) {
            const jm_wfile_t *f = &t->forward.v[j];
            BIND_TEXT (fs, 1, sub->id);
            sqlite3_bind_int64 (fs, 2, t->idx);
            BIND_TEXT (fs, 3, f->path);
            BIND_TEXT (fs, 4, f->hash);
            sqlite3_bind_int64 (fs, 5, (int64_t)f->size);
            sqlite3_bind_int64 (fs, 6, f->mode);
            if (s_step_done (db, fs, err, errlen, "task file"))
                return -1;
        }
    }
    return 0;
}

static const char *
s_col (sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text (st, i);
    return s ? s : "";
}

int
jm_coord_db_load (jm_db_t *db, zlist_t *list, char *err, size_t errlen)
{
    sqlite3_stmt *ss = jm_db_stmt (db, "SELECT id, created, work_base, group_size, para_deg, "
                                       "state, total, bytes_sent, resources, speculative "
                                       "FROM submissions ORDER BY created, rowid");
    if (!ss)
        return jm_err (err, errlen, "cannot read submissions: %s", jm_db_errmsg (db));
    int rc;
    zlist_t *subs = zlist_new ();
    while ((rc = sqlite3_step (ss)) == SQLITE_ROW) {
        int64_t total = sqlite3_column_int64 (ss, 6);
        if (total < 0 || total > 100000000)
            total = 0;
        jm_csub_t *sub = jm_csub_new (s_col (ss, 0), sqlite3_column_int64 (ss, 1), s_col (ss, 2),
                                      (uint64_t)sqlite3_column_int64 (ss, 3),
                                      (uint64_t)sqlite3_column_int64 (ss, 4), (size_t)total);
        int st = jm_sub_state_from_name (s_col (ss, 5));
        sub->state = st < 0 ? JM_SUB_ACTIVE : (jm_sub_state_t)st;
        sub->bytes_sent = (uint64_t)sqlite3_column_int64 (ss, 7);
        free (sub->resources);
        sub->resources = s_dup (s_col (ss, 8));
        sub->speculative = sqlite3_column_int (ss, 9) != 0;
        zlist_append (subs, sub);
    }
    sqlite3_reset (ss);
    if (rc != SQLITE_DONE) {
        jm_err (err, errlen, "cannot read submissions: %s", jm_db_errmsg (db));
        goto fail;
    }
    for (jm_csub_t *sub = zlist_first (subs); sub; sub = zlist_next (subs)) {
        sqlite3_stmt *ms = jm_db_stmt (db, "SELECT name, site, host, command, root, resources, "
                                           "submit_size, ratio FROM sub_machines "
                                           "WHERE sub_id = ? ORDER BY idx");
        if (!ms)
            goto fail_db;
        BIND_TEXT (ms, 1, sub->id);
        while ((rc = sqlite3_step (ms)) == SQLITE_ROW) {
            jm_wmachine_t *m = jm_wmachines_push (&sub->machines);
            m->name = s_dup (s_col (ms, 0));
            m->site = s_dup (s_col (ms, 1));
            m->host = s_dup (s_col (ms, 2));
            m->command = s_dup (s_col (ms, 3));
            m->root = s_dup (s_col (ms, 4));
            m->resources = s_dup (s_col (ms, 5));
            m->submit_size = (uint64_t)sqlite3_column_int64 (ms, 6);
            m->ratio = (uint64_t)sqlite3_column_int64 (ms, 7);
        }
        sqlite3_reset (ms);
        if (rc != SQLITE_DONE)
            goto fail_db;
        jm_csub_machines_alloc (sub);
        sqlite3_stmt *ts = jm_db_stmt (db, "SELECT idx, path, command, outlog, errlog, backward, "
                                           "state, exit_code, reason, site, job_id, machine "
                                           "FROM tasks WHERE sub_id = ? ORDER BY idx");
        if (!ts)
            goto fail_db;
        BIND_TEXT (ts, 1, sub->id);
        while ((rc = sqlite3_step (ts)) == SQLITE_ROW) {
            int64_t idx = sqlite3_column_int64 (ts, 0);
            if (idx < 0 || (size_t)idx >= sub->ntasks) {
                jm_warn ("state database: submission %s has stray task %lld; ignored", sub->id,
                         (long long)idx);
                continue;
            }
            jm_ctask_t *t = &sub->tasks[idx];
            t->path = s_dup (s_col (ts, 1));
            t->command = s_dup (s_col (ts, 2));
            t->outlog = s_dup (s_col (ts, 3));
            t->errlog = s_dup (s_col (ts, 4));
            s_split (&t->backward, s_col (ts, 5));
            int state = jm_task_state_from_name (s_col (ts, 6));
            t->state = state < 0 ? JM_TASK_FAILED : (jm_task_state_t)state;
            t->exit_code = sqlite3_column_int64 (ts, 7);
            t->reason = s_dup (s_col (ts, 8));
            t->site = s_dup (s_col (ts, 9));
            t->job_id = (uint64_t)sqlite3_column_int64 (ts, 10);
            int64_t m = sqlite3_column_int64 (ts, 11);
            t->machine = m >= 0 && (uint64_t)m < sub->machines.n ? (int32_t)m : -1;
        }
        sqlite3_reset (ts);
        if (rc != SQLITE_DONE)
            goto fail_db;
        /* tasks missing from the table would have NULL strings */
        for (size_t i = 0; i < sub->ntasks; i++) {
            jm_ctask_t *t = &sub->tasks[i];
            if (!t->path) {
                jm_warn ("state database: submission %s lacks task %zu; marked FAILED", sub->id, i);
                t->path = s_dup ("");
                t->command = s_dup ("");
                t->outlog = s_dup ("");
                t->errlog = s_dup ("");
                t->reason = s_dup ("task missing from the state database");
                t->site = s_dup ("");
                t->state = JM_TASK_FAILED;
            }
        }
        sqlite3_stmt *fs = jm_db_stmt (db, "SELECT idx, path, hash, size, mode FROM task_files "
                                           "WHERE sub_id = ? ORDER BY idx, rowid");
        if (!fs)
            goto fail_db;
        BIND_TEXT (fs, 1, sub->id);
        while ((rc = sqlite3_step (fs)) == SQLITE_ROW) {
            int64_t idx = sqlite3_column_int64 (fs, 0);
            if (idx < 0 || (size_t)idx >= sub->ntasks)
                continue;
            jm_wfiles_push (&sub->tasks[idx].forward, s_col (fs, 1), s_col (fs, 2),
                            (uint64_t)sqlite3_column_int64 (fs, 3),
                            (uint32_t)sqlite3_column_int64 (fs, 4));
        }
        sqlite3_reset (fs);
        if (rc != SQLITE_DONE)
            goto fail_db;
        sqlite3_stmt *rs = jm_db_stmt (db, "SELECT idx, path, hash, size, mode FROM task_results "
                                           "WHERE sub_id = ? ORDER BY idx, rowid");
        if (!rs)
            goto fail_db;
        BIND_TEXT (rs, 1, sub->id);
        while ((rc = sqlite3_step (rs)) == SQLITE_ROW) {
            int64_t idx = sqlite3_column_int64 (rs, 0);
            if (idx < 0 || (size_t)idx >= sub->ntasks)
                continue;
            jm_ctask_t *t = &sub->tasks[idx];
            t->results_stored = true;
            if (t->state != JM_TASK_FETCHING)
                continue; /* stale rows: dropped when the task is next written */
            jm_wfiles_push (&t->results, s_col (rs, 1), s_col (rs, 2),
                            (uint64_t)sqlite3_column_int64 (rs, 3),
                            (uint32_t)sqlite3_column_int64 (rs, 4));
        }
        sqlite3_reset (rs);
        if (rc != SQLITE_DONE)
            goto fail_db;
        sqlite3_stmt *cs = jm_db_stmt (db, "SELECT path, hash, size, mode FROM common_files "
                                           "WHERE sub_id = ? ORDER BY rowid");
        if (!cs)
            goto fail_db;
        BIND_TEXT (cs, 1, sub->id);
        while ((rc = sqlite3_step (cs)) == SQLITE_ROW)
            jm_wfiles_push (&sub->common, s_col (cs, 0), s_col (cs, 1),
                            (uint64_t)sqlite3_column_int64 (cs, 2),
                            (uint32_t)sqlite3_column_int64 (cs, 3));
        sqlite3_reset (cs);
        if (rc != SQLITE_DONE)
            goto fail_db;
        sqlite3_stmt *bs = jm_db_stmt (db, "SELECT pattern FROM backward_common WHERE sub_id = ? "
                                           "ORDER BY rowid");
        if (!bs)
            goto fail_db;
        BIND_TEXT (bs, 1, sub->id);
        while ((rc = sqlite3_step (bs)) == SQLITE_ROW)
            jm_strs_push (&sub->backward_common, s_col (bs, 0));
        sqlite3_reset (bs);
        if (rc != SQLITE_DONE)
            goto fail_db;
        jm_csub_recount (sub);
    }
    for (jm_csub_t *sub = zlist_pop (subs); sub; sub = zlist_pop (subs))
        zlist_append (list, sub);
    zlist_destroy (&subs);
    return 0;
fail_db:
    jm_err (err, errlen, "cannot read tasks: %s", jm_db_errmsg (db));
fail:
    for (jm_csub_t *sub = zlist_pop (subs); sub; sub = zlist_pop (subs))
        jm_csub_destroy (&sub);
    zlist_destroy (&subs);
    return -1;
}

static int
s_write (jm_db_t *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step (st);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        jm_error ("cannot write %s to the state database: %s", what, jm_db_errmsg (db));
        return -1;
    }
    return 0;
}

int
jm_coord_db_task_update (jm_db_t *db, const jm_csub_t *sub, const jm_ctask_t *task)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "UPDATE tasks SET state = ?, exit_code = ?, reason = ?, "
                                       "site = ?, job_id = ?, machine = ? "
                                       "WHERE sub_id = ? AND idx = ?");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, jm_task_state_name (task->state));
    sqlite3_bind_int64 (st, 2, task->exit_code);
    BIND_TEXT (st, 3, task->reason);
    BIND_TEXT (st, 4, task->site);
    sqlite3_bind_int64 (st, 5, (int64_t)task->job_id);
    sqlite3_bind_int (st, 6, task->machine);
    BIND_TEXT (st, 7, sub->id);
    sqlite3_bind_int64 (st, 8, task->idx);
    return s_write (db, st, "task state");
}

int
jm_coord_db_sub_update (jm_db_t *db, const jm_csub_t *sub)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "UPDATE submissions SET state = ?, bytes_sent = ? "
                                       "WHERE id = ?");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, jm_sub_state_name (sub->state));
    sqlite3_bind_int64 (st, 2, (int64_t)sub->bytes_sent);
    BIND_TEXT (st, 3, sub->id);
    return s_write (db, st, "submission state");
}

int
jm_coord_db_task_results (jm_db_t *db, const jm_csub_t *sub, jm_ctask_t *task)
{
    if (jm_db_begin (db))
        return -1;
    if (task->results_stored) {
        sqlite3_stmt *st = jm_db_stmt (db, "DELETE FROM task_results WHERE sub_id = ? AND idx = ?");
        if (!st)
            return -1;
        BIND_TEXT (st, 1, sub->id);
        sqlite3_bind_int64 (st, 2, task->idx);
        if (s_write (db, st, "task results"))
            return -1;
        task->results_stored = false;
    }
    if (task->results.n == 0)
        return 0;
    sqlite3_stmt *st = jm_db_stmt (db, "INSERT INTO task_results (sub_id, idx, path, hash, size, "
                                       "mode) VALUES (?,?,?,?,?,?)");
    if (!st)
        return -1;
    for (size_t i = 0; i < task->results.n; i++) {
        const jm_wfile_t *f = &task->results.v[i];
        BIND_TEXT (st, 1, sub->id);
        sqlite3_bind_int64 (st, 2, task->idx);
        BIND_TEXT (st, 3, f->path);
        BIND_TEXT (st, 4, f->hash);
        sqlite3_bind_int64 (st, 5, (int64_t)f->size);
        sqlite3_bind_int64 (st, 6, f->mode);
        if (s_write (db, st, "task result"))
            return -1;
    }
    task->results_stored = true;
    return 0;
}

uint64_t
jm_coord_db_meta_get (jm_db_t *db, const char *key, uint64_t dflt)
{
    sqlite3_stmt *st = jm_db_stmt (db, "SELECT value FROM meta WHERE key = ?");
    if (!st)
        return dflt;
    BIND_TEXT (st, 1, key);
    uint64_t value = dflt;
    if (sqlite3_step (st) == SQLITE_ROW)
        value = (uint64_t)sqlite3_column_int64 (st, 0);
    sqlite3_reset (st);
    return value;
}

int
jm_coord_db_meta_set (jm_db_t *db, const char *key, uint64_t value)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "INSERT INTO meta (key, value) VALUES (?,?) "
                                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, key);
    sqlite3_bind_int64 (st, 2, (int64_t)value);
    return s_write (db, st, "counter");
}

int
jm_coord_db_job_insert (jm_db_t *db, uint64_t job_id, const char *sub_id, const char *site,
                        const char *state, int64_t created)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "INSERT INTO jobs (id, sub_id, site, state, created) "
                                       "VALUES (?,?,?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_int64 (st, 1, (int64_t)job_id);
    BIND_TEXT (st, 2, sub_id);
    BIND_TEXT (st, 3, site);
    BIND_TEXT (st, 4, state);
    sqlite3_bind_int64 (st, 5, created);
    return s_write (db, st, "job");
}

int
jm_coord_db_job_state (jm_db_t *db, uint64_t job_id, const char *state)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "UPDATE jobs SET state = ? WHERE id = ?");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, state);
    sqlite3_bind_int64 (st, 2, (int64_t)job_id);
    return s_write (db, st, "job state");
}

int
jm_coord_db_jobs_abandon (jm_db_t *db, const char *state)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "UPDATE jobs SET state = ? WHERE state NOT IN "
                                       "('DONE', 'FAILED', 'CANCELLED', 'ABANDONED')");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, state);
    return s_write (db, st, "job states");
}

uint64_t
jm_coord_db_max_job_id (jm_db_t *db)
{
    sqlite3_stmt *st = jm_db_stmt (db, "SELECT COALESCE (MAX (id), 0) FROM jobs");
    if (!st)
        return 0;
    uint64_t id = 0;
    if (sqlite3_step (st) == SQLITE_ROW)
        id = (uint64_t)sqlite3_column_int64 (st, 0);
    sqlite3_reset (st);
    return id;
}

int
jm_coord_db_site_upsert (jm_db_t *db, const char *name, const char *pubkey, const char *scheduler,
                         uint64_t slots, const char *host, const char *state, int64_t last_seen)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (
        db, "INSERT INTO sites (name, pubkey, scheduler, slots, host, state, last_seen) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET pubkey = excluded.pubkey, "
            "scheduler = excluded.scheduler, slots = excluded.slots, host = excluded.host, "
            "state = excluded.state, last_seen = excluded.last_seen");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, name);
    BIND_TEXT (st, 2, pubkey);
    BIND_TEXT (st, 3, scheduler);
    sqlite3_bind_int64 (st, 4, (int64_t)slots);
    BIND_TEXT (st, 5, host);
    BIND_TEXT (st, 6, state);
    sqlite3_bind_int64 (st, 7, last_seen);
    return s_write (db, st, "site");
}

int
jm_coord_db_site_state (jm_db_t *db, const char *name, const char *state, int64_t last_seen)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (db, "UPDATE sites SET state = ?, last_seen = ? WHERE name = ?");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, state);
    sqlite3_bind_int64 (st, 2, last_seen);
    BIND_TEXT (st, 3, name);
    return s_write (db, st, "site state");
}

int
jm_coord_db_site_drained (jm_db_t *db, const char *name, bool drained)
{
    if (jm_db_begin (db))
        return -1;
    sqlite3_stmt *st = jm_db_stmt (
        db, "INSERT INTO sites (name, pubkey, scheduler, slots, host, state, last_seen, drained) "
            "VALUES (?, '', '', 0, '', 'gone', 0, ?) "
            "ON CONFLICT (name) DO UPDATE SET drained = excluded.drained");
    if (!st)
        return -1;
    BIND_TEXT (st, 1, name);
    sqlite3_bind_int (st, 2, drained ? 1 : 0);
    return s_write (db, st, "site drained");
}

int
jm_coord_db_sites_load (jm_db_t *db, jm_coord_db_site_fn *fn, void *arg)
{
    sqlite3_stmt *st = jm_db_stmt (db, "SELECT name, scheduler, slots, host, drained, last_seen "
                                       "FROM sites ORDER BY name");
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        fn (arg, s_col (st, 0), s_col (st, 1), (uint64_t)sqlite3_column_int64 (st, 2),
            s_col (st, 3), sqlite3_column_int (st, 4) != 0, sqlite3_column_int64 (st, 5));
    sqlite3_reset (st);
    return rc == SQLITE_DONE ? 0 : -1;
}
