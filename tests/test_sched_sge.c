/*  test_sched_sge.c - the SGE dialect (agent/sched_sge.c) on output captured
    from the real Son of Grid Engine 8.1.9 of deploy/sge-up.sh by
    tests/fixtures/sge/capture.sh (each capture NAME is NAME.out, NAME.err,
    NAME.rc): qsub answers and refusals (max_u_jobs, max_jobs and
    max_aj_tasks set for a moment, an unreachable qmaster, an unknown PE, a
    name starting with a digit), qstat -xml with running elements, a
    pending range "4-6:1", a held array, what is left of a range ("1,2"), a
    job in Eqw and a suspended one, and qacct records of a completed job, a
    job exiting 3, an array whose element 2 exits 3, an h_rt kill, a qdel'ed
    running job and a job deleted before it ran. */
#define _GNU_SOURCE
#include "jm_batch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_test_sched.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const jm_batch_dialect_t jm_sge_dialect;
#define D (&jm_sge_dialect)

/* ------------------------------------------------------------ fixtures */

typedef struct {
    char *out, *err;
    int rc;
} s_cap_t;

static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread (chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc (buf, cap);
            assert_non_null (buf);
        }
        memcpy (buf + len, chunk, n);
        len += n;
    }
    fclose (f);
    if (!buf)
        buf = calloc (1, 1);
    buf[len] = '\0';
    return buf;
}

/* tests/fixtures/sge/NAME.{out,err,rc}, next to this file. */
static s_cap_t
s_cap (const char *name)
{
    char src[4096];
    snprintf (src, sizeof src, "%s", __FILE__);
    char path[4200];
    s_cap_t c;
    snprintf (path, sizeof path, "%s/fixtures/sge/%s.out", dirname (src), name);
    c.out = s_slurp (path);
    if (!c.out)
        fail_msg ("cannot read fixture %s", path);
    snprintf (src, sizeof src, "%s", __FILE__);
    snprintf (path, sizeof path, "%s/fixtures/sge/%s.err", dirname (src), name);
    c.err = s_slurp (path);
    snprintf (src, sizeof src, "%s", __FILE__);
    snprintf (path, sizeof path, "%s/fixtures/sge/%s.rc", dirname (src), name);
    char *rc = s_slurp (path);
    if (!c.err || !rc)
        fail_msg ("cannot read fixture %s", path);
    c.rc = atoi (rc);
    free (rc);
    return c;
}

static void
s_cap_free (s_cap_t *c)
{
    free (c->out);
    free (c->err);
}

/* ------------------------------------------------------------- header */

static void
test_header_plain (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = D->header (&r, "jm17", 1, "/root/x y/.jobman/jobs/17", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#$ -N jm17\n"
                            "#$ -S /bin/bash\n"
                            "#$ -o \"/root/x y/.jobman/jobs/17/sge.$JOB_ID.$TASK_ID.out\"\n"
                            "#$ -e \"/root/x y/.jobman/jobs/17/sge.$JOB_ID.$TASK_ID.err\"\n");
    free (h);
}

static void
test_header_array (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.queue_name = "all.q";
    r.cpu_per_node = 4;
    r.number_node = 2;
    r.pe_name = "mpi";
    r.custom_gpu_line = "#$ -l gpu=1";
    char *flags[] = {"#$ -l h_rt=0:0:5", "#$ -l h_vmem=1G"};
    r.custom_flags.v = flags;
    r.custom_flags.n = 2;
    char err[256] = "";
    char *h = D->header (&r, "run", 7, "/j/5", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#$ -N run\n"
                            "#$ -S /bin/bash\n"
                            "#$ -q all.q\n"
                            "#$ -pe mpi 8\n"
                            "#$ -t 1-7\n"
                            "#$ -o \"/j/5/sge.$JOB_ID.$TASK_ID.out\"\n"
                            "#$ -e \"/j/5/sge.$JOB_ID.$TASK_ID.err\"\n"
                            "#$ -l gpu=1\n"
                            "#$ -l h_rt=0:0:5\n"
                            "#$ -l h_vmem=1G\n");
    free (h);
}

