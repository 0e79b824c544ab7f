/*  test_client.c - jobman-submit's client against a scripted fake
    coordinator (a real CURVE ROUTER socket on 127.0.0.1 in a thread). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "jm_client.h"
#include "jm_keys.h"
#include "jm_state.h"
#include "jm_testutil.h"
#include "jm_util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_home[256];

/* What the fake coordinator saw of the last SUBMIT (read after the actor
   is destroyed, so no race). */
static char s_seen_machines[1024];
static bool s_seen_speculative;
static int s_seen_submits;

static void
s_fill_site (jm_wsite_t *s, const char *name, const char *state, bool drained, uint64_t last_seen)
{
    s->name = strdup (name);
    s->state = strdup (state);
    s->drained = drained;
    s->scheduler = strdup (strcmp (name, "hpc1") == 0 ? "slurm" : "shell");
    s->host = strdup (strcmp (name, "hpc1") == 0 ? "login1.hpc1" : "ws\"1");
    s->slots = 4;
    s->max_jobs = strcmp (name, "hpc1") == 0 ? 20 : 4;
    s->cores = strcmp (name, "hpc1") == 0 ? 32 : 0;
    s->gpus = strcmp (name, "hpc1") == 0 ? 2 : 0;
    s->running = 7;
    s->queued = 3;
    s->free_slots = 1;
    s->done_1m = 12;
    s->wait_ms = 95000;
    s->jobs = 5;
    s->last_seen = last_seen;
    s->tunnel = strdup (strcmp (name, "hpc1") == 0 ? "up" : "");
}

/* ------------------------------------------------ the fake coordinator */

static void
s_send_progress (zsock_t *router, zframe_t *rid, const char *sub_id, uint64_t done, uint64_t failed,
                 uint64_t running, bool finished)
{
    jm_msg_t *p = jm_msg_new (JM_MSG_PROGRESS);
    jm_str_set (&p->sub_id, sub_id);
    /* as the coordinator does: ACTIVE until finished; "bcf" is a submission
       whose tasks all succeeded but whose backward common files failed */
    jm_str_set (&p->state, !finished                           ? "ACTIVE"
                           : failed || !strcmp (sub_id, "bcf") ? "FAILED"
                                                               : "DONE");
    p->total = 10;
    for (int st = 0; st < JM_TASK_NSTATES; st++)
        jm_u64s_push (&p->counts, st == JM_TASK_DONE      ? done
                                  : st == JM_TASK_FAILED  ? failed
                                  : st == JM_TASK_RUNNING ? running
                                  : st == JM_TASK_PENDING ? 10 - done - failed - running
                                                          : 0);
    p->finished = finished;
    jm_msg_send (&p, router, rid);
}

