/*  test_sched_slurm.c - the Slurm dialect (agent/sched_slurm.c) on output
    captured from the real Slurm 22.05.8 of deploy/slurm-up.sh (jobs: a
    held 4-element array, a 3-element array whose element 2 exits 5, a
    running sleeper, a completed job, a job exiting 3, a scancel'ed job,
    a job killed by -t 0:01:00, jobs whose output file or working directory
    could not be created), plus sbatch's refusals: the ones seen here, and
    the submit-limit messages as users reported them (they need slurmdbd
    limits, which the test cluster has not). */
#define _GNU_SOURCE
#include "jm_batch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_test_sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const jm_batch_dialect_t jm_slurm_dialect;
#define D (&jm_slurm_dialect)

/* --------------------------------------------------------------------- */
/* Header */

static void
test_header_plain (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = D->header (&r, "jm17", 1, "/root/x/.jobman/jobs/17", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#SBATCH --job-name=jm17\n"
                            "#SBATCH --nodes=1\n"
                            "#SBATCH --ntasks-per-node=1\n"
                            "#SBATCH -o \"/root/x/.jobman/jobs/17/slurm-%j.out\"\n"
                            "#SBATCH -e \"/root/x/.jobman/jobs/17/slurm-%j.err\"\n");
    free (h);
}

static void
test_header_array_queue_flags (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.queue_name = "debug";
    r.number_node = 2;
    r.cpu_per_node = 8;
    char *flags[] = {"#SBATCH -t 0:01:00", "#SBATCH --mem=4G"};
    r.custom_flags.v = flags;
    r.custom_flags.n = 2;
    char err[256] = "";
    /* '%' in the directory must not become a Slurm file name pattern */
    char *h = D->header (&r, "myjob", 40, "/w/100%/jobs/5", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#SBATCH --job-name=myjob\n"
                            "#SBATCH --partition=debug\n"
                            "#SBATCH --nodes=2\n"
                            "#SBATCH --ntasks-per-node=8\n"
                            "#SBATCH --array=1-40\n"
                            "#SBATCH -o \"/w/100%%/jobs/5/slurm-%A_%a.out\"\n"
                            "#SBATCH -e \"/w/100%%/jobs/5/slurm-%A_%a.err\"\n"
                            "#SBATCH -t 0:01:00\n"
                            "#SBATCH --mem=4G\n");
    free (h);
}

static void
test_header_gpu (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.gpu_per_node = 2;
    char err[256] = "";
    char *h = D->header (&r, "g", 1, "/l", err, sizeof err);
    assert_non_null (h);
    assert_non_null (strstr (h, "#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:2\n"));
    free (h);

    /* custom_gpu_line replaces --gres and comes after the log lines */
    r.custom_gpu_line = "#SBATCH --gpus-per-task=1";
    h = D->header (&r, "g", 1, "/l", err, sizeof err);
    assert_non_null (h);
    assert_null (strstr (h, "--gres"));
    assert_non_null (strstr (h, ".err\"\n#SBATCH --gpus-per-task=1\n"));
    free (h);

    /* a custom line with no gpus asked for is still written */
    r.gpu_per_node = 0;
    h = D->header (&r, "g", 1, "/l", err, sizeof err);
    assert_non_null (strstr (h, "#SBATCH --gpus-per-task=1\n"));
    free (h);
}

static void
test_header_bad_dir (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = D->header (&r, "x", 1, "/a\"b", err, sizeof err);
    assert_null (h);
    assert_non_null (strstr (err, "/a\"b"));
    h = D->header (&r, "x", 1, "/a\nb", err, sizeof err);
    assert_null (h);
    h = D->header (&r, "two words", 1, "/a", err, sizeof err);
    assert_null (h);
}

/* --------------------------------------------------------------------- */
/* Submit */

