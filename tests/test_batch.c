/*  test_batch.c - the batch core (jm_batch.c) with real processes: a fake
    scheduler made of small bash scripts first on PATH.  fakesub runs the
    submitted script in the background (each array element with FAKE_IDX
    set) and prints an id; fakeq lists the jobs whose processes are alive;
    fakefinal reports verdicts the test wrote; fakecancel kills jobs.
    Every call is logged to a file, so the tests count scheduler calls. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "jm_batch.h"
#include "jm_testutil.h"
#include "jm_util.h"

#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- the fake scheduler ---------------------------------------------------- */

static const char *s_fakesub =
    "#!/bin/bash\n"
    "echo \"$(date +%s.%N) $*\" >> \"$FAKE_DIR/submit.calls\"\n"
    "[ -f \"$FAKE_DIR/slow\" ] && sleep 30\n"
    "[ -f \"$FAKE_DIR/delay\" ] && sleep \"$(cat \"$FAKE_DIR/delay\")\"\n"
    "if [ -f \"$FAKE_DIR/refuse\" ]; then\n"
    "  exec 8>>\"$FAKE_DIR/refuse.lock\"; flock 8\n"
    "  r=$(cat \"$FAKE_DIR/refuse\")\n"
    "  if [ \"$r\" -gt 0 ]; then echo $((r-1)) > \"$FAKE_DIR/refuse\";\n"
    "    echo 'fakesub: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1; fi\n"
    "  flock -u 8; exec 8>&-\n"
    "fi\n"
    "if [ -f \"$FAKE_DIR/fail\" ]; then echo 'fakesub: error: invalid queue' >&2; exit 2; fi\n"
    "n=$2; script=$3\n"
    "if [ \"$script\" = - ]; then script=$FAKE_DIR/stdin.$$.sh; cat > \"$script\"; fi\n"
    "grep -q '^# fake header' \"$script\" || { echo 'fakesub: no header' >&2; exit 3; }\n"
    "exec 9>>\"$FAKE_DIR/next.lock\"; flock 9\n"
    "id=$(cat \"$FAKE_DIR/next\" 2>/dev/null || echo 100)\n"
    "echo $((id+1)) > \"$FAKE_DIR/next\"\n"
    "flock -u 9; exec 9>&-\n"
    "for ((i=1;i<=n;i++)); do\n"
    "  if [ \"$n\" -gt 1 ]; then sid=$id.$i; else sid=$id; fi\n"
    "  if [ -f \"$FAKE_DIR/hold\" ]; then touch \"$FAKE_DIR/jobs/$sid.held\";\n"
    "    setsid sleep 1000 </dev/null >/dev/null 2>&1 &\n"
    "  else FAKE_IDX=$i setsid bash \"$script\" </dev/null >/dev/null 2>&1 & fi\n"
    "  echo $! > \"$FAKE_DIR/jobs/$sid.pid\"\n"
    "done\n"
    "echo \"$id\"\n";

static const char *s_fakeq =
    "#!/bin/bash\n"
    "echo \"$(date +%s.%N) $*\" >> \"$FAKE_DIR/query.calls\"\n"
    "[ -f \"$FAKE_DIR/slowq\" ] && sleep 30\n"
    "for sid in \"$@\"; do\n"
    "  if [ -f \"$FAKE_DIR/jobs/$sid.error\" ]; then\n"
    "    echo \"$sid E $(cat \"$FAKE_DIR/jobs/$sid.error\")\"; continue; fi\n"
    "  p=$(cat \"$FAKE_DIR/jobs/$sid.pid\" 2>/dev/null) || continue\n"
    "  st=R; [ -f \"$FAKE_DIR/jobs/$sid.held\" ] && st=Q\n"
    "  kill -0 \"$p\" 2>/dev/null && echo \"$sid $st\"\n"
    "done\n"
    "exit 0\n";

static const char *s_fakefinal = "#!/bin/bash\n"
                                 "echo \"$*\" >> \"$FAKE_DIR/final.calls\"\n"
                                 "for sid in \"$@\"; do\n"
                                 "  [ -f \"$FAKE_DIR/jobs/$sid.verdict\" ] && echo \"$sid $(cat "
                                 "\"$FAKE_DIR/jobs/$sid.verdict\")\"\n"
                                 "done\n"
                                 "exit 0\n";

static const char *s_fakecancel =
    "#!/bin/bash\n"
    "echo \"$*\" >> \"$FAKE_DIR/cancel.calls\"\n"
    "for sid in \"$@\"; do\n"
    "  p=$(cat \"$FAKE_DIR/jobs/$sid.pid\" 2>/dev/null) && kill -KILL -- -\"$p\" 2>/dev/null\n"
    "done\n"
    "exit 0\n";

static char *
s_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir, char *err,
          size_t errlen)
{
    (void)res, (void)log_dir, (void)err, (void)errlen;
    char *s = NULL;
    if (asprintf (&s, "# fake header name=%s n=%zu\n", name, n) < 0)
        return NULL;
    return s;
}

static void
s_submit_argv (const char *script, size_t n, jm_argv_t *argv)
{
    jm_argv_add (argv, "fakesub");
    jm_argv_add (argv, "-n");
    jm_argv_addf (argv, "%zu", n);
    jm_argv_add (argv, script);
}

