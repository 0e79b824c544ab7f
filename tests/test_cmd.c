/*  test_cmd.c - jm_cmd: scheduler commands run from a zloop (real
    processes: sh, cat, sleep). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "jm_cmd.h"
#include "jm_testutil.h"
#include "jm_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int calls;
    int status;
    bool timed_out;
    char *out;
    size_t out_len;
    char *err;
    double secs;
    int *pending; /* decremented per call; loop stops at 0 */
} s_res_t;

static void
s_done (void *arg, const jm_cmd_result_t *r)
{
    s_res_t *res = arg;
    res->calls++;
    res->status = r->status;
    res->timed_out = r->timed_out;
    free (res->out);
    free (res->err);
    res->out = malloc (r->out_len + 1);
    memcpy (res->out, r->out, r->out_len + 1);
    res->out_len = r->out_len;
    res->err = strdup (r->err);
    res->secs = r->secs;
    if (res->pending)
        (*res->pending)--;
}

static void
s_res_free (s_res_t *r)
{
    free (r->out);
    free (r->err);
}

static int s_pending;

static int
s_on_check (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id, (void)arg;
    return s_pending <= 0 ? -1 : 0;
}

static int
s_on_deadline (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id, (void)arg;
    fail_msg ("test loop did not finish in time");
    return -1;
}

/* Runs loop until s_pending reaches 0 (or ms passed: failure). */
static void
s_run (zloop_t *loop, unsigned ms)
{
    int t1 = zloop_timer (loop, 5, 0, s_on_check, NULL);
    int t2 = zloop_timer (loop, ms, 1, s_on_deadline, NULL);
    if (s_pending > 0)
        zloop_start (loop);
    zloop_timer_end (loop, t1);
    zloop_timer_end (loop, t2);
}

static jm_cmd_t *
s_start (zloop_t *loop, const char *script, const char *in, unsigned timeout, s_res_t *res)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    char err[512] = "";
    res->pending = &s_pending;
    jm_cmd_t *c = jm_cmd_start (loop, argv, in, timeout, s_done, res, err, sizeof err);
    if (!c)
        fail_msg ("jm_cmd_start: %s", err);
    s_pending++;
    return c;
}

static void
test_exit_codes_and_output (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    s_res_t a = {0}, b = {0}, c = {0};
    s_start (loop, "echo hello; echo oops >&2; exit 0", NULL, 5000, &a);
    s_start (loop, "printf 'x\\ny'; exit 3", NULL, 5000, &b);
    s_start (loop, "kill -9 $$", NULL, 5000, &c);
    s_run (loop, 5000);
    assert_int_equal (a.calls, 1);
    assert_int_equal (a.status, 0);
    assert_string_equal (a.out, "hello\n");
    assert_string_equal (a.err, "oops\n");
    assert_false (a.timed_out);
    assert_int_equal (b.status, 3);
    assert_string_equal (b.out, "x\ny");
    assert_string_equal (b.err, "");
    assert_int_equal (c.status, 128 + 9);
    s_res_free (&a), s_res_free (&b), s_res_free (&c);
    zloop_destroy (&loop);
}

static void
test_large_output (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    s_res_t a = {0};
    /* 300000 bytes on stdout and 100000 on stderr at the same time: both
       pipes must be drained while the child writes */
    s_start (loop,
             "head -c 100000 /dev/zero | tr '\\0' e >&2 & head -c 300000 /dev/zero | tr '\\0' o;"
             " wait",
             NULL, 10000, &a);
    s_run (loop, 10000);
    assert_int_equal (a.status, 0);
    assert_int_equal (a.out_len, 300000);
    assert_int_equal (strlen (a.out), 300000);
    assert_int_equal (strspn (a.out, "o"), 300000);
    assert_int_equal (strlen (a.err), 100000);
    assert_int_equal (strspn (a.err, "e"), 100000);
    s_res_free (&a);
    zloop_destroy (&loop);
}

