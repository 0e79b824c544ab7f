/*  test_db.c - jm_db: WAL mode, statement cache, batched transactions as
    seen from a second connection. */
#define _GNU_SOURCE
#include "jm_db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jm_testutil.h"

static char s_path[PATH_MAX + 16];

static int
setup (void **state)
{
    if (jm_test_dir_setup (state) != 0)
        return -1;
    snprintf (s_path, sizeof s_path, "%s/t.db", jm_test_dir);
    return 0;
}

/* Rows in t as seen by an independent connection. */
static int
s_count_other (void)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (s_path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT COUNT(*) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    int n = sqlite3_column_int (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (db);
    return n;
}

static void
test_wal_and_cache (void **state)
{
    (void)state;
    char err[256];
    jm_db_t *db = jm_db_open (s_path, err, sizeof err);
    assert_non_null (db);
    sqlite3_stmt *st = jm_db_stmt (db, "PRAGMA journal_mode");
    assert_non_null (st);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_string_equal ((const char *)sqlite3_column_text (st, 0), "wal");
    /* same SQL text -> same cached statement, reset and unbound */
    sqlite3_stmt *again = jm_db_stmt (db, "PRAGMA journal_mode");
    assert_ptr_equal (st, again);
    assert_int_equal (sqlite3_step (again), SQLITE_ROW);
    assert_null (jm_db_stmt (db, "SELECT FROM nowhere"));
    assert_int_equal (jm_db_exec (db, "CREATE TABLE t (x INTEGER)", err, sizeof err), 0);
    assert_int_equal (jm_db_exec (db, "INSERT INTO nosuch VALUES (1)", err, sizeof err), -1);
    assert_non_null (strstr (err, "nosuch"));
    jm_db_destroy (&db);
    assert_null (db);
}

static void
test_batching (void **state)
{
    (void)state;
    char err[256];
    jm_db_t *db = jm_db_open (s_path, err, sizeof err);
    assert_non_null (db);
    assert_int_equal (jm_db_exec (db, "CREATE TABLE t (x INTEGER)", err, sizeof err), 0);
    assert_false (jm_db_in_tx (db));
    for (int i = 0; i < 100; i++) {
        assert_int_equal (jm_db_begin (db), 0); /* cheap when already open */
        sqlite3_stmt *st = jm_db_stmt (db, "INSERT INTO t (x) VALUES (?)");
        assert_non_null (st);
        sqlite3_bind_int (st, 1, i);
        assert_int_equal (sqlite3_step (st), SQLITE_DONE);
    }
    assert_true (jm_db_in_tx (db));
    /* uncommitted rows are invisible to another connection */
    assert_int_equal (s_count_other (), 0);
    assert_int_equal (jm_db_commit (db), 0);
    assert_false (jm_db_in_tx (db));
    assert_int_equal (s_count_other (), 100);
    assert_int_equal (jm_db_commit (db), 0); /* nothing open: no-op */

    /* rolled back rows never appear */
    assert_int_equal (jm_db_begin (db), 0);
    assert_int_equal (jm_db_exec (db, "INSERT INTO t VALUES (1000)", err, sizeof err), 0);
    assert_int_equal (jm_db_rollback (db), 0);
    assert_false (jm_db_in_tx (db));
    assert_int_equal (s_count_other (), 100);
    jm_db_destroy (&db);

    /* and the committed ones survive reopening */
    db = jm_db_open (s_path, err, sizeof err);
    assert_non_null (db);
    sqlite3_stmt *st = jm_db_stmt (db, "SELECT SUM(x) FROM t");
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (st, 0), 99 * 100 / 2);
    jm_db_destroy (&db);
}

static void
test_open_error (void **state)
{
    (void)state;
    char err[256] = "";
    jm_db_t *db = jm_db_open ("/nonexistent-dir/x/y.db", err, sizeof err);
    assert_null (db);
    assert_non_null (strstr (err, "/nonexistent-dir/x/y.db"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_wal_and_cache, setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_batching, setup, jm_test_dir_teardown),
        cmocka_unit_test (test_open_error),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
