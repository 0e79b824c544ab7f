/*  test_sched_lsf.c - the LSF dialect (agent/sched_lsf.c): #BSUB header,
    bsub/bjobs/bkill command lines and parsers, on literal output in the
    documented formats (see the sources cited in sched_lsf.c). */
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

extern const jm_batch_dialect_t jm_batch_lsf_dialect;
#define D (&jm_batch_lsf_dialect)

/* ------------------------------------------------------------- helpers */

/* -------------------------------------------------------------- header */

static void
test_header_plain (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.queue_name = "normal";
    r.cpu_per_node = 4;
    char *flags[] = {"#BSUB -W 10", "#BSUB -M 2000"};
    r.custom_flags.v = flags;
    r.custom_flags.n = 2;
    char err[256] = "";
    char *h = D->header (&r, "jm17", 1, "/r/.jobman/jobs/17", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#BSUB -J \"jm17\"\n"
                            "#BSUB -q normal\n"
                            "#BSUB -n 4\n"
                            "#BSUB -o \"/r/.jobman/jobs/17/lsf.%J.out\"\n"
                            "#BSUB -e \"/r/.jobman/jobs/17/lsf.%J.err\"\n"
                            "#BSUB -W 10\n"
                            "#BSUB -M 2000\n");
    free (h);
}

static void
test_header_array_nodes_gpus (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    r.number_node = 2;
    r.cpu_per_node = 8;
    r.gpu_per_node = 2;
    char err[256] = "";
    char *h = D->header (&r, "jm5", 12, "/d", err, sizeof err);
    assert_non_null (h);
    assert_string_equal (h, "#BSUB -J \"jm5[1-12]\"\n"
                            "#BSUB -n 16\n"
                            "#BSUB -R \"span[ptile=8]\"\n"
                            "#BSUB -gpu \"num=2\"\n"
                            "#BSUB -o \"/d/lsf.%J_%I.out\"\n"
                            "#BSUB -e \"/d/lsf.%J_%I.err\"\n");
    free (h);

    /* custom_gpu_line replaces -gpu; no default queue line */
    r.custom_gpu_line = "#BSUB -gpu \"num=1:mode=exclusive_process\"";
    r.number_node = 1;
    h = D->header (&r, "x", 1, "/d", err, sizeof err);
    assert_non_null (h);
    assert_non_null (strstr (h, "#BSUB -gpu \"num=1:mode=exclusive_process\"\n"));
    assert_null (strstr (h, "num=2"));
    assert_null (strstr (h, "span["));
    assert_null (strstr (h, "-q "));
    free (h);
}

static void
test_header_refuses_unquotable (void **state)
{
    (void)state;
    jm_resources_t r = jm_test_res ();
    char err[256] = "";
    char *h = D->header (&r, "jm1", 1, "/tmp/a\"b", err, sizeof err);
    assert_null (h);
    assert_non_null (strstr (err, "/tmp/a\"b"));
}

/* -------------------------------------------------------------- submit */

static void
test_submit_argv_and_data (void **state)
{
    (void)state;
    assert_string_equal (D->name, "lsf");
    assert_string_equal (D->submit_prog, "bsub");
    assert_string_equal (D->array_index_var, "LSB_JOBINDEX");
    assert_true (D->submit_stdin);
    assert_int_equal (D->max_array, 1000);
    jm_argv_t a = {0};
    D->submit_argv ("/x/submit.sh", 1, &a);
    char *s = jm_test_argv_join (&a);
    /* the script is on stdin; one try only, the core backs off itself */
    assert_string_equal (s, "env LSB_NTRIES=1 bsub");
    assert_null (a.v[a.n]);
    free (s);
    jm_argv_clear (&a);

    char id[64];
    D->element_id ("1234", 5, id, sizeof id);
    assert_string_equal (id, "1234[5]");
}