static void
s_trim (const char *in, char *out, size_t len)
{
    snprintf (out, len, "%s", in);
    size_t n = strlen (out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = 0;
}

/* bsub style: the script comes on stdin. */
static void
s_submit_argv_stdin (const char *script, size_t n, jm_argv_t *argv)
{
    (void)script;
    jm_argv_add (argv, "fakesub");
    jm_argv_add (argv, "-n");
    jm_argv_addf (argv, "%zu", n);
    jm_argv_add (argv, "-");
}

static jm_submit_rc_t
s_parse_submit (int status, const char *out, const char *errout, char *id, size_t idlen, char *err,
                size_t errlen)
{
    if (status == 0) {
        s_trim (out, id, idlen);
        return JM_SUBMIT_OK;
    }
    s_trim (errout, err, errlen);
    return strstr (errout, "Limit") ? JM_SUBMIT_RETRY : JM_SUBMIT_FAIL;
}

static void
s_element_id (const char *base, size_t idx, char *out, size_t outlen)
{
    snprintf (out, outlen, "%s.%zu", base, idx);
}

static void
s_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    assert_non_null (user);
    jm_argv_add (argv, "fakeq");
    for (size_t i = 0; i < n; i++)
        jm_argv_add (argv, sids[i]);
}

static jm_verdict_t
s_verdict (const char *w)
{
    if (!strcmp (w, "CANCELLED"))
        return JM_VERDICT_CANCELLED;
    if (!strcmp (w, "TIMEOUT"))
        return JM_VERDICT_TIMEOUT;
    if (!strcmp (w, "COMPLETED"))
        return JM_VERDICT_COMPLETED;
    return JM_VERDICT_NONE;
}

/* Lines "<sid> R", "<sid> E <detail>", or (final) "<sid> <VERDICT> <detail>". */
static int
s_parse_lines (int status, const char *out, jm_batch_seen_fn *seen, void *arg, bool final,
               char *err, size_t errlen)
{
    if (status != 0)
        return jm_err (err, errlen, "exit %d", status);
    char *copy = strdup (out), *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *sp = strchr (line, ' ');
        if (!sp)
            continue;
        *sp = 0;
        char *rest = sp + 1, *detail = strchr (rest, ' ');
        if (detail)
            *detail++ = 0;
        jm_batch_seen_t s = {.sid = line, .detail = detail ? detail : ""};
        if (final) {
            s.state = JM_BST_DONE;
            s.verdict = s_verdict (rest);
        }
        else if (!strcmp (rest, "R"))
            s.state = JM_BST_RUNNING;
        else if (!strcmp (rest, "E"))
            s.state = JM_BST_ERROR;
        else if (!strcmp (rest, "Q"))
            s.state = JM_BST_QUEUED;
        else
            continue;
        seen (arg, &s);
    }
    free (copy);
    return 0;
}

static int
s_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    (void)errout;
    return s_parse_lines (status, out, seen, arg, false, err, errlen);
}

static void
s_final_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user;
    jm_argv_add (argv, "fakefinal");
    for (size_t i = 0; i < n; i++)
        jm_argv_add (argv, sids[i]);
}

static int
s_parse_final (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    (void)errout;
    return s_parse_lines (status, out, seen, arg, true, err, errlen);
}

static const jm_batch_dialect_t s_fake = {
    .name = "fake",
    .submit_prog = "fakesub",
    .array_index_var = "FAKE_IDX",
    .max_array = 0,
    .submit_stdin = false,
    .header = s_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_query_argv,
    .parse_query = s_parse_query,
    .final_argv = s_final_argv,
    .parse_final = s_parse_final,
    .cancel_prog = "fakecancel",
};

/* The same without arrays and without a final query. */
static const jm_batch_dialect_t s_fake_plain = {
    .name = "fake",
    .submit_prog = "fakesub",
    .header = s_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_query_argv,
    .parse_query = s_parse_query,
    .cancel_prog = "fakecancel",
};

/* --- harness --------------------------------------------------------------- */

typedef struct {
    jm_sched_ev_type_t type;
    uint64_t job, task;
    int code;
    char reason[512];
} s_rec_t;

typedef struct {
    zloop_t *loop;
    jm_sched_t *sched;
    char dir[256];
    char fake[300]; /* FAKE_DIR */
    s_rec_t ev[512];
    size_t nev;
    size_t batches;
    bool mixed_batch; /* a batch with events of two jobs */
    bool (*until) (void *t);
} s_t;

static char s_old_path[8192];

static void
s_on_event (void *arg, const jm_sched_ev_t *evs, size_t n)
{
    s_t *t = arg;
    t->batches++;
    for (size_t i = 0; i < n; i++) {
        if (evs[i].job_id != evs[0].job_id)
            t->mixed_batch = true;
        assert_true (t->nev < 512);
        s_rec_t *r = &t->ev[t->nev++];
        r->type = evs[i].type;
        r->job = evs[i].job_id;
        r->task = evs[i].task_id;
        r->code = evs[i].exit_code;
        snprintf (r->reason, sizeof r->reason, "%s", evs[i].reason ? evs[i].reason : "");
    }
}

static void
s_write_exec (const char *path, const char *text)
{
    jm_test_write (path, text);
    assert_int_equal (chmod (path, 0755), 0);
}

