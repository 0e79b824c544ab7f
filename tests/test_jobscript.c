/*  test_jobscript.c - the generated job script, run for real with bash. */
#define _GNU_SOURCE
#include "jm_jobscript.h"
#include "jm_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_tmp[256];

static int
s_setup (void **state)
{
    (void)state;
    assert_non_null (jm_test_tmpdir (s_tmp, sizeof s_tmp, "jobscript"));
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    assert_int_equal (jm_test_rmrf (s_tmp), 0);
    return 0;
}

static void
s_mkdir (const char *rel)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/wb/%s", s_tmp, rel);
    assert_int_equal (mkdir (path, 0755), 0);
}

static bool
s_exists (const char *rel)
{
    struct stat st;
    return stat (jm_test_path (s_tmp, rel), &st) == 0;
}

static char *
s_read (const char *rel)
{
    return jm_test_read (jm_test_path (s_tmp, rel), NULL);
}

/* Writes the script, runs it with bash (timeout 30 s), returns its stdout. */
static char *
s_run (jm_jobscript_t *js)
{
    char path[512], err[256], cmd[1200];
    snprintf (path, sizeof path, "%s/job/job.sh", s_tmp);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    snprintf (cmd, sizeof cmd, "cd / && timeout 30 bash '%s' > '%s/job/stdout'", path, s_tmp);
    int rc = system (cmd);
    assert_true (WIFEXITED (rc));
    assert_int_equal (WEXITSTATUS (rc), 0);
    return s_read ("job/stdout");
}

static jm_jobscript_t *
s_new (size_t para_deg)
{
    char wb[512], jd[512];
    snprintf (wb, sizeof wb, "%s/wb", s_tmp);
    snprintf (jd, sizeof jd, "%s/job", s_tmp);
    assert_int_equal (mkdir (wb, 0755), 0);
    assert_int_equal (mkdir (jd, 0755), 0);
    return jm_jobscript_new (42, wb, jd, para_deg);
}

static void
test_nasty_paths_and_exit_codes (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (1);
    s_mkdir ("it's; rm -rf /");
    s_mkdir ("$(touch pwned)");
    s_mkdir ("plain");
    jm_jobscript_add_task (js, 1, "it's; rm -rf /", "echo one; echo err1 >&2", "out $(x).log",
                           "e`touch pwned2`.log");
    jm_jobscript_add_task (js, 2, "$(touch pwned)", "exit 3", "o.log", "e.log");
    jm_jobscript_add_task (js, 3, "plain", "echo \"it's\" '$HOME' > result", "o.log", "e.log");
    jm_jobscript_add_task (js, 4, "no such dir", "true", "o.log", "e.log");
    jm_jobscript_add_task (js, 5, ".", "pwd", "top.out", "");
    assert_int_equal (jm_jobscript_ntasks (js), 5);
    char *out = s_run (js);
    assert_non_null (out);
    /* Sequential (para_deg 1): S/E pairs in order with the right codes. */
    assert_string_equal (out, "S 1\nE 1 0\nS 2\nE 2 3\nS 3\nE 3 0\nS 4\nE 4 127\nS 5\nE 5 0\n");
    free (out);
    /* Nothing injected through paths or log names. */
    assert_false (s_exists ("pwned"));
    assert_false (s_exists ("wb/pwned"));
    assert_false (s_exists ("wb/it's; rm -rf /pwned2"));
    assert_false (s_exists ("wb/$(touch pwned)/pwned"));
    char *o = s_read ("wb/it's; rm -rf //out $(x).log");
    assert_non_null (o);
    assert_string_equal (o, "one\n");
    free (o);
    o = s_read ("wb/it's; rm -rf //e`touch pwned2`.log");
    assert_non_null (o);
    assert_string_equal (o, "err1\n");
    free (o);
    /* A task after a failing one still ran, in its own dir. */
    o = s_read ("wb/plain/result");
    assert_non_null (o);
    assert_string_equal (o, "it's $HOME\n");
    free (o);
    o = s_read ("wb/top.out");
    assert_non_null (o);
    char expect[512];
    snprintf (expect, sizeof expect, "%s/wb\n", s_tmp);
    assert_string_equal (o, expect);
    free (o);
    /* Tag files hold the exit codes. */
    const char *tags[][2] = {{"job/1.exit", "0\n"},
                             {"job/2.exit", "3\n"},
                             {"job/3.exit", "0\n"},
                             {"job/4.exit", "127\n"},
                             {"job/5.exit", "0\n"}};
    for (size_t i = 0; i < 5; i++) {
        char *t = s_read (tags[i][0]);
        assert_non_null (t);
        assert_string_equal (t, tags[i][1]);
        free (t);
    }
    jm_jobscript_destroy (&js);
    assert_null (js);
}

/* Two tasks that each wait for the other's marker: finishes only if both
   run at once.  A third waits for a slot. */
