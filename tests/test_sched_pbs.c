/*  test_sched_pbs.c - the PBS Pro and Torque dialects (agent/sched_pbs.c).

    Neither scheduler can be installed here, so the fixtures are the
    documented formats: `qstat -f` text (PBS Professional Reference Guide,
    qstat; Torque Administrator Guide, "Job Exit Status" example), job
    states and the JOB_EXEC_* exit codes of OpenPBS src/include/job.h and
    the Torque 6.1 guide, qsub's refusal messages as the OpenPBS test suite
    (pbs_entity_limits.py) and Torque users report them, plus output
    copied from tests/fake_pbs (which follows the same documents). */
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

extern const jm_batch_dialect_t jm_pbs_dialect;
extern const jm_batch_dialect_t jm_torque_dialect;
#define P (&jm_pbs_dialect)
#define T (&jm_torque_dialect)

/* --------------------------------------------------------------------- */
/* Headers */

static void
test_header_pbspro_plain (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = P->header (&r, "jm17", 1, "/root/x/.jobman/jobs/17", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#PBS -N jm17\n"
                            "#PBS -l select=1:ncpus=1\n"
                            "#PBS -o /root/x/.jobman/jobs/17/pbs.out\n"
                            "#PBS -j oe\n");
    free (h);
}

static void
test_header_pbspro_array (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.queue_name = "workq";
    r.number_node = 2;
    r.cpu_per_node = 8;
    r.gpu_per_node = 1;
    char *flags[] = {"#PBS -l walltime=00:01:00", "#PBS -l mem=4gb"};
    r.custom_flags.v = flags;
    r.custom_flags.n = 2;
    char err[256] = "";
    char *h = P->header (&r, "myjob", 40, "/w/jobs/5", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#PBS -N myjob\n"
                            "#PBS -q workq\n"
                            "#PBS -l select=2:ncpus=8:ngpus=1\n"
                            "#PBS -J 1-40\n"
                            "#PBS -o /w/jobs/5/pbs.^array_index^.out\n"
                            "#PBS -j oe\n"
                            "#PBS -l walltime=00:01:00\n"
                            "#PBS -l mem=4gb\n");
    free (h);
    /* PBS Pro needs at least two subjobs: n == 1 is a plain job */
    h = P->header (&r, "myjob", 1, "/w/jobs/5", err, sizeof err);
    assert_non_null (h);
    assert_null (strstr (h, "-J"));
    free (h);
    assert_string_equal (P->array_index_var, "PBS_ARRAY_INDEX");
    assert_string_equal (P->submit_prog, "qsub");
    assert_false (P->submit_stdin);
}

static void
test_header_torque (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = T->header (&r, "jm3", 1, "/r/.jobman/jobs/3", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#PBS -N jm3\n"
                            "#PBS -l nodes=1:ppn=1\n"
                            "#PBS -o /r/.jobman/jobs/3/torque.out\n"
                            "#PBS -j oe\n");
    free (h);
    r.queue_name = "batch";
    r.cpu_per_node = 4;
    r.gpu_per_node = 2;
    r.custom_gpu_line = "#PBS -W x=GRES:gpu@2";
    char *flags[] = {"#PBS -l walltime=1:00:00"};
    r.custom_flags.v = flags;
    r.custom_flags.n = 1;
    h = T->header (&r, "jm3", 7, "/r/.jobman/jobs/3", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#PBS -N jm3\n"
                            "#PBS -q batch\n"
                            "#PBS -l nodes=1:ppn=4:gpus=2\n"
                            "#PBS -t 1-7\n"
                            "#PBS -o /r/.jobman/jobs/3/torque.out\n"
                            "#PBS -j oe\n"
                            "#PBS -W x=GRES:gpu@2\n"
                            "#PBS -l walltime=1:00:00\n");
    free (h);
    assert_string_equal (T->array_index_var, "PBS_ARRAYID");
}