static void
test_stdin_file (void **state)
{
    (void)state;
    char dir[256];
    assert_non_null (jm_test_tmpdir (dir, sizeof dir, "cmd"));
    const char *in = jm_test_path (dir, "in.txt");
    jm_test_write (in, "line one\nline two\n");
    zloop_t *loop = zloop_new ();
    s_res_t a = {0}, b = {0};
    char *argv[] = {"cat", NULL};
    char err[512];
    a.pending = b.pending = &s_pending;
    assert_non_null (jm_cmd_start (loop, argv, in, 5000, s_done, &a, err, sizeof err));
    s_pending++;
    assert_non_null (jm_cmd_start (loop, argv, NULL, 5000, s_done, &b, err, sizeof err));
    s_pending++;
    s_run (loop, 5000);
    assert_int_equal (a.status, 0);
    assert_string_equal (a.out, "line one\nline two\n");
    assert_int_equal (b.status, 0);
    assert_string_equal (b.out, ""); /* /dev/null: no hang */
    /* a missing input file is an error at start, naming the file */
    assert_null (
        jm_cmd_start (loop, argv, jm_test_path (dir, "nope"), 5000, s_done, &a, err, sizeof err));
    assert_non_null (strstr (err, "nope"));
    s_res_free (&a), s_res_free (&b);
    zloop_destroy (&loop);
    jm_test_rmrf (dir);
}

static void
test_missing_program (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    s_res_t a = {0};
    char *argv[] = {"jm-no-such-program-xyz", "--help", NULL};
    char err[512] = "";
    jm_cmd_t *c = jm_cmd_start (loop, argv, NULL, 5000, s_done, &a, err, sizeof err);
    assert_null (c);
    assert_non_null (strstr (err, "jm-no-such-program-xyz"));
    assert_non_null (strstr (err, "not found on PATH"));
    /* no callback follows */
    s_pending = 0;
    zloop_timer (loop, 300, 1, s_on_check, NULL);
    zloop_start (loop);
    assert_int_equal (a.calls, 0);
    zloop_destroy (&loop);
}

static void
test_timeout (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    s_res_t a = {0}, b = {0};
    char *argv[] = {"sleep", "100", NULL};
    char err[512];
    a.pending = &s_pending;
    int64_t t0 = jm_now_ms ();
    assert_non_null (jm_cmd_start (loop, argv, NULL, 300, s_done, &a, err, sizeof err));
    s_pending++;
    /* a shell that ignores SIGTERM and whose child holds the pipes:
       SIGKILL after 2 s reaches the whole group */
    s_start (loop, "trap '' TERM; sleep 100; echo never", NULL, 300, &b);
    s_run (loop, 8000);
    int64_t el = jm_now_ms () - t0;
    assert_int_equal (a.calls, 1);
    assert_true (a.timed_out);
    assert_int_equal (a.status, 128 + SIGTERM);
    assert_int_equal (b.calls, 1);
    assert_true (b.timed_out);
    assert_int_equal (b.status, 128 + SIGKILL);
    assert_true (el < 4000);
    assert_true (a.secs < 2.0);
    s_res_free (&a), s_res_free (&b);
    zloop_destroy (&loop);
}

static int
s_on_cancel (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t **c = arg;
    jm_cmd_cancel (c);
    assert_null (*c);
    s_pending--;
    return 0;
}