static s_t *
s_setup (const jm_batch_dialect_t *d, jm_sched_opts_t *opts)
{
    s_t *t = calloc (1, sizeof *t);
    assert_non_null (jm_test_tmpdir (t->dir, sizeof t->dir, "batch"));
    snprintf (t->fake, sizeof t->fake, "%s/fake", t->dir);
    mkdir (t->fake, 0700);
    mkdir (jm_test_path (t->fake, "jobs"), 0700);
    mkdir (jm_test_path (t->dir, "bin"), 0700);
    mkdir (jm_test_path (t->dir, "wb"), 0700);
    s_write_exec (jm_test_path (t->dir, "bin/fakesub"), s_fakesub);
    s_write_exec (jm_test_path (t->dir, "bin/fakeq"), s_fakeq);
    s_write_exec (jm_test_path (t->dir, "bin/fakefinal"), s_fakefinal);
    s_write_exec (jm_test_path (t->dir, "bin/fakecancel"), s_fakecancel);
    char path[9000];
    snprintf (path, sizeof path, "%s/bin:%s", t->dir, s_old_path);
    setenv ("PATH", path, 1);
    setenv ("FAKE_DIR", t->fake, 1);
    t->loop = zloop_new ();
    jm_sched_opts_t o = {0};
    if (opts)
        o = *opts;
    o.loop = t->loop;
    o.event = s_on_event;
    o.arg = t;
    if (!o.poll_ms)
        o.poll_ms = 100;
    if (!o.flush_ms)
        o.flush_ms = 50;
    if (!o.retry_ms)
        o.retry_ms = 100;
    char err[1024] = "";
    t->sched = jm_batch_create (d, &o, err, sizeof err);
    if (!t->sched)
        fail_msg ("jm_batch_create: %s", err);
    return t;
}

/* The pid the fake recorded for sid (its process group), or -1. */
static pid_t
s_job_pid (s_t *t, const char *sid)
{
    char rel[300];
    snprintf (rel, sizeof rel, "jobs/%s.pid", sid);
    char *text = jm_test_read (jm_test_path (t->fake, rel), NULL);
    pid_t pid = text && atoi (text) > 0 ? atoi (text) : -1;
    free (text);
    return pid;
}

/* Running (not gone, not a zombie waiting for a reaper). */
static bool
s_alive (pid_t pid)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = jm_test_read (path, NULL);
    if (!text)
        return false;
    char *rp = strrchr (text, ')');
    bool alive = rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
    free (text);
    return alive;
}

static void
s_kill_job (s_t *t, const char *sid)
{
    pid_t pid = s_job_pid (t, sid);
    assert_true (pid > 0);
    kill (-pid, SIGKILL);
}

/*  Whether process group `pid` of a fake job may be killed at teardown.
    While any process of the group lives, the kernel keeps its number from
    being reused. Once the whole group has ended, the number is free again:
    a process with that pid that is not one of this test's (its job script
    under t->dir, or a held job's "sleep 1000") belongs to somebody else,
    e.g. a job of a test running beside this one, and is left alone. */
static bool
s_group_ours (s_t *t, pid_t pid)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/cmdline", (int)pid);
    size_t len = 0;
    char *cmd = jm_test_read (path, &len);
    if (!cmd)
        return true; /* no such process: only the group's rest, if any */
    bool ours = len == 11 && memcmp (cmd, "sleep\0001000", 11) == 0;
    for (size_t i = 0; i < len && !ours; i += strlen (cmd + i) + 1)
        ours = strstr (cmd + i, t->dir) != NULL;
    free (cmd);
    return ours;
}

/* Kills whatever a fake job left running (by its recorded pid). */
static void
s_teardown (s_t *t)
{
    jm_batch_destroy (&t->sched);
    assert_null (t->sched);
    zloop_destroy (&t->loop);
    DIR *d = opendir (jm_test_path (t->fake, "jobs"));
    assert_non_null (d);
    struct dirent *e;
    while ((e = readdir (d))) {
        char *dot = strstr (e->d_name, ".pid");
        if (!dot || dot[4])
            continue;
        *dot = 0;
        pid_t pid = s_job_pid (t, e->d_name);
        if (pid > 0 && s_group_ours (t, pid))
            kill (-pid, SIGKILL);
    }
    closedir (d);
    jm_test_rmrf (t->dir);
    setenv ("PATH", s_old_path, 1);
    free (t);
}

/* Job id with tasks id*10+1.. running cmds[i]; para_deg 1. */
static void
s_submit (s_t *t, uint64_t id, const char *const *cmds, size_t n, const jm_resources_t *res)
{
    char jd[512], wb[512];
    snprintf (jd, sizeof jd, "%s/job%" PRIu64, t->dir, id);
    snprintf (wb, sizeof wb, "%s/wb", t->dir);
    mkdir (jd, 0700);
    jm_jobscript_t *js = jm_jobscript_new (id, wb, jd, 1);
    for (size_t i = 0; i < n; i++)
        jm_jobscript_add_task (js, id * 10 + i + 1, ".", cmds[i], NULL, NULL);
    if (res)
        jm_jobscript_set_resources (js, res);
    char err[1024] = "";
    if (jm_batch_submit (t->sched, js, err, sizeof err) != 0)
        fail_msg ("submit %" PRIu64 ": %s", id, err);
    jm_jobscript_destroy (&js);
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    s_t *t = arg;
    return t->until && t->until (t) ? -1 : 0;
}