static void
test_header_refusals (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    /* -o takes [host:]path, and directive words split at blanks */
    assert_null (P->header (&r, "jm1", 1, "/my dir/jobs/1", err, sizeof err));
    assert_non_null (strstr (err, "/my dir/jobs/1"));
    err[0] = 0;
    assert_null (T->header (&r, "jm1", 1, "/a:b/jobs/1", err, sizeof err));
    assert_non_null (strstr (err, "/a:b/jobs/1"));
    err[0] = 0;
    assert_null (P->header (&r, "my job", 1, "/x", err, sizeof err));
    assert_non_null (strstr (err, "my job"));
}

/* --------------------------------------------------------------------- */
/* Submit */

static void
test_submit_argv (void **state)
{
    (void)state;
    jm_argv_t a = {0};
    P->submit_argv ("/r/.jobman/jobs/3/submit.sh", 4, &a);
    jm_test_argv_check (&a, (const char *[]){"qsub", "/r/.jobman/jobs/3/submit.sh", NULL});
    jm_argv_clear (&a);
    T->submit_argv ("/s.sh", 1, &a);
    jm_test_argv_check (&a, (const char *[]){"qsub", "/s.sh", NULL});
    jm_argv_clear (&a);
}

static void
test_parse_submit (void **state)
{
    (void)state;
    char id[128], err[512];
    /* qsub prints the id on stdout: "1234.server", arrays "1234[].server" */
    assert_int_equal (P->parse_submit (0, "1234.pbs01\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "1234.pbs01");
    assert_int_equal (
        P->parse_submit (0, "1235[].pbs01.example.org\n", "", id, sizeof id, err, sizeof err),
        JM_SUBMIT_OK);
    assert_string_equal (id, "1235[].pbs01.example.org");
    assert_int_equal (T->parse_submit (0, "  77.torque-head\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "77.torque-head");
    assert_int_equal (T->parse_submit (0, "78[]\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "78[]");

    /* limits on queued jobs: retry later */
    const char *retry[] = {
        "qsub: would exceed queue generic's per-user limit\n",
        "qsub: would exceed queue generic's per-user limit of jobs in 'Q' state\n",
        "qsub: would exceed complex's per-user limit\n",
        "qsub: Maximum number of jobs already in queue workq\n",
        "qsub: Maximum number of jobs for user alice already in complex\n",
        "qsub: submit error (Maximum number of jobs already in queue for user MSG=total number "
        "of current user's jobs exceeds the queue limit: user alice@login1, queue batch)\n",
        NULL};
    for (size_t i = 0; retry[i]; i++) {
        err[0] = 0;
        const jm_batch_dialect_t *d = i == 5 ? T : P;
        assert_int_equal (
            d->parse_submit (i == 5 ? 228 : 38, "", retry[i], id, sizeof id, err, sizeof err),
            JM_SUBMIT_RETRY);
        assert_non_null (strstr (err, "qsub: "));
        assert_null (strchr (err, '\n'));
    }

    /* anything else fails the job, with qsub's words */
    assert_int_equal (
        P->parse_submit (168, "", "qsub: Unknown queue\n", id, sizeof id, err, sizeof err),
        JM_SUBMIT_FAIL);
    assert_string_equal (err, "qsub: Unknown queue");
    assert_int_equal (P->parse_submit (188, "",
                                       "qsub: Job violates queue and/or server resource limits\n",
                                       id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_string_equal (err, "qsub: Job violates queue and/or server resource limits");
    assert_int_equal (T->parse_submit (2, "", "qsub: illegal -t value\nusage: qsub ...\n", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_string_equal (err, "qsub: illegal -t value; usage: qsub ...");
    assert_int_equal (P->parse_submit (1, "", "", id, sizeof id, err, sizeof err), JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "status 1"));
    /* exit 0 without an id */
    assert_int_equal (P->parse_submit (0, "hello world\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "hello world"));
    assert_int_equal (P->parse_submit (0, "", "", id, sizeof id, err, sizeof err), JM_SUBMIT_FAIL);
    assert_int_equal (P->parse_submit (0, "12a.x\n", "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
}

static void
test_element_id (void **state)
{
    (void)state;
    char out[128];
    P->element_id ("1235[].pbs01", 5, out, sizeof out);
    assert_string_equal (out, "1235[5].pbs01");
    T->element_id ("78[].torque-head.example.org", 120, out, sizeof out);
    assert_string_equal (out, "78[120].torque-head.example.org");
    P->element_id ("79[]", 1, out, sizeof out);
    assert_string_equal (out, "79[1]");
}

static void
test_query_cancel_argv (void **state)
{
    (void)state;
    jm_argv_t a = {0};
    const char *sids[] = {"10[1].s", "10[2].s", "11.s", "10[3].s", "12[1].s"};
    P->query_argv ("alice", sids, 5, &a);
    jm_test_argv_check (
        &a, (const char *[]){"qstat", "-f", "-x", "-t", "10[].s", "11.s", "12[].s", NULL});
    jm_argv_clear (&a);
    T->query_argv ("alice", sids, 5, &a);
    jm_test_argv_check (&a,
                        (const char *[]){"qstat", "-f", "-t", "10[].s", "11.s", "12[].s", NULL});
    jm_argv_clear (&a);
    assert_non_null (P->final_argv);
    P->final_argv ("alice", sids + 2, 1, &a);
    jm_test_argv_check (&a, (const char *[]){"qstat", "-f", "-x", "-t", "11.s", NULL});
    jm_argv_clear (&a);
    assert_null (T->final_argv); /* Torque: keep_completed, no history */
    jm_batch_cancel_argv (P, sids, 3, &a);
    jm_test_argv_check (&a, (const char *[]){"qdel", "10[1].s", "10[2].s", "11.s", NULL});
    jm_argv_clear (&a);
    jm_batch_cancel_argv (T, sids + 2, 1, &a);
    jm_test_argv_check (&a, (const char *[]){"qdel", "11.s", NULL});
    jm_argv_clear (&a);
}

/* --------------------------------------------------------------------- */
/* Queries */

static void
s_expect (const jm_test_seens_t *s, const char *sid, jm_bstate_t st, jm_verdict_t v,
          const char *in_detail)
{
    const jm_test_seen_t *e = jm_test_seen_get (s, sid);
    assert_int_equal (e->state, st);
    assert_int_equal (e->verdict, v);
    if (in_detail && !strstr (e->detail, in_detail))
        fail_msg ("%s: detail '%s' lacks '%s'", sid, e->detail, in_detail);
}

/* qstat -f -x -t for PBS Pro in the Reference Guide's layout: an array
   (B) with a running and a finished subjob, history jobs (F) ended in
   the documented ways, a queued, a held and an exiting job. */
static const char *s_pbspro_out =
    "Job Id: 1235[].pbs01\n"
    "    Job_Name = jm40\n"
    "    Job_Owner = alice@login1\n"
    "    job_state = B\n"
    "    queue = workq\n"
    "    server = pbs01\n"
    "    Resource_List.ncpus = 1\n"
    "    Resource_List.select = 1:ncpus=1\n"
    "    substate = 70\n"
    "    Variable_List = PBS_O_HOME=/home/alice,PBS_O_LANG=en_US.UTF-8,\n"
    "\tPBS_O_LOGNAME=alice,PBS_O_WORKDIR=/home/alice,PBS_O_SYSTEM=Linux,PBS_O_QUEUE=workq\n"
    "    array = True\n"
    "    array_state_count = Queued:0 Running:1 Exiting:0 Expired:1 \n"
    "    array_indices_submitted = 1-2\n"
    "\n"
    "Job Id: 1235[1].pbs01\n"
    "    Job_Name = jm40\n"
    "    resources_used.walltime = 00:00:05\n"
    "    job_state = X\n"
    "    queue = workq\n"
    "    substate = 92\n"
    "    Exit_status = 0\n"
    "    array_id = 1235[].pbs01\n"
    "    array_index = 1\n"
    "\n"
    "Job Id: 1235[2].pbs01\n"
    "    Job_Name = jm40\n"
    "    resources_used.walltime = 00:00:05\n"
    "    job_state = R\n"
    "    substate = 42\n"
    "    array_id = 1235[].pbs01\n"
    "    array_index = 2\n"
    "\n"
    "Job Id: 1240.pbs01\n"
    "    Job_Name = jm41\n"
    "    resources_used.walltime = 00:01:02\n"
    "    job_state = F\n"
    "    Resource_List.walltime = 00:01:00\n"
    "    substate = 93\n"
    "    comment = Job run at Mon Mar 04 at 10:00 on (node1:ncpus=1) and failed\n"
    "    Exit_status = -29\n"
    "\n"
    "Job Id: 1241.pbs01\n"
    "    job_state = F\n"
    "    substate = 91\n"
    "    Exit_status = 271\n"
    "\n"
    "Job Id: 1242.pbs01\n"
    "    job_state = F\n"
    "    substate = 91\n"
    "    comment = Job deleted\n"
    "\n"
    "Job Id: 1243.pbs01\n"
    "    job_state = F\n"
    "    substate = 93\n"
    "    Exit_status = -27\n"
    "\n"
    "Job Id: 1244.pbs01\n"
    "    job_state = F\n"
    "    substate = 93\n"
    "    Exit_status = -20\n"
    "\n"
    "Job Id: 1245.pbs01\n"
    "    job_state = F\n"
    "    substate = 92\n"
    "    Exit_status = 3\n"
    "\n"
    "Job Id: 1246.pbs01\n"
    "    job_state = Q\n"
    "    substate = 10\n"
    "\n"
    "Job Id: 1247.pbs01\n"
    "    job_state = H\n"
    "    substate = 20\n"
    "    comment = job held, too many failed attempts to run\n"
    "\n"
    "Job Id: 1248.pbs01\n"
    "    job_state = E\n"
    "    substate = 51\n"
    "\n"
    "Job Id: 1249.pbs01\n"
    "    job_state = W\n"
    "\n"
    "Job Id: 1250.pbs01\n"
    "    job_state = F\n"
    "    substate = 92\n"
    "    Exit_status = 265\n"
    "\n"
    "Job Id: 1251.pbs01\n"
    "    job_state = F\n"
    "    substate = 92\n"
    "    Exit_status = 267\n"
    "\n";

static void
test_parse_query_pbspro (void **state)
{
    (void)state;
    jm_test_seens_t s = {0};
    char err[512] = "";
    assert_int_equal (P->parse_query (0, s_pbspro_out, "", jm_test_on_seen, &s, err, sizeof err),
                      0);
    assert_int_equal (s.n, 14); /* everything but the array itself */
    for (size_t i = 0; i < s.n; i++)
        assert_null (strstr (s.v[i].sid, "[]"));
    s_expect (&s, "1235[1].pbs01", JM_BST_DONE, JM_VERDICT_COMPLETED, "Exit_status 0");
    s_expect (&s, "1235[2].pbs01", JM_BST_RUNNING, JM_VERDICT_NONE, NULL);
    s_expect (&s, "1240.pbs01", JM_BST_DONE, JM_VERDICT_TIMEOUT, "-29 JOB_EXEC_KILL_WALLTIME");
    s_expect (&s, "1241.pbs01", JM_BST_DONE, JM_VERDICT_CANCELLED, "signal 15");
    s_expect (&s, "1242.pbs01", JM_BST_DONE, JM_VERDICT_CANCELLED, "deleted before it ran");
    s_expect (&s, "1243.pbs01", JM_BST_DONE, JM_VERDICT_OUT_OF_MEMORY, "JOB_EXEC_KILL_MEM");
    s_expect (&s, "1244.pbs01", JM_BST_DONE, JM_VERDICT_NODE_FAIL, "JOB_EXEC_RERUN_MS_FAIL");
    s_expect (&s, "1245.pbs01", JM_BST_DONE, JM_VERDICT_FAILED, "Exit_status 3");
    s_expect (&s, "1246.pbs01", JM_BST_QUEUED, JM_VERDICT_NONE, NULL);
    s_expect (&s, "1247.pbs01", JM_BST_ERROR, JM_VERDICT_FAILED, "too many failed attempts");
    s_expect (&s, "1248.pbs01", JM_BST_RUNNING, JM_VERDICT_NONE, NULL);
    s_expect (&s, "1249.pbs01", JM_BST_QUEUED, JM_VERDICT_NONE, NULL);
    s_expect (&s, "1250.pbs01", JM_BST_DONE, JM_VERDICT_CANCELLED, "signal 9");
    s_expect (&s, "1251.pbs01", JM_BST_DONE, JM_VERDICT_FAILED, "signal 11");

    /* the final query reports only what has finished */
    memset (&s, 0, sizeof s);
    assert_int_equal (P->parse_final (0, s_pbspro_out, "", jm_test_on_seen, &s, err, sizeof err),
                      0);
    assert_int_equal (s.n, 9);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal (s.v[i].state, JM_BST_DONE);
}

/* Purged history / unknown ids: the rest of the answer still counts. */
static void
test_parse_query_unknown_ids (void **state)
{
    (void)state;
    jm_test_seens_t s = {0};
    char err[512] = "";
    const char *out = "Job Id: 1246.pbs01\n    job_state = Q\n\n";
    assert_int_equal (P->parse_query (153, out,
                                      "qstat: Unknown Job Id 1200.pbs01\n"
                                      "qstat: Unknown Job Id 1201[].pbs01\n",
                                      jm_test_on_seen, &s, err, sizeof err),
                      0);
    assert_int_equal (s.n, 1);
    s_expect (&s, "1246.pbs01", JM_BST_QUEUED, JM_VERDICT_NONE, NULL);
    memset (&s, 0, sizeof s);
    assert_int_equal (T->parse_query (153, "", "qstat: Unknown Job Id Error 77.torque-head\n",
                                      jm_test_on_seen, &s, err, sizeof err),
                      0);
    assert_int_equal (s.n, 0);
    /* nothing at all in the queue */
    assert_int_equal (P->parse_query (0, "", "", jm_test_on_seen, &s, err, sizeof err), 0);
    assert_int_equal (s.n, 0);
    /* but a server that does not answer concludes nothing */
    err[0] = 0;
    assert_int_equal (
        P->parse_query (2, "",
                        "Connection refused\nqstat: cannot connect to server pbs01 (errno=111)\n",
                        jm_test_on_seen, &s, err, sizeof err),
        -1);
    assert_non_null (strstr (err, "Connection refused"));
    err[0] = 0;
    assert_int_equal (T->parse_query (1, "", "", jm_test_on_seen, &s, err, sizeof err), -1);
    assert_non_null (strstr (err, "status 1"));
    assert_int_equal (s.n, 0);
}

/* Torque 6 qstat -f -t: completed jobs (C) with exit_status while
   keep_completed lasts; the walltime kill as -11 (6.x) or as 256+signal
   with resources_used.walltime past the limit (before 6). */
static const char *s_torque_out =
    "Job Id: 179.torque-head\n"
    "    Job_Name = jm7\n"
    "    Job_Owner = alice@login1\n"
    "    resources_used.cput = 00:00:00\n"
    "    resources_used.mem = 3232kb\n"
    "    resources_used.vmem = 31504kb\n"
    "    resources_used.walltime = 00:00:11\n"
    "    job_state = C\n"
    "    queue = batch\n"
    "    server = torque-head\n"
    "    Checkpoint = u\n"
    "    ctime = Fri Aug 29 14:55:55 2008\n"
    "    Error_Path = torque-head:/home/alice/jm7.e179\n"
    "    exec_host = node1/0\n"
    "    Resource_List.nodes = 1:ppn=1\n"
    "    Resource_List.walltime = 00:00:10\n"
    "    Variable_List = PBS_O_HOME=/home/alice,PBS_O_LOGNAME=alice,\n"
    "\tPBS_O_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:,PBS_O_SHELL=/bin/bash\n"
    "    exit_status = -11\n"
    "    submit_args = submit.sh\n"
    "\n"
    "Job Id: 180[1].torque-head\n"
    "    job_state = C\n"
    "    exit_status = 0\n"
    "    job_array_id = 1\n"
    "\n"
    "Job Id: 180[2].torque-head\n"
    "    job_state = R\n"
    "    job_array_id = 2\n"
    "\n"
    "Job Id: 180[3].torque-head\n"
    "    job_state = Q\n"
    "    job_array_id = 3\n"
    "\n"
    "Job Id: 181.torque-head\n"
    "    resources_used.walltime = 00:02:01\n"
    "    job_state = C\n"
    "    Resource_List.walltime = 00:02:00\n"
    "    exit_status = 271\n"
    "\n"
    "Job Id: 182.torque-head\n"
    "    resources_used.walltime = 00:00:30\n"
    "    job_state = C\n"
    "    Resource_List.walltime = 00:02:00\n"
    "    exit_status = 271\n"
    "\n"
    "Job Id: 183.torque-head\n"
    "    job_state = C\n"
    "\n"
    "Job Id: 184.torque-head\n"
    "    job_state = C\n"
    "    exit_status = -10\n"
    "\n"
    "Job Id: 185.torque-head\n"
    "    job_state = C\n"
    "    exit_status = 1\n"
    "\n"
    "Job Id: 186.torque-head\n"
    "    job_state = E\n"
    "\n"
    "Job Id: 187.torque-head\n"
    "    job_state = H\n"
    "\n";

static void
test_parse_query_torque (void **state)
{
    (void)state;
    jm_test_seens_t s = {0};
    char err[512] = "";
    assert_int_equal (T->parse_query (0, s_torque_out, "", jm_test_on_seen, &s, err, sizeof err),
                      0);
    assert_int_equal (s.n, 11);
    s_expect (&s, "179.torque-head", JM_BST_DONE, JM_VERDICT_TIMEOUT, "JOB_EXEC_OVERLIMIT_WT");
    s_expect (&s, "180[1].torque-head", JM_BST_DONE, JM_VERDICT_COMPLETED, NULL);
    s_expect (&s, "180[2].torque-head", JM_BST_RUNNING, JM_VERDICT_NONE, NULL);
    s_expect (&s, "180[3].torque-head", JM_BST_QUEUED, JM_VERDICT_NONE, NULL);
    s_expect (&s, "181.torque-head", JM_BST_DONE, JM_VERDICT_TIMEOUT, "walltime 121s of 120s");
    s_expect (&s, "182.torque-head", JM_BST_DONE, JM_VERDICT_CANCELLED, "signal 15");
    s_expect (&s, "183.torque-head", JM_BST_DONE, JM_VERDICT_CANCELLED, "deleted before");
    s_expect (&s, "184.torque-head", JM_BST_DONE, JM_VERDICT_OUT_OF_MEMORY, "OVERLIMIT_MEM");
    s_expect (&s, "185.torque-head", JM_BST_DONE, JM_VERDICT_FAILED, "exit_status 1");
    s_expect (&s, "186.torque-head", JM_BST_RUNNING, JM_VERDICT_NONE, NULL);
    s_expect (&s, "187.torque-head", JM_BST_QUEUED, JM_VERDICT_NONE, NULL);
    /* Torque has no PBS Pro states: F means nothing there */
    memset (&s, 0, sizeof s);
    assert_int_equal (T->parse_query (0, "Job Id: 1.t\n    job_state = F\n", "", jm_test_on_seen,
                                      &s, err, sizeof err),
                      -1);
    assert_int_equal (s.n, 0);
}

/* Copied from tests/fake_pbs (PBS Pro flavour): a 3-subjob array whose
   subjob 2 hit its walltime and subjob 3 exited 3. */
static const char *s_fake_out =
    "Job Id: 1[].fakesrv\n"
    "    Job_Name = tjob\n"
    "    Job_Owner = root@vm\n"
    "    job_state = F\n"
    "    queue = workq\n"
    "    server = fakesrv\n"
    "    ctime = Mon Nov 23 20:38:50 2026\n"
    "    Resource_List.select = 1:ncpus=1\n"
    "    Resource_List.walltime = 00:00:02\n"
    "    substate = 92\n"
    "    Variable_List = PBS_O_HOME=/root,PBS_O_LOGNAME=root,PBS_O_WORKDIR=/tmp/pbs\n"
    "\t,PBS_O_SHELL=/bin/bash,PBS_O_HOST=vm,PBS_O_QUEUE=workq\n"
    "    array = True\n"
    "    array_indices_submitted = 1-3\n"
    "\n"
    "Job Id: 1[2].fakesrv\n"
    "    Job_Name = tjob\n"
    "    Job_Owner = root@vm\n"
    "    resources_used.walltime = 00:00:03\n"
    "    job_state = X\n"
    "    queue = workq\n"
    "    server = fakesrv\n"
    "    ctime = Mon Nov 23 20:38:50 2026\n"
    "    Error_Path = vm:/tmp/pbs/out.2.log\n"
    "    Join_Path = oe\n"
    "    Output_Path = vm:/tmp/pbs/out.2.log\n"
    "    Resource_List.select = 1:ncpus=1\n"
    "    Resource_List.walltime = 00:00:02\n"
    "    substate = 92\n"
    "    Variable_List = PBS_O_HOME=/root,PBS_O_LOGNAME=root,PBS_O_WORKDIR=/tmp/pbs\n"
    "\t,PBS_O_SHELL=/bin/bash,PBS_O_HOST=vm,PBS_O_QUEUE=workq\n"
    "    Exit_status = -29\n"
    "    array_id = 1[].fakesrv\n"
    "    array_index = 2\n"
    "\n"
    "Job Id: 1[3].fakesrv\n"
    "    Job_Name = tjob\n"
    "    resources_used.walltime = 00:00:01\n"
    "    job_state = X\n"
    "    substate = 92\n"
    "    Exit_status = 3\n"
    "    array_id = 1[].fakesrv\n"
    "    array_index = 3\n"
    "\n";

static void
test_parse_query_fake (void **state)
{
    (void)state;
    jm_test_seens_t s = {0};
    char err[512] = "";
    assert_int_equal (P->parse_query (0, s_fake_out, "", jm_test_on_seen, &s, err, sizeof err), 0);
    assert_int_equal (s.n, 2);
    s_expect (&s, "1[2].fakesrv", JM_BST_DONE, JM_VERDICT_TIMEOUT, "KILL_WALLTIME");
    s_expect (&s, "1[3].fakesrv", JM_BST_DONE, JM_VERDICT_FAILED, "Exit_status 3");
}

static void
test_parse_query_garbage (void **state)
{
    (void)state;
    const char *bad[] = {"hello world\n",
                         "<Data><Job><Job_Id>1.x</Job_Id></Job></Data>\n", /* Torque's -x XML */
                         "{\"Jobs\":{}}\n",
                         "Job Id: abc\n    job_state = R\n",
                         "Job Id: 1.x\n    job_state = R\ngarbage line\n",
                         "Job Id: 1.x\n    Job_Name = a\n",               /* no job_state */
                         "Job Id: 1.x\n    job_state = Z\n",              /* no such state */
                         "Job Id: 1.x\n    job_state = RUNNING\n",        /* not one letter */
                         "    job_state = R\n",                           /* no Job Id first */
                         "Job Id: 1.x\n    job_state = R\nJob Id: 2.x\n", /* second without state */
                         NULL};
    for (size_t i = 0; bad[i]; i++) {
        jm_test_seens_t s = {0};
        char err[512] = "";
        assert_int_equal (P->parse_query (0, bad[i], "", jm_test_on_seen, &s, err, sizeof err), -1);
        assert_true (*err);
        assert_int_equal (s.n, 0); /* nothing reported from a bad answer */
        err[0] = 0;
        assert_int_equal (T->parse_query (0, bad[i], "", jm_test_on_seen, &s, err, sizeof err), -1);
        assert_true (*err);
        assert_int_equal (s.n, 0);
        err[0] = 0;
        assert_int_equal (P->parse_final (0, bad[i], "", jm_test_on_seen, &s, err, sizeof err), -1);
        assert_int_equal (s.n, 0);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_header_pbspro_plain),
        cmocka_unit_test (test_header_pbspro_array),
        cmocka_unit_test (test_header_torque),
        cmocka_unit_test (test_header_refusals),
        cmocka_unit_test (test_submit_argv),
        cmocka_unit_test (test_parse_submit),
        cmocka_unit_test (test_element_id),
        cmocka_unit_test (test_query_cancel_argv),
        cmocka_unit_test (test_parse_query_pbspro),
        cmocka_unit_test (test_parse_query_unknown_ids),
        cmocka_unit_test (test_parse_query_torque),
        cmocka_unit_test (test_parse_query_fake),
        cmocka_unit_test (test_parse_query_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