static void
test_para_deg_two (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (2);
    s_mkdir ("a");
    s_mkdir ("b");
    s_mkdir ("c");
    const char *wait_for = "touch ../%s.mark; i=0; while [ ! -e ../%s.mark ]; do "
                           "i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.05; done; exit 0";
    char ca[512], cb[512];
    snprintf (ca, sizeof ca, wait_for, "a", "b");
    snprintf (cb, sizeof cb, wait_for, "b", "a");
    jm_jobscript_add_task (js, 10, "a", ca, "o", "e");
    jm_jobscript_add_task (js, 11, "b", cb, "o", "e");
    jm_jobscript_add_task (js, 12, "c", "exit 5", "o", "e");
    char *out = s_run (js);
    assert_non_null (out);
    assert_non_null (strstr (out, "E 10 0\n"));
    assert_non_null (strstr (out, "E 11 0\n"));
    assert_non_null (strstr (out, "E 12 5\n"));
    /* task 12 starts only after one of the first two ended */
    char *s12 = strstr (out, "S 12\n");
    assert_non_null (s12);
    char *e10 = strstr (out, "E 10"), *e11 = strstr (out, "E 11");
    assert_true (s12 > e10 || s12 > e11);
    free (out);
    jm_jobscript_destroy (&js);
}

/* Many short tasks, window of 3: every task reports exactly once. */
static void
test_many_tasks_window (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (3);
    for (uint64_t i = 1; i <= 60; i++)
        jm_jobscript_add_task (js, i, ".", i % 7 ? "true" : "exit 1", "", "");
    char *out = s_run (js);
    assert_non_null (out);
    for (uint64_t i = 1; i <= 60; i++) {
        char s[64], e[64];
        snprintf (s, sizeof s, "S %lu\n", (unsigned long)i);
        snprintf (e, sizeof e, "E %lu %d\n", (unsigned long)i, i % 7 ? 0 : 1);
        assert_non_null (strstr (out, s));
        assert_non_null (strstr (out, e));
    }
    free (out);
    jm_jobscript_destroy (&js);
}

static void
test_header_and_prologue (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (1);
    jm_jobscript_set_header (js, "#SBATCH --job-name=x\n");
    jm_jobscript_add_prologue (js, "export JM_TEST_VAR=hello");
    jm_jobscript_add_task (js, 7, ".", "echo $JM_TEST_VAR", "o", "e");
    char *text = NULL, err[256];
    assert_int_equal (jm_jobscript_render (js, &text, err, sizeof err), 0);
    assert_memory_equal (text, "#!/bin/bash\n#SBATCH --job-name=x\n", 33);
    free (text);
    char *out = s_run (js);
    assert_string_equal (out, "S 7\nE 7 0\n");
    free (out);
    char *o = s_read ("wb/o");
    assert_string_equal (o, "hello\n");
    free (o);
    jm_jobscript_destroy (&js);
}

static void
test_tag_files_off (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (2);
    jm_jobscript_set_tag_files (js, false);
    jm_jobscript_add_task (js, 1, ".", "exit 4", "", "");
    jm_jobscript_add_task (js, 2, ".", "true", "", "");
    char *out = s_run (js);
    /* the exit codes still arrive on stdout, but no tag file is written */
    assert_non_null (strstr (out, "E 1 4\n"));
    assert_non_null (strstr (out, "E 2 0\n"));
    free (out);
    assert_false (s_exists ("job/1.exit"));
    assert_false (s_exists ("job/2.exit"));
    jm_jobscript_destroy (&js);
}

/* A short task's end is reported while a long one in the same job still
   runs (the agent streams results as each task ends). */
static void
test_prompt_end_reports (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (3);
    jm_jobscript_add_task (js, 1, ".", "sleep 2; touch slow.done", "", "");
    jm_jobscript_add_task (js, 2, ".", "exit 5", "", "");
    char path[512], err[256], cmd[1200];
    snprintf (path, sizeof path, "%s/job/job.sh", s_tmp);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    /* the first "E" line must come out while task 1 still sleeps */
    snprintf (cmd, sizeof cmd,
              "cd / && timeout 30 bash '%s' | { while read -r a b c; do "
              "[ \"$a\" = E ] && {  echo \"$b $c\"; [ -e '%s/wb/slow.done' ] && echo late; "
              "break; }; done; cat >/dev/null; } > '%s/job/first'",
              path, s_tmp, s_tmp);
    assert_int_equal (system (cmd), 0);
    char *first = s_read ("job/first");
    assert_string_equal (first, "2 5\n");
    free (first);
    jm_jobscript_destroy (&js);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_nasty_paths_and_exit_codes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_para_deg_two, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_many_tasks_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_header_and_prologue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_tag_files_off, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_prompt_end_reports, s_setup, s_teardown),
    };
    /* the script runs tasks one way with bash >= 5.1 ('wait -n -p') and
       another with older bash: every test runs both */
    unsetenv ("JOBMAN_JOBSCRIPT_COMPAT");
    int rc = cmocka_run_group_tests_name ("jobscript, bash >= 5.1 path", tests, NULL, NULL);
    setenv ("JOBMAN_JOBSCRIPT_COMPAT", "1", 1);
    rc += cmocka_run_group_tests_name ("jobscript, older-bash path", tests, NULL, NULL);
    return rc;
}