static int
s_on_deadline (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    *(bool *)arg = true;
    return -1;
}

/* Runs the loop until until(t) or ms passed; returns whether until held. */
static bool
s_run (s_t *t, bool (*until) (void *), unsigned ms)
{
    t->until = until;
    bool expired = false;
    int t1 = zloop_timer (t->loop, 10, 0, s_on_tick, t);
    int t2 = zloop_timer (t->loop, ms, 1, s_on_deadline, &expired);
    if (!until || !until (t))
        zloop_start (t->loop);
    zloop_timer_end (t->loop, t1);
    zloop_timer_end (t->loop, t2);
    t->until = NULL;
    return until ? until (t) : true;
}

static size_t
s_count (s_t *t, jm_sched_ev_type_t type)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nev; i++)
        n += t->ev[i].type == type;
    return n;
}

static const s_rec_t *
s_find (s_t *t, jm_sched_ev_type_t type, uint64_t job, uint64_t task)
{
    for (size_t i = 0; i < t->nev; i++)
        if (t->ev[i].type == type && t->ev[i].job == job &&
            (type == JM_SCHED_JOB_END || t->ev[i].task == task))
            return &t->ev[i];
    return NULL;
}

static size_t s_want_ends;

static bool
s_until_ends (void *arg)
{
    return s_count (arg, JM_SCHED_JOB_END) >= s_want_ends;
}

static size_t
s_lines (s_t *t, const char *file)
{
    char *text = jm_test_read (jm_test_path (t->fake, file), NULL);
    if (!text)
        return 0;
    size_t n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free (text);
    return n;
}

/* --- tests ------------------------------------------------------------------ */

static void
test_array_plain_and_exit_codes (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"true", "exit 7", "echo x > out1.txt"};
    const char *b[] = {"exit 3"};
    const char *c[] = {"sleep 0.2; exit 0", "exit 1"};
    s_submit (t, 1, a, 3, NULL);
    s_submit (t, 2, b, 1, NULL);
    s_submit (t, 3, c, 2, NULL);
    jm_resources_t *solo = jm_resources_new ();
    solo->job_array = false;
    const char *d[] = {"exit 0"};
    s_submit (t, 4, d, 1, solo);
    jm_resources_destroy (&solo);
    assert_int_equal (jm_batch_active (t->sched), 4);
    s_want_ends = 4;
    assert_true (s_run (t, s_until_ends, 10000));
    /* one array of 3 jobs and one plain job */
    assert_int_equal (s_lines (t, "submit.calls"), 2);
    char *calls = jm_test_read (jm_test_path (t->fake, "submit.calls"), NULL);
    assert_non_null (strstr (calls, "-n 3 "));
    assert_non_null (strstr (calls, "-n 1 "));
    free (calls);
    char *sub = jm_test_read (jm_test_path (t->dir, "job1/submit.sh"), NULL);
    assert_non_null (sub);
    assert_non_null (strstr (sub, "# fake header name=jm1 n=3\n"));
    assert_non_null (strstr (sub, "case \"$FAKE_IDX\" in"));
    free (sub);
    /* every task reported, with its exit code */
    int want[][3] = {{11, 0, 1}, {12, 7, 1}, {13, 0, 1}, {21, 3, 2},
                     {31, 0, 3}, {32, 1, 3}, {41, 0, 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const s_rec_t *e = s_find (t, JM_SCHED_TASK_END, want[i][2], want[i][0]);
        assert_non_null (e);
        assert_int_equal (e->code, want[i][1]);
    }
    assert_int_equal (s_count (t, JM_SCHED_TASK_END), 7);
    for (uint64_t j = 1; j <= 4; j++)
        assert_string_equal (s_find (t, JM_SCHED_JOB_END, j, 0)->reason, "");
    /* the task after the failing one ran */
    assert_true (access (jm_test_path (t->dir, "wb/out1.txt"), F_OK) == 0);
    assert_false (t->mixed_batch);
    assert_int_equal (jm_batch_active (t->sched), 0);
    /* a job over is unknown to cancel */
    assert_int_equal (jm_batch_cancel (t->sched, 1), -1);
    s_teardown (t);
}

static bool
s_until_start_11 (void *arg)
{
    return s_find (arg, JM_SCHED_TASK_START, 1, 11) && s_find (arg, JM_SCHED_TASK_START, 2, 21);
}

static void
test_killed_behind_our_back (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"sleep 30", "true"};
    s_submit (t, 1, a, 2, NULL); /* one array: 100.1 and 100.2 */
    s_submit (t, 2, a, 2, NULL);
    assert_true (s_run (t, s_until_start_11, 10000));
    /* job 1 (100.1): the scheduler says CANCELLED; job 2 (100.2): no word */
    jm_test_write (jm_test_path (t->fake, "jobs/100.1.verdict"), "CANCELLED by 0\n");
    s_kill_job (t, "100.1");
    s_kill_job (t, "100.2");
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 10000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason,
                         "CANCELLED: fake job 100.1 (by 0)");
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 2, 0)->reason,
                         "FAILED: fake job 100.2 left the queue without writing its tags");
    assert_null (s_find (t, JM_SCHED_TASK_END, 1, 11));
    assert_null (s_find (t, JM_SCHED_TASK_END, 1, 12));
    /* one final query for both; job 2 (no verdict) is asked again within
       its grace (a scheduler's accounting may come late), not forever */
    size_t finals = s_lines (t, "final.calls");
    if (finals < 1 || finals > 3)
        fail_msg ("%zu final queries:\n%s", finals,
                  jm_test_read (jm_test_path (t->fake, "final.calls"), NULL));
    s_teardown (t);
}