static void
test_parse_submit (void **state)
{
    (void)state;
    char id[64] = "", err[256] = "";
    assert_int_equal (D->parse_submit (0, "Job <1234> is submitted to queue <normal>.\n", "", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "1234");
    assert_int_equal (D->parse_submit (0,
                                       "Job <39605914> is submitted to default queue <general>.\n",
                                       "", id, sizeof id, err, sizeof err),
                      JM_SUBMIT_OK);
    assert_string_equal (id, "39605914");

    /* the pending-job threshold: try later */
    assert_int_equal (
        D->parse_submit (255, "",
                         "User <alice>: Pending job threshold reached. Retrying in 60 seconds...\n",
                         id, sizeof id, err, sizeof err),
        JM_SUBMIT_RETRY);
    assert_string_equal (err,
                         "User <alice>: Pending job threshold reached. Retrying in 60 seconds...");

    /* anything else fails, with bsub's words */
    assert_int_equal (D->parse_submit (255, "", "nosuch: No such queue. Job not submitted.\n", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "No such queue. Job not submitted."));
    assert_int_equal (D->parse_submit (0, "", "", id, sizeof id, err, sizeof err), JM_SUBMIT_FAIL);
    assert_int_equal (D->parse_submit (0, "Job <abc> is submitted to queue <q>.\n", "", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_int_equal (D->parse_submit (0, "Job <-1> is submitted to default queue <q>.\n", "", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    /* a non-zero exit is never a success */
    assert_int_equal (D->parse_submit (1, "Job <12> is submitted to queue <q>.\n", "boom\n", id,
                                       sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
    assert_non_null (strstr (err, "boom"));
    assert_int_equal (D->parse_submit (-1, NULL, NULL, id, sizeof id, err, sizeof err),
                      JM_SUBMIT_FAIL);
}

/* --------------------------------------------------------------- query */

static void
test_query_argv (void **state)
{
    (void)state;
    const char *sids[] = {"100", "101[1]", "101[2]", "102", "101[3]"};
    jm_argv_t a = {0};
    D->query_argv ("alice", sids, 5, &a);
    char *s = jm_test_argv_join (&a);
    assert_string_equal (s, "bjobs -a -noheader -o jobid jobindex stat exit_code exit_reason "
                            "delimiter='|' 100 101 102");
    assert_string_equal (a.v[4], "jobid jobindex stat exit_code exit_reason delimiter='|'");
    free (s);
    jm_argv_clear (&a);

    const char *k[] = {"100", "101[7]"};
    jm_batch_cancel_argv (D, k, 2, &a);
    s = jm_test_argv_join (&a);
    assert_string_equal (s, "bkill 100 101[7]");
    free (s);
    jm_argv_clear (&a);
    assert_null (D->final_argv);
    assert_null (D->parse_final);
}

static void
test_parse_query_states (void **state)
{
    (void)state;
    const char *out = "100|0|PEND|-|-\n"
                      "101|1|RUN|-|-\n"
                      "101|2|DONE|-|-\n"
                      "101|3|EXIT|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit\n"
                      "101|4|EXIT|130|TERM_OWNER: job killed by owner\n"
                      "101|5|EXIT|1|-\n"
                      "102|0|EXIT|137|TERM_MEMLIMIT: job killed after reaching LSF memory usage "
                      "limit\n"
                      "103|0|PSUSP|-|-\n"
                      "104|0|USUSP|-|-\n"
                      "105|0|SSUSP|-|-\n"
                      "106|0|UNKWN|-|-\n"
                      "107|0|ZOMBI|-|-\n"
                      "108|0|WAIT|-|-\n"
                      "109[2]|2|EXIT|143|TERM_ADMIN: job killed by root or LSF administrator\n"
                      "110|0|EXIT|-|TERM_REMOVE_HUNG_JOB: job removed from the LSF system\n";
    jm_test_seens_t l = {0};
    char err[256] = "";
    assert_int_equal (D->parse_query (0, out, "", jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 15);
    const jm_test_seen_t *s;
    assert_non_null (s = jm_test_seen_find (&l, "100"));
    assert_int_equal (s->state, JM_BST_QUEUED);
    assert_non_null (s = jm_test_seen_find (&l, "101[1]"));
    assert_int_equal (s->state, JM_BST_RUNNING);
    assert_non_null (s = jm_test_seen_find (&l, "101[2]"));
    assert_int_equal (s->state, JM_BST_DONE);
    assert_int_equal (s->verdict, JM_VERDICT_COMPLETED);
    assert_non_null (s = jm_test_seen_find (&l, "101[3]"));
    assert_int_equal (s->state, JM_BST_DONE);
    assert_int_equal (s->verdict, JM_VERDICT_TIMEOUT);
    assert_string_equal (s->detail,
                         "EXIT TERM_RUNLIMIT: job killed after reaching LSF run time limit, exit "
                         "code 140");
    assert_non_null (s = jm_test_seen_find (&l, "101[4]"));
    assert_int_equal (s->verdict, JM_VERDICT_CANCELLED);
    assert_non_null (s = jm_test_seen_find (&l, "101[5]"));
    assert_int_equal (s->verdict, JM_VERDICT_FAILED);
    assert_string_equal (s->detail, "EXIT, exit code 1");
    assert_non_null (s = jm_test_seen_find (&l, "102"));
    assert_int_equal (s->verdict, JM_VERDICT_OUT_OF_MEMORY);
    for (const char *q = "103\0"
                         "104\0"
                         "105\0"
                         "108\0";
         *q; q += strlen (q) + 1) {
        assert_non_null (s = jm_test_seen_find (&l, q));
        assert_int_equal (s->state, JM_BST_QUEUED);
    }
    assert_non_null (s = jm_test_seen_find (&l, "106"));
    assert_int_equal (s->state, JM_BST_RUNNING);
    assert_non_null (s = jm_test_seen_find (&l, "107"));
    assert_int_equal (s->state, JM_BST_DONE);
    assert_int_equal (s->verdict, JM_VERDICT_NODE_FAIL);
    /* LSB_BJOBS_DISPLAY_ENH=Y: the index inside the jobid column */
    assert_non_null (s = jm_test_seen_find (&l, "109[2]"));
    assert_int_equal (s->verdict, JM_VERDICT_CANCELLED);
    assert_non_null (s = jm_test_seen_find (&l, "110"));
    assert_int_equal (s->verdict, JM_VERDICT_NODE_FAIL);
}

static void
test_parse_query_absent (void **state)
{
    (void)state;
    jm_test_seens_t l = {0};
    char err[256] = "";
    /* some ids gone: exit 255 and "not found" lines; the rest is reported */
    assert_int_equal (D->parse_query (255, "200|0|RUN|-|-\n",
                                      "Job <201> is not found\nJob <202> is not found\n",
                                      jm_test_on_seen, &l, err, sizeof err),
                      0);
    assert_int_equal (l.n, 1);
    assert_string_equal (l.v[0].sid, "200");
    /* all gone */
    l.n = 0;
    assert_int_equal (
        D->parse_query (255, "", "Job <201> is not found\n", jm_test_on_seen, &l, err, sizeof err),
        0);
    assert_int_equal (l.n, 0);
    assert_int_equal (
        D->parse_query (0, "", "No unfinished job found\n", jm_test_on_seen, &l, err, sizeof err),
        0);
    assert_int_equal (D->parse_query (0, "", "", jm_test_on_seen, &l, err, sizeof err), 0);
    assert_int_equal (l.n, 0);
}

static void
test_parse_query_garbage (void **state)
{
    (void)state;
    jm_test_seens_t l = {0};
    char err[256] = "";
    /* a line that is not a record: nothing is reported at all */
    assert_int_equal (D->parse_query (0, "300|0|RUN|-|-\nJOBID USER STAT QUEUE\n", "",
                                      jm_test_on_seen, &l, err, sizeof err),
                      -1);
    assert_int_equal (l.n, 0);
    assert_non_null (strstr (err, "JOBID USER STAT QUEUE"));
    const char *bad[] = {
        "abc|0|RUN|-|-\n",    "300|0|run|-|-\n",   "300|0|RUN\n",
        "300|x|RUN|-|-\n",    "300|0|EXIT|1x|-\n", "300[|0|RUN|-|-\n",
        "300[a]|0|RUN|-|-\n", "|0|RUN|-|-\n",      "\x01\x02\xff|||||\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal (D->parse_query (0, bad[i], "", jm_test_on_seen, &l, err, sizeof err), -1);
        assert_true (strlen (err) > 0);
    }
    assert_int_equal (l.n, 0);
    /* bjobs could not talk to LSF: no conclusion */
    assert_int_equal (D->parse_query (255, "",
                                      "LSF is down. Please wait...\nbatch system daemon not "
                                      "responding ... still trying\n",
                                      jm_test_on_seen, &l, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "LSF is down"));
    assert_int_equal (D->parse_query (0, "", "Cannot connect to LSF. Please wait ...\n",
                                      jm_test_on_seen, &l, err, sizeof err),
                      -1);
    assert_int_equal (D->parse_query (-1, "", "cannot start bjobs: No such file or directory",
                                      jm_test_on_seen, &l, err, sizeof err),
                      -1);
    assert_int_equal (D->parse_query (1, "", "", jm_test_on_seen, &l, err, sizeof err), -1);
    assert_int_equal (D->parse_query (137, NULL, NULL, jm_test_on_seen, &l, err, sizeof err), -1);
    assert_int_equal (l.n, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_header_plain),
        cmocka_unit_test (test_header_array_nodes_gpus),
        cmocka_unit_test (test_header_refuses_unquotable),
        cmocka_unit_test (test_submit_argv_and_data),
        cmocka_unit_test (test_parse_submit),
        cmocka_unit_test (test_query_argv),
        cmocka_unit_test (test_parse_query_states),
        cmocka_unit_test (test_parse_query_absent),
        cmocka_unit_test (test_parse_query_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
