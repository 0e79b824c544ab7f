/*  test_tunnel.c - reverse ssh tunnels, with a fake ssh (a bash script that
    records its argv and PID, then exits or lingers as its mode file says):
    the command line built from MACHINE.yml entries, "starting" then "up",
    restart with back-off after exits, a killed ssh restarted, and destroy
    killing the child and what it started. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_log.h"
#include "jm_machine.h"
#include "jm_testutil.h"
#include "jm_tunnel.h"
#include "jm_util.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[PATH_MAX];
static char s_fake[PATH_MAX + 16];

static const char *s_fake_text =
    "#!/bin/bash\n"
    "# fake ssh: records argv (one per line), PID and start time per run\n"
    "d=$(dirname \"$0\")\n"
    "exec 9>\"$d/lock\"; flock 9 # two tunnels start at once\n"
    "n=$(( $(cat \"$d/runs\" 2>/dev/null || echo 0) + 1 ))\n"
    "printf '%s\\n' \"$@\" >\"$d/argv.$n\"\n"
    "echo $$ >\"$d/pid.$n\"\n"
    "date +%s%N >\"$d/time.$n\"\n"
    "echo $n >\"$d/runs\"\n"
    "exec 9>&-\n"
    "case $(cat \"$d/mode\") in\n"
    "refused) echo 'Warning: Permanently added x' >&2\n"
    "         echo 'ssh: connect to host x port 22: Connection refused' >&2; exit 255 ;;\n"
    "quiet) exit 3 ;;\n"
    "linger) echo 'Warning: Permanently added x' >&2\n"
    "        sleep 300 & echo $! >\"$d/child.$n\"; wait ;;\n"
    "esac\n";

static int
s_setup (void **state)
{
    (void)state;
    assert_non_null (jm_test_tmpdir (s_dir, sizeof s_dir, "tunnel"));
    snprintf (s_fake, sizeof s_fake, "%s/fake ssh", s_dir); /* a blank on purpose */
    jm_test_write (s_fake, s_fake_text);
    assert_int_equal (chmod (s_fake, 0755), 0);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    /* a failed test may leave fakes running: end those that are still
       ours (their command line names our directory) */
    int runs = 0;
    char path[PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/runs", s_dir);
    char *t = jm_read_file (path, NULL, NULL, 0);
    runs = t ? atoi (t) : 0;
    free (t);
    for (int n = 1; n <= runs; n++) {
        const char *what[] = {"pid", "child"};
        for (int w = 0; w < 2; w++) {
            snprintf (path, sizeof path, "%s/%s.%d", s_dir, what[w], n);
            char *p = jm_read_file (path, NULL, NULL, 0);
            int pid = p ? atoi (p) : 0;
            free (p);
            if (pid <= 1)
                continue;
            snprintf (path, sizeof path, "/proc/%d/cmdline", pid);
            size_t len = 0;
            char *cmd = jm_read_file (path, &len, NULL, 0);
            bool ours = false;
            for (size_t i = 0; cmd && i < len; i += strlen (cmd + i) + 1)
                ours = ours || strstr (cmd + i, s_dir) || strcmp (cmd + i, "300") == 0;
            free (cmd);
            if (ours)
                kill (pid, SIGKILL);
        }
    }
    jm_test_rmrf (s_dir);
    return 0;
}