static bool
s_until_submitted (void *arg)
{
    s_t *t = arg;
    return s_lines (t, "submit.calls") >= 1 && jm_batch_active (t->sched) == 1 &&
           s_job_pid (t, "100") > 0;
}

/* A job deleted while it waits in the queue: no task ran and the scheduler
   gives no verdict (SGE writes no accounting record for it): CANCELLED. */
static void
test_deleted_while_pending (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "hold"), "");
    const char *a[] = {"true"};
    s_submit (t, 1, a, 1, NULL);
    assert_true (s_run (t, s_until_submitted, 10000));
    s_run (t, NULL, 500); /* a few polls see it queued */
    assert_null (s_find (t, JM_SCHED_JOB_END, 1, 0));
    s_kill_job (t, "100");
    s_want_ends = 1;
    assert_true (s_run (t, s_until_ends, 10000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason,
                         "CANCELLED: fake job 100 left the queue before it started, with no "
                         "verdict from the scheduler (deleted?)");
    s_teardown (t);
}

static bool
s_until_start_21 (void *arg)
{
    return s_find (arg, JM_SCHED_TASK_START, 2, 21) != NULL;
}

/*  Withdraw: a job waiting in the scheduler's queue is cancelled there with
    exactly one cancel command and ends "withdrawn" without any task event;
    a job still in the core's queue goes at once, with no scheduler command;
    a started job is refused and keeps running. */
static void
test_withdraw (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "hold"), "");
    const char *a[] = {"touch \"$FAKE_DIR/ran1\""};
    s_submit (t, 1, a, 1, NULL);
    assert_true (s_run (t, s_until_submitted, 10000));
    s_run (t, NULL, 400); /* a few polls see it queued */
    assert_int_equal (s_lines (t, "cancel.calls"), 0);
    assert_int_equal (jm_batch_withdraw (t->sched, 1), 0);
    assert_int_equal (jm_batch_withdraw (t->sched, 1), -1); /* once is enough */
    s_want_ends = 1;
    assert_true (s_run (t, s_until_ends, 10000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason, "withdrawn");
    assert_int_equal (s_lines (t, "cancel.calls"), 1);
    assert_int_equal (s_count (t, JM_SCHED_TASK_START), 0);
    assert_int_equal (s_count (t, JM_SCHED_TASK_END), 0);
    assert_int_equal (jm_batch_active (t->sched), 0);
    assert_int_equal (jm_batch_withdraw (t->sched, 1), -1); /* over: unknown */

    /* a started job is not withdrawn */
    unlink (jm_test_path (t->fake, "hold"));
    const char *b[] = {"sleep 30", "true"};
    s_submit (t, 2, b, 2, NULL);
    assert_true (s_run (t, s_until_start_21, 10000));
    assert_int_equal (jm_batch_withdraw (t->sched, 2), 1);
    s_run (t, NULL, 400);
    assert_int_equal (s_lines (t, "cancel.calls"), 1);
    assert_null (s_find (t, JM_SCHED_JOB_END, 2, 0));
    assert_int_equal (jm_batch_active (t->sched), 1);

    /* a job not yet handed to the scheduler goes without any command */
    size_t submits = s_lines (t, "submit.calls");
    s_submit (t, 3, a, 1, NULL);
    assert_int_equal (jm_batch_withdraw (t->sched, 3), 0);
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 10000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 3, 0)->reason, "withdrawn");
    s_run (t, NULL, 300);
    assert_int_equal (s_lines (t, "submit.calls"), submits);
    assert_int_equal (s_lines (t, "cancel.calls"), 1);
    assert_int_equal (access (jm_test_path (t->fake, "ran1"), F_OK), -1);
    s_teardown (t);
}

/*  A task that ends by a signal (143) while its job goes on is reported as
    it is; a task whose job the scheduler kills (SIGTERM to the whole job,
    as Slurm does at its time limit) carries the verdict, whether or not
    the job script still wrote the task's 143 before it died. */
static void
test_signal_end_and_verdict (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"kill -TERM $$", "sleep 1"};
    s_submit (t, 1, a, 2, NULL);
    s_want_ends = 1;
    assert_true (s_run (t, s_until_ends, 15000));
    const s_rec_t *e = s_find (t, JM_SCHED_TASK_END, 1, 11);
    assert_non_null (e);
    assert_int_equal (e->code, 143);
    assert_string_equal (e->reason, "");
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason, "");

    const char *b[] = {"sleep 30", "true"};
    s_submit (t, 2, b, 2, NULL);
    assert_true (s_run (t, s_until_start_21, 10000));
    jm_test_write (jm_test_path (t->fake, "jobs/101.verdict"), "TIMEOUT\n");
    pid_t pid = s_job_pid (t, "101");
    assert_true (pid > 0);
    kill (-pid, SIGTERM);
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 15000));
    e = s_find (t, JM_SCHED_TASK_END, 2, 21);
    const char *why = e ? e->reason : s_find (t, JM_SCHED_JOB_END, 2, 0)->reason;
    assert_non_null (strstr (why, "TIMEOUT: fake job 101"));
    s_teardown (t);
}