static void
test_cancel (void **state)
{
    (void)state;
    char dir[256];
    assert_non_null (jm_test_tmpdir (dir, sizeof dir, "cmd"));
    const char *pidf = jm_test_path (dir, "pid");
    zloop_t *loop = zloop_new ();
    s_res_t a = {0}, b = {0};
    char script[600];
    snprintf (script, sizeof script, "echo $$ > '%s'; exec sleep 100", pidf);
    jm_cmd_t *c = s_start (loop, script, NULL, 0, &a);
    s_start (loop, "sleep 0.3; echo done", NULL, 5000, &b);
    zloop_timer (loop, 150, 1, s_on_cancel, &c);
    int64_t t0 = jm_now_ms ();
    s_run (loop, 5000);
    assert_true (jm_now_ms () - t0 < 2000);
    assert_int_equal (a.calls, 0); /* cancelled: no callback */
    assert_int_equal (b.calls, 1); /* the other one is not disturbed */
    assert_string_equal (b.out, "done\n");
    char *pid = jm_test_read (pidf, NULL);
    assert_non_null (pid);
    /* killed and reaped: no such process any more */
    assert_int_equal (kill (atoi (pid), 0), -1);
    free (pid);
    /* cancel of NULL is a no-op */
    jm_cmd_t *none = NULL;
    jm_cmd_cancel (&none);
    jm_cmd_cancel (NULL);
    s_res_free (&a), s_res_free (&b);
    zloop_destroy (&loop);
    jm_test_rmrf (dir);
}

static void
test_many_at_once (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    enum { N = 20 };
    s_res_t r[N];
    memset (r, 0, sizeof r);
    int64_t t0 = jm_now_ms ();
    for (int i = 0; i < N; i++) {
        char s[100];
        snprintf (s, sizeof s, "sleep 0.5; echo %d; exit %d", i, i);
        s_start (loop, s, NULL, 10000, &r[i]);
    }
    s_run (loop, 10000);
    /* in parallel: far less than N * 0.5 s */
    assert_true (jm_now_ms () - t0 < 4000);
    for (int i = 0; i < N; i++) {
        char s[20];
        snprintf (s, sizeof s, "%d\n", i);
        assert_int_equal (r[i].calls, 1);
        assert_int_equal (r[i].status, i);
        assert_string_equal (r[i].out, s);
        s_res_free (&r[i]);
    }
    zloop_destroy (&loop);
}

static void
test_child_exits_grandchild_holds_pipe (void **state)
{
    (void)state;
    zloop_t *loop = zloop_new ();
    s_res_t a = {0};
    int64_t t0 = jm_now_ms ();
    /* the background sleep keeps stdout open after the shell exited */
    s_start (loop, "echo started; sleep 30 & echo $!; exit 4", NULL, 60000, &a);
    s_run (loop, 5000);
    assert_true (jm_now_ms () - t0 < 3000);
    assert_int_equal (a.status, 4);
    assert_true (strncmp (a.out, "started\n", 8) == 0);
    int pid = atoi (a.out + 8);
    assert_true (pid > 0);
    kill (pid, SIGKILL);
    s_res_free (&a);
    zloop_destroy (&loop);
}

static void
test_describe_and_argv (void **state)
{
    (void)state;
    jm_argv_t av = {0};
    jm_argv_add (&av, "sbatch");
    jm_argv_add (&av, "--parsable");
    jm_argv_addf (&av, "/x/%s/%d", "y", 3);
    jm_argv_add (&av, "it's a b");
    jm_argv_add (&av, "");
    assert_int_equal (av.n, 5);
    assert_null (av.v[5]);
    char *d = jm_cmd_describe (av.v);
    assert_string_equal (d, "sbatch --parsable /x/y/3 'it'\\''s a b' ''");
    free (d);
    jm_argv_clear (&av);
    assert_int_equal (av.n, 0);
    assert_null (av.v);
    jm_argv_add (&av, "again");
    assert_string_equal (av.v[0], "again");
    jm_argv_clear (&av);
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_exit_codes_and_output),
        cmocka_unit_test (test_large_output),
        cmocka_unit_test (test_stdin_file),
        cmocka_unit_test (test_missing_program),
        cmocka_unit_test (test_timeout),
        cmocka_unit_test (test_cancel),
        cmocka_unit_test (test_many_at_once),
        cmocka_unit_test (test_child_exits_grandchild_holds_pipe),
        cmocka_unit_test (test_describe_and_argv),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