static void
s_fake_coord (zsock_t *pipe, void *args)
{
    (void)args;
    char path[512];
    snprintf (path, sizeof path, "%s/coord.cert_secret", s_home);
    zcert_t *cert = jm_keys_load_secret (path, NULL, 0);
    assert (cert);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    jm_curve_server (router, cert);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    zsock_signal (pipe, 0);
    zsock_send (pipe, "i", port);

    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe || !which)
            break;
        zframe_t *rid = NULL;
        jm_msg_t *msg = jm_msg_recv (router, &rid, NULL, NULL, NULL, 0);
        if (!msg) {
            zframe_destroy (&rid);
            continue;
        }
        jm_msg_t *reply = NULL;
        if (msg->id == JM_MSG_HELLO) {
            assert (msg->role && strcmp (msg->role, "client") == 0);
            reply = jm_msg_new (JM_MSG_WELCOME);
            reply->heartbeat_ms = 200;
        }
        else if (msg->id == JM_MSG_WATCH && strcmp (msg->sub_id, "ok") == 0) {
            s_send_progress (router, rid, "ok", 0, 0, 0, false);
            s_send_progress (router, rid, "ok", 3, 0, 4, false);
            s_send_progress (router, rid, "ok", 10, 0, 0, true);
        }
        else if (msg->id == JM_MSG_WATCH && strcmp (msg->sub_id, "bad") == 0) {
            s_send_progress (router, rid, "bad", 9, 1, 0, true);
        }
        else if (msg->id == JM_MSG_WATCH && strcmp (msg->sub_id, "bcf") == 0) {
            s_send_progress (router, rid, "bcf", 10, 0, 0, true);
        }
        else if (msg->id == JM_MSG_STATUS) {
            if (strcmp (msg->sub_id, "nope") == 0) {
                reply = jm_msg_new (JM_MSG_ERROR);
                reply->code = 4;
                jm_str_set (&reply->reason, "unknown submission 'nope'");
            }
            else {
                reply = jm_msg_new (JM_MSG_STATUS_REPLY);
                jm_wsub_t *s = jm_wsubs_push (&reply->subs);
                s->id = strdup ("s1");
                s->state = strdup ("running");
                s->work_base = strdup ("/w/\"q\"");
                s->total = 2;
                for (int st = 0; st < JM_TASK_NSTATES; st++)
                    jm_u64s_push (&s->counts, st == JM_TASK_DONE || st == JM_TASK_FAILED);
                s->created = 1700000000;
                s->bytes = 4242;
                if (msg->detail) {
                    jm_wtstat_t *t = jm_wtstats_push (&reply->tstats);
                    t->id = 0;
                    t->path = strdup ("t0");
                    t->state = strdup ("DONE");
                    t->site = strdup ("local");
                    t->reason = strdup ("");
                    t = jm_wtstats_push (&reply->tstats);
                    t->id = 1;
                    t->path = strdup ("t1");
                    t->state = strdup ("FAILED");
                    t->exit_code = 3;
                    t->site = strdup ("local");
                    t->reason = strdup ("line1\nline2");
                }
            }
        }
        else if (msg->id == JM_MSG_SITES) {
            reply = jm_msg_new (JM_MSG_SITES_REPLY);
            uint64_t now = (uint64_t)zclock_time ();
            s_fill_site (jm_wsites_push (&reply->sites), "hpc1", "up", false, now - 2400);
            s_fill_site (jm_wsites_push (&reply->sites), "local", "lost", true, 0);
        }
        else if (msg->id == JM_MSG_SITE_SET) {
            if (strcmp (msg->name, "hpc1") == 0) {
                reply = jm_msg_new (JM_MSG_SITES_REPLY);
                s_fill_site (jm_wsites_push (&reply->sites), "hpc1", "up",
                             strcmp (msg->state, "drained") == 0, (uint64_t)zclock_time ());
            }
            else {
                reply = jm_msg_new (JM_MSG_ERROR);
                reply->code = 4;
                jm_str_set (&reply->reason, "unknown site");
            }
        }
        else if (msg->id == JM_MSG_SUBMIT) {
            s_seen_submits++;
            s_seen_speculative = msg->speculative;
            s_seen_machines[0] = 0;
            for (size_t i = 0; i < msg->machines.n; i++) {
                const jm_wmachine_t *m = &msg->machines.v[i];
                size_t n = strlen (s_seen_machines);
                snprintf (s_seen_machines + n, sizeof s_seen_machines - n,
                          "%s|%s|%s|%s|%s|%" PRIu64 ";", m->name, m->site, m->host, m->command,
                          m->root, m->ratio);
            }
            reply = jm_msg_new (JM_MSG_SUBMITTED);
            jm_str_set (&reply->sub_id, "sub-1");
            reply->total = msg->tasks.n;
            /* the entries whose host no agent has */
            for (size_t i = 0; i < msg->machines.n; i++)
                if (*msg->machines.v[i].host)
                    jm_strs_push (&reply->unserved, msg->machines.v[i].name);
        }
        else if (msg->id == JM_MSG_CANCEL) {
            reply = jm_msg_new (JM_MSG_CANCELLED);
            jm_str_set (&reply->sub_id, msg->sub_id);
            reply->total = 7;
        }
        if (reply)
            jm_msg_send (&reply, router, rid);
        jm_msg_destroy (&msg);
        zframe_destroy (&rid);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
    zcert_destroy (&cert);
}

static int
s_setup (void **state)
{
    (void)state;
    assert_non_null (jm_test_tmpdir (s_home, sizeof s_home, "client"));
    char err[512];
    assert_int_equal (jm_keys_create (s_home, "coord", err, sizeof err), 0);
    assert_int_equal (jm_keys_create (s_home, "client", err, sizeof err), 0);
    setenv ("JOBMAN_TIMEOUT_MS", "2000", 1);
    return 0;
}

static int
s_teardown (void **state)
{
    (void)state;
    jm_test_rmrf (s_home); /* says on stderr what it could not remove */
    return 0;
}

/* Runs cmd against a fresh fake coordinator; output into *text_p. */
typedef int (*s_cmd_fn) (const jm_client_opts_t *, const char *);

static char s_endpoint[128]; /* of the running fake, without newline */