/* qsub refused "1abc" ("cannot start with a digit") and ':' / '@'
   ("Colon (':') not allowed in objectname"). */
static void
test_header_names (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = D->header (&r, "1abc:x@y", 1, "/j", err, sizeof err);
    assert_non_null (h);
    assert_non_null (strstr (h, "#$ -N j1abc_x_y\n"));
    free (h);
    char longname[300];
    memset (longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    h = D->header (&r, longname, 1, "/j", err, sizeof err);
    assert_non_null (h);
    const char *n = strstr (h, "#$ -N ");
    assert_non_null (n);
    assert_int_equal (strcspn (n + 6, "\n"), 128);
    free (h);
}

/* qsub read "-e /tmp/sge/c:d/e" as host "/tmp/sge/c". */
static void
test_header_bad_log_dir (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    assert_null (D->header (&r, "jm1", 1, "/tmp/c:d", err, sizeof err));
    assert_non_null (strstr (err, "/tmp/c:d"));
    err[0] = '\0';
    assert_null (D->header (&r, "jm1", 1, "/tmp/a\"b", err, sizeof err));
    assert_non_null (strstr (err, "log directory"));
}

/* ------------------------------------------------------------- submit */

static jm_submit_rc_t
s_submit (const char *name, char *id, char *err)
{
    s_cap_t c = s_cap (name);
    jm_submit_rc_t rc = D->parse_submit (c.rc, c.out, c.err, id, 32, err, 512);
    s_cap_free (&c);
    return rc;
}

static void
test_submit_ok (void **state)
{
    (void)state;
    char id[32], err[512];
    assert_int_equal (s_submit ("submit_plain", id, err), JM_SUBMIT_OK);
    assert_string_equal (id, "82");
    assert_int_equal (s_submit ("submit_array", id, err), JM_SUBMIT_OK); /* "83.1-3:1" */
    assert_string_equal (id, "83");
    char el[48];
    D->element_id ("63", 2, el, sizeof el);
    assert_string_equal (el, "63.2");
}

static void
test_submit_retry (void **state)
{
    (void)state;
    char id[32], err[512];
    assert_int_equal (s_submit ("submit_max_u_jobs", id, err), JM_SUBMIT_RETRY);
    assert_non_null (strstr (err, "only 2 jobs are allowed per user"));
    assert_null (strstr (err, "Exiting."));
    assert_int_equal (s_submit ("submit_max_jobs", id, err), JM_SUBMIT_RETRY);
    assert_non_null (strstr (err, "only 2 jobs are allowed per cluster"));
    assert_int_equal (s_submit ("submit_noqmaster", id, err), JM_SUBMIT_RETRY);
    assert_non_null (strstr (err, "unable to send message to qmaster"));
}

static void
test_submit_fail (void **state)
{
    (void)state;
    char id[32], err[512];
    assert_int_equal (s_submit ("submit_max_aj_tasks", id, err), JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "more than 5 tasks"));
    assert_int_equal (s_submit ("submit_badpe", id, err), JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "parallel environment \"nosuchpe\" does not exist"));
    assert_int_equal (s_submit ("submit_digit", id, err), JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "cannot start with a digit"));
    /* exit 0 without an id */
    assert_int_equal (D->parse_submit (0, "Your job is fine\n", "", id, 32, err, 512),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "Your job is fine"));
    assert_int_equal (D->parse_submit (0, "", "", id, 32, err, 512), JM_SUBMIT_FAIL);
    assert_int_equal (D->parse_submit (0, "12x\n", "", id, 32, err, 512), JM_SUBMIT_FAIL);
    assert_int_equal (D->parse_submit (127, NULL, NULL, id, 32, err, 512), JM_SUBMIT_FAIL);
}

