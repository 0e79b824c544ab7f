/*  test_coord_db.c - the coordinator's schema, submission insert/load,
    state updates and reload after reopening. */
#define _GNU_SOURCE
#include "jm_coord_db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jm_testutil.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

static char s_path[PATH_MAX + 16];

static int
setup (void **state)
{
    if (jm_test_dir_setup (state) != 0)
        return -1;
    snprintf (s_path, sizeof s_path, "%s/state.db", jm_test_dir);
    return 0;
}

static jm_db_t *
s_open (void)
{
    char err[256];
    jm_db_t *db = jm_db_open (s_path, err, sizeof err);
    assert_non_null (db);
    assert_int_equal (jm_coord_db_init (db, err, sizeof err), 0);
    return db;
}

static jm_csub_t *
s_make_sub (const char *id, size_t n)
{
    jm_csub_t *sub = jm_csub_new (id, 1700000000, "/work/base", 3, 2, n);
    jm_wfiles_push (&sub->common, "common.dat", H1, 10, 0644);
    jm_strs_push (&sub->backward_common, "summary.txt");
    for (size_t i = 0; i < n; i++) {
        jm_ctask_t *t = &sub->tasks[i];
        char path[32];
        snprintf (path, sizeof path, "t%03zu", i);
        t->path = strdup (path);
        t->command = strdup ("echo hi > out.dat");
        t->outlog = strdup ("log");
        t->errlog = strdup ("err");
        t->reason = strdup ("");
        t->site = strdup ("");
        jm_wfiles_push (&t->forward, "in.dat", H2, 20, 0755);
        jm_wfiles_push (&t->forward, "sub/in2.dat", H1, 10, 0600);
        jm_strs_push (&t->backward, "out.dat");
        jm_strs_push (&t->backward, "*.log");
    }
    return sub;
}

static void
test_schema (void **state)
{
    (void)state;
    jm_db_t *db = s_open ();
    const char *tables[] = {"submissions",     "tasks", "task_files", "common_files",
                            "backward_common", "jobs",  "sites",      "files"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        sqlite3_stmt *st =
            jm_db_stmt (db, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?");
        sqlite3_bind_text (st, 1, tables[i], -1, SQLITE_STATIC);
        assert_int_equal (sqlite3_step (st), SQLITE_ROW);
        assert_int_equal (sqlite3_column_int (st, 0), 1);
    }
    sqlite3_stmt *st = jm_db_stmt (db, "PRAGMA user_version");
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (st, 0), JM_COORD_SCHEMA_VERSION);
    /* init is idempotent */
    char err[256];
    assert_int_equal (jm_coord_db_init (db, err, sizeof err), 0);
    /* a newer schema is refused with a message */
    assert_int_equal (jm_db_exec (db, "PRAGMA user_version=99", err, sizeof err), 0);
    assert_int_equal (jm_coord_db_init (db, err, sizeof err), -1);
    assert_non_null (strstr (err, "99"));
    jm_db_destroy (&db);
}