static void
test_retry_then_success (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "refuse"), "3\n");
    const char *a[] = {"exit 5"};
    int64_t t0 = jm_now_ms ();
    s_submit (t, 1, a, 1, NULL);
    s_submit (t, 2, a, 1, NULL);
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 10000));
    /* three refusals (back-off 100, 200, 400 ms): the first of the 2-job
       array, then (arrays halved after a refusal: a limit may count
       elements) jobs 1 and 2 alone, at once (two submit commands may run
       together); then each alone again */
    size_t ncalls = s_lines (t, "submit.calls");
    char *calls = jm_test_read (jm_test_path (t->fake, "submit.calls"), NULL);
    assert_non_null (calls);
    if (ncalls != 5)
        fail_msg ("%zu submit calls:\n%s", ncalls, calls);
    const char *l = calls;
    for (size_t i = 0; i < ncalls; i++, l = strchr (l, '\n') + 1)
        assert_true (strncmp (strchr (l, ' ') + 1, i == 0 ? "-n 2 " : "-n 1 ", 5) == 0);
    free (calls);
    assert_true (jm_now_ms () - t0 >= 50 + 100 + 200 + 400);
    assert_int_equal (s_find (t, JM_SCHED_TASK_END, 1, 11)->code, 5);
    assert_int_equal (s_find (t, JM_SCHED_TASK_END, 2, 21)->code, 5);
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 2, 0)->reason, "");
    s_teardown (t);
}

static void
test_submit_fails (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "fail"), "");
    const char *a[] = {"true"};
    s_submit (t, 1, a, 1, NULL);
    s_submit (t, 2, a, 1, NULL);
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 5000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason,
                         "cannot submit to fake: fakesub: error: invalid queue");
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 2, 0)->reason,
                         "cannot submit to fake: fakesub: error: invalid queue");
    assert_int_equal (s_lines (t, "submit.calls"), 1);
    assert_int_equal (jm_batch_active (t->sched), 0);
    s_teardown (t);
}

static void
test_token_bucket (void **state)
{
    (void)state;
    /* 120 per minute = one every 0.5 s, bursts of 2 */
    jm_sched_opts_t o = {.submit_per_min = 120, .submit_burst = 2};
    s_t *t = s_setup (&s_fake_plain, &o);
    const char *a[] = {"true"};
    for (uint64_t j = 1; j <= 4; j++)
        s_submit (t, j, a, 1, NULL);
    s_run (t, NULL, 300);
    assert_int_equal (s_lines (t, "submit.calls"), 2);
    s_run (t, NULL, 450); /* 0.75 s */
    assert_int_equal (s_lines (t, "submit.calls"), 3);
    s_want_ends = 4;
    assert_true (s_run (t, s_until_ends, 5000));
    assert_int_equal (s_lines (t, "submit.calls"), 4);
    char *calls = jm_test_read (jm_test_path (t->fake, "submit.calls"), NULL);
    double first = atof (calls), last = 0;
    for (char *p = calls; (p = strchr (p, '\n')) && p[1]; p++)
        last = atof (p + 1);
    free (calls);
    assert_true (last - first >= 0.8); /* ~0.95 s */
    s_teardown (t);
}

static void
test_one_query_per_poll (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"sleep 1.2"};
    for (uint64_t j = 1; j <= 6; j++)
        s_submit (t, j, a, 1, NULL);
    int64_t t0 = jm_now_ms ();
    s_want_ends = 6;
    assert_true (s_run (t, s_until_ends, 10000));
    int64_t el = jm_now_ms () - t0;
    size_t q = s_lines (t, "query.calls");
    assert_true (q >= 5);
    assert_true (q <= (size_t)(el / 100) + 1);
    /* while all six ran, one query named all six */
    char *calls = jm_test_read (jm_test_path (t->fake, "query.calls"), NULL);
    if (!strstr (calls, " 100.1 100.2 100.3 100.4 100.5 100.6\n"))
        fail_msg ("no query for all six jobs in:\n%s", calls);
    free (calls);
    for (uint64_t j = 1; j <= 6; j++)
        assert_string_equal (s_find (t, JM_SCHED_JOB_END, j, 0)->reason, "");
    /* no jobs: no more queries */
    s_run (t, NULL, 350);
    assert_int_equal (s_lines (t, "query.calls"), q);
    s_teardown (t);
}