static void
test_argv (void **state)
{
    (void)state;
    jm_argv_t a = {0};
    D->submit_argv ("/j/1/submit.sh", 3, &a);
    assert_int_equal (a.n, 3);
    assert_string_equal (a.v[0], "qsub");
    assert_string_equal (a.v[1], "-terse");
    assert_string_equal (a.v[2], "/j/1/submit.sh");
    jm_argv_clear (&a);

    const char *sids[] = {"63.1", "64", "63.3", "65.2"};
    D->query_argv ("root", sids, 4, &a);
    assert_int_equal (a.n, 4);
    assert_string_equal (a.v[0], "qstat");
    assert_string_equal (a.v[1], "-u");
    assert_string_equal (a.v[2], "root");
    assert_string_equal (a.v[3], "-xml");
    jm_argv_clear (&a);

    D->final_argv ("root", sids, 4, &a);
    assert_int_equal (a.n, 7); /* sh -c SCRIPT sh 63 64 65 */
    assert_string_equal (a.v[0], "sh");
    assert_string_equal (a.v[1], "-c");
    assert_non_null (strstr (a.v[2], "qacct -j"));
    assert_string_equal (a.v[4], "63");
    assert_string_equal (a.v[5], "64");
    assert_string_equal (a.v[6], "65");
    jm_argv_clear (&a);

    /* qdel took "93.1 92 999999" at once (and deleted what existed) */
    jm_batch_cancel_argv (D, sids, 4, &a);
    assert_int_equal (a.n, 5);
    assert_string_equal (a.v[0], "qdel");
    assert_string_equal (a.v[1], "63.1");
    assert_string_equal (a.v[4], "65.2");
    jm_argv_clear (&a);
}

/* -------------------------------------------------------------- query */

static void
test_query_pending_array (void **state)
{
    (void)state;
    s_cap_t c = s_cap ("qstat_pending_array");
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_query (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err), 0);
    /* array 91: 1 and 3 run, 4-6:1 pending (2 already done); held plain
       92; held array 93 1-5:1 */
    assert_int_equal (l.n, 2 + 3 + 1 + 5);
    assert_int_equal (jm_test_seen_get (&l, "91.1")->state, JM_BST_RUNNING);
    assert_int_equal (jm_test_seen_get (&l, "91.3")->state, JM_BST_RUNNING);
    for (int i = 4; i <= 6; i++) {
        char sid[16];
        snprintf (sid, sizeof sid, "91.%d", i);
        assert_int_equal (jm_test_seen_get (&l, sid)->state, JM_BST_QUEUED);
    }
    assert_int_equal (jm_test_seen_get (&l, "92")->state, JM_BST_QUEUED);
    for (int i = 1; i <= 5; i++) {
        char sid[16];
        snprintf (sid, sizeof sid, "93.%d", i);
        assert_int_equal (jm_test_seen_get (&l, sid)->state, JM_BST_QUEUED);
    }
    for (size_t i = 0; i < l.n; i++)
        assert_string_not_equal (l.v[i].sid, "91.2");
    s_cap_free (&c);
}

static void
test_query_mixed (void **state)
{
    (void)state;
    s_cap_t c = s_cap ("qstat_mixed");
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_query (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err), 0);
    /* suspended 95 (s), 94 in Eqw, held 92, held array 93 with "1,2" left */
    assert_int_equal (l.n, 5);
    assert_int_equal (jm_test_seen_get (&l, "95")->state, JM_BST_RUNNING);
    const jm_test_seen_t *e = jm_test_seen_get (&l, "94");
    assert_int_equal (e->state, JM_BST_ERROR);
    assert_int_equal (e->verdict, JM_VERDICT_FAILED);
    assert_string_equal (e->detail, "Eqw");
    assert_int_equal (jm_test_seen_get (&l, "92")->state, JM_BST_QUEUED);
    assert_int_equal (jm_test_seen_get (&l, "93.1")->state, JM_BST_QUEUED);
    assert_int_equal (jm_test_seen_get (&l, "93.2")->state, JM_BST_QUEUED);
    s_cap_free (&c);
}