/*  Runs fn with opts (home and out filled in here) against a fresh fake
    coordinator: stdout text into *text_p, stderr text into *errtext_p
    (may be NULL: stderr stays as it is). */
static int
s_run_opts (s_cmd_fn fn, const char *arg, jm_client_opts_t opts, char **text_p, char **errtext_p)
{
    zactor_t *fake = zactor_new (s_fake_coord, NULL);
    int port = 0;
    zsock_recv (fake, "i", &port);
    char ep[160], path[512];
    snprintf (s_endpoint, sizeof s_endpoint, "tcp://127.0.0.1:%d", port);
    snprintf (ep, sizeof ep, "%s\n", s_endpoint);
    snprintf (path, sizeof path, "%s/coord.endpoint", s_home);
    jm_test_write (path, ep);
    size_t len = 0;
    FILE *out = open_memstream (text_p, &len);
    opts.home = s_home;
    opts.out = out;
    char errpath[512];
    snprintf (errpath, sizeof errpath, "%s/stderr.txt", s_home);
    int saved = -1;
    if (errtext_p) {
        fflush (stderr);
        saved = dup (2);
        int fd = open (errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true (fd >= 0);
        dup2 (fd, 2);
        close (fd);
    }
    int rc = fn (&opts, arg);
    if (errtext_p) {
        fflush (stderr);
        dup2 (saved, 2);
        close (saved);
        *errtext_p = jm_test_read (errpath, NULL);
        assert_non_null (*errtext_p);
    }
    fclose (out);
    zactor_destroy (&fake);
    return rc;
}

static int
s_run (s_cmd_fn fn, const char *arg, bool json, char **text_p)
{
    jm_client_opts_t opts = {.json = json, .progress = 0};
    return s_run_opts (fn, arg, opts, text_p, NULL);
}

static int
s_list (const jm_client_opts_t *opts, const char *arg)
{
    (void)arg;
    return jm_client_cmd_list (opts);
}

/* ------------------------------------------------------------- tests */

static void
test_json_escaping (void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream (&text, &len);
    jm_json_str (f, "a\"b\\c\nd\te\x01");
    jm_json_str (f, NULL);
    fclose (f);
    assert_string_equal (text, "\"a\\\"b\\\\c\\nd\\te\\u0001\"\"\"");
    free (text);
}

static void
test_progress_line (void **state)
{
    (void)state;
    uint64_t counts[JM_TASK_NSTATES] = {0};
    counts[JM_TASK_PENDING] = 502;
    counts[JM_TASK_QUEUED] = 40;
    counts[JM_TASK_RUNNING] = 8;
    counts[JM_TASK_DONE] = 440;
    counts[JM_TASK_FAILED] = 10;
    char line[256];
    jm_client_progress_line (line, sizeof line, 1000, counts, JM_TASK_NSTATES, true);
    assert_string_equal (line, "[#########-----------]  450/1000  done 440  failed 10  running 8  "
                               "queued 40  pending 502");
    jm_client_progress_line (line, sizeof line, 1000, counts, JM_TASK_NSTATES, false);
    assert_string_equal (line, "450/1000  done 440  failed 10  running 8  queued 40  pending 502");
}

static void
test_unreachable (void **state)
{
    (void)state;
    /* A port nobody listens on. */
    int port = jm_test_free_port ();
    char ep[128], path[512];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d\n", port);
    snprintf (path, sizeof path, "%s/coord.endpoint", s_home);
    jm_test_write (path, ep);
    setenv ("JOBMAN_TIMEOUT_MS", "400", 1);
    char err[1024] = "";
    int code = -1;
    int64_t t0 = jm_now_ms ();
    jm_client_t *c = jm_client_new (s_home, &code, err, sizeof err);
    int64_t dt = jm_now_ms () - t0;
    setenv ("JOBMAN_TIMEOUT_MS", "2000", 1);
    assert_null (c);
    assert_int_equal (code, JM_EXIT_UNREACHABLE);
    assert_non_null (strstr (err, "cannot reach the coordinator"));
    assert_non_null (strstr (err, ep[0] ? "tcp://127.0.0.1:" : "?"));
    assert_true (dt >= 350 && dt < 3000);
}

static void
test_missing_keys (void **state)
{
    (void)state;
    char err[1024] = "";
    int code = -1;
    jm_client_t *c = jm_client_new ("/nonexistent/jobman-home", &code, err, sizeof err);
    assert_null (c);
    assert_int_equal (code, JM_EXIT_UNREACHABLE);
    assert_non_null (strstr (err, "jobman-coord init"));
}

static void
test_wait_all_done (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (jm_client_cmd_wait, "ok", false, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_non_null (strstr (text, "10/10  done 10  failed 0"));
    assert_non_null (strstr (text, "submission ok finished DONE: 10 tasks, 10 done, 0 failed"));
    free (text);
}

static void
test_wait_backward_common_failed (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (jm_client_cmd_wait, "bcf", false, &text);
    /* every task DONE, but the submission FAILED: not a success */
    assert_int_equal (rc, JM_EXIT_FAILED);
    assert_non_null (strstr (text, "finished FAILED: 10 tasks, 10 done, 0 failed"));
    assert_non_null (strstr (text, "backward common files missing"));
    free (text);
}

static void
test_wait_some_failed (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (jm_client_cmd_wait, "bad", false, &text);
    assert_int_equal (rc, JM_EXIT_FAILED);
    assert_non_null (strstr (text, "9 done, 1 failed"));
    free (text);
}

static void
test_status_detail_json (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (jm_client_cmd_status, "s1", true, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_non_null (strstr (text, "{\"submissions\":[{\"id\":\"s1\",\"state\":\"running\","
                                   "\"work_base\":\"/w/\\\"q\\\"\",\"total\":2,"));
    assert_non_null (strstr (text, "\"DONE\":1,\"FAILED\":1,\"CANCELLED\":0}"));
    assert_non_null (strstr (text, "\"bytes_sent\":4242"));
    assert_non_null (strstr (text,
                             "{\"id\":1,\"path\":\"t1\",\"state\":\"FAILED\","
                             "\"exit_code\":3,\"site\":\"local\",\"reason\":\"line1\\nline2\"}"));
    free (text);
}

static void
test_status_text_and_unknown (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (jm_client_cmd_status, "s1", false, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_non_null (strstr (text, "DONE 1  FAILED 1"));
    assert_non_null (strstr (text, "FAILED"));
    assert_non_null (strstr (text, "t1"));
    free (text);
    text = NULL;
    rc = s_run (jm_client_cmd_status, "nope", false, &text);
    assert_int_equal (rc, JM_EXIT_USAGE);
    free (text);
}

static void
test_list_and_cancel (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (s_list, NULL, false, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_non_null (strstr (text, "s1  running"));
    assert_non_null (strstr (text, "1/2 done"));
    free (text);
    text = NULL;
    rc = s_run (jm_client_cmd_cancel, "s1", false, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_string_equal (text, "cancelled 7 tasks\n");
    free (text);
}

static int
s_sites (const jm_client_opts_t *opts, const char *arg)
{
    (void)arg;
    return jm_client_cmd_sites (opts);
}

static int
s_drain (const jm_client_opts_t *opts, const char *arg)
{
    return jm_client_cmd_site_set (opts, arg, true);
}

static int
s_resume (const jm_client_opts_t *opts, const char *arg)
{
    return jm_client_cmd_site_set (opts, arg, false);
}

/* 'sites': a header and one line per site with every column filled. */
static void
test_sites_table (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (s_sites, NULL, false, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    if (getenv ("JM_TEST_VERBOSE"))
        fprintf (stderr, "%s", text);
    char *l1 = strchr (text, '\n');
    assert_non_null (l1);
    *l1++ = 0;
    char *l2 = strchr (l1, '\n');
    assert_non_null (l2);
    *l2++ = 0;
    char *end = strchr (l2, '\n');
    assert_non_null (end);
    *end = 0;
    /* header */
    const char *cols[] = {"NAME",   "STATE",    "SCHED", "CAPACITY",       "RUNNING",
                          "QUEUED", "DONE/MIN", "WAIT",  "LAST-HEARTBEAT", "TUNNEL"};
    const char *at = text;
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        at = strstr (at, cols[i]);
        if (!at)
            fail_msg ("header '%s' lacks '%s' in order", text, cols[i]);
    }
    /* hpc1: up, slurm, 4 slots of 20 jobs, 32 cores, 2 gpus, 7 running,
       3 queued, 12 a minute, 95 s wait, heard 2 s ago, tunnel up */
    assert_non_null (strstr (l1, "hpc1 "));
    assert_non_null (strstr (l1, " up "));
    assert_non_null (strstr (l1, "slurm"));
    assert_non_null (strstr (l1, "4/20 jobs, 32c, 2g"));
    assert_non_null (strstr (l1, " 7 "));
    assert_non_null (strstr (l1, " 3 "));
    assert_non_null (strstr (l1, " 12 "));
    assert_non_null (strstr (l1, "1m35s"));
    assert_non_null (strstr (l1, "2s ago"));
    assert_true (strlen (l1) > 2 && strcmp (l1 + strlen (l1) - 2, "up") == 0);
    /* local: lost and drained, never heard, no tunnel */
    assert_non_null (strstr (l2, "local "));
    assert_non_null (strstr (l2, "lost,drained"));
    assert_non_null (strstr (l2, "4 jobs "));
    assert_null (strstr (l2, "4/4"));
    assert_non_null (strstr (l2, "never"));
    assert_true (strlen (l2) > 2 && strcmp (l2 + strlen (l2) - 2, " -") == 0);
    free (text);
}

static void
test_sites_json (void **state)
{
    (void)state;
    char *text = NULL;
    int rc = s_run (s_sites, NULL, true, &text);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_true (text[0] == '[');
    assert_string_equal (text + strlen (text) - 2, "]\n");
    const char *want = "{\"name\":\"local\",\"state\":\"lost\",\"drained\":true,\"scheduler\":"
                       "\"shell\",\"host\":\"ws\\\"1\",\"slots\":4,\"max_jobs\":4,\"cores\":0,"
                       "\"gpus\":0,\"running\":7,\"queued\":3,\"free_slots\":1,\"done_1m\":12,"
                       "\"wait_ms\":95000,\"jobs\":5,\"last_seen\":0,\"tunnel\":\"\"}]";
    if (!strstr (text, want))
        fail_msg ("'%s' lacks '%s'", text, want);
    assert_non_null (strstr (text, "[{\"name\":\"hpc1\",\"state\":\"up\",\"drained\":false,"));
    assert_non_null (strstr (text, "\"cores\":32,\"gpus\":2,"));
    free (text);
}

/* jobman-coord site drain|resume: the site's new line; unknown: exit 1. */
static void
test_site_set (void **state)
{
    (void)state;
    char *text = NULL, *errtext = NULL;
    jm_client_opts_t opts = {.prog = "jobman-coord"};
    int rc = s_run_opts (s_drain, "hpc1", opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_non_null (strstr (text, "hpc1 "));
    assert_non_null (strstr (text, "up,drained"));
    assert_string_equal (errtext, "");
    free (text);
    free (errtext);
    rc = s_run_opts (s_resume, "hpc1", opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_OK);
    assert_null (strstr (text, "drained"));
    assert_non_null (strstr (text, " up "));
    free (text);
    free (errtext);
    rc = s_run_opts (s_drain, "nosuch", opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_FAILED);
    assert_string_equal (text, "");
    assert_string_equal (errtext, "jobman-coord: no site named 'nosuch'\n");
    free (text);
    free (errtext);
}

/* A submission with a machine file: SUBMIT carries the entries (with the
   prefix), and every entry the coordinator calls unserved gets a hint
   with how to start its agent. */
static char s_subdir[400];

static void
s_write_submission (const char *extra)
{
    char path[512], text[1024];
    snprintf (s_subdir, sizeof s_subdir, "%s/work", s_home);
    mkdir (s_subdir, 0755);
    snprintf (path, sizeof path, "%s/t0", s_subdir);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/sub.yml", s_subdir);
    snprintf (text, sizeof text,
              "work_base: .\n%s"
              "task_list:\n"
              "  - command: '{command} -in in.dat'\n"
              "    task_work_path: t0\n",
              extra);
    jm_test_write (path, text);
}

static int
s_submit (const jm_client_opts_t *opts, const char *arg)
{
    return jm_client_cmd_submit (opts, arg);
}

static void
test_submit_machines_unserved (void **state)
{
    (void)state;
    s_write_submission ("speculative: true\n");
    char mfile[512], subfile[512];
    snprintf (mfile, sizeof mfile, "%s/MACHINE.yml", s_home);
    snprintf (subfile, sizeof subfile, "%s/sub.yml", s_subdir);
    jm_test_write (mfile, "dft_1:\n"
                          "  machine: {batch_type: shell}\n"
                          "  site: local\n"
                          "  command: pw.x\n"
                          "dft_2:\n"
                          "  machine:\n"
                          "    batch_type: PBS\n"
                          "    context_type: SSHContext\n"
                          "    remote_root: /work/me/dft\n"
                          "    remote_profile: {hostname: hpc2.example.org, username: me}\n"
                          "  command: mpirun -np 24 pw.x\n"
                          "  work_load_ratio: 0.25\n"
                          "train_1:\n"
                          "  machine: {batch_type: slurm}\n");
    s_seen_submits = 0;
    char *text = NULL, *errtext = NULL;
    jm_client_opts_t opts = {.work_dir = s_subdir, .machine_file = mfile, .prefix = "dft"};
    int rc = s_run_opts (s_submit, subfile, opts, &text, &errtext);
    if (getenv ("JM_TEST_VERBOSE"))
        fprintf (stderr, "%s", errtext);
    assert_int_equal (rc, JM_EXIT_OK);
    /* stdout: the id alone, as before */
    assert_string_equal (text, "sub-1\n");
    assert_int_equal (s_seen_submits, 1);
    assert_true (s_seen_speculative);
    assert_string_equal (s_seen_machines,
                         "dft_1|local||pw.x||0;dft_2||hpc2.example.org|mpirun -np 24 pw.x|"
                         "/work/me/dft|250000;");
    /* the SSH notice, one line with our prefix */
    assert_non_null (strstr (errtext, "jobman-submit: "));
    char want[1024];
    snprintf (want, sizeof want,
              "jobman-submit: machine entry 'dft_2' (host hpc2.example.org) is served by no "
              "connected agent; its share waits for one or goes to the other entries. Start its "
              "agent on that host with:\n"
              "    jobman-agent run --home ~/.jobman-agent --coordinator %s "
              "--coordinator-cert coord.cert --site hpc2.example.org --root /work/me/dft "
              "--scheduler pbs\n",
              s_endpoint);
    if (!strstr (errtext, want))
        fail_msg ("stderr '%s' lacks '%s'", errtext, want);
    assert_null (strstr (errtext, "'dft_1'"));
    free (text);
    free (errtext);
}

static void
test_submit_bad_input (void **state)
{
    (void)state;
    s_write_submission ("");
    char mfile[512], subfile[512];
    snprintf (subfile, sizeof subfile, "%s/sub.yml", s_subdir);
    s_seen_submits = 0;
    /* {command} and no --machine: refused before anything is sent */
    char *text = NULL, *errtext = NULL;
    jm_client_opts_t opts = {.work_dir = s_subdir};
    int rc = s_run_opts (s_submit, subfile, opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_USAGE);
    char want[1024];
    snprintf (want, sizeof want,
              "jobman-submit: %s: task 0 (t0): command uses {command} but no --machine file "
              "was given\n",
              subfile);
    assert_string_equal (errtext, want);
    free (text);
    free (errtext);
    /* a broken machine file: its name and line */
    snprintf (mfile, sizeof mfile, "%s/MACHINE.yml", s_home);
    jm_test_write (mfile, "dft_1:\n  machine: {batch_type: condor}\n");
    opts.machine_file = mfile;
    rc = s_run_opts (s_submit, subfile, opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_USAGE);
    snprintf (want, sizeof want, "jobman-submit: %s:2:", mfile);
    if (strncmp (errtext, want, strlen (want)) != 0)
        fail_msg ("stderr '%s' does not start with '%s'", errtext, want);
    assert_non_null (strstr (errtext, "batch_type"));
    free (text);
    free (errtext);
    /* a prefix nothing matches */
    jm_test_write (mfile, "dft_1:\n  machine: {batch_type: shell}\n");
    opts.prefix = "train";
    rc = s_run_opts (s_submit, subfile, opts, &text, &errtext);
    assert_int_equal (rc, JM_EXIT_USAGE);
    assert_non_null (strstr (errtext, "train"));
    free (text);
    free (errtext);
    assert_int_equal (s_seen_submits, 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_json_escaping),
        cmocka_unit_test (test_progress_line),
        cmocka_unit_test (test_unreachable),
        cmocka_unit_test (test_missing_keys),
        cmocka_unit_test (test_wait_all_done),
        cmocka_unit_test (test_wait_some_failed),
        cmocka_unit_test (test_wait_backward_common_failed),
        cmocka_unit_test (test_status_detail_json),
        cmocka_unit_test (test_status_text_and_unknown),
        cmocka_unit_test (test_list_and_cancel),
        cmocka_unit_test (test_sites_table),
        cmocka_unit_test (test_sites_json),
        cmocka_unit_test (test_site_set),
        cmocka_unit_test (test_submit_machines_unserved),
        cmocka_unit_test (test_submit_bad_input),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
