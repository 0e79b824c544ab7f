/*  test_jobscript.c - the generated job script, run for real with bash. */
#define _GNU_SOURCE
#include "jm_jobscript.h"
#include "jm_util.h"
#include "jm_yaml.h"

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

static void
s_mkdir (const char *rel)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/wb/%s", jm_test_dir, rel);
    assert_int_equal (mkdir (path, 0755), 0);
}

static bool
s_exists (const char *rel)
{
    struct stat st;
    return stat (jm_test_path (jm_test_dir, rel), &st) == 0;
}

static char *
s_read (const char *rel)
{
    return jm_test_read (jm_test_path (jm_test_dir, rel), NULL);
}

/* Writes the script, runs it with bash (timeout 30 s), returns its stdout. */
static char *
s_run (jm_jobscript_t *js)
{
    char path[512], err[256], cmd[1200];
    snprintf (path, sizeof path, "%s/job/job.sh", jm_test_dir);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    snprintf (cmd, sizeof cmd, "cd / && timeout 30 bash '%s' > '%s/job/stdout'", path, jm_test_dir);
    int rc = system (cmd);
    assert_true (WIFEXITED (rc));
    assert_int_equal (WEXITSTATUS (rc), 0);
    return s_read ("job/stdout");
}

static jm_jobscript_t *
s_new (size_t para_deg)
{
    char wb[512], jd[512];
    snprintf (wb, sizeof wb, "%s/wb", jm_test_dir);
    snprintf (jd, sizeof jd, "%s/job", jm_test_dir);
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
    snprintf (expect, sizeof expect, "%s/wb\n", jm_test_dir);
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

/* bash 5.2 under load sometimes returns 127 from 'wait -n' without naming
   a task (seen in CI as "jm_ids: bad array subscript" and a task that never
   reported).  A prologue shadows 'wait' so that every 2nd 'wait -n' does
   that: every task must still report once, with its own status, and the
   script must not exit (its EXIT trap prints X) before the last one ended. */
static void
test_wait_n_without_pid (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (2);
    jm_jobscript_add_prologue (js, "jm_t_n=0; trap 'echo X >&3' EXIT");
    jm_jobscript_add_prologue (js,
                               "wait () { if [ \"$1\" = -n ]; then jm_t_n=$((jm_t_n + 1)); "
                               "[ $((jm_t_n % 2)) = 0 ] && return 127; fi; builtin wait \"$@\"; }");
    for (uint64_t i = 1; i <= 12; i++) {
        char cmd[64];
        snprintf (cmd, sizeof cmd, "sleep 0.%d; exit %d", (int)(i % 3) + 1, (int)(i % 3));
        jm_jobscript_add_task (js, i, ".", cmd, "", "");
    }
    char *out = s_run (js);
    assert_non_null (out);
    char *x = strstr (out, "X\n");
    assert_non_null (x);
    assert_string_equal (x, "X\n");
    for (uint64_t i = 1; i <= 12; i++) {
        char e[64];
        snprintf (e, sizeof e, "E %lu %d\n", (unsigned long)i, (int)(i % 3));
        char *hit = strstr (out, e);
        assert_non_null (hit);
        assert_null (strstr (hit + 1, e));
    }
    assert_null (strstr (out, "E  "));
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
    snprintf (path, sizeof path, "%s/job/job.sh", jm_test_dir);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    /* the first "E" line must come out while task 1 still sleeps */
    snprintf (cmd, sizeof cmd,
              "cd / && timeout 30 bash '%s' | { while read -r a b c; do "
              "[ \"$a\" = E ] && {  echo \"$b $c\"; [ -e '%s/wb/slow.done' ] && echo late; "
              "break; }; done; cat >/dev/null; } > '%s/job/first'",
              path, jm_test_dir, jm_test_dir);
    assert_int_equal (system (cmd), 0);
    char *first = s_read ("job/first");
    assert_string_equal (first, "2 5\n");
    free (first);
    jm_jobscript_destroy (&js);
}

/*  Runs the script with bash under env -i (HOME=<tmp>/home, PATH=<tmp>/bin
    first), stdout and stderr to job/stdout and job/stderr; returns stdout
    and sets *errout (caller frees both). */
static char *
s_run_env (jm_jobscript_t *js, char **errout)
{
    char path[512], err[256], cmd[2400];
    snprintf (path, sizeof path, "%s/job/job.sh", jm_test_dir);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    const char *compat = getenv ("JOBMAN_JOBSCRIPT_COMPAT");
    snprintf (cmd, sizeof cmd,
              "cd / && env -i HOME='%s/home' PATH='%s/bin:/usr/bin:/bin' %s%s timeout 30 bash "
              "'%s' > '%s/job/stdout' 2> '%s/job/stderr'",
              jm_test_dir, jm_test_dir, compat ? "JOBMAN_JOBSCRIPT_COMPAT=" : "",
              compat ? compat : "", path, jm_test_dir, jm_test_dir);
    int rc = system (cmd);
    assert_true (WIFEXITED (rc));
    assert_int_equal (WEXITSTATUS (rc), 0);
    *errout = s_read ("job/stderr");
    assert_non_null (*errout);
    return s_read ("job/stdout");
}

static void
s_write_exec (const char *rel, const char *text)
{
    const char *path = jm_test_path (jm_test_dir, rel);
    jm_test_write (path, text);
    assert_int_equal (chmod (path, 0755), 0);
}

/* dpdispatcher's set-up from resources: module purge/unload/load, source
   (~/ is $HOME), export, prepend_script, then the prologue lines, in that
   order and before any task; append_script after every task ended; what
   the set-up prints goes to stderr, only S/E lines to stdout. */
static void
test_resources_setup (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (2);
    char home[512];
    snprintf (home, sizeof home, "%s/home", jm_test_dir);
    assert_int_equal (mkdir (home, 0755), 0);
    assert_int_equal (mkdir (jm_test_path (jm_test_dir, "bin"), 0755), 0);
    /* a fake 'module' command that logs into the current directory */
    s_write_exec ("bin/module", "#!/bin/sh\necho \"module says $*\"\necho \"module $*\" >> "
                                "order.log\n");
    jm_test_write (jm_test_path (jm_test_dir, "home/my env.sh"),
                   "echo sourced-home\necho 'source home' >> order.log\nexport FROM_HOME=yes\n");
    jm_test_write (jm_test_path (jm_test_dir, "wb/rel.sh"),
                   "echo 'source rel' >> order.log\necho rel-to-stderr >&2\n");
    s_mkdir ("t1");
    s_mkdir ("t2");
    s_mkdir ("t3");

    char yerr[256], rerr[512];
    const char *yaml = "resources:\n"
                       "  module_purge: true\n"
                       "  module_unload_list: [intel]\n"
                       "  module_list: [gcc/12, 'x y']\n"
                       "  source_list: ['~/my env.sh', rel.sh]\n"
                       "  envs: {A: '$HOME/x', B: '$(touch pwned) `touch pwned2`', C: 4}\n"
                       "  prepend_script: ['echo \"prepend $A\" >> order.log; echo prepend-out', "
                       "'cd \"$HOME\"']\n"
                       "  append_script: ['cd t1 && test -e done && test -e ../t3/done && echo "
                       "all-done > ../append.txt', 'echo append-out']\n";
    jm_ynode_t *root = jm_yaml_load_string (yaml, strlen (yaml), "t.yml", yerr, sizeof yerr);
    assert_non_null (root);
    jm_resources_t *res = jm_resources_from_ynode (jm_ynode_get (root, "resources"), "t.yml",
                                                   jm_test_dir, NULL, rerr, sizeof rerr);
    jm_ynode_destroy (&root);
    if (!res)
        fail_msg ("%s", rerr);
    jm_jobscript_set_resources (js, res);
    /* a copy: the caller's resources may go */
    const jm_resources_t *kept = jm_jobscript_resources (js);
    assert_non_null (kept);
    assert_ptr_not_equal (kept, res);
    char *j1 = jm_resources_to_json (res), *j2 = jm_resources_to_json (kept);
    assert_string_equal (j1, j2);
    free (j1);
    free (j2);
    jm_resources_destroy (&res);
    jm_jobscript_add_prologue (js, "echo prologue >> order.log; echo prologue-out");

    /* task 1 is slow, task 2 fails, task 3 runs after it anyway */
    jm_jobscript_add_task (js, 1, "t1",
                           "sleep 1; echo \"$A|$B|$C|$FROM_HOME\" > env.out; "
                           "touch done",
                           "o", "e");
    jm_jobscript_add_task (js, 2, "t2", "echo task-out; exit 3", "o", "e");
    jm_jobscript_add_task (js, 3, "t3", "touch done", "o", "e");
    assert_int_equal (jm_jobscript_task_id (js, 0), 1);
    assert_int_equal (jm_jobscript_task_id (js, 2), 3);
    char wb[512];
    snprintf (wb, sizeof wb, "%s/wb", jm_test_dir);
    assert_string_equal (jm_jobscript_work_base (js), wb);

    char *errout = NULL;
    char *out = s_run_env (js, &errout);
    assert_non_null (out);
    /* stdout: S/E lines only */
    for (const char *p = out; *p;) {
        const char *nl = strchr (p, '\n');
        assert_non_null (nl);
        if (!((p[0] == 'S' || p[0] == 'E') && p[1] == ' '))
            fail_msg ("stdout has a line that is not S/E: %.*s", (int)(nl - p), p);
        p = nl + 1;
    }
    assert_non_null (strstr (out, "E 1 0\n"));
    assert_non_null (strstr (out, "E 2 3\n"));
    assert_non_null (strstr (out, "E 3 0\n"));
    /* the set-up's and the append_script's output: on stderr */
    const char *on_stderr[] = {"module says purge", "module says load gcc/12",
                               "sourced-home",      "rel-to-stderr",
                               "prepend-out",       "prologue-out",
                               "append-out"};
    for (size_t i = 0; i < sizeof on_stderr / sizeof *on_stderr; i++)
        if (!strstr (errout, on_stderr[i]))
            fail_msg ("'%s' not on stderr: %s", on_stderr[i], errout);
    free (out);
    free (errout);
    /* the order of the set-up */
    char *order = s_read ("wb/order.log");
    assert_non_null (order);
    char expect[1024];
    snprintf (expect, sizeof expect,
              "module purge\nmodule unload intel\nmodule load gcc/12\nmodule load x y\n"
              "source home\nsource rel\nprepend %s/home/x\nprologue\n",
              jm_test_dir);
    assert_string_equal (order, expect);
    free (order);
    /* envs reach the tasks; $HOME expanded, no command substitution */
    char *env = s_read ("wb/t1/env.out");
    assert_non_null (env);
    snprintf (expect, sizeof expect, "%s/home/x|$(touch pwned) `touch pwned2`|4|yes\n",
              jm_test_dir);
    assert_string_equal (env, expect);
    free (env);
    assert_false (s_exists ("wb/pwned"));
    assert_false (s_exists ("wb/t1/pwned"));
    assert_false (s_exists ("wb/t1/pwned2"));
    /* the task's own output went to its log, not to the script's stdout */
    char *o = s_read ("wb/t2/o");
    assert_string_equal (o, "task-out\n");
    free (o);
    /* append_script ran after all tasks (the slow task 1 had finished) */
    char *app = s_read ("wb/append.txt");
    assert_non_null (app);
    assert_string_equal (app, "all-done\n");
    free (app);
    jm_jobscript_destroy (&js);
}

/* wait_time N: N seconds between the starts of consecutive tasks. */
static void
test_wait_time (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (2);
    jm_resources_t *res = jm_resources_new ();
    res->wait_time = 1;
    jm_jobscript_set_resources (js, res);
    jm_resources_destroy (&res);
    jm_jobscript_add_task (js, 1, ".", "date +%s%N > a", "", "");
    jm_jobscript_add_task (js, 2, ".", "date +%s%N > b", "", "");
    char *text = NULL, err[256];
    assert_int_equal (jm_jobscript_render (js, &text, err, sizeof err), 0);
    assert_non_null (strstr (text, "sleep 1\n"));
    free (text);
    char *out = s_run (js);
    assert_non_null (strstr (out, "E 1 0\n"));
    assert_non_null (strstr (out, "E 2 0\n"));
    free (out);
    char *a = s_read ("wb/a"), *b = s_read ("wb/b");
    assert_non_null (a);
    assert_non_null (b);
    long long ta = atoll (a), tb = atoll (b);
    free (a);
    free (b);
    assert_true (tb - ta >= 900000000LL); /* 0.9 s */
    jm_jobscript_destroy (&js);
}

/* A task that leaves a process behind does not keep the script's stdout
   open (the Shell backend waits for EOF there): tasks do not get fd 3. */
static void
test_task_does_not_hold_stdout (void **state)
{
    (void)state;
    jm_jobscript_t *js = s_new (1);
    jm_jobscript_add_task (js, 1, ".", "sleep 4 & echo started", "o", "e");
    char path[512], err[256], cmd[1200];
    snprintf (path, sizeof path, "%s/job/job.sh", jm_test_dir);
    assert_int_equal (jm_jobscript_write (js, path, err, sizeof err), 0);
    snprintf (cmd, sizeof cmd, "cd / && timeout 30 bash '%s' 2>/dev/null | cat > '%s/job/stdout'",
              path, jm_test_dir);
    int64_t t0 = jm_now_ms ();
    assert_int_equal (system (cmd), 0);
    int64_t dt = jm_now_ms () - t0;
    char *out = s_read ("job/stdout");
    assert_string_equal (out, "S 1\nE 1 0\n");
    free (out);
    assert_true (dt < 3000);
    jm_jobscript_destroy (&js);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_nasty_paths_and_exit_codes, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_para_deg_two, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_many_tasks_window, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_wait_n_without_pid, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_header_and_prologue, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_tag_files_off, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_prompt_end_reports, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_resources_setup, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_wait_time, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_task_does_not_hold_stdout, jm_test_dir_setup,
                                         jm_test_dir_teardown),
    };
    /* the script runs tasks one way with bash >= 5.1 ('wait -n -p') and
       another with older bash: every test runs both */
    unsetenv ("JOBMAN_JOBSCRIPT_COMPAT");
    int rc = cmocka_run_group_tests_name ("jobscript, bash >= 5.1 path", tests, NULL, NULL);
    setenv ("JOBMAN_JOBSCRIPT_COMPAT", "1", 1);
    rc += cmocka_run_group_tests_name ("jobscript, older-bash path", tests, NULL, NULL);
    return rc;
}