static void
test_query_empty_and_down (void **state)
{
    (void)state;
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    s_cap_t c = s_cap ("qstat_empty");
    assert_int_equal (D->parse_query (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 0);
    s_cap_free (&c);
    c = s_cap ("qstat_noqmaster");
    assert_int_equal (D->parse_query (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "unable to send message to qmaster"));
    assert_int_equal (l.n, 0);
    s_cap_free (&c);
}

/* States of sge_status(5) not provoked here, and task lists with steps. */
static void
test_query_states (void **state)
{
    (void)state;
    static const struct {
        const char *st;
        jm_bstate_t want;
    } cases[] = {{"qw", JM_BST_QUEUED},   {"hqw", JM_BST_QUEUED}, {"hRwq", JM_BST_QUEUED},
                 {"Rq", JM_BST_QUEUED},   {"r", JM_BST_RUNNING},  {"t", JM_BST_RUNNING},
                 {"Rr", JM_BST_RUNNING},  {"Rt", JM_BST_RUNNING}, {"s", JM_BST_RUNNING},
                 {"S", JM_BST_RUNNING},   {"T", JM_BST_RUNNING},  {"dr", JM_BST_RUNNING},
                 {"dt", JM_BST_RUNNING},  {"Eqw", JM_BST_ERROR},  {"Ehqw", JM_BST_ERROR},
                 {"EhRqw", JM_BST_ERROR}, {"hr", JM_BST_RUNNING}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char xml[512];
        snprintf (xml, sizeof xml,
                  "<?xml version='1.0'?>\n<job_info>\n <queue_info>\n  <job_list "
                  "state=\"x\">\n   <JB_job_number>7</JB_job_number>\n   <state>%s</state>\n  "
                  "</job_list>\n </queue_info>\n</job_info>\n",
                  cases[i].st);
        jm_test_seens_t l = {.n = 0};
        char err[256] = "";
        assert_int_equal (D->parse_query (0, xml, "", jm_test_on_seen, &l, err, sizeof err), 0);
        assert_int_equal (l.n, 1);
        assert_string_equal (l.v[0].sid, "7");
        if (l.v[0].state != cases[i].want)
            fail_msg ("state %s -> %d, want %d", cases[i].st, l.v[0].state, cases[i].want);
    }
    const char *xml = "<job_info><job_info><job_list state=\"pending\"><JB_job_number>8"
                      "</JB_job_number><state>qw</state><tasks>1-9:4,12,20-21:1</tasks>"
                      "</job_list></job_info></job_info>";
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_query (0, xml, "", jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 6);
    assert_string_equal (l.v[0].sid, "8.1");
    assert_string_equal (l.v[1].sid, "8.5");
    assert_string_equal (l.v[2].sid, "8.9");
    assert_string_equal (l.v[3].sid, "8.12");
    assert_string_equal (l.v[4].sid, "8.20");
    assert_string_equal (l.v[5].sid, "8.21");
}

static void
test_query_garbage (void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "job-ID  prior   name\n-----\n 5 0.5 x root r\n",
        "<job_info><job_list><state>r</state></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>r</state>",
        "<job_info><job_list><JB_job_number>x5</JB_job_number><state>r</state></job_list>"
        "</job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>r r</state></job_list>"
        "</job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>9-3:1"
        "</tasks></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>1-3:0"
        "</tasks></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>1,"
        "</tasks></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>"
        "1-99999999999999999999</tasks></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>"
        "</tasks></job_list></job_info>",
        "<job_info><job_list><JB_job_number>5</JB_job_number><state>qw</state><tasks>0"
        "</tasks></job_list></job_info>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jm_test_seens_t l = {.n = 0};
        char err[256] = "";
        if (D->parse_query (0, bad[i], "", jm_test_on_seen, &l, err, sizeof err) != -1)
            fail_msg ("garbage %zu accepted", i);
        assert_true (strlen (err) > 0);
    }
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_query (0, NULL, NULL, jm_test_on_seen, &l, err, sizeof err), -1);
}

/* -------------------------------------------------------------- final */