static void
test_cancel (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"sleep 30"};
    s_submit (t, 1, a, 1, NULL);
    s_submit (t, 2, a, 1, NULL);
    assert_true (s_run (t, s_until_start_11, 10000));
    /* a pending job ends at once, but not from inside cancel */
    s_submit (t, 3, a, 1, NULL);
    size_t before = t->nev;
    assert_int_equal (jm_batch_cancel (t->sched, 3), 0);
    assert_int_equal (t->nev, before);
    assert_int_equal (jm_batch_cancel (t->sched, 1), 0);
    assert_int_equal (jm_batch_cancel (t->sched, 2), 0);
    assert_int_equal (jm_batch_cancel (t->sched, 2), 0); /* twice: harmless */
    assert_int_equal (jm_batch_cancel (t->sched, 99), -1);
    assert_int_equal (t->nev, before);
    s_want_ends = 3;
    assert_true (s_run (t, s_until_ends, 5000));
    for (uint64_t j = 1; j <= 3; j++)
        assert_string_equal (s_find (t, JM_SCHED_JOB_END, j, 0)->reason, "cancelled");
    /* one cancel command for both submitted jobs; job 3 never submitted */
    assert_int_equal (s_lines (t, "cancel.calls"), 1);
    char *calls = jm_test_read (jm_test_path (t->fake, "cancel.calls"), NULL);
    assert_true (!strcmp (calls, "100.1 100.2\n") || !strcmp (calls, "100.2 100.1\n"));
    free (calls);
    assert_int_equal (s_lines (t, "submit.calls"), 1);
    /* their processes are gone */
    assert_false (s_alive (s_job_pid (t, "100.1")));
    assert_false (s_alive (s_job_pid (t, "100.2")));
    assert_int_equal (jm_batch_active (t->sched), 0);
    s_teardown (t);
}

static bool s_until_submit_called (void *arg);

static void
test_cancel_while_submitting (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "delay"), "0.5\n");
    const char *a[] = {"sleep 30"};
    s_submit (t, 1, a, 1, NULL);
    s_submit (t, 2, a, 1, NULL);
    assert_true (s_run (t, s_until_submit_called, 5000));
    /* the submit command is running: decided when it answers */
    assert_int_equal (jm_batch_cancel (t->sched, 1), 0);
    assert_int_equal (jm_batch_cancel (t->sched, 2), 0);
    assert_int_equal (jm_batch_active (t->sched), 2);
    s_want_ends = 2;
    assert_true (s_run (t, s_until_ends, 5000));
    for (uint64_t j = 1; j <= 2; j++)
        assert_string_equal (s_find (t, JM_SCHED_JOB_END, j, 0)->reason, "cancelled");
    char *calls = jm_test_read (jm_test_path (t->fake, "cancel.calls"), NULL);
    assert_non_null (calls);
    assert_string_equal (calls, "100.1 100.2\n");
    free (calls);
    s_run (t, NULL, 300); /* the killed jobs' processes go */
    assert_false (s_alive (s_job_pid (t, "100.1")));
    assert_false (s_alive (s_job_pid (t, "100.2")));
    s_teardown (t);
}

static void
test_error_state (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    const char *a[] = {"sleep 30"};
    s_submit (t, 1, a, 1, NULL);
    jm_test_write (jm_test_path (t->fake, "jobs/100.error"), "Eqw: cannot chdir\n");
    s_want_ends = 1;
    assert_true (s_run (t, s_until_ends, 5000));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason,
                         "FAILED: fake job 100 is in an error state (Eqw: cannot chdir)");
    s_run (t, NULL, 300);
    char *calls = jm_test_read (jm_test_path (t->fake, "cancel.calls"), NULL);
    assert_non_null (calls);
    assert_string_equal (calls, "100\n");
    free (calls);
    s_teardown (t);
}

static bool
s_until_submit_called (void *arg)
{
    return s_lines (arg, "submit.calls") >= 1;
}

static bool
s_until_query_called (void *arg)
{
    return s_lines (arg, "query.calls") >= 1;
}

static void
test_destroy_in_flight (void **state)
{
    (void)state;
    /* a submit command hanging */
    s_t *t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "slow"), "");
    const char *a[] = {"true"};
    s_submit (t, 1, a, 1, NULL);
    s_submit (t, 2, a, 1, NULL);
    assert_true (s_run (t, s_until_submit_called, 5000));
    int64_t t0 = jm_now_ms ();
    jm_batch_destroy (&t->sched);
    assert_true (jm_now_ms () - t0 < 1000);
    s_run (t, NULL, 200);
    assert_int_equal (t->nev, 0);
    s_teardown (t);

    /* a status query hanging, a cancel asked for */
    t = s_setup (&s_fake, NULL);
    jm_test_write (jm_test_path (t->fake, "slowq"), "");
    const char *b[] = {"sleep 30"};
    s_submit (t, 1, b, 1, NULL);
    assert_true (s_run (t, s_until_query_called, 5000));
    size_t n = t->nev;
    assert_int_equal (jm_batch_cancel (t->sched, 1), 0);
    jm_batch_destroy (&t->sched);
    s_run (t, NULL, 200);
    assert_int_equal (t->nev, n);
    assert_int_equal (s_count (t, JM_SCHED_JOB_END), 0);
    s_teardown (t);
}