static void
test_submit_argv_and_ok (void **state)
{
    (void)state;
    jm_argv_t a = {0};
    D->submit_argv ("/j/submit.sh", 3, &a);
    assert_int_equal (a.n, 3);
    assert_string_equal (a.v[0], "sbatch");
    assert_string_equal (a.v[1], "--parsable");
    assert_string_equal (a.v[2], "/j/submit.sh");
    assert_null (a.v[3]);
    jm_argv_clear (&a);

    char id[64], err[256];
    assert_int_equal (D->parse_submit (0, "57\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "57");
    /* federation / multi-cluster */
    assert_int_equal (D->parse_submit (0, "123;cluster1\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "123");
    /* a warning on stderr does not matter */
    assert_int_equal (
        D->parse_submit (0, "58\n", "sbatch: warning: something\n", id, sizeof id, err, sizeof err),
        JM_SUBMIT_OK);
    assert_string_equal (id, "58");

    char eid[64];
    D->element_id ("57", 4, eid, sizeof eid);
    assert_string_equal (eid, "57_4");
}

static void
test_submit_refusals (void **state)
{
    (void)state;
    char id[64], err[512];
    /* submit-count limits (as reported by users: sisyphus issue 241) */
    const char *assoc = "sbatch: error: AssocMaxSubmitJobLimit\n"
                        "sbatch: error: Batch job submission failed: Job violates "
                        "accounting/QOS policy (job submit limit, user's size and/or time "
                        "limits)\n";
    assert_int_equal (D->parse_submit (1, "", assoc, id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    assert_non_null (strstr (err, "AssocMaxSubmitJobLimit"));
    assert_non_null (strstr (err, "Job violates accounting/QOS policy"));
    assert_string_equal (id, "");
    const char *qos = "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"
                      "sbatch: error: Batch job submission failed: Job violates "
                      "accounting/QOS policy (job submit limit, user's size and/or time "
                      "limits)\n";
    assert_int_equal (D->parse_submit (1, "", qos, id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    /* the generic line alone (older Slurm) */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Batch job submission failed: Job violates "
                                       "accounting/QOS policy (job submit limit, user's size "
                                       "and/or time limits)\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    /* the same line after a limit that waiting does not lift */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: QOSMaxWallDurationPerJobLimit\n"
                                       "sbatch: error: Batch job submission failed: Job violates "
                                       "accounting/QOS policy (job submit limit, user's size "
                                       "and/or time limits)\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "QOSMaxWallDurationPerJobLimit"));
    /* controller busy / MaxJobCount */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Batch job submission failed: Resource "
                                       "temporarily unavailable\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Slurm temporarily unable to accept job, "
                                       "sleeping and retrying\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    /* captured here with SlurmctldPort pointing nowhere */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Batch job submission failed: Unable to "
                                       "contact slurm controller (connect failure)\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_RETRY);
    /* may have been accepted: not submitted twice */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Batch job submission failed: Socket timed "
                                       "out on send/recv operation\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    /* captured here: -p nosuch, --gres=gpu:1 on a node without gpus */
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: invalid partition specified: nosuch\n"
                                       "sbatch: error: Batch job submission failed: Invalid "
                                       "partition name specified\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_string_equal (err, "sbatch: error: invalid partition specified: nosuch / sbatch: "
                              "error: Batch job submission failed: Invalid partition name "
                              "specified");
    assert_int_equal (D->parse_submit (1, "",
                                       "sbatch: error: Invalid generic resource (gres) "
                                       "specification\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "Invalid generic resource"));
    /* exit 0 without an id; killed without a word */
    assert_int_equal (
        D->parse_submit (0, "Submitted batch job\n", "", id, sizeof id, err, sizeof err),
        JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "no job id"));
    assert_int_equal (D->parse_submit (137, "", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "137"));
    /* a tiny err buffer is not overrun */
    char small[8];
    assert_int_equal (D->parse_submit (1, "", assoc, id, sizeof id, small, sizeof small),
                      JM_SUBMIT_RETRY);
    assert_true (strlen (small) < sizeof small);
}

/* --------------------------------------------------------------------- */
/* Query and final */

static void
test_query_argv (void **state)
{
    (void)state;
    const char *sids[] = {"5", "9_1", "9_2", "9_3", "10_1", "12"};
    jm_argv_t a = {0};
    D->query_argv ("root", sids, 6, &a);
    assert_int_equal (a.n, 9);
    const char *want[] = {"squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", "5,9,10,12"};
    for (size_t i = 0; i < 9; i++)
        assert_string_equal (a.v[i], want[i]);
    jm_argv_clear (&a);

    jm_argv_t c = {0};
    jm_batch_cancel_argv (D, sids, 3, &c);
    assert_int_equal (c.n, 4);
    assert_string_equal (c.v[0], "scancel");
    assert_string_equal (c.v[1], "5");
    assert_string_equal (c.v[3], "9_2");
    jm_argv_clear (&c);
}

/* squeue -h -r -t all -o '%i|%T|%r' -j 5,6,7,8,9,10, captured over time */
static const char s_q_pending[] = "6|COMPLETED|None\n"
                                  "7|PENDING|Resources\n"
                                  "8|PENDING|Priority\n"
                                  "9_1|PENDING|Priority\n"
                                  "9_2|PENDING|Priority\n"
                                  "9_3|PENDING|Priority\n"
                                  "10_1|PENDING|JobHeldUser\n"
                                  "10_2|PENDING|JobHeldUser\n"
                                  "10_3|PENDING|JobHeldUser\n"
                                  "10_4|PENDING|JobHeldUser\n"
                                  "5|RUNNING|None\n";
static const char s_q_cancel[] = "8|CANCELLED|None\n"
                                 "6|COMPLETED|None\n"
                                 "9_1|COMPLETED|None\n"
                                 "7|FAILED|NonZeroExitCode\n"
                                 "9_2|FAILED|NonZeroExitCode\n"
                                 "10_1|PENDING|JobHeldUser\n"
                                 "10_2|PENDING|JobHeldUser\n"
                                 "10_3|PENDING|JobHeldUser\n"
                                 "10_4|PENDING|JobHeldUser\n"
                                 "5|RUNNING|None\n"
                                 "9_3|RUNNING|None\n";
/* later: 6..9 purged after MinJobAge, 5 killed by its time limit */
static const char s_q_timeout[] = "10_1|PENDING|JobHeldUser\n"
                                  "10_2|PENDING|JobHeldUser\n"
                                  "10_3|PENDING|JobHeldUser\n"
                                  "10_4|PENDING|JobHeldUser\n"
                                  "5|TIMEOUT|TimeLimit\n";
/* -o /nonexistent/dir/x.out, and --chdir /nonexistent/d */
static const char s_q_launch[] = "13|FAILED|JobLaunchFailure\n"
                                 "14|FAILED|JobLaunchFailure\n";

static void
test_parse_query_real (void **state)
{
    (void)state;
    char err[256];
    jm_test_seens_t c = {0};
    assert_int_equal (D->parse_query (0, s_q_pending, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_int_equal (c.n, 11);
    assert_string_equal (c.log, "6=D/COMPLETED(COMPLETED) 7=Q/NONE(PENDING, reason Resources) "
                                "8=Q/NONE(PENDING, reason Priority) 9_1=Q/NONE(PENDING, reason "
                                "Priority) 9_2=Q/NONE(PENDING, reason Priority) "
                                "9_3=Q/NONE(PENDING, reason Priority) 10_1=Q/NONE(PENDING, reason "
                                "JobHeldUser) 10_2=Q/NONE(PENDING, reason JobHeldUser) "
                                "10_3=Q/NONE(PENDING, reason JobHeldUser) 10_4=Q/NONE(PENDING, "
                                "reason JobHeldUser) 5=R/NONE(RUNNING)");

    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_query (0, s_q_cancel, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_int_equal (c.n, 11);
    assert_non_null (strstr (c.log, "8=D/CANCELLED(CANCELLED) "));
    assert_non_null (strstr (c.log, "9_1=D/COMPLETED(COMPLETED) "));
    assert_non_null (strstr (c.log, "7=D/FAILED(FAILED, reason NonZeroExitCode) "));
    assert_non_null (strstr (c.log, "9_2=D/FAILED(FAILED, reason NonZeroExitCode) "));
    assert_non_null (strstr (c.log, "9_3=R/NONE(RUNNING)"));

    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_query (0, s_q_timeout, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_int_equal (c.n, 5);
    assert_non_null (strstr (c.log, "5=D/TIMEOUT(TIMEOUT, reason TimeLimit)"));

    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_query (0, s_q_launch, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_string_equal (c.log, "13=D/FAILED(FAILED, reason JobLaunchFailure) "
                                "14=D/FAILED(FAILED, reason JobLaunchFailure)");

    /* nothing of ours left (several ids asked): empty, status 0 */
    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_query (0, "", "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_int_equal (c.n, 0);
    /* ONE id asked and purged: squeue exits 1 (captured) - the job left */
    assert_int_equal (D->parse_query (1, "", "slurm_load_jobs error: Invalid job id specified\n",
                                      jm_test_on_seen, &c, err, sizeof err),
                      0);
    assert_int_equal (c.n, 0);
    /* controller unreachable (captured): the query failed, nothing concluded */
    assert_int_equal (D->parse_query (1, "",
                                      "slurm_load_jobs error: Unable to contact slurm controller "
                                      "(connect failure)\n",
                                      jm_test_on_seen, &c, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "Unable to contact slurm controller"));
    assert_int_equal (c.n, 0);
}

static void
test_parse_query_states (void **state)
{
    (void)state;
    char err[256];
    jm_test_seens_t c = {0};
    const char *out = "1|CONFIGURING|None\n"
                      "2|COMPLETING|None\n"
                      "3|SUSPENDED|None\n"
                      "4|REQUEUED|None\n"
                      "5|NODE_FAIL|None\n"
                      "6|OUT_OF_MEMORY|OutOfMemory\n"
                      "7|PREEMPTED|None\n"
                      "8|BOOT_FAIL|None\n"
                      "9|DEADLINE|None\n"
                      "10|PENDING|launch failed requeued held\n"
                      "11|SPECIAL_EXIT|None\n"
                      "12|PENDING|JobHeldAdmin\n"
                      "13|SOMETHING_NEW|None\n";
    assert_int_equal (D->parse_query (0, out, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_string_equal (c.log, "1=Q/NONE(CONFIGURING) 2=R/NONE(COMPLETING) "
                                "3=Q/NONE(SUSPENDED) 4=Q/NONE(REQUEUED) "
                                "5=D/NODE_FAIL(NODE_FAIL) "
                                "6=D/OUT_OF_MEMORY(OUT_OF_MEMORY, reason OutOfMemory) "
                                "7=D/CANCELLED(PREEMPTED) 8=D/NODE_FAIL(BOOT_FAIL) "
                                "9=D/TIMEOUT(DEADLINE) "
                                "10=E/FAILED(PENDING, reason launch failed requeued held) "
                                "11=E/FAILED(SPECIAL_EXIT) "
                                "12=Q/NONE(PENDING, reason JobHeldAdmin) "
                                "13=Q/NONE(SOMETHING_NEW)");
}

static void
test_parse_query_garbage (void **state)
{
    (void)state;
    char err[256];
    const char *bad[] = {
        "hello world\n",
        "5|RUNNING\n",                       /* two fields */
        "x5|RUNNING|None\n",                 /* not an id */
        "9_[1-3]|PENDING|None\n",            /* a range: -r was lost */
        "5|running|None\n",                  /* not a state word */
        "5|RUNNING|None\n\x01\x02\xff|||\n", /* a good line, then junk */
        "JOBID|STATE|REASON\n",              /* a header: -h was lost */
        "|||\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jm_test_seens_t c = {0};
        err[0] = '\0';
        assert_int_equal (D->parse_query (0, bad[i], "", jm_test_on_seen, &c, err, sizeof err), -1);
        assert_int_equal (c.n, 0); /* nonsense reports nothing at all */
        assert_non_null (strstr (err, "squeue output line"));
    }
    /* a very long line */
    char *big = malloc (100001);
    memset (big, 'A', 100000);
    big[100000] = '\0';
    jm_test_seens_t c = {0};
    assert_int_equal (D->parse_query (0, big, "", jm_test_on_seen, &c, err, sizeof err), -1);
    assert_int_equal (D->parse_final (0, big, "", jm_test_on_seen, &c, err, sizeof err), -1);
    assert_int_equal (c.n, 0);
    free (big);
    /* NULL streams */
    assert_int_equal (D->parse_query (0, NULL, NULL, jm_test_on_seen, &c, err, sizeof err), 0);
    assert_int_equal (D->parse_final (0, NULL, NULL, jm_test_on_seen, &c, err, sizeof err), 0);
}

static void
test_final_argv (void **state)
{
    (void)state;
    const char *sids[] = {"4", "9_1", "13"};
    jm_argv_t a = {0};
    D->final_argv ("root", sids, 3, &a);
    assert_int_equal (a.n, 5);
    assert_string_equal (a.v[0], "sh");
    assert_string_equal (a.v[1], "-c");
    assert_non_null (strstr (a.v[2], "sacct -n -P -X -o JobID,State,ExitCode -j \"$1\""));
    assert_non_null (strstr (a.v[2], "|| sacct -c -n -P -X -o JobID,State,ExitCode -j \"$1\""));
    assert_string_equal (a.v[3], "sh");
    assert_string_equal (a.v[4], "4,9_1,13");
    jm_argv_clear (&a);
}

static void
test_parse_final_real (void **state)
{
    (void)state;
    char err[256];
    /* sacct -c -n -P -X -o JobID,State,ExitCode -j 4,7,8,9_1,11 (captured;
       with -c, array elements 9_1.. show under their raw ids 11, 12, 9,
       which are not ids of ours; stderr had "Unknown type ArrayJobId") */
    const char *c_out = "4|TIMEOUT|0:0\n"
                        "7|FAILED|3:0\n"
                        "8|CANCELLED|0:0\n"
                        "11|COMPLETED|0:0\n"
                        "9|COMPLETED|0:0\n"
                        "13|FAILED|0:53\n";
    jm_test_seens_t c = {0};
    assert_int_equal (D->parse_final (0, c_out, "sacct: error: Unknown type ArrayJobId: 9\n",
                                      jm_test_on_seen, &c, err, sizeof err),
                      0);
    assert_string_equal (c.log, "4=D/TIMEOUT(TIMEOUT) 7=D/FAILED(FAILED, exit code 3:0) "
                                "8=D/CANCELLED(CANCELLED) 11=D/COMPLETED(COMPLETED) "
                                "9=D/COMPLETED(COMPLETED) 13=D/FAILED(FAILED, exit code 0:53)");

    /* slurmdbd's sacct: array elements by name, "CANCELLED by UID", a
       pending range, a step, a job still running (no verdict) */
    const char *db_out = "57_1|COMPLETED|0:0\n"
                         "57_2|CANCELLED by 1000|0:15\n"
                         "57_[3-5]|PENDING|0:0\n"
                         "58.batch|FAILED|2:0\n"
                         "59|RUNNING|0:0\n"
                         "60|OUT_OF_MEMORY|0:125\n"
                         "61|NODE_FAIL|1:0\n";
    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_final (0, db_out, "", jm_test_on_seen, &c, err, sizeof err), 0);
    assert_string_equal (c.log, "57_1=D/COMPLETED(COMPLETED) "
                                "57_2=D/CANCELLED(CANCELLED by 1000, exit code 0:15) "
                                "60=D/OUT_OF_MEMORY(OUT_OF_MEMORY, exit code 0:125) "
                                "61=D/NODE_FAIL(NODE_FAIL, exit code 1:0)");

    /* both sacct failed */
    memset (&c, 0, sizeof c);
    assert_int_equal (D->parse_final (1, "", "Slurm accounting storage is disabled\n",
                                      jm_test_on_seen, &c, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "accounting storage is disabled"));
    /* garbage */
    assert_int_equal (
        D->parse_final (0, "what is this\n", "", jm_test_on_seen, &c, err, sizeof err), -1);
    assert_int_equal (
        D->parse_final (0, "4|TIMEOUT|0:0\n4|lower|x\n", "", jm_test_on_seen, &c, err, sizeof err),
        -1);
    assert_int_equal (c.n, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_header_plain),
        cmocka_unit_test (test_header_array_queue_flags),
        cmocka_unit_test (test_header_gpu),
        cmocka_unit_test (test_header_bad_dir),
        cmocka_unit_test (test_submit_argv_and_ok),
        cmocka_unit_test (test_submit_refusals),
        cmocka_unit_test (test_query_argv),
        cmocka_unit_test (test_parse_query_real),
        cmocka_unit_test (test_parse_query_states),
        cmocka_unit_test (test_parse_query_garbage),
        cmocka_unit_test (test_final_argv),
        cmocka_unit_test (test_parse_final_real),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
