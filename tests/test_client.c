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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_home[256];

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

static int
s_run (s_cmd_fn fn, const char *arg, bool json, char **text_p)
{
    zactor_t *fake = zactor_new (s_fake_coord, NULL);
    int port = 0;
    zsock_recv (fake, "i", &port);
    char ep[128], path[512];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d\n", port);
    snprintf (path, sizeof path, "%s/coord.endpoint", s_home);
    jm_test_write (path, ep);
    size_t len = 0;
    FILE *out = open_memstream (text_p, &len);
    jm_client_opts_t opts = {.home = s_home, .json = json, .progress = 0, .out = out};
    int rc = fn (&opts, arg);
    fclose (out);
    zactor_destroy (&fake);
    return rc;
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
    /* A port nobody listens on: bind and close one to find it. */
    zsock_t *tmp = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (tmp, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    zsock_destroy (&tmp);
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
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