static void
s_mode (const char *mode)
{
    char path[PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/mode", s_dir);
    jm_test_write (path, mode);
}

static int
s_runs (void)
{
    char path[PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/runs", s_dir);
    char *t = jm_read_file (path, NULL, NULL, 0);
    int n = t ? atoi (t) : 0;
    free (t);
    return n;
}

static long long
s_num (const char *what, int run)
{
    char path[PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/%s.%d", s_dir, what, run);
    char *t = jm_read_file (path, NULL, NULL, 0);
    assert_non_null (t);
    long long n = atoll (t);
    free (t);
    return n;
}

static jm_machines_t *
s_machines (const char *text)
{
    char path[PATH_MAX + 16], err[512] = "";
    snprintf (path, sizeof path, "%s/MACHINE.yml", s_dir);
    jm_test_write (path, text);
    jm_machines_t *ms = jm_machines_load (path, NULL, NULL, err, sizeof err);
    if (!ms)
        fail_msg ("%s", err);
    return ms;
}

/* Gone: no such process, or a zombie of someone else. */
static bool
s_gone (pid_t pid)
{
    if (kill (pid, 0) != 0)
        return true;
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    char *t = jm_read_file (path, NULL, NULL, 0);
    bool zombie = t && strstr (t, ") Z ");
    free (t);
    return zombie;
}

/* Runs the loop until pred() or ms passed; returns pred(). */
typedef bool (s_pred_fn) (jm_tunnels_t *tn);
typedef struct {
    s_pred_fn *pred;
    jm_tunnels_t *tn;
    int64_t deadline;
} s_wait_t;

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    s_wait_t *w = arg;
    if ((w->pred && w->pred (w->tn)) || jm_now_ms () >= w->deadline)
        return -1;
    zloop_timer (loop, 20, 1, s_on_tick, w);
    return 0;
}

static bool
s_run (zloop_t *loop, jm_tunnels_t *tn, s_pred_fn *pred, int ms)
{
    s_wait_t w = {pred, tn, jm_now_ms () + ms};
    zloop_timer (loop, 20, 1, s_on_tick, &w);
    zloop_start (loop);
    return pred ? pred (tn) : true;
}

static bool
s_ran_once (jm_tunnels_t *tn)
{
    (void)tn;
    return s_runs () >= 1;
}
static bool
s_ran_3 (jm_tunnels_t *tn)
{
    (void)tn;
    return s_runs () >= 3;
}
static bool
s_ran_4 (jm_tunnels_t *tn)
{
    (void)tn;
    return s_runs () >= 4;
}
static bool
s_is_up (jm_tunnels_t *tn)
{
    return strncmp (jm_tunnels_state (tn, 0), "up ", 3) == 0;
}
static bool
s_is_down (jm_tunnels_t *tn)
{
    return strncmp (jm_tunnels_state (tn, 0), "down: ", 6) == 0;
}

static char *
s_argv_text (int run)
{
    char path[PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/argv.%d", s_dir, run);
    char *t = jm_read_file (path, NULL, NULL, 0);
    assert_non_null (t);
    return t;
}

static void
test_argv_and_up (void **state)
{
    (void)state;
    char *saved_home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;
    setenv ("HOME", "/home/tester", 1);
    jm_machines_t *ms = s_machines ("dft_1:\n"
                                    "  machine:\n"
                                    "    batch_type: Slurm\n"
                                    "    context_type: SSHContext\n"
                                    "    remote_profile:\n"
                                    "      hostname: hpc1.example.org\n"
                                    "      username: u1\n"
                                    "      port: 2222\n"
                                    "      key_filename: ~/.ssh/id_ed25519\n"
                                    "      proxy_command: ssh -W %h:%p gw.example.org\n"
                                    "  site: hpc1\n"
                                    "local_1:\n"
                                    "  machine: {batch_type: Shell}\n"
                                    "dft_2:\n"
                                    "  machine:\n"
                                    "    batch_type: Slurm\n"
                                    "    remote_profile: {hostname: hpc1.example.org, "
                                    "username: u1, port: 2222}\n"
                                    "  site: hpc1-gpu\n"
                                    "dft_3:\n"
                                    "  machine:\n"
                                    "    batch_type: SGE\n"
                                    "    remote_profile: {hostname: login.hpc3.org}\n");
    zloop_t *loop = zloop_new ();
    char err[512] = "";
    jm_tunnels_t *tn = jm_tunnels_new (loop, ms, s_fake, 7300, "127.0.0.1", 7100, err, sizeof err);
    jm_machines_destroy (&ms); /* the tunnels keep what they need */
    if (saved_home)
        setenv ("HOME", saved_home, 1);
    free (saved_home);
    assert_non_null (tn);
    /* local_1 has no hostname; dft_2 reaches the same login node as dft_1 */
    assert_int_equal (jm_tunnels_size (tn), 2);
    assert_string_equal (jm_tunnels_entry (tn, 0), "dft_1");
    assert_string_equal (jm_tunnels_site (tn, 0), "hpc1");
    assert_string_equal (jm_tunnels_entry (tn, 1), "dft_3");
    assert_string_equal (jm_tunnels_site (tn, 1), "login.hpc3.org");
    assert_string_equal (jm_tunnels_state (tn, 0), "idle");
    assert_null (jm_tunnels_state_for (tn, "local_1"));
    assert_null (jm_tunnels_state_for (tn, "nowhere"));
    assert_string_equal (jm_tunnels_state_for (tn, "hpc1-gpu"), "idle");

    /* nothing runs before start */
    s_mode ("linger");
    s_run (loop, tn, NULL, 300);
    assert_int_equal (s_runs (), 0);

    assert_int_equal (jm_tunnels_start (tn), 0);
    assert_int_equal (jm_tunnels_start (tn), -1);
    assert_true (s_run (loop, tn, s_ran_once, 5000));
    s_run (loop, tn, NULL, 300);
    assert_int_equal (s_runs (), 2);
    /* which run is which tunnel: by the hostname, the last argument */
    char *a1 = s_argv_text (1), *a2 = s_argv_text (2);
    char *hpc1 = strstr (a1, "hpc1.example.org") ? a1 : a2;
    char *hpc3 = hpc1 == a1 ? a2 : a1;
    assert_string_equal (hpc1, "-N\n"
                               "-R\n"
                               "127.0.0.1:7300:127.0.0.1:7100\n"
                               "-p\n"
                               "2222\n"
                               "-l\n"
                               "u1\n"
                               "-i\n"
                               "/home/tester/.ssh/id_ed25519\n"
                               "-o\n"
                               "ProxyCommand=ssh -W %h:%p gw.example.org\n"
                               "-o\n"
                               "ExitOnForwardFailure=yes\n"
                               "-o\n"
                               "ServerAliveInterval=10\n"
                               "-o\n"
                               "ServerAliveCountMax=3\n"
                               "-o\n"
                               "BatchMode=yes\n"
                               "hpc1.example.org\n");
    /* no port, user, key or proxy: ssh and ~/.ssh/config decide */
    assert_string_equal (hpc3, "-N\n"
                               "-R\n"
                               "127.0.0.1:7300:127.0.0.1:7100\n"
                               "-o\n"
                               "ExitOnForwardFailure=yes\n"
                               "-o\n"
                               "ServerAliveInterval=10\n"
                               "-o\n"
                               "ServerAliveCountMax=3\n"
                               "-o\n"
                               "BatchMode=yes\n"
                               "login.hpc3.org\n");
    int run0 = hpc1 == a1 ? 1 : 2;
    free (a1);
    free (a2);

    /* starting, with the PID of the ssh it started */
    pid_t pid = (pid_t)s_num ("pid", run0);
    assert_int_equal (jm_tunnels_pid (tn, 0), pid);
    char want[64];
    snprintf (want, sizeof want, "starting (pid %d)", (int)pid);
    assert_string_equal (jm_tunnels_state (tn, 0), want);
    assert_string_equal (jm_tunnels_state_for (tn, "hpc1-gpu"), want);

    /* up after 2 s alive */
    int64_t t0 = jm_now_ms ();
    assert_true (s_run (loop, tn, s_is_up, 5000));
    assert_true (jm_now_ms () - t0 >= 1000);
    snprintf (want, sizeof want, "up (pid %d) since ", (int)pid);
    const char *st = jm_tunnels_state (tn, 0);
    assert_int_equal (strncmp (st, want, strlen (want)), 0);
    assert_int_equal (strlen (st), strlen (want) + 8); /* HH:MM:SS */
    assert_int_equal (st[strlen (want) + 2], ':');

    /* destroy kills ssh and what it started (its process group) */
    pid_t child = (pid_t)s_num ("child", run0);
    assert_false (s_gone (pid));
    assert_false (s_gone (child));
    jm_tunnels_destroy (&tn);
    assert_null (tn);
    assert_true (s_gone (pid));
    for (int i = 0; i < 100 && !s_gone (child); i++)
        usleep (10000);
    assert_true (s_gone (child));
    /* reaped: no zombie of ours is left */
    assert_int_equal (waitpid (pid, NULL, WNOHANG), -1);
    zloop_destroy (&loop);
}

static void
test_restart_backoff (void **state)
{
    (void)state;
    jm_machines_t *ms = s_machines ("login1:\n"
                                    "  machine:\n"
                                    "    batch_type: Shell\n"
                                    "    remote_profile: {hostname: 10.1.2.3, port: 22}\n"
                                    "  site: login1\n");
    zloop_t *loop = zloop_new ();
    char err[512] = "";
    jm_tunnels_t *tn = jm_tunnels_new (loop, ms, s_fake, 7100, "::1", 7200, err, sizeof err);
    assert_non_null (tn);
    jm_machines_destroy (&ms);
    s_mode ("refused");
    assert_int_equal (jm_tunnels_start (tn), 0);
    /* runs 1, 2, 3: 1 s then 2 s apart; down with ssh's last line */
    assert_true (s_run (loop, tn, s_ran_3, 8000));
    char *a = s_argv_text (1);
    assert_non_null (strstr (a, "-R\n127.0.0.1:7100:[::1]:7200\n"));
    free (a);
    long long g1 = (s_num ("time", 2) - s_num ("time", 1)) / 1000000;
    long long g2 = (s_num ("time", 3) - s_num ("time", 2)) / 1000000;
    if (g1 < 900 || g1 > 1800 || g2 < 1900 || g2 > 2900)
        fail_msg ("restarts %lld ms and %lld ms apart, want about 1000 and 2000", g1, g2);
    assert_true (s_run (loop, tn, s_is_down, 2000));
    const char *st = jm_tunnels_state_for (tn, "login1");
    if (strncmp (st, "down: ssh: connect to host x port 22: Connection refused; retry in ", 67) ||
        !strstr (st, " s") || !(strstr (st, "in 4 s") || strstr (st, "in 3 s")))
        fail_msg ("state '%s'", st);
    assert_int_equal (jm_tunnels_pid (tn, 0), 0);

    /* the next run (4 s later) stays: up */
    s_mode ("linger");
    assert_true (s_run (loop, tn, s_ran_4, 6000));
    long long g3 = (s_num ("time", 4) - s_num ("time", 3)) / 1000000;
    if (g3 < 3900 || g3 > 5000)
        fail_msg ("fourth run %lld ms after the third, want about 4000", g3);
    assert_true (s_run (loop, tn, s_is_up, 5000));

    /* killed from outside: noticed, reported, restarted (back-off 8 s now:
       it did not stay up 60 s) */
    pid_t pid = (pid_t)s_num ("pid", 4);
    assert_int_equal (jm_tunnels_pid (tn, 0), pid);
    kill (pid, SIGKILL);
    assert_true (s_run (loop, tn, s_is_down, 2000));
    st = jm_tunnels_state (tn, 0);
    if (strcmp (st, "down: ssh killed by signal 9; retry in 8 s"))
        fail_msg ("state '%s'", st);
    /* what the killed ssh started (still holding its stderr) is ended */
    pid_t child = (pid_t)s_num ("child", 4);
    for (int i = 0; i < 100 && !s_gone (child); i++)
        usleep (10000);
    assert_true (s_gone (child));
    jm_tunnels_destroy (&tn);
    zloop_destroy (&loop);
}

static void
test_quiet_exit_and_spawn_failure (void **state)
{
    (void)state;
    jm_machines_t *ms = s_machines ("m:\n"
                                    "  machine:\n"
                                    "    batch_type: Shell\n"
                                    "    remote_profile: {hostname: h1}\n");
    zloop_t *loop = zloop_new ();
    char err[512] = "";
    jm_tunnels_t *tn = jm_tunnels_new (loop, ms, s_fake, 7100, "127.0.0.1", 7200, err, sizeof err);
    assert_non_null (tn);
    s_mode ("quiet");
    jm_tunnels_start (tn);
    assert_true (s_run (loop, tn, s_is_down, 3000));
    const char *st = jm_tunnels_state_for (tn, "h1");
    if (strcmp (st, "down: ssh exited with status 3; retry in 1 s"))
        fail_msg ("state '%s'", st);
    jm_tunnels_destroy (&tn);

    /* an ssh that cannot be run is down, and retried */
    char missing[PATH_MAX + 16];
    snprintf (missing, sizeof missing, "%s/no-such-ssh", s_dir);
    tn = jm_tunnels_new (loop, ms, missing, 7100, "127.0.0.1", 7200, err, sizeof err);
    assert_non_null (tn);
    jm_tunnels_start (tn);
    st = jm_tunnels_state (tn, 0);
    if (strncmp (st, "down: cannot run ", 17) ||
        !strstr (st, "No such file or directory; retry in 1 s"))
        fail_msg ("state '%s'", st);
    jm_tunnels_destroy (&tn);

    /* bad ports are refused with a message */
    assert_null (jm_tunnels_new (loop, ms, NULL, 0, "127.0.0.1", 7200, err, sizeof err));
    assert_non_null (strstr (err, "1..65535"));
    assert_null (jm_tunnels_new (loop, ms, NULL, 7100, "127.0.0.1", 70000, err, sizeof err));
    /* ssh_prog NULL is plain "ssh" */
    tn = jm_tunnels_new (loop, ms, NULL, 7100, "127.0.0.1", 7200, err, sizeof err);
    assert_non_null (tn);
    assert_string_equal (jm_tunnels_state (tn, 0), "idle");
    jm_tunnels_destroy (&tn);
    jm_machines_destroy (&ms);
    zloop_destroy (&loop);
}

int
main (void)
{
    jm_log_init ("test_tunnel");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_argv_and_up, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_restart_backoff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_quiet_exit_and_spawn_failure, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
