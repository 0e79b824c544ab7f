/*  test_sched_shell.c - the Shell backend runs real jobs under a zloop. */
#define _GNU_SOURCE
#include "jm_jobscript.h"
#include "jm_path.h"
#include "jm_sched.h"
#include "jm_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_testutil.h"

#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_tmp[256];

typedef struct {
    zloop_t *loop;
    jm_sched_t *sched;
    char log[8192]; /* "S1 E1:0 J:0 ..." */
    int batches;
    bool job_ended;
    int job_exit, job_signal;
    char job_reason[64];
} s_ctx_t;

static void
s_on_events (void *arg, const jm_sched_ev_t *evs, size_t n)
{
    s_ctx_t *ctx = arg;
    ctx->batches++;
    for (size_t i = 0; i < n; i++) {
        char item[64];
        if (evs[i].type == JM_SCHED_TASK_START)
            snprintf (item, sizeof item, "S%lu ", (unsigned long)evs[i].task_id);
        else if (evs[i].type == JM_SCHED_TASK_END)
            snprintf (item, sizeof item, "E%lu:%d ", (unsigned long)evs[i].task_id,
                      evs[i].exit_code);
        else {
            snprintf (item, sizeof item, "J ");
            ctx->job_ended = true;
            ctx->job_exit = evs[i].job_exit;
            ctx->job_signal = evs[i].job_signal;
            snprintf (ctx->job_reason, sizeof ctx->job_reason, "%s", evs[i].reason);
        }
        strncat (ctx->log, item, sizeof ctx->log - strlen (ctx->log) - 1);
    }
}

static int
s_stop (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    (void)arg;
    return -1;
}

/* Runs the loop for about ms milliseconds. */
static void
s_pump (s_ctx_t *ctx, int ms)
{
    zloop_timer (ctx->loop, ms, 1, s_stop, NULL);
    zloop_start (ctx->loop);
}

/* Runs the loop until the job ended or timeout_ms passed. */
static void
s_run_loop (s_ctx_t *ctx, int timeout_ms)
{
    int64_t start = jm_now_ms ();
    while (!ctx->job_ended && jm_now_ms () - start < timeout_ms)
        s_pump (ctx, 20);
}

/* True if pid exists and is not a zombie (an orphaned zombie waits for
   init to reap it, which can take a while in a container). */