static void
test_insert_load_update (void **state)
{
    (void)state;
    jm_db_t *db = s_open ();
    char err[256];
    jm_csub_t *a = s_make_sub ("20240101-000000-aaaa", 5);
    jm_csub_t *b = s_make_sub ("20240101-000001-bbbb", 2);
    b->created = 1700000001;
    assert_int_equal (jm_coord_db_insert_sub (db, a, err, sizeof err), 0);
    assert_int_equal (jm_coord_db_insert_sub (db, b, err, sizeof err), 0);
    assert_int_equal (jm_db_commit (db), 0);
    /* duplicate id is refused with the error in err */
    assert_int_equal (jm_coord_db_insert_sub (db, a, err, sizeof err), -1);
    assert_int_equal (jm_db_rollback (db), 0);

    /* state updates */
    a->tasks[1].state = JM_TASK_FAILED;
    a->tasks[1].exit_code = 2;
    free (a->tasks[1].reason);
    a->tasks[1].reason = strdup ("exit 2");
    free (a->tasks[1].site);
    a->tasks[1].site = strdup ("siteA");
    a->tasks[1].job_id = 7;
    assert_int_equal (jm_coord_db_task_update (db, a, &a->tasks[1]), 0);
    a->tasks[2].state = JM_TASK_RUNNING;
    assert_int_equal (jm_coord_db_task_update (db, a, &a->tasks[2]), 0);
    a->bytes_sent = 12345;
    a->state = JM_SUB_FAILED;
    assert_int_equal (jm_coord_db_sub_update (db, a), 0);
    assert_int_equal (jm_coord_db_job_insert (db, 7, a->id, "siteA", "STAGING", 1), 0);
    assert_int_equal (jm_coord_db_job_insert (db, 9, a->id, "siteA", "STAGING", 1), 0);
    assert_int_equal (jm_coord_db_job_state (db, 7, "DONE"), 0);
    assert_int_equal (jm_coord_db_site_upsert (db, "siteA", "KEY", "shell", 4, "h", "up", 5), 0);
    assert_int_equal (jm_coord_db_site_upsert (db, "siteA", "KEY2", "slurm", 8, "h", "up", 6), 0);
    assert_int_equal (jm_coord_db_site_state (db, "siteA", "lost", 7), 0);
    assert_int_equal (jm_db_commit (db), 0);
    jm_csub_destroy (&a);
    jm_csub_destroy (&b);
    assert_null (a);
    jm_db_destroy (&db);

    /* reopen and load */
    db = s_open ();
    assert_int_equal (jm_coord_db_max_job_id (db), 9);
    zlist_t *list = zlist_new ();
    assert_int_equal (jm_coord_db_load (db, list, err, sizeof err), 0);
    assert_int_equal (zlist_size (list), 2);
    jm_csub_t *l = zlist_first (list);
    assert_string_equal (l->id, "20240101-000000-aaaa");
    assert_string_equal (l->work_base, "/work/base");
    assert_int_equal (l->group_size, 3);
    assert_int_equal (l->para_deg, 2);
    assert_int_equal (l->state, JM_SUB_FAILED);
    assert_int_equal (l->bytes_sent, 12345);
    assert_int_equal (l->ntasks, 5);
    assert_int_equal (l->common.n, 1);
    assert_string_equal (l->common.v[0].path, "common.dat");
    assert_string_equal (l->common.v[0].hash, H1);
    assert_int_equal (l->common.v[0].mode, 0644);
    assert_int_equal (l->backward_common.n, 1);
    assert_string_equal (l->backward_common.v[0], "summary.txt");
    jm_ctask_t *t = &l->tasks[3];
    assert_string_equal (t->path, "t003");
    assert_string_equal (t->command, "echo hi > out.dat");
    assert_int_equal (t->forward.n, 2);
    assert_string_equal (t->forward.v[1].path, "sub/in2.dat");
    assert_int_equal (t->forward.v[0].size, 20);
    assert_int_equal (t->forward.v[0].mode, 0755);
    assert_int_equal (t->backward.n, 2);
    assert_string_equal (t->backward.v[1], "*.log");
    assert_int_equal (t->state, JM_TASK_PENDING);
    t = &l->tasks[1];
    assert_int_equal (t->state, JM_TASK_FAILED);
    assert_int_equal (t->exit_code, 2);
    assert_string_equal (t->reason, "exit 2");
    assert_string_equal (t->site, "siteA");
    assert_int_equal (t->job_id, 7);
    assert_int_equal (l->tasks[2].state, JM_TASK_RUNNING);
    assert_int_equal (l->counts[JM_TASK_PENDING], 3);
    assert_int_equal (l->counts[JM_TASK_FAILED], 1);
    assert_int_equal (l->counts[JM_TASK_RUNNING], 1);
    jm_csub_t *l2 = zlist_next (list);
    assert_string_equal (l2->id, "20240101-000001-bbbb");
    assert_int_equal (l2->ntasks, 2);
    assert_int_equal (l2->state, JM_SUB_ACTIVE);

    /* jobs that were not final are abandoned; site row updated in place */
    assert_int_equal (jm_coord_db_jobs_abandon (db, "ABANDONED"), 0);
    assert_int_equal (jm_db_commit (db), 0);
    sqlite3_stmt *st = jm_db_stmt (db, "SELECT state FROM jobs ORDER BY id");
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_string_equal ((const char *)sqlite3_column_text (st, 0), "DONE");
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_string_equal ((const char *)sqlite3_column_text (st, 0), "ABANDONED");
    sqlite3_reset (st);
    st = jm_db_stmt (db, "SELECT COUNT(*), pubkey, slots, state FROM sites");
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (st, 0), 1);
    assert_string_equal ((const char *)sqlite3_column_text (st, 1), "KEY2");
    assert_int_equal (sqlite3_column_int (st, 2), 8);
    assert_string_equal ((const char *)sqlite3_column_text (st, 3), "lost");
    sqlite3_reset (st);

    for (jm_csub_t *s = zlist_pop (list); s; s = zlist_pop (list))
        jm_csub_destroy (&s);
    zlist_destroy (&list);
    jm_db_destroy (&db);
}

static void
test_pending_fifo (void **state)
{
    (void)state;
    jm_csub_t *sub = s_make_sub ("x", 300);
    for (uint32_t i = 0; i < 300; i++)
        jm_csub_pending_push (sub, i);
    assert_true (jm_csub_has_pending (sub));
    assert_int_equal (jm_csub_pending_pop (sub), 0);
    sub->tasks[1].state = JM_TASK_CANCELLED; /* stale entries are skipped */
    assert_int_equal (jm_csub_pending_pop (sub), 2);
    for (int i = 3; i < 300; i++)
        assert_int_equal (jm_csub_pending_pop (sub), i);
    assert_false (jm_csub_has_pending (sub));
    assert_int_equal (jm_csub_pending_pop (sub), -1);
    jm_csub_pending_push (sub, 5);
    assert_int_equal (jm_csub_pending_pop (sub), 5);
    jm_csub_destroy (&sub);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_schema, setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_insert_load_update, setup, jm_test_dir_teardown),
        cmocka_unit_test (test_pending_fifo),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