static void
test_max_array_template_and_stdin (void **state)
{
    (void)state;
    /* arrays of at most 2, the script on stdin */
    jm_batch_dialect_t d = s_fake;
    d.max_array = 2;
    d.submit_stdin = true;
    d.submit_argv = s_submit_argv_stdin;
    s_t *t = s_setup (&d, NULL);
    const char *a[] = {"exit 4"};
    for (uint64_t j = 1; j <= 5; j++)
        s_submit (t, j, a, 1, NULL);
    /* a header template: never an array, the job name filled in */
    jm_resources_t *res = jm_resources_new ();
    res->header_template = strdup ("# fake header T {job_name} {cpu_per_node}");
    free (res->job_name);
    res->job_name = strdup ("myjob");
    s_submit (t, 6, a, 1, res);
    s_submit (t, 7, a, 1, res);
    jm_resources_destroy (&res);
    s_want_ends = 7;
    assert_true (s_run (t, s_until_ends, 10000));
    for (uint64_t j = 1; j <= 7; j++) {
        assert_string_equal (s_find (t, JM_SCHED_JOB_END, j, 0)->reason, "");
        assert_int_equal (s_find (t, JM_SCHED_TASK_END, j, j * 10 + 1)->code, 4);
    }
    /* 2 + 2 + 1 array elements, then two plain jobs */
    assert_int_equal (s_lines (t, "submit.calls"), 5);
    char *calls = jm_test_read (jm_test_path (t->fake, "submit.calls"), NULL);
    size_t n2 = 0;
    for (char *p = calls; (p = strstr (p, "-n 2 -")); p++)
        n2++;
    assert_int_equal (n2, 2);
    free (calls);
    char *sub = jm_test_read (jm_test_path (t->dir, "job6/submit.sh"), NULL);
    assert_non_null (strstr (sub, "# fake header T myjob 1\n"));
    assert_null (strstr (sub, "case "));
    free (sub);
    s_teardown (t);
}

static void
test_events_garbage_ignored (void **state)
{
    (void)state;
    s_t *t = s_setup (&s_fake, NULL);
    /* the task writes into its own job's events file: lines about tasks
       not in the job, malformed lines, a line without its end */
    char cmd[1024];
    snprintf (cmd, sizeof cmd,
              "printf 'S 999\\nE 999 1\\nhello\\nE 11 x\\nS\\n\\nE 11 3 4\\n' >> "
              "'%s/job1/events'; exit 2",
              t->dir);
    const char *a[] = {cmd, "true"};
    s_submit (t, 1, a, 2, NULL);
    s_want_ends = 1;
    assert_true (s_run (t, s_until_ends, 10000));
    assert_int_equal (s_count (t, JM_SCHED_TASK_START), 2);
    assert_int_equal (s_count (t, JM_SCHED_TASK_END), 2);
    assert_int_equal (s_find (t, JM_SCHED_TASK_END, 1, 11)->code, 2);
    assert_int_equal (s_find (t, JM_SCHED_TASK_END, 1, 12)->code, 0);
    assert_null (s_find (t, JM_SCHED_TASK_START, 1, 999));
    assert_string_equal (s_find (t, JM_SCHED_JOB_END, 1, 0)->reason, "");
    /* starts come before ends, the job's end last */
    assert_int_equal (t->ev[t->nev - 1].type, JM_SCHED_JOB_END);
    s_teardown (t);
}

static void
test_create_without_submit_program (void **state)
{
    (void)state;
    jm_batch_dialect_t d = s_fake;
    d.submit_prog = "jm-no-such-sbatch";
    zloop_t *loop = zloop_new ();
    jm_sched_opts_t o = {.loop = loop, .event = s_on_event};
    char err[1024] = "";
    assert_null (jm_batch_create (&d, &o, err, sizeof err));
    assert_non_null (strstr (err, "jm-no-such-sbatch"));
    assert_non_null (strstr (err, "PATH"));
    zloop_destroy (&loop);
}

static void
test_verdict_names (void **state)
{
    (void)state;
    assert_string_equal (jm_verdict_name (JM_VERDICT_TIMEOUT), "TIMEOUT");
    assert_string_equal (jm_verdict_name (JM_VERDICT_CANCELLED), "CANCELLED");
    assert_string_equal (jm_verdict_name (JM_VERDICT_OUT_OF_MEMORY), "OUT_OF_MEMORY");
    assert_string_equal (jm_verdict_name (JM_VERDICT_NONE), "NONE");
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    snprintf (s_old_path, sizeof s_old_path, "%s",
              getenv ("PATH") ? getenv ("PATH") : "/usr/bin:/bin");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_array_plain_and_exit_codes),
        cmocka_unit_test (test_killed_behind_our_back),
        cmocka_unit_test (test_signal_end_and_verdict),
        cmocka_unit_test (test_deleted_while_pending),
        cmocka_unit_test (test_withdraw),
        cmocka_unit_test (test_retry_then_success),
        cmocka_unit_test (test_submit_fails),
        cmocka_unit_test (test_token_bucket),
        cmocka_unit_test (test_one_query_per_poll),
        cmocka_unit_test (test_cancel),
        cmocka_unit_test (test_cancel_while_submitting),
        cmocka_unit_test (test_error_state),
        cmocka_unit_test (test_destroy_in_flight),
        cmocka_unit_test (test_max_array_template_and_stdin),
        cmocka_unit_test (test_events_garbage_ignored),
        cmocka_unit_test (test_create_without_submit_program),
        cmocka_unit_test (test_verdict_names),
    };
    if (getenv ("JM_TEST_FILTER")) /* e.g. JM_TEST_FILTER=test_cancel */
        cmocka_set_test_filter (getenv ("JM_TEST_FILTER"));
    return cmocka_run_group_tests (tests, NULL, NULL);
}