static bool
s_alive (pid_t pid)
{
    char path[64], buf[512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen (path, "r");
    if (!fp)
        return false;
    size_t n = fread (buf, 1, sizeof buf - 1, fp);
    fclose (fp);
    buf[n] = 0;
    char *p = strrchr (buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int
s_setup (void **state)
{
    assert_non_null (jm_test_tmpdir (s_tmp, sizeof s_tmp, "sched_shell"));
    s_ctx_t *ctx = calloc (1, sizeof *ctx);
    ctx->loop = zloop_new ();
    jm_sched_opts_t opts = {.loop = ctx->loop, .slots = 2, .event = s_on_events, .arg = ctx};
    char err[256];
    const jm_sched_backend_t *be = jm_sched_lookup ("shell");
    assert_non_null (be);
    ctx->sched = be->create (&opts, err, sizeof err);
    assert_non_null (ctx->sched);
    *state = ctx;
    return 0;
}

static int
s_teardown (void **state)
{
    s_ctx_t *ctx = *state;
    jm_sched_shell.destroy (&ctx->sched);
    assert_null (ctx->sched);
    zloop_destroy (&ctx->loop);
    free (ctx);
    assert_int_equal (jm_test_rmrf (s_tmp), 0);
    return 0;
}

static jm_jobscript_t *
s_script (uint64_t job_id, size_t para_deg)
{
    char wb[512], jd[512], err[256];
    snprintf (wb, sizeof wb, "%s/wb", s_tmp);
    snprintf (jd, sizeof jd, "%s/jobs/%lu", s_tmp, (unsigned long)job_id);
    mkdir (wb, 0755);
    assert_int_equal (jm_mkdirs (jd, 0700, err, sizeof err), 0);
    return jm_jobscript_new (job_id, wb, jd, para_deg);
}

static void
test_job_events (void **state)
{
    s_ctx_t *ctx = *state;
    jm_jobscript_t *js = s_script (5, 1);
    jm_jobscript_add_task (js, 1, ".", "echo hi", "o1", "e1");
    jm_jobscript_add_task (js, 2, ".", "exit 4", "o2", "e2");
    jm_jobscript_add_task (js, 3, ".", "echo later > later.txt", "o3", "e3");
    /* the last line and the hang-up of the pipe arrive apart */
    jm_jobscript_add_prologue (js, "trap 'sleep 0.3' EXIT");
    char err[256];
    assert_int_equal (jm_sched_shell.submit (ctx->sched, js, err, sizeof err), 0);
    jm_jobscript_destroy (&js);
    assert_int_equal (jm_sched_shell.active (ctx->sched), 1);
    s_run_loop (ctx, 20000);
    assert_true (ctx->job_ended);
    assert_string_equal (ctx->log, "S1 E1:0 S2 E2:4 S3 E3:0 J ");
    assert_int_equal (ctx->job_exit, 0);
    assert_string_equal (ctx->job_reason, "");
    assert_int_equal (jm_sched_shell.active (ctx->sched), 0);
    char path[512];
    snprintf (path, sizeof path, "%s/wb/later.txt", s_tmp);
    char *text = jm_read_file (path, NULL, err, sizeof err);
    assert_non_null (text);
    assert_string_equal (text, "later\n");
    free (text);
    /* unknown job: cancel refuses, no crash */
    assert_int_equal (jm_sched_shell.cancel (ctx->sched, 999), -1);
}

static void
test_cancel_kills_group (void **state)
{
    s_ctx_t *ctx = *state;
    jm_jobscript_t *js = s_script (6, 3);
    jm_jobscript_add_task (js, 1, ".", "echo $$ > pid1; exec sleep 100", "o1", "e1");
    jm_jobscript_add_task (js, 2, ".", "echo $$ > pid2; sleep 100; echo no > after", "o2", "e2");
    /* ignores SIGTERM, and so does its sleep: it outlives the job script */
    jm_jobscript_add_task (js, 3, ".", "trap '' TERM; echo $$ > pid3; sleep 100", "o3", "e3");
    char err[256];
    assert_int_equal (jm_sched_shell.submit (ctx->sched, js, err, sizeof err), 0);
    jm_jobscript_destroy (&js);
    /* wait until both tasks wrote their pid */
    char p1[512], p2[512], p3[512];
    snprintf (p1, sizeof p1, "%s/wb/pid1", s_tmp);
    snprintf (p2, sizeof p2, "%s/wb/pid2", s_tmp);
    snprintf (p3, sizeof p3, "%s/wb/pid3", s_tmp);
    int64_t start = jm_now_ms ();
    struct stat st;
    while ((stat (p1, &st) != 0 || st.st_size == 0 || stat (p2, &st) != 0 || st.st_size == 0 ||
            stat (p3, &st) != 0 || st.st_size == 0) &&
           jm_now_ms () - start < 10000) {
        s_pump (ctx, 20);
    }
    assert_true (jm_now_ms () - start < 10000);
    char *s1 = jm_read_file (p1, NULL, err, sizeof err),
         *s2 = jm_read_file (p2, NULL, err, sizeof err),
         *s3 = jm_read_file (p3, NULL, err, sizeof err);
    pid_t pid1 = atoi (s1), pid2 = atoi (s2), pid3 = atoi (s3);
    free (s1);
    free (s2);
    free (s3);
    assert_true (pid1 > 0 && pid2 > 0 && pid3 > 0);
    assert_true (s_alive (pid1));
    int64_t t0 = jm_now_ms ();
    assert_int_equal (jm_sched_shell.cancel (ctx->sched, 6), 0);
    s_run_loop (ctx, 10000);
    assert_true (ctx->job_ended);
    assert_true (jm_now_ms () - t0 < 5000);
    assert_string_equal (ctx->job_reason, "cancelled");
    assert_true (ctx->job_exit == -1 || ctx->job_exit > 0);
    /* the tasks' processes are gone, the one that ignored SIGTERM too:
       killed when the job script was found ended, before it was reaped
       (allow a moment for the kernel) */
    int64_t t1 = jm_now_ms ();
    while ((s_alive (pid1) || s_alive (pid2) || s_alive (pid3)) && jm_now_ms () - t1 < 4000)
        usleep (20000);
    assert_false (s_alive (pid1));
    assert_false (s_alive (pid2));
    assert_false (s_alive (pid3));
    char after[512];
    snprintf (after, sizeof after, "%s/wb/after", s_tmp);
    assert_int_not_equal (stat (after, &st), 0);
}

static void
test_slots_guard_and_destroy_kills (void **state)
{
    s_ctx_t *ctx = *state;
    char err[256];
    for (uint64_t id = 10; id < 12; id++) {
        jm_jobscript_t *js = s_script (id, 1);
        jm_jobscript_add_task (js, id, ".", "echo $$ > pid$PPID.$RANDOM; exec sleep 100", "o", "e");
        assert_int_equal (jm_sched_shell.submit (ctx->sched, js, err, sizeof err), 0);
        jm_jobscript_destroy (&js);
    }
    jm_jobscript_t *js = s_script (12, 1);
    jm_jobscript_add_task (js, 99, ".", "true", "o", "e");
    assert_int_equal (jm_sched_shell.submit (ctx->sched, js, err, sizeof err), -1);
    assert_non_null (strstr (err, "slots"));
    jm_jobscript_destroy (&js);
    assert_int_equal (jm_sched_shell.active (ctx->sched), 2);
    /* destroy (in teardown) must kill both quickly */
    int64_t t0 = jm_now_ms ();
    jm_sched_shell.destroy (&ctx->sched);
    assert_true (jm_now_ms () - t0 < 4000);
    /* re-create for teardown */
    jm_sched_opts_t opts = {.loop = ctx->loop, .slots = 2, .event = s_on_events, .arg = ctx};
    ctx->sched = jm_sched_shell.create (&opts, err, sizeof err);
    char cmd[600];
    snprintf (cmd, sizeof cmd, "pgrep -f 'bash %s/jobs/1[01]/job.sh' >/dev/null", s_tmp);
    assert_int_not_equal (system (cmd), 0);
}

/* Many tasks, para_deg 4: every task reported once, starts batched. */
static void
test_many_tasks (void **state)
{
    s_ctx_t *ctx = *state;
    jm_jobscript_t *js = s_script (20, 4);
    for (uint64_t i = 1; i <= 200; i++)
        jm_jobscript_add_task (js, i, ".", "true", "", "");
    char err[256];
    assert_int_equal (jm_sched_shell.submit (ctx->sched, js, err, sizeof err), 0);
    jm_jobscript_destroy (&js);
    s_run_loop (ctx, 30000);
    assert_true (ctx->job_ended);
    for (unsigned i = 1; i <= 200; i++) {
        char s[32], e[32];
        snprintf (s, sizeof s, "S%u ", i);
        snprintf (e, sizeof e, "E%u:0 ", i);
        char *ps = strstr (ctx->log, s), *pe = strstr (ctx->log, e);
        assert_non_null (ps);
        assert_non_null (pe);
        assert_true (ps < pe);
    }
    assert_true (ctx->batches < 402);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_job_events, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_kills_group, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_slots_guard_and_destroy_kills, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_many_tasks, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