static void
test_final_mixed (void **state)
{
    (void)state;
    s_cap_t c = s_cap ("qacct_mixed");
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    /* exit 1: the last qacct (job 101, deleted before it ran) found nothing */
    assert_int_equal (c.rc, 1);
    assert_int_equal (D->parse_final (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 7);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal (l.v[i].state, JM_BST_DONE);
    assert_int_equal (jm_test_seen_get (&l, "96")->verdict, JM_VERDICT_COMPLETED);
    const jm_test_seen_t *s = jm_test_seen_get (&l, "97");
    assert_int_equal (s->verdict, JM_VERDICT_FAILED);
    assert_non_null (strstr (s->detail, "exit_status 3"));
    assert_int_equal (jm_test_seen_get (&l, "98.1")->verdict, JM_VERDICT_COMPLETED);
    assert_int_equal (jm_test_seen_get (&l, "98.2")->verdict, JM_VERDICT_FAILED);
    assert_int_equal (jm_test_seen_get (&l, "98.3")->verdict, JM_VERDICT_COMPLETED);
    s = jm_test_seen_get (&l, "99");
    assert_int_equal (s->verdict, JM_VERDICT_TIMEOUT);
    assert_non_null (strstr (s->detail, "failed 37: qmaster enforced h_rt"));
    s = jm_test_seen_get (&l, "100");
    assert_int_equal (s->verdict, JM_VERDICT_CANCELLED);
    assert_non_null (strstr (s->detail, "failed 100: assumedly after job, exit_status 137"));
    s_cap_free (&c);
}

static void
test_final_notfound (void **state)
{
    (void)state;
    s_cap_t c = s_cap ("qacct_notfound");
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_final (c.rc, c.out, c.err, jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 0);
    s_cap_free (&c);
}

/* The same id twice (ids restart after a spool reset): the last counts. */
static void
test_final_last_record_wins (void **state)
{
    (void)state;
    const char *out = "==============================================================\n"
                      "jobnumber    5\ntaskid       undefined\nfailed       0    \n"
                      "exit_status  0\n"
                      "==============================================================\n"
                      "jobnumber    6\ntaskid       2\nfailed       19  : before writing "
                      "exit_status\nexit_status  0\n"
                      "==============================================================\n"
                      "jobnumber    5\ntaskid       undefined\nfailed       37  : qmaster "
                      "enforced h_rt, h_cpu, or h_vmem limit\nexit_status  137   (Killed)\n";
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (D->parse_final (0, out, "", jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 2);
    assert_int_equal (jm_test_seen_get (&l, "5")->verdict, JM_VERDICT_TIMEOUT);
    assert_int_equal (jm_test_seen_get (&l, "6.2")->verdict, JM_VERDICT_NODE_FAIL);
}

static void
test_final_garbage (void **state)
{
    (void)state;
    static const char *bad[] = {
        "hello world\n",
        "==========\njobnumber 5\n",
        "==========\njobnumber 5\nfailed 0\nexit_status x\n",
        "==========\njobnumber 5\ntaskid x\nfailed 0\nexit_status 0\n",
        "==========\njobnumber x\nfailed 0\nexit_status 0\n",
        "==========\njobnumber 5\nfailed -3\nexit_status 0\n",
        "==========\njobnumber 123456789012345678901234567890\nfailed 0\nexit_status 0\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jm_test_seens_t l = {.n = 0};
        char err[256] = "";
        if (D->parse_final (0, bad[i], "", jm_test_on_seen, &l, err, sizeof err) != -1)
            fail_msg ("garbage %zu accepted", i);
        assert_true (strlen (err) > 0);
    }
    jm_test_seens_t l = {.n = 0};
    char err[256] = "";
    assert_int_equal (
        D->parse_final (127, "", "sh: 1: qacct: not found\n", jm_test_on_seen, &l, err, sizeof err),
        -1);
    assert_non_null (strstr (err, "qacct: not found"));
    assert_int_equal (D->parse_final (0, NULL, NULL, jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_header_plain),
        cmocka_unit_test (test_header_array),
        cmocka_unit_test (test_header_names),
        cmocka_unit_test (test_header_bad_log_dir),
        cmocka_unit_test (test_submit_ok),
        cmocka_unit_test (test_submit_retry),
        cmocka_unit_test (test_submit_fail),
        cmocka_unit_test (test_argv),
        cmocka_unit_test (test_query_pending_array),
        cmocka_unit_test (test_query_mixed),
        cmocka_unit_test (test_query_empty_and_down),
        cmocka_unit_test (test_query_states),
        cmocka_unit_test (test_query_garbage),
        cmocka_unit_test (test_final_mixed),
        cmocka_unit_test (test_final_notfound),
        cmocka_unit_test (test_final_last_record_wins),
        cmocka_unit_test (test_final_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
