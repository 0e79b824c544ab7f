/*  test_coord.c - the real coordinator loop (jm_coord_actor) on
    tcp://127.0.0.1:* with CURVE and ZAP, driven by a client DEALER and a
    fake agent DEALER speaking the wire protocol. */
#include "jm_coord.h"
#include "jm_keys.h"
#include "jm_proto.h"
#include "jm_resources.h"
#include "jm_sha256.h"
#include "jm_state.h"
#include "jm_store.h"

#include <fcntl.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define TMO 5000

static char s_tmp[256];
static char s_home[300];
static char s_wb[300];
static char s_endpoint[256];
static char s_server_pub[41];
static zactor_t *s_coord;
static jm_coord_args_t s_args;

static void
s_read_endpoint (void)
{
    char path[400];
    snprintf (path, sizeof path, "%s/coord.endpoint", s_home);
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    assert_non_null (fgets (s_endpoint, sizeof s_endpoint, f));
    fclose (f);
    s_endpoint[strcspn (s_endpoint, "\n")] = 0;
    assert_true (strncmp (s_endpoint, "tcp://127.0.0.1:", 16) == 0);
}

static void
s_start_coord (void)
{
    s_args.home = s_home;
    s_args.bind = "tcp://127.0.0.1:*";
    s_coord = zactor_new (jm_coord_actor, &s_args);
    assert_non_null (s_coord);
    s_read_endpoint ();
}

static void
s_stop_coord (void)
{
    zactor_destroy (&s_coord);
    char path[400];
    snprintf (path, sizeof path, "%s/coord.endpoint", s_home);
    assert_int_not_equal (access (path, F_OK), 0); /* removed on exit */
}

static int
group_setup (void **state)
{
    (void)state;
    snprintf (s_tmp, sizeof s_tmp, "/tmp/jm_test_coord.XXXXXX");
    if (!mkdtemp (s_tmp))
        return -1;
    snprintf (s_home, sizeof s_home, "%s/home", s_tmp);
    snprintf (s_wb, sizeof s_wb, "%s/wb", s_tmp);
    mkdir (s_wb, 0755);
    char err[512];
    if (jm_coord_init_home (s_home, "tcp://127.0.0.1:*", err, sizeof err) != 0) {
        fprintf (stderr, "init: %s\n", err);
        return -1;
    }
    /* a complete home is refused */
    if (jm_coord_init_home (s_home, NULL, err, sizeof err) != 2)
        return -1;
    char path[400];
    snprintf (path, sizeof path, "%s/agents", s_tmp);
    mkdir (path, 0700);
    if (jm_keys_create (path, "good", err, sizeof err) ||
        jm_keys_create (path, "bad", err, sizeof err))
        return -1;
    snprintf (path, sizeof path, "%s/coord.cert", s_home);
    zcert_t *c = jm_keys_load_public (path, err, sizeof err);
    if (!c)
        return -1;
    snprintf (s_server_pub, sizeof s_server_pub, "%s", zcert_public_txt (c));
    zcert_destroy (&c);
    return 0;
}

static int
group_teardown (void **state)
{
    (void)state;
    zactor_destroy (&s_coord);
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
    return system (cmd) == 0 ? 0 : -1;
}

/* A CURVE DEALER using the secret cert at secret_path. */
static zsock_t *
s_dealer (const char *secret_path)
{
    char err[512];
    zcert_t *own = jm_keys_load_secret (secret_path, err, sizeof err);
    assert_non_null (own);
    zsock_t *s = zsock_new (ZMQ_DEALER);
    assert_non_null (s);
    jm_curve_client (s, own, s_server_pub);
    zcert_destroy (&own);
    zsock_set_linger (s, 0);
    zsock_set_rcvtimeo (s, TMO);
    assert_int_equal (zsock_connect (s, "%s", s_endpoint), 0);
    return s;
}

static zsock_t *
s_client (void)
{
    char path[400];
    snprintf (path, sizeof path, "%s/client.cert_secret", s_home);
    return s_dealer (path);
}

static zsock_t *
s_agent_sock (const char *which)
{
    char path[400];
    snprintf (path, sizeof path, "%s/agents/%s.cert_secret", s_tmp, which);
    return s_dealer (path);
}

static void
s_send (zsock_t *s, jm_msg_t *msg)
{
    assert_int_equal (jm_msg_send (&msg, s, NULL), 0);
}

/* Next message (skipping HEARTBEAT), or NULL after timeout_ms. */
static jm_msg_t *
s_recv (zsock_t *s, int timeout_ms)
{
    zsock_set_rcvtimeo (s, timeout_ms);
    while (true) {
        char err[512];
        int code = 0;
        zpoller_t *p = zpoller_new (s, NULL);
        void *which = zpoller_wait (p, timeout_ms);
        zpoller_destroy (&p);
        if (!which)
            return NULL;
        jm_msg_t *m = jm_msg_recv (s, NULL, &code, NULL, err, sizeof err);
        if (!m) {
            fprintf (stderr, "undecodable reply: %s\n", err);
            return NULL;
        }
        if (m->id != JM_MSG_HEARTBEAT)
            return m;
        jm_msg_destroy (&m);
    }
}

static jm_msg_t *
s_expect (zsock_t *s, jm_msg_id_t id)
{
    jm_msg_t *m = s_recv (s, TMO);
    if (!m)
        fail_msg ("no %s within %d ms", jm_msg_name (id), TMO);
    if (m->id != id)
        fail_msg ("expected %s, got %s (%s)", jm_msg_name (id), jm_msg_name (m->id),
                  m->reason ? m->reason : "");
    return m;
}

static void
s_hello (zsock_t *s, const char *role, const char *name)
{
    jm_msg_t *h = jm_msg_new (JM_MSG_HELLO);
    h->version = JM_PROTO_VERSION;
    jm_str_set (&h->role, role);
    jm_str_set (&h->name, name);
    jm_str_set (&h->scheduler, "shell");
    h->slots = 1;
    jm_str_set (&h->host, "testhost");
    s_send (s, h);
}

static zsock_t *
s_client_ready (void)
{
    zsock_t *client = s_client ();
    s_hello (client, "client", "");
    jm_msg_t *w = s_expect (client, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    return client;
}

/* A SUBMIT for work base wb with the given group_size and para_deg. */
static jm_msg_t *
s_submit_new (const char *wb, uint64_t group_size, uint64_t para_deg)
{
    jm_msg_t *sub = jm_msg_new (JM_MSG_SUBMIT);
    jm_str_set (&sub->work_base, wb);
    sub->group_size = group_size;
    sub->para_deg = para_deg;
    return sub;
}

static void
s_credit (zsock_t *agent, uint64_t n)
{
    jm_msg_t *c = jm_msg_new (JM_MSG_CREDIT);
    c->credit = n;
    s_send (agent, c);
}

static void
s_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return NULL;
    char *buf = calloc (1, 65536);
    size_t n = fread (buf, 1, 65535, f);
    buf[n] = 0;
    fclose (f);
    return buf;
}

/* STATUS for sub_id with detail; caller destroys. */
static jm_msg_t *
s_status (zsock_t *client, const char *sub_id)
{
    jm_msg_t *st = jm_msg_new (JM_MSG_STATUS);
    jm_str_set (&st->sub_id, sub_id);
    st->detail = sub_id && *sub_id;
    s_send (client, st);
    return s_expect (client, JM_MSG_STATUS_REPLY);
}

/* Wait until task idx of sub_id is in state want (or time out). */
static jm_msg_t *
s_wait_task (zsock_t *client, const char *sub_id, uint64_t idx, const char *want)
{
    for (int i = 0; i < 100; i++) {
        jm_msg_t *r = s_status (client, sub_id);
        assert_true (idx < r->tstats.n);
        if (strcmp (r->tstats.v[idx].state, want) == 0)
            return r;
        jm_msg_destroy (&r);
        zclock_sleep (50);
    }
    fail_msg ("task %" PRIu64 " of %s never became %s", idx, sub_id, want);
    return NULL;
}

/* Answer the coordinator's FETCHes for one object (data) until it has it. */
static void
s_serve_fetches (zsock_t *agent, const char *hash, const char *data, size_t len)
{
    size_t served = 0;
    while (served < len) {
        jm_msg_t *f = s_expect (agent, JM_MSG_FETCH);
        assert_string_equal (f->hash, hash);
        assert_true (f->offset < len);
        size_t n = len - f->offset < f->size ? len - f->offset : f->size;
        jm_msg_t *c = jm_msg_new (JM_MSG_CHUNK);
        memcpy (c->hash, hash, 65);
        c->offset = f->offset;
        jm_msg_set_data (c, data + f->offset, n);
        served += n;
        jm_msg_destroy (&f);
        s_send (agent, c);
    }
}

static char *
s_submit_ok (zsock_t *client, jm_msg_t *sub, uint64_t total)
{
    s_send (client, sub);
    jm_msg_t *r = s_expect (client, JM_MSG_SUBMITTED);
    assert_int_equal (r->total, total);
    char *id = strdup (r->sub_id);
    jm_msg_destroy (&r);
    return id;
}

static jm_wtask_t *
s_task (jm_msg_t *sub, const char *path)
{
    jm_wtask_t *t = jm_wtasks_push (&sub->tasks);
    t->id = sub->tasks.n - 1;
    t->path = strdup (path);
    t->command = strdup ("true");
    t->outlog = strdup ("log");
    t->errlog = strdup ("err");
    return t;
}

static void
test_submit_dispatch_fetch (void **state)
{
    (void)state;
    s_start_coord ();
    char err[512], path[600];
    /* allow the agent while the coordinator runs: must take effect */
    snprintf (path, sizeof path, "%s/agents/good.cert", s_tmp);
    assert_int_equal (jm_coord_allow (s_home, path, "siteA", err, sizeof err), 0);
    assert_int_equal (jm_coord_allow (s_home, path, "siteA", err, sizeof err), 0);
    snprintf (path, sizeof path, "%s/agents/bad.cert", s_tmp);
    assert_int_equal (jm_coord_allow (s_home, path, "siteA", err, sizeof err), -1);
    assert_non_null (strstr (err, "different key"));
    assert_int_equal (jm_coord_allow (s_home, path, "../x", err, sizeof err), -1);

    zsock_t *client = s_client ();
    s_hello (client, "client", "");
    jm_msg_t *w = s_expect (client, JM_MSG_WELCOME);
    assert_true (w->heartbeat_ms > 0);
    jm_msg_destroy (&w);

    /* forward file into the coordinator's store, as the client does */
    snprintf (path, sizeof path, "%s/t0", s_wb);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/t0/in.dat", s_wb);
    const char *input = "hello input bytes\n";
    s_write (path, input);
    snprintf (path, sizeof path, "%s/store", s_home);
    jm_store_t *store = jm_store_new (path, err, sizeof err);
    assert_non_null (store);
    char in_hash[JM_HASH_HEX];
    uint64_t in_size = 0;
    snprintf (path, sizeof path, "%s/t0/in.dat", s_wb);
    assert_int_equal (jm_store_import (store, path, in_hash, &in_size, err, sizeof err), 0);
    jm_store_destroy (&store);

    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    jm_wtask_t *t = s_task (sub, "t0");
    jm_wfiles_push (&t->forward, "in.dat", in_hash, in_size, 0644);
    jm_strs_push (&t->backward, "out.dat");
    s_task (sub, "t1");
    s_task (sub, "t2");
    char *sub_id = s_submit_ok (client, sub, 3);

    jm_msg_t *r = s_status (client, sub_id);
    assert_int_equal (r->subs.n, 1);
    assert_string_equal (r->subs.v[0].state, "ACTIVE");
    assert_int_equal (r->subs.v[0].counts.n, JM_TASK_NSTATES);
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_PENDING], 3);
    assert_int_equal (r->tstats.n, 3);
    assert_string_equal (r->tstats.v[1].path, "t1");
    jm_msg_destroy (&r);

    /* the allowed agent gets in; one credit -> exactly one job */
    zsock_t *agent = s_agent_sock ("good");
    s_hello (agent, "agent", "siteA");
    w = s_expect (agent, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->sub_id, sub_id);
    assert_int_equal (job->para_deg, 1);
    assert_int_equal (job->tasks.n, 1);
    assert_string_equal (job->tasks.v[0].path, "t0");
    assert_string_equal (job->tasks.v[0].command, "true");
    assert_int_equal (job->tasks.v[0].forward.n, 1);
    assert_string_equal (job->tasks.v[0].forward.v[0].hash, in_hash);
    assert_int_equal (job->tasks.v[0].backward.n, 1);
    uint64_t job_id = job->job_id, tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    assert_null (s_recv (agent, 500)); /* no credit, no second job */

    /* the agent fetches the forward file */
    jm_msg_t *f = jm_msg_new (JM_MSG_FETCH);
    f->job_id = job_id;
    memcpy (f->hash, in_hash, 65);
    f->offset = 0;
    f->size = 1024 * 1024;
    s_send (agent, f);
    jm_msg_t *c = s_expect (agent, JM_MSG_CHUNK);
    assert_int_equal (c->data_size, strlen (input));
    assert_memory_equal (c->data, input, strlen (input));
    jm_msg_destroy (&c);

    jm_msg_t *js = jm_msg_new (JM_MSG_JOB_STATE);
    js->job_id = job_id;
    jm_str_set (&js->state, "RUNNING");
    jm_str_set (&js->reason, "");
    s_send (agent, js);
    jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
    jm_u64s_push (&ts->ids, tid);
    s_send (agent, ts);
    r = s_wait_task (client, sub_id, 0, "RUNNING");
    assert_string_equal (r->tstats.v[0].site, "siteA");
    jm_msg_destroy (&r);

    /* the task ends with a result file the coordinator must fetch */
    const char *result = "the result of task zero\n";
    char out_hash[JM_HASH_HEX];
    jm_sha256_buf (result, strlen (result), out_hash);
    jm_msg_t *te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = tid;
    te->exit_code = 0;
    jm_str_set (&te->reason, "");
    jm_wfiles_push (&te->files, "out.dat", out_hash, strlen (result), 0640);
    jm_wfiles_push (&te->files, "log", JM_HASH_EMPTY, 0, 0644);
    s_send (agent, te);
    s_serve_fetches (agent, out_hash, result, strlen (result));
    r = s_wait_task (client, sub_id, 0, "DONE");
    assert_int_equal (r->tstats.v[0].exit_code, 0);
    assert_int_equal (r->subs.v[0].bytes, strlen (input));
    jm_msg_destroy (&r);
    snprintf (path, sizeof path, "%s/t0/out.dat", s_wb);
    char *got = s_slurp (path);
    assert_non_null (got);
    assert_string_equal (got, result);
    free (got);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    snprintf (path, sizeof path, "%s/t0/log", s_wb);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_size, 0);

    js = jm_msg_new (JM_MSG_JOB_STATE);
    js->job_id = job_id;
    jm_str_set (&js->state, "DONE");
    jm_str_set (&js->reason, "");
    s_send (agent, js);

    /* next credit: task 1 exits 2 -> FAILED with exit code 2 */
    s_credit (agent, 1);
    job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->tasks.v[0].path, "t1");
    te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = job->tasks.v[0].id;
    te->exit_code = 2;
    jm_str_set (&te->reason, "");
    s_send (agent, te);
    jm_msg_destroy (&job);
    r = s_wait_task (client, sub_id, 1, "FAILED");
    assert_int_equal (r->tstats.v[1].exit_code, 2);
    jm_msg_destroy (&r);

    /* task 2 reports a result path outside its dir -> FAILED naming it */
    s_credit (agent, 1);
    job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->tasks.v[0].path, "t2");
    te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = job->tasks.v[0].id;
    te->exit_code = 0;
    jm_str_set (&te->reason, "");
    jm_wfiles_push (&te->files, "../escape", out_hash, strlen (result), 0644);
    s_send (agent, te);
    jm_msg_destroy (&job);
    r = s_wait_task (client, sub_id, 2, "FAILED");
    assert_non_null (strstr (r->tstats.v[2].reason, "../escape"));
    assert_string_equal (r->subs.v[0].state, "FAILED");
    jm_msg_destroy (&r);
    snprintf (path, sizeof path, "%s/escape", s_wb);
    assert_int_not_equal (access (path, F_OK), 0);

    /* WATCH on a finished submission: one final PROGRESS */
    jm_msg_t *wa = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&wa->sub_id, sub_id);
    s_send (client, wa);
    jm_msg_t *p = s_expect (client, JM_MSG_PROGRESS);
    assert_true (p->finished);
    assert_string_equal (p->state, "FAILED");
    assert_int_equal (p->counts.v[JM_TASK_DONE], 1);
    assert_int_equal (p->counts.v[JM_TASK_FAILED], 2);
    jm_msg_destroy (&p);

    /* unknown submission -> ERROR 4 */
    jm_msg_t *st4 = jm_msg_new (JM_MSG_STATUS);
    jm_str_set (&st4->sub_id, "nope");
    s_send (client, st4);
    jm_msg_t *e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 4);
    jm_msg_destroy (&e);

    zsock_destroy (&agent);
    zsock_destroy (&client);
    free (sub_id);

    /* state survives a restart */
    s_stop_coord ();
    s_start_coord ();
    client = s_client ();
    s_hello (client, "client", "");
    w = s_expect (client, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    r = s_status (client, "");
    assert_int_equal (r->subs.n, 1);
    assert_string_equal (r->subs.v[0].state, "FAILED");
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_DONE], 1);
    jm_msg_destroy (&r);
    zsock_destroy (&client);
}

static void
test_watch_and_cancel (void **state)
{
    (void)state;
    zsock_t *client = s_client_ready ();
    jm_msg_t *sub = s_submit_new (s_wb, 2, 2);
    s_task (sub, "c0");
    s_task (sub, "c1");
    s_task (sub, "c2");
    char *sub_id = s_submit_ok (client, sub, 3);

    jm_msg_t *wa = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&wa->sub_id, sub_id);
    s_send (client, wa);
    jm_msg_t *p = s_expect (client, JM_MSG_PROGRESS);
    assert_false (p->finished);
    assert_int_equal (p->total, 3);
    jm_msg_destroy (&p);

    zsock_t *agent = s_agent_sock ("good");
    s_hello (agent, "agent", "siteA");
    jm_msg_t *w = s_expect (agent, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_int_equal (job->tasks.n, 2); /* group_size 2 */
    assert_string_equal (job->tasks.v[1].path, "c1");
    uint64_t job_id = job->job_id;
    jm_msg_destroy (&job);
    /* the change is pushed to the watcher */
    p = s_expect (client, JM_MSG_PROGRESS);
    assert_int_equal (p->counts.v[JM_TASK_STAGING], 2);
    jm_msg_destroy (&p);

    jm_msg_t *cn = jm_msg_new (JM_MSG_CANCEL);
    jm_str_set (&cn->sub_id, sub_id);
    s_send (client, cn);
    jm_msg_t *cj = s_expect (agent, JM_MSG_CANCEL_JOB);
    assert_int_equal (cj->job_id, job_id);
    jm_msg_destroy (&cj);
    bool cancelled = false, finished = false;
    for (int i = 0; i < 5 && !(cancelled && finished); i++) {
        jm_msg_t *m = s_recv (client, TMO);
        assert_non_null (m);
        if (m->id == JM_MSG_CANCELLED) {
            assert_int_equal (m->total, 3);
            cancelled = true;
        }
        else if (m->id == JM_MSG_PROGRESS && m->finished) {
            assert_string_equal (m->state, "CANCELLED");
            finished = true;
        }
        jm_msg_destroy (&m);
    }
    assert_true (cancelled && finished);
    /* later reports about the cancelled job are ignored */
    jm_msg_t *te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = JM_COORD_TASK_WIRE_ID (job_id, 0);
    te->exit_code = 0;
    jm_str_set (&te->reason, "");
    s_send (agent, te);
    jm_msg_t *r = s_status (client, sub_id);
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_CANCELLED], 3);
    assert_string_equal (r->subs.v[0].state, "CANCELLED");
    jm_msg_destroy (&r);
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

static void
test_unallowed_agent (void **state)
{
    (void)state;
    zsock_t *agent = s_agent_sock ("bad");
    s_hello (agent, "agent", "intruder");
    jm_msg_t *m = s_recv (agent, 1000);
    assert_null (m);
    zsock_destroy (&agent);
}

static void
test_bad_submit (void **state)
{
    (void)state;
    zsock_t *client = s_client_ready ();
    jm_msg_t *r = s_status (client, "");
    size_t before = r->subs.n;
    jm_msg_destroy (&r);

    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    s_task (sub, "ok");
    s_task (sub, "../x");
    s_send (client, sub);
    jm_msg_t *e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 5);
    assert_non_null (strstr (e->reason, "task 1"));
    assert_non_null (strstr (e->reason, "../x"));
    jm_msg_destroy (&e);

    /* a forward file the store lacks */
    sub = s_submit_new (s_wb, 1, 1);
    jm_wtask_t *t = s_task (sub, "t");
    jm_wfiles_push (&t->forward, "missing.dat",
                    "abababababababababababababababababababababababababababababababab", 5, 0644);
    s_send (client, sub);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 5);
    assert_non_null (strstr (e->reason, "missing.dat"));
    jm_msg_destroy (&e);

    /* a relative work base */
    sub = s_submit_new ("relative/wb", 1, 1);
    s_task (sub, "t");
    s_send (client, sub);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 5);
    jm_msg_destroy (&e);

    r = s_status (client, "");
    assert_int_equal (r->subs.n, before);
    jm_msg_destroy (&r);
    zsock_destroy (&client);
}

static void
test_bad_messages (void **state)
{
    (void)state;
    zsock_t *client = s_client ();
    /* before HELLO -> 3 */
    jm_msg_t *st = jm_msg_new (JM_MSG_STATUS);
    jm_str_set (&st->sub_id, "");
    s_send (client, st);
    jm_msg_t *e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 3);
    jm_msg_destroy (&e);

    /* garbage -> 2 */
    zstr_send (client, "\xc1garbage that is not msgpack");
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 2);
    jm_msg_destroy (&e);

    /* version 2 -> 1, naming both versions */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    msgpack_pack_str (&pk, 1);
    msgpack_pack_str_body (&pk, "v", 1);
    msgpack_pack_uint64 (&pk, 9);
    msgpack_pack_str (&pk, 1);
    msgpack_pack_str_body (&pk, "t", 1);
    msgpack_pack_str (&pk, 5);
    msgpack_pack_str_body (&pk, "HELLO", 5);
    zframe_t *fr = zframe_new (sb.data, sb.size);
    msgpack_sbuffer_destroy (&sb);
    assert_int_equal (zframe_send (&fr, client, 0), 0);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 1);
    assert_non_null (strstr (e->reason, "version 9"));
    assert_non_null (strstr (e->reason, "version 2"));
    jm_msg_destroy (&e);

    /* two frames -> 2 */
    zstr_sendx (client, "a", "b", NULL);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 2);
    jm_msg_destroy (&e);

    /* bad role -> 3 */
    s_hello (client, "emperor", "");
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 3);
    jm_msg_destroy (&e);

    /* and the coordinator keeps serving */
    s_hello (client, "client", "");
    jm_msg_t *w = s_expect (client, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    jm_msg_t *r = s_status (client, "");
    jm_msg_destroy (&r);
    zsock_destroy (&client);
}

static void
s_wait_state (zsock_t *client, const char *sub_id, uint64_t idx, const char *want)
{
    jm_msg_t *r = s_wait_task (client, sub_id, idx, want);
    jm_msg_destroy (&r);
}

/* Restart the coordinator with heartbeat_ms and chunk_size (config.yml
   rewritten; window 2). */
static void
s_restart_with (int ms, int chunk)
{
    char path[400], text[256];
    snprintf (path, sizeof path, "%s/config.yml", s_home);
    snprintf (text, sizeof text,
              "bind: 'tcp://127.0.0.1:*'\nheartbeat_ms: %d\nchunk_size: %d\nwindow: 2\n", ms,
              chunk);
    s_write (path, text);
    s_stop_coord ();
    s_start_coord ();
}

/* A new agent session for siteA (fresh socket, so a new routing id). */
static zsock_t *
s_agent_ready (uint64_t *hb_p)
{
    zsock_t *agent = s_agent_sock ("good");
    s_hello (agent, "agent", "siteA");
    jm_msg_t *w = s_expect (agent, JM_MSG_WELCOME);
    if (hb_p)
        *hb_p = w->heartbeat_ms;
    jm_msg_destroy (&w);
    return agent;
}

static void
s_task_end (zsock_t *agent, uint64_t tid, const char *file, const char *hash, size_t size)
{
    jm_msg_t *te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = tid;
    te->exit_code = 0;
    jm_str_set (&te->reason, "");
    if (file)
        jm_wfiles_push (&te->files, file, hash, size, 0644);
    s_send (agent, te);
}

static void
s_assert_task (zsock_t *client, const char *sub_id, size_t idx, const char *want)
{
    jm_msg_t *r = s_status (client, sub_id);
    assert_true (idx < r->tstats.n);
    if (strcmp (r->tstats.v[idx].state, want) != 0)
        fail_msg ("task %zu of %s is %s (%s), expected %s", idx, sub_id, r->tstats.v[idx].state,
                  r->tstats.v[idx].reason, want);
    jm_msg_destroy (&r);
}

static void
s_assert_file (const char *rel, const char *want)
{
    char path[600];
    snprintf (path, sizeof path, "%s/%s", s_wb, rel);
    char *got = s_slurp (path);
    if (!got)
        fail_msg ("result %s missing", path);
    assert_string_equal (got, want);
    free (got);
}

/*  A site that goes silent, or whose agent reconnects, loses no results:
    fetches in flight wait for the site and are asked again when it says
    HELLO (new session) or is heard from again (same session); tasks still
    out at the site stay assigned and are accepted from the new session;
    only a NOFILE fails a task, naming the file. */
static void
test_site_lost (void **state)
{
    (void)state;
    s_restart_with (200, 8);
    zsock_t *client = s_client_ready ();
    jm_msg_t *sub = s_submit_new (s_wb, 4, 4);
    s_task (sub, "lost0");
    s_task (sub, "lost1");
    s_task (sub, "lost2");
    s_task (sub, "lost3");
    char *sub_id = s_submit_ok (client, sub, 4);

    uint64_t hb = 0;
    zsock_t *agent = s_agent_ready (&hb);
    assert_int_equal (hb, 200);
    /* heartbeats are answered */
    jm_msg_t *h = jm_msg_new (JM_MSG_HEARTBEAT);
    s_send (agent, h);
    zsock_set_rcvtimeo (agent, TMO);
    jm_msg_t *m = jm_msg_recv (agent, NULL, NULL, NULL, NULL, 0);
    assert_non_null (m);
    assert_int_equal (m->id, JM_MSG_HEARTBEAT);
    jm_msg_destroy (&m);

    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_int_equal (job->tasks.n, 4);
    uint64_t tid[4];
    jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
    for (int i = 0; i < 4; i++) {
        tid[i] = job->tasks.v[i].id;
        jm_u64s_push (&ts->ids, tid[i]);
    }
    s_send (agent, ts);
    jm_msg_destroy (&job);
    s_wait_state (client, sub_id, 3, "RUNNING");

    /* task 0 ends; the agent goes away before serving the FETCH */
    const char *data0 = "result of lost0, kept by the agent\n";
    char hash0[JM_HASH_HEX];
    jm_sha256_buf (data0, strlen (data0), hash0);
    s_task_end (agent, tid[0], "out.dat", hash0, strlen (data0));
    jm_msg_t *f = s_expect (agent, JM_MSG_FETCH);
    assert_string_equal (f->hash, hash0);
    jm_msg_destroy (&f);
    zsock_destroy (&agent);

    /* silent for well over 3 heartbeat intervals: the site is lost, but
       nothing fails and the running tasks stay with the site */
    zclock_sleep ((int)(6 * hb));
    s_assert_task (client, sub_id, 0, "FETCHING");
    s_assert_task (client, sub_id, 1, "RUNNING");

    /* the agent comes back on a new connection: the fetch is asked again */
    agent = s_agent_ready (NULL);
    s_serve_fetches (agent, hash0, data0, strlen (data0));
    s_wait_state (client, sub_id, 0, "DONE");
    s_assert_file ("lost0/out.dat", data0);

    /* a task of the old session's job, reported by the new session */
    const char *data1 = "result of lost1 after the reconnect\n";
    char hash1[JM_HASH_HEX];
    jm_sha256_buf (data1, strlen (data1), hash1);
    s_task_end (agent, tid[1], "out.dat", hash1, strlen (data1));
    s_serve_fetches (agent, hash1, data1, strlen (data1));
    s_wait_state (client, sub_id, 1, "DONE");
    s_assert_file ("lost1/out.dat", data1);

    /* same session: the agent falls silent during a fetch (as when it is
       stopped), the site is lost, then it answers the FETCHes it had (8-byte
       chunks, two in flight): those late answers must not be taken for
       answers to the FETCHes asked again */
    const char *data3 = "result of lost3 after a pause\n";
    char hash3[JM_HASH_HEX];
    jm_sha256_buf (data3, strlen (data3), hash3);
    s_task_end (agent, tid[3], "res/out3.dat", hash3, strlen (data3));
    jm_msg_t *old[2];
    for (int i = 0; i < 2; i++) {
        old[i] = s_expect (agent, JM_MSG_FETCH);
        assert_string_equal (old[i]->hash, hash3);
        assert_int_equal (old[i]->offset, 8 * i);
        assert_int_equal (old[i]->size, 8);
    }
    zclock_sleep ((int)(6 * hb));
    s_assert_task (client, sub_id, 3, "FETCHING");
    for (int i = 0; i < 2; i++) {
        jm_msg_t *c = jm_msg_new (JM_MSG_CHUNK);
        memcpy (c->hash, hash3, JM_HASH_HEX);
        c->offset = old[i]->offset;
        jm_msg_set_data (c, data3 + old[i]->offset, 8);
        s_send (agent, c);
        jm_msg_destroy (&old[i]);
    }
    s_serve_fetches (agent, hash3, data3, strlen (data3));
    s_wait_state (client, sub_id, 3, "DONE");
    s_assert_file ("lost3/res/out3.dat", data3);

    /* the agent no longer has a file: NOFILE fails the task, naming it */
    char hash2[JM_HASH_HEX];
    jm_sha256_buf ("gone", 4, hash2);
    s_task_end (agent, tid[2], "gone.dat", hash2, 4);
    f = s_expect (agent, JM_MSG_FETCH);
    assert_string_equal (f->hash, hash2);
    jm_msg_destroy (&f);
    jm_msg_t *nf = jm_msg_new (JM_MSG_NOFILE);
    memcpy (nf->hash, hash2, JM_HASH_HEX);
    jm_str_set (&nf->reason, "not in the agent's store");
    s_send (agent, nf);
    jm_msg_t *r = s_wait_task (client, sub_id, 2, "FAILED");
    assert_non_null (strstr (r->tstats.v[2].reason, "gone.dat"));
    assert_string_equal (r->subs.v[0].state, "FAILED");
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_DONE], 3);
    jm_msg_destroy (&r);

    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
    s_restart_with (1000, 1024 * 1024);
}

/*  After a coordinator restart the tasks that were out are PENDING again;
    an agent's report on the old job is ignored, also once the task is in
    a new job (whose id differs from every id handed out before). */
static void
test_restart_ignores_old_reports (void **state)
{
    (void)state;
    zsock_t *client = s_client_ready ();
    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    s_task (sub, "again0");
    char *sub_id = s_submit_ok (client, sub, 1);
    zsock_t *agent = s_agent_ready (NULL);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    uint64_t old_job = job->job_id, old_tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
    jm_u64s_push (&ts->ids, old_tid);
    s_send (agent, ts);
    s_wait_state (client, sub_id, 0, "RUNNING");
    zsock_destroy (&agent);
    zsock_destroy (&client);

    s_stop_coord ();
    s_start_coord ();
    client = s_client_ready ();
    s_assert_task (client, sub_id, 0, "PENDING");
    agent = s_agent_ready (NULL);
    /* the old job's report: ignored, the task stays PENDING */
    const char *data = "stale";
    char hash[JM_HASH_HEX];
    jm_sha256_buf (data, strlen (data), hash);
    s_task_end (agent, old_tid, "out.dat", hash, strlen (data));
    jm_msg_t *js = jm_msg_new (JM_MSG_JOB_STATE);
    js->job_id = old_job;
    jm_str_set (&js->state, "FAILED");
    jm_str_set (&js->reason, "old job");
    s_send (agent, js);
    assert_null (s_recv (agent, 300)); /* no FETCH for it */
    s_assert_task (client, sub_id, 0, "PENDING");

    /* the task goes out in a new job; the old report still does not count */
    s_credit (agent, 1);
    job = s_expect (agent, JM_MSG_JOB);
    assert_true (job->job_id > old_job);
    uint64_t new_tid = job->tasks.v[0].id;
    assert_int_not_equal (new_tid, old_tid);
    jm_msg_destroy (&job);
    s_task_end (agent, old_tid, "out.dat", hash, strlen (data));
    assert_null (s_recv (agent, 300));
    s_assert_task (client, sub_id, 0, "STAGING");
    s_task_end (agent, new_tid, NULL, NULL, 0);
    jm_msg_t *r = s_wait_task (client, sub_id, 0, "DONE");
    assert_string_equal (r->subs.v[0].state, "DONE");
    jm_msg_destroy (&r);
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

/* The submission's resources reach every JOB as sent, also after a
   restart (SQLite); resources the coordinator cannot parse are refused. */
static void
test_resources_kept (void **state)
{
    (void)state;
    char err[256];
    jm_resources_t *res = jm_resources_new ();
    res->group_size = 2;
    res->cpu_per_node = 4;
    jm_str_set (&res->queue_name, "debug");
    char *json = jm_resources_to_json (res);
    jm_resources_destroy (&res);

    zsock_t *client = s_client_ready ();
    jm_msg_t *sub = s_submit_new (s_wb, 2, 1);
    jm_str_set (&sub->resources, json);
    s_task (sub, "res0");
    s_task (sub, "res1");
    s_task (sub, "res2");
    char *sub_id = s_submit_ok (client, sub, 3);
    zsock_t *agent = s_agent_ready (NULL);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->resources, json);
    assert_int_equal (job->tasks.n, 2);
    jm_msg_destroy (&job);
    zsock_destroy (&agent);
    zsock_destroy (&client);

    s_stop_coord ();
    s_start_coord ();
    client = s_client_ready ();
    agent = s_agent_ready (NULL);
    s_credit (agent, 2);
    job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->sub_id, sub_id);
    res = jm_resources_from_json (job->resources, "test", err, sizeof err);
    assert_non_null (res);
    assert_int_equal (res->cpu_per_node, 4);
    assert_string_equal (res->queue_name, "debug");
    jm_resources_destroy (&res);
    jm_msg_destroy (&job);

    /* not JSON, a bad field, and group_size disagreeing with the message */
    const char *bad[] = {"{not json", "{\"queue_name\": \"a b\"}", json};
    for (size_t i = 0; i < 3; i++) {
        sub = s_submit_new (s_wb, i == 2 ? 3 : 1, 1);
        jm_str_set (&sub->resources, bad[i]);
        s_task (sub, "resbad");
        s_send (client, sub);
        jm_msg_t *e = s_expect (client, JM_MSG_ERROR);
        assert_int_equal (e->code, 5);
        assert_non_null (strstr (e->reason, i == 1   ? "queue_name"
                                            : i == 2 ? "group_size"
                                                     : "SUBMIT"));
        jm_msg_destroy (&e);
    }
    /* leave nothing pending for the tests that follow */
    jm_msg_t *c = jm_msg_new (JM_MSG_CANCEL);
    jm_str_set (&c->sub_id, sub_id);
    s_send (client, c);
    c = s_expect (client, JM_MSG_CANCELLED);
    jm_msg_destroy (&c);
    free (json);
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

/* Submit ntasks tasks under dir with these backward common patterns and
   run them to their end at the agent (no result files). */
static char *
s_bc_run (zsock_t *client, zsock_t *agent, const char *dir, size_t ntasks, const char **patterns,
          size_t npatterns)
{
    jm_msg_t *sub = s_submit_new (s_wb, ntasks, 1);
    for (size_t i = 0; i < ntasks; i++) {
        char path[128];
        snprintf (path, sizeof path, "%s/t%zu", dir, i);
        s_task (sub, path);
    }
    for (size_t i = 0; i < npatterns; i++)
        jm_strs_push (&sub->backward_common, patterns[i]);
    char *sub_id = s_submit_ok (client, sub, ntasks);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_int_equal (job->tasks.n, ntasks);
    for (size_t i = 0; i < ntasks; i++) {
        if (i == ntasks - 1) {
            /* nothing is collected before the last task has ended */
            if (ntasks > 1)
                s_wait_state (client, sub_id, ntasks - 2, "DONE");
            assert_null (s_recv (agent, 200));
        }
        s_task_end (agent, job->tasks.v[i].id, NULL, NULL, 0);
    }
    jm_msg_t *js = jm_msg_new (JM_MSG_JOB_STATE);
    js->job_id = job->job_id;
    jm_str_set (&js->state, "DONE");
    jm_str_set (&js->reason, "");
    s_send (agent, js);
    jm_msg_destroy (&job);
    return sub_id;
}

static jm_msg_t *
s_expect_collect (zsock_t *agent, const char *sub_id, size_t npatterns)
{
    jm_msg_t *c = s_expect (agent, JM_MSG_COLLECT);
    assert_string_equal (c->sub_id, sub_id);
    assert_int_equal (c->backward_common.n, npatterns);
    return c;
}

static void
s_collected (zsock_t *agent, const char *sub_id, const char *reason, const char **paths,
             const char **datas, size_t n)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_COLLECTED);
    jm_str_set (&m->sub_id, sub_id);
    jm_str_set (&m->reason, reason);
    for (size_t i = 0; i < n; i++) {
        char hash[JM_HASH_HEX];
        jm_sha256_buf (datas[i], strlen (datas[i]), hash);
        jm_wfiles_push (&m->files, paths[i], hash, strlen (datas[i]), 0640);
    }
    s_send (agent, m);
}

static const char *
s_sub_state (zsock_t *client, const char *sub_id)
{
    static char state[32];
    jm_msg_t *r = s_status (client, sub_id);
    snprintf (state, sizeof state, "%s", r->subs.v[0].state);
    jm_msg_destroy (&r);
    return state;
}

static void
s_wait_sub (zsock_t *client, const char *sub_id, const char *want)
{
    for (int i = 0; i < 100; i++) {
        if (strcmp (s_sub_state (client, sub_id), want) == 0)
            return;
        zclock_sleep (50);
    }
    fail_msg ("submission %s is %s, never became %s", sub_id, s_sub_state (client, sub_id), want);
}

/*  Backward common files: after the last task the coordinator sends
    COLLECT to the site, fetches what COLLECTED lists and writes it into
    the work base; only then is the submission DONE (PROGRESS.finished).
    A missing literal file, a path leaving the work base or a site that
    stays away make it FAILED; a pending collection survives a restart. */
static void
test_backward_common (void **state)
{
    (void)state;
    zsock_t *client = s_client_ready ();
    zsock_t *agent = s_agent_ready (NULL);

    const char *pats[] = {"bc_summary.txt", "bc/*.dat"};
    char *sub_id = s_bc_run (client, agent, "bc", 2, pats, 2);
    jm_msg_t *c = s_expect_collect (agent, sub_id, 2);
    assert_string_equal (c->backward_common.v[0], "bc_summary.txt");
    assert_string_equal (c->backward_common.v[1], "bc/*.dat");
    jm_msg_destroy (&c);
    /* every task is DONE, but the submission is not finished */
    s_assert_task (client, sub_id, 1, "DONE");
    assert_string_equal (s_sub_state (client, sub_id), "ACTIVE");
    jm_msg_t *wa = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&wa->sub_id, sub_id);
    s_send (client, wa);
    jm_msg_t *p = s_expect (client, JM_MSG_PROGRESS);
    assert_false (p->finished);
    assert_int_equal (p->counts.v[JM_TASK_DONE], 2);
    jm_msg_destroy (&p);

    const char *paths[] = {"bc_summary.txt", "bc/all.dat"};
    const char *datas[] = {"line of t0\nline of t1\n", "common result\n"};
    s_collected (agent, sub_id, "", paths, datas, 2);
    for (int i = 0; i < 2; i++) {
        char hash[JM_HASH_HEX];
        jm_sha256_buf (datas[i], strlen (datas[i]), hash);
        s_serve_fetches (agent, hash, datas[i], strlen (datas[i]));
    }
    p = s_expect (client, JM_MSG_PROGRESS);
    while (!p->finished) {
        jm_msg_destroy (&p);
        p = s_expect (client, JM_MSG_PROGRESS);
    }
    assert_string_equal (p->state, "DONE");
    jm_msg_destroy (&p);
    s_assert_file ("bc_summary.txt", datas[0]);
    s_assert_file ("bc/all.dat", datas[1]);
    char path[600];
    struct stat st;
    snprintf (path, sizeof path, "%s/bc/all.dat", s_wb);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    /* a second COLLECTED is ignored */
    s_collected (agent, sub_id, "late", NULL, NULL, 0);
    assert_null (s_recv (agent, 200));
    assert_string_equal (s_sub_state (client, sub_id), "DONE");
    free (sub_id);

    /* a literal file the site does not have: FAILED, tasks stay DONE */
    const char *pmiss[] = {"bc_missing.txt"};
    sub_id = s_bc_run (client, agent, "bcm", 1, pmiss, 1);
    c = s_expect_collect (agent, sub_id, 1);
    jm_msg_destroy (&c);
    s_collected (agent, sub_id, "backward common file 'bc_missing.txt' not found", NULL, NULL, 0);
    s_wait_sub (client, sub_id, "FAILED");
    s_assert_task (client, sub_id, 0, "DONE");
    free (sub_id);

    /* a path that leaves the work base: refused, nothing written */
    sub_id = s_bc_run (client, agent, "bce", 1, pmiss, 1);
    c = s_expect_collect (agent, sub_id, 1);
    jm_msg_destroy (&c);
    const char *epaths[] = {"../bc_escape.txt"};
    const char *edata[] = {"escaped\n"};
    s_collected (agent, sub_id, "", epaths, edata, 1);
    s_wait_sub (client, sub_id, "FAILED");
    snprintf (path, sizeof path, "%s/bc_escape.txt", s_tmp);
    assert_int_not_equal (stat (path, &st), 0);
    free (sub_id);

    /* pending collection across a coordinator restart: COLLECT again when
       the site says HELLO */
    const char *pre[] = {"bc_restart.txt"};
    sub_id = s_bc_run (client, agent, "bcr", 1, pre, 1);
    c = s_expect_collect (agent, sub_id, 1);
    jm_msg_destroy (&c);
    zsock_destroy (&agent);
    zsock_destroy (&client);
    s_stop_coord ();
    s_start_coord ();
    client = s_client_ready ();
    assert_string_equal (s_sub_state (client, sub_id), "ACTIVE");
    agent = s_agent_ready (NULL);
    c = s_expect_collect (agent, sub_id, 1);
    jm_msg_destroy (&c);
    const char *rdata[] = {"after the restart\n"};
    s_collected (agent, sub_id, "", pre, rdata, 1);
    char rhash[JM_HASH_HEX];
    jm_sha256_buf (rdata[0], strlen (rdata[0]), rhash);
    s_serve_fetches (agent, rhash, rdata[0], strlen (rdata[0]));
    s_wait_sub (client, sub_id, "DONE");
    s_assert_file ("bc_restart.txt", rdata[0]);
    free (sub_id);

    /* the site goes away before answering and stays away for more than
       10 heartbeat intervals: FAILED */
    zsock_destroy (&agent);
    zsock_destroy (&client);
    s_restart_with (200, 1024 * 1024);
    client = s_client_ready ();
    agent = s_agent_ready (NULL);
    sub_id = s_bc_run (client, agent, "bcg", 1, pre, 1);
    c = s_expect_collect (agent, sub_id, 1);
    jm_msg_destroy (&c);
    zsock_destroy (&agent);
    zclock_sleep (1500);
    assert_string_equal (s_sub_state (client, sub_id), "ACTIVE");
    s_wait_sub (client, sub_id, "FAILED");
    free (sub_id);

    zsock_destroy (&client);
    s_restart_with (1000, 1024 * 1024);
}

/* 1000 trivial tasks through a fake agent that answers at once: the
   coordinator alone must move hundreds of tasks per second. */
static void
test_throughput (void **state)
{
    (void)state;
    zsock_t *client = s_client_ready ();
    jm_msg_t *sub = s_submit_new (s_wb, 10, 2);
    for (int i = 0; i < 1000; i++) {
        char path[32];
        snprintf (path, sizeof path, "many/t%04d", i);
        s_task (sub, path);
    }
    int64_t t0 = zclock_mono ();
    char *sub_id = s_submit_ok (client, sub, 1000);
    zsock_t *agent = s_agent_sock ("good");
    s_hello (agent, "agent", "siteA");
    jm_msg_t *w = s_expect (agent, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    s_credit (agent, 4);
    size_t ended = 0;
    while (ended < 1000) {
        jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
        jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
        for (size_t i = 0; i < job->tasks.n; i++)
            jm_u64s_push (&ts->ids, job->tasks.v[i].id);
        s_send (agent, ts);
        for (size_t i = 0; i < job->tasks.n; i++) {
            jm_msg_t *te = jm_msg_new (JM_MSG_TASK_END);
            te->task_id = job->tasks.v[i].id;
            jm_str_set (&te->reason, "");
            s_send (agent, te);
            ended++;
        }
        jm_msg_t *js = jm_msg_new (JM_MSG_JOB_STATE);
        js->job_id = job->job_id;
        jm_str_set (&js->state, "DONE");
        jm_str_set (&js->reason, "");
        s_send (agent, js);
        s_credit (agent, 1);
        jm_msg_destroy (&job);
    }
    jm_msg_t *wa = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&wa->sub_id, sub_id);
    s_send (client, wa);
    bool finished = false;
    while (!finished) {
        jm_msg_t *p = s_expect (client, JM_MSG_PROGRESS);
        finished = p->finished;
        if (finished) {
            assert_string_equal (p->state, "DONE");
            assert_int_equal (p->counts.v[JM_TASK_DONE], 1000);
        }
        jm_msg_destroy (&p);
    }
    int64_t ms = zclock_mono () - t0;
    printf ("1000 tasks through the coordinator in %" PRId64 " ms (%.0f tasks/s)\n", ms,
            ms > 0 ? 1000.0 * 1000 / (double)ms : 0.0);
    assert_true (ms < 5000); /* at least 200 tasks/s */
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

/* ----------------------------------------------- large result files */

#define S_BIG (64u * 1024 * 1024)
#define S_BIG_COPIES 6

static char *s_big; /* S_BIG bytes of pseudo-random data */
static char s_big_hash[JM_HASH_HEX];

static void
s_big_make (void)
{
    if (s_big)
        return;
    s_big = malloc (S_BIG);
    assert_non_null (s_big);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < S_BIG; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy (s_big + i, &x, 8);
    }
    jm_sha256_buf (s_big, S_BIG, s_big_hash);
}

/* A submission of one task at dir; the agent gets its job; returns the
   task's wire id (*sub_id_p: the submission, caller frees). */
static uint64_t
s_one_task_job (zsock_t *client, zsock_t *agent, const char *dir, char **sub_id_p)
{
    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    s_task (sub, dir);
    *sub_id_p = s_submit_ok (client, sub, 1);
    s_credit (agent, 1);
    jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
    assert_string_equal (job->sub_id, *sub_id_p);
    uint64_t tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
    jm_u64s_push (&ts->ids, tid);
    s_send (agent, ts);
    return tid;
}

/* TASK_END for tid with S_BIG_COPIES results big<k>.bin, all s_big. */
static void
s_big_task_end (zsock_t *agent, uint64_t tid)
{
    jm_msg_t *te = jm_msg_new (JM_MSG_TASK_END);
    te->task_id = tid;
    te->exit_code = 0;
    jm_str_set (&te->reason, "");
    for (int k = 1; k <= S_BIG_COPIES; k++) {
        char name[32];
        snprintf (name, sizeof name, "big%d.bin", k);
        jm_wfiles_push (&te->files, name, s_big_hash, S_BIG, 0600);
    }
    s_send (agent, te);
}

/*  Result files of 6 x 64 MiB (one object) are written into the work
    base by the coordinator's file worker: meanwhile the coordinator
    answers the agent's HEARTBEATs in a small part of the time the copies
    take, and the files arrive byte-exact before the task is DONE. */
static void
test_large_result_keeps_loop_running (void **state)
{
    (void)state;
    s_big_make ();
    s_restart_with (200, 1024 * 1024);
    zsock_t *client = s_client_ready ();
    zsock_t *agent = s_agent_ready (NULL);
    char *sub_id = NULL;
    uint64_t tid = s_one_task_job (client, agent, "bigres", &sub_id);
    jm_msg_t *wa = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&wa->sub_id, sub_id);
    s_send (client, wa);
    s_big_task_end (agent, tid);
    s_serve_fetches (agent, s_big_hash, s_big, S_BIG);

    /* probe: one HEARTBEAT at a time, timing each answer, until DONE */
    int64_t t0 = zclock_mono (), probe_sent = 0, max_probe = 0, done_ms = 0;
    size_t probes = 0;
    zpoller_t *poller = zpoller_new (agent, client, NULL);
    while (!done_ms && zclock_mono () - t0 < 60000) {
        if (!probe_sent) {
            s_send (agent, jm_msg_new (JM_MSG_HEARTBEAT));
            probe_sent = zclock_mono ();
        }
        void *which = zpoller_wait (poller, 100);
        if (!which)
            continue;
        char err[512];
        jm_msg_t *m = jm_msg_recv (which, NULL, NULL, NULL, err, sizeof err);
        assert_non_null (m);
        int64_t now = zclock_mono ();
        if (which == agent && m->id == JM_MSG_HEARTBEAT) {
            if (now - probe_sent > max_probe)
                max_probe = now - probe_sent;
            probes++;
            probe_sent = 0;
        }
        else if (which == client && m->id == JM_MSG_PROGRESS && m->finished) {
            assert_string_equal (m->state, "DONE");
            done_ms = now - t0;
        }
        else if (which == agent)
            fail_msg ("unexpected %s from the coordinator", jm_msg_name (m->id));
        jm_msg_destroy (&m);
    }
    zpoller_destroy (&poller);
    assert_true (done_ms > 0);

    /* byte-exact, with their mode */
    for (int k = 1; k <= S_BIG_COPIES; k++) {
        char path[600], hash[JM_HASH_HEX];
        uint64_t size = 0;
        snprintf (path, sizeof path, "%s/bigres/big%d.bin", s_wb, k);
        assert_int_equal (jm_sha256_file (path, hash, &size), 0);
        assert_int_equal (size, S_BIG);
        assert_string_equal (hash, s_big_hash);
        struct stat st;
        assert_int_equal (stat (path, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0600);
        unlink (path);
    }
    /* how long those copies take here, done inline */
    char path[600], err[512];
    snprintf (path, sizeof path, "%s/store", s_home);
    jm_store_t *store = jm_store_new (path, err, sizeof err);
    assert_non_null (store);
    snprintf (path, sizeof path, "%s/copytime", s_tmp);
    mkdir (path, 0700);
    int dfd = open (path, O_RDONLY | O_DIRECTORY);
    assert_true (dfd >= 0);
    int64_t c0 = zclock_mono ();
    for (int k = 1; k <= S_BIG_COPIES; k++) {
        char name[32];
        snprintf (name, sizeof name, "big%d.bin", k);
        assert_int_equal (jm_store_copy_out (store, s_big_hash, dfd, name, 0600, err, sizeof err),
                          0);
    }
    int64_t copy_ms = zclock_mono () - c0;
    for (int k = 1; k <= S_BIG_COPIES; k++) {
        char name[32];
        snprintf (name, sizeof name, "big%d.bin", k);
        unlinkat (dfd, name, 0);
    }
    close (dfd);
    jm_store_destroy (&store);
    fprintf (stderr,
             "copy of %d x 64 MiB inline: %" PRId64
             " ms; after the fetch the task was DONE in %" PRId64
             " ms; %zu HEARTBEATs answered meanwhile, slowest in %" PRId64 " ms\n",
             S_BIG_COPIES, copy_ms, done_ms, probes, max_probe);
    assert_true (probes >= 3);
    assert_true (max_probe * 2 < copy_ms);
    assert_true (max_probe < 3 * 200); /* the site was never at risk of being lost */
    s_assert_task (client, sub_id, 0, "DONE");
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

/*  CANCEL while the file worker is writing a task's results: the task and
    the submission are CANCELLED at once and stay so when the worker's
    answer comes; the coordinator carries on. */
static void
test_cancel_while_placing (void **state)
{
    (void)state;
    s_big_make ();
    zsock_t *client = s_client_ready ();
    zsock_t *agent = s_agent_ready (NULL);
    char *sub_id = NULL;
    uint64_t tid = s_one_task_job (client, agent, "bigcancel", &sub_id);
    /* the object is in the coordinator's store already (previous test,
       or fetched here): placing starts right after TASK_END */
    s_big_task_end (agent, tid);
    char first[600], last[600];
    snprintf (first, sizeof first, "%s/bigcancel/big1.bin", s_wb);
    snprintf (last, sizeof last, "%s/bigcancel/big%d.bin", s_wb, S_BIG_COPIES);
    int64_t t0 = zclock_mono ();
    while (access (first, F_OK) != 0) {
        jm_msg_t *m = s_recv (agent, 1);
        if (m && m->id == JM_MSG_FETCH) { /* run alone: not in the store yet */
            jm_msg_t *c = jm_msg_new (JM_MSG_CHUNK);
            memcpy (c->hash, s_big_hash, 65);
            c->offset = m->offset;
            jm_msg_set_data (c, s_big + m->offset,
                             m->size < S_BIG - m->offset ? m->size : S_BIG - m->offset);
            s_send (agent, c);
        }
        jm_msg_destroy (&m);
        assert_true (zclock_mono () - t0 < 30000);
    }
    assert_int_not_equal (access (last, F_OK), 0); /* still being written */
    jm_msg_t *cn = jm_msg_new (JM_MSG_CANCEL);
    jm_str_set (&cn->sub_id, sub_id);
    s_send (client, cn);
    jm_msg_t *c = s_expect (client, JM_MSG_CANCELLED);
    assert_int_equal (c->total, 1); /* the task had not ended: its files were being written */
    jm_msg_destroy (&c);
    s_assert_task (client, sub_id, 0, "CANCELLED");
    /* the worker finishes the request it has; its answer changes nothing */
    while (access (last, F_OK) != 0) {
        assert_true (zclock_mono () - t0 < 30000);
        zclock_sleep (5);
    }
    zclock_sleep (300);
    jm_msg_t *r = s_status (client, sub_id);
    assert_string_equal (r->tstats.v[0].state, "CANCELLED");
    assert_string_equal (r->subs.v[0].state, "CANCELLED");
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_CANCELLED], 1);
    assert_int_equal (r->subs.v[0].counts.v[JM_TASK_DONE], 0);
    jm_msg_destroy (&r);
    /* and it still serves agents */
    r = s_status (client, "");
    assert_true (r->subs.n > 0);
    jm_msg_destroy (&r);
    jm_msg_t *cj = s_expect (agent, JM_MSG_CANCEL_JOB);
    jm_msg_destroy (&cj);
    s_send (agent, jm_msg_new (JM_MSG_HEARTBEAT));
    zpoller_t *poller = zpoller_new (agent, NULL);
    assert_true (zpoller_wait (poller, TMO) == agent);
    zpoller_destroy (&poller);
    char err[512];
    jm_msg_t *hb = jm_msg_recv (agent, NULL, NULL, NULL, err, sizeof err);
    assert_non_null (hb);
    assert_int_equal (hb->id, JM_MSG_HEARTBEAT);
    jm_msg_destroy (&hb);
    for (int k = 1; k <= S_BIG_COPIES; k++) {
        char path[600];
        snprintf (path, sizeof path, "%s/bigcancel/big%d.bin", s_wb, k);
        unlink (path);
    }
    free (s_big);
    s_big = NULL;
    free (sub_id);
    zsock_destroy (&agent);
    zsock_destroy (&client);
}

/* CANCEL sub_id (frees it) and wait for CANCELLED. */
static void
s_cancel_sub (zsock_t *client, char **sub_id_p)
{
    jm_msg_t *c = jm_msg_new (JM_MSG_CANCEL);
    jm_str_set (&c->sub_id, *sub_id_p);
    s_send (client, c);
    jm_msg_t *cr = s_expect (client, JM_MSG_CANCELLED);
    jm_msg_destroy (&cr);
    free (*sub_id_p);
    *sub_id_p = NULL;
}

/* ------------------------------------------------------ multi-site fleet */

static void s_job_state (zsock_t *agent, uint64_t job_id, const char *state);

/* Credit 2 at agent: two one-task jobs arrive; both are reported QUEUED. */
static void
s_two_queued (zsock_t *agent, uint64_t jid[2], uint64_t tid[2])
{
    s_credit (agent, 2);
    for (int i = 0; i < 2; i++) {
        jm_msg_t *job = s_expect (agent, JM_MSG_JOB);
        jid[i] = job->job_id;
        tid[i] = job->tasks.v[0].id;
        s_job_state (agent, jid[i], "QUEUED");
        jm_msg_destroy (&job);
    }
}

/* An agent session for site name on host, with the given capacity. */
static zsock_t *
s_site_ready (const char *name, const char *host, uint64_t cores)
{
    zsock_t *agent = s_agent_sock ("good");
    jm_msg_t *h = jm_msg_new (JM_MSG_HELLO);
    h->version = JM_PROTO_VERSION;
    jm_str_set (&h->role, "agent");
    jm_str_set (&h->name, name);
    jm_str_set (&h->scheduler, "shell");
    h->slots = 4;
    h->max_jobs = 4;
    h->cores = cores;
    jm_str_set (&h->host, host);
    s_send (agent, h);
    jm_msg_t *w = s_expect (agent, JM_MSG_WELCOME);
    jm_msg_destroy (&w);
    return agent;
}

static jm_wmachine_t *
s_machine (jm_msg_t *sub, const char *name, const char *site, const char *host, const char *command,
           const char *root)
{
    jm_wmachine_t *m = jm_wmachines_push (&sub->machines);
    m->name = strdup (name);
    m->site = strdup (site);
    m->host = strdup (host);
    m->command = strdup (command);
    m->root = strdup (root);
    m->resources = strdup ("");
    return m;
}

/* Nothing (but heartbeats) arrives on s within ms. */
static void
s_expect_nothing (zsock_t *s, int ms)
{
    jm_msg_t *m = s_recv (s, ms);
    if (m)
        fail_msg ("unexpected %s", jm_msg_name (m->id));
}

/* SITES for name ("" = all); caller destroys. */
static jm_msg_t *
s_sites (zsock_t *client, const char *name)
{
    jm_msg_t *q = jm_msg_new (JM_MSG_SITES);
    jm_str_set (&q->name, name);
    s_send (client, q);
    return s_expect (client, JM_MSG_SITES_REPLY);
}

static void
s_job_state (zsock_t *agent, uint64_t job_id, const char *state)
{
    jm_msg_t *js = jm_msg_new (JM_MSG_JOB_STATE);
    js->job_id = job_id;
    jm_str_set (&js->state, state);
    jm_str_set (&js->reason, "");
    s_send (agent, js);
}

/*  Machine entries: each site gets the jobs of the entry it serves (by
    site: or by host, short and long names matching), with the entry's
    command substituted for {command} and its remote_root; an entry no
    site serves is reported in SUBMITTED; submit_size caps the tasks out
    at an entry; a site whose cores are fewer than the entry's
    cpu_per_node gets none; SITES shows capacity and LOAD; a drained site
    gets no new jobs until resumed, also across a restart. */
static void
test_machine_entries (void **state)
{
    (void)state;
    s_restart_with (200, 1024);
    zsock_t *client = s_client_ready ();
    zsock_t *a = s_site_ready ("siteA", "hostA.example.org", 8);
    zsock_t *b = s_site_ready ("siteB", "hostB", 2);

    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    for (int i = 0; i < 6; i++) {
        char p[32];
        snprintf (p, sizeof p, "m%d", i);
        jm_wtask_t *t = s_task (sub, p);
        free (t->command);
        t->command = strdup ("{command} --in x");
    }
    s_machine (sub, "ma", "", "hostA", "run-on-a", "/scratch/a");
    jm_wmachine_t *mb = s_machine (sub, "mb", "siteB", "", "run-on-b", "");
    mb->submit_size = 1;
    s_machine (sub, "mz", "siteZ", "", "run-on-z", "");
    jm_wmachine_t *mbig = s_machine (sub, "mbig", "siteB", "", "run-big", "");
    free (mbig->resources);
    mbig->resources = strdup ("{\"cpu_per_node\":16}");
    s_send (client, sub);
    jm_msg_t *r = s_expect (client, JM_MSG_SUBMITTED);
    assert_int_equal (r->unserved.n, 1);
    assert_string_equal (r->unserved.v[0], "mz");
    char *sub_id = strdup (r->sub_id);
    jm_msg_destroy (&r);

    /* siteB: one job only (submit_size 1), never the 16-core entry */
    s_credit (b, 3);
    jm_msg_t *job = s_expect (b, JM_MSG_JOB);
    assert_int_equal (job->tasks.n, 1);
    assert_string_equal (job->tasks.v[0].command, "run-on-b --in x");
    assert_string_equal (job->root, "");
    uint64_t b_job = job->job_id, b_tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    s_expect_nothing (b, 400);

    /* siteA by its host */
    s_credit (a, 2);
    for (int i = 0; i < 2; i++) {
        job = s_expect (a, JM_MSG_JOB);
        assert_int_equal (job->tasks.n, 1);
        assert_string_equal (job->tasks.v[0].command, "run-on-a --in x");
        assert_string_equal (job->root, "/scratch/a");
        jm_msg_destroy (&job);
    }

    /* live figures and capacity in SITES */
    jm_msg_t *load = jm_msg_new (JM_MSG_LOAD);
    load->running = 2;
    load->queued = 1;
    load->free_slots = 2;
    load->done_1m = 42;
    load->wait_ms = 1500;
    s_send (a, load);
    jm_msg_t *sites = NULL;
    for (int tries = 0; tries < 50; tries++) {
        jm_msg_destroy (&sites);
        sites = s_sites (client, "siteA");
        if (sites->sites.n == 1 && sites->sites.v[0].done_1m == 42)
            break;
        zclock_sleep (20);
    }
    assert_int_equal (sites->sites.n, 1);
    jm_wsite_t *sa = &sites->sites.v[0];
    assert_string_equal (sa->state, "up");
    assert_false (sa->drained);
    assert_int_equal (sa->cores, 8);
    assert_int_equal (sa->max_jobs, 4);
    assert_int_equal (sa->running, 2);
    assert_int_equal (sa->queued, 1);
    assert_int_equal (sa->wait_ms, 1500);
    assert_int_equal (sa->jobs, 2);
    assert_true (sa->last_seen > 1700000000000ull);
    jm_msg_destroy (&sites);
    sites = s_sites (client, "");
    assert_int_equal (sites->sites.n, 2);
    assert_string_equal (sites->sites.v[0].name, "siteA");
    assert_string_equal (sites->sites.v[1].name, "siteB");
    jm_msg_destroy (&sites);
    jm_msg_t *q = jm_msg_new (JM_MSG_SITES);
    jm_str_set (&q->name, "nosuch");
    s_send (client, q);
    jm_msg_t *e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 4);
    jm_msg_destroy (&e);

    /* drain siteA: its credit brings no job; resume: it does */
    jm_msg_t *set = jm_msg_new (JM_MSG_SITE_SET);
    jm_str_set (&set->name, "siteA");
    jm_str_set (&set->state, "drained");
    s_send (client, set);
    sites = s_expect (client, JM_MSG_SITES_REPLY);
    assert_int_equal (sites->sites.n, 1);
    assert_true (sites->sites.v[0].drained);
    jm_msg_destroy (&sites);
    s_credit (a, 1);
    s_expect_nothing (a, 400);
    /* the drained state survives a restart */
    zsock_destroy (&a);
    zsock_destroy (&b);
    zsock_destroy (&client);
    s_restart_with (200, 1024);
    client = s_client_ready ();
    sites = s_sites (client, "siteA");
    assert_string_equal (sites->sites.v[0].state, "gone");
    assert_true (sites->sites.v[0].drained);
    jm_msg_destroy (&sites);
    a = s_site_ready ("siteA", "hostA.example.org", 8);
    s_credit (a, 1);
    s_expect_nothing (a, 400);
    set = jm_msg_new (JM_MSG_SITE_SET);
    jm_str_set (&set->name, "siteA");
    jm_str_set (&set->state, "up");
    s_send (client, set);
    sites = s_expect (client, JM_MSG_SITES_REPLY);
    assert_false (sites->sites.v[0].drained);
    jm_msg_destroy (&sites);
    job = s_expect (a, JM_MSG_JOB);
    assert_string_equal (job->tasks.v[0].command, "run-on-a --in x");
    jm_msg_destroy (&job);
    set = jm_msg_new (JM_MSG_SITE_SET);
    jm_str_set (&set->name, "siteA");
    jm_str_set (&set->state, "sideways");
    s_send (client, set);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 5);
    jm_msg_destroy (&e);
    (void)b_job;
    (void)b_tid;

    /* {command} without a command for some entry is refused */
    sub = s_submit_new (s_wb, 1, 1);
    jm_wtask_t *t = s_task (sub, "nc");
    free (t->command);
    t->command = strdup ("{command}");
    s_machine (sub, "m1", "siteA", "", "", "");
    s_send (client, sub);
    e = s_expect (client, JM_MSG_ERROR);
    assert_int_equal (e->code, 5);
    assert_non_null (strstr (e->reason, "machine entry 'm1' has no 'command'"));
    jm_msg_destroy (&e);

    s_cancel_sub (client, &sub_id);
    zsock_destroy (&a);
    zsock_destroy (&client);
}

/*  work_load_ratio caps an entry's share: with 0.25 of 8 tasks, siteA
    takes 2 tasks however much credit it gives; the rest go to siteB. */
static void
test_ratio_cap (void **state)
{
    (void)state;
    s_restart_with (200, 1024);
    zsock_t *client = s_client_ready ();
    zsock_t *a = s_site_ready ("siteA", "hA", 0);
    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    for (int i = 0; i < 8; i++) {
        char p[32];
        snprintf (p, sizeof p, "r%d", i);
        s_task (sub, p);
    }
    s_machine (sub, "ra", "siteA", "", "", "")->ratio = 250000;
    s_machine (sub, "rb", "siteB", "", "", "")->ratio = 750000;
    char *sub_id = s_submit_ok (client, sub, 8);
    s_credit (a, 8);
    for (int i = 0; i < 2; i++) {
        jm_msg_t *job = s_expect (a, JM_MSG_JOB);
        jm_msg_destroy (&job);
    }
    s_expect_nothing (a, 400);
    zsock_t *b = s_site_ready ("siteB", "hB", 0);
    s_credit (b, 8);
    for (int i = 0; i < 6; i++) {
        jm_msg_t *job = s_expect (b, JM_MSG_JOB);
        jm_msg_destroy (&job);
    }
    s_expect_nothing (b, 300);
    s_cancel_sub (client, &sub_id);
    zsock_destroy (&a);
    zsock_destroy (&b);
    zsock_destroy (&client);
}

/*  Near the end, a job still waiting at one site is withdrawn when
    another site has room: WITHDRAW goes to the slow site only after it
    answered, the task goes to the free site.  A job that has started is
    not withdrawn (RUNNING answer), and a site lost for requeue_after_ms
    gives its tasks to the others and gets CANCEL_JOB when it is back. */
static void
test_withdraw_and_requeue (void **state)
{
    (void)state;
    char path[400], text[256];
    snprintf (path, sizeof path, "%s/config.yml", s_home);
    snprintf (text, sizeof text,
              "bind: 'tcp://127.0.0.1:*'\nheartbeat_ms: 1000\nrequeue_after_ms: 1000\n");
    s_write (path, text);
    s_stop_coord ();
    s_start_coord ();
    zsock_t *client = s_client_ready ();
    zsock_t *slow = s_site_ready ("slow", "hS", 0);
    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    s_task (sub, "w0");
    s_task (sub, "w1");
    char *sub_id = s_submit_ok (client, sub, 2);
    uint64_t jid[2], tid[2];
    s_two_queued (slow, jid, tid);
    /* one of them starts */
    jm_msg_t *ts = jm_msg_new (JM_MSG_TASK_STARTED);
    jm_u64s_push (&ts->ids, tid[1]);
    s_send (slow, ts);
    s_wait_state (client, sub_id, JM_COORD_WIRE_IDX (tid[1]), "RUNNING");

    zsock_t *fast = s_site_ready ("fast", "hF", 0);
    s_credit (fast, 2);
    /* only the waiting job is asked back, once */
    jm_msg_t *wd = s_expect (slow, JM_MSG_WITHDRAW);
    assert_int_equal (wd->job_id, jid[0]);
    jm_msg_destroy (&wd);
    /* nothing for the free site until the slow one answered */
    s_expect_nothing (fast, 300);
    s_assert_task (client, sub_id, JM_COORD_WIRE_IDX (tid[0]), "QUEUED");
    s_job_state (slow, jid[0], "WITHDRAWN");
    jm_msg_t *job = s_expect (fast, JM_MSG_JOB);
    assert_int_equal (job->tasks.n, 1);
    assert_int_equal (JM_COORD_WIRE_IDX (job->tasks.v[0].id), JM_COORD_WIRE_IDX (tid[0]));
    uint64_t fast_tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    /* a late report of the withdrawn job is ignored */
    s_task_end (slow, tid[0], NULL, NULL, 0);
    zclock_sleep (200);
    s_assert_task (client, sub_id, JM_COORD_WIRE_IDX (tid[0]), "STAGING");
    s_task_end (fast, fast_tid, NULL, NULL, 0);
    s_wait_state (client, sub_id, JM_COORD_WIRE_IDX (tid[0]), "DONE");
    jm_msg_t *st = s_status (client, sub_id);
    assert_string_equal (st->tstats.v[JM_COORD_WIRE_IDX (tid[0])].site, "fast");
    jm_msg_destroy (&st);

    /* the slow site goes silent with its running task: lost (3 heartbeat
       intervals), then after requeue_after_ms the task goes to the fast
       site, which keeps beating meanwhile */
    zsock_destroy (&slow);
    s_credit (fast, 1);
    job = NULL;
    for (int i = 0; i < 50 && !job; i++) {
        s_send (fast, jm_msg_new (JM_MSG_HEARTBEAT));
        job = s_recv (fast, 200);
    }
    assert_non_null (job);
    assert_int_equal (job->id, JM_MSG_JOB);
    assert_int_equal (JM_COORD_WIRE_IDX (job->tasks.v[0].id), JM_COORD_WIRE_IDX (tid[1]));
    s_task_end (fast, job->tasks.v[0].id, NULL, NULL, 0);
    jm_msg_destroy (&job);
    jm_msg_t *w = s_wait_task (client, sub_id, JM_COORD_WIRE_IDX (tid[1]), "DONE");
    jm_msg_destroy (&w);
    /* back again: its old job is cancelled there */
    slow = s_site_ready ("slow", "hS", 0);
    jm_msg_t *cj = s_expect (slow, JM_MSG_CANCEL_JOB);
    assert_int_equal (cj->job_id, jid[1]);
    jm_msg_destroy (&cj);
    free (sub_id);
    zsock_destroy (&slow);
    zsock_destroy (&fast);
    zsock_destroy (&client);
}

/*  speculative: true - a job waiting at a slow site is not asked back:
    its tasks go to the free site at once and the slow site's job is
    cancelled; whichever copy ends first is taken, the other's report is
    ignored. */
static void
test_speculative (void **state)
{
    (void)state;
    s_restart_with (1000, 1024);
    zsock_t *client = s_client_ready ();
    zsock_t *slow = s_site_ready ("slow", "hS", 0);
    jm_msg_t *sub = s_submit_new (s_wb, 1, 1);
    s_task (sub, "sp0");
    s_task (sub, "sp1");
    sub->speculative = true;
    char *sub_id = s_submit_ok (client, sub, 2);
    uint64_t jid[2], tid[2];
    s_two_queued (slow, jid, tid);
    zsock_t *fast = s_site_ready ("fast", "hF", 0);
    s_credit (fast, 1);
    /* no WITHDRAW: a CANCEL_JOB, and the task at the fast site at once */
    jm_msg_t *cj = s_expect (slow, JM_MSG_CANCEL_JOB);
    uint64_t moved = cj->job_id;
    assert_true (moved == jid[0] || moved == jid[1]);
    jm_msg_destroy (&cj);
    jm_msg_t *job = s_expect (fast, JM_MSG_JOB);
    uint64_t idx = JM_COORD_WIRE_IDX (job->tasks.v[0].id);
    uint64_t fast_tid = job->tasks.v[0].id;
    jm_msg_destroy (&job);
    uint64_t slow_tid = moved == jid[0] ? tid[0] : tid[1];
    assert_int_equal (JM_COORD_WIRE_IDX (slow_tid), idx);
    /* the slow copy had started after all and ends first: it is taken */
    s_task_end (slow, slow_tid, NULL, NULL, 0);
    s_wait_state (client, sub_id, idx, "DONE");
    jm_msg_t *st = s_status (client, sub_id);
    assert_string_equal (st->tstats.v[idx].site, "slow");
    jm_msg_destroy (&st);
    /* the fast copy's late report changes nothing */
    s_task_end (fast, fast_tid, NULL, NULL, 0);
    zclock_sleep (200);
    st = s_status (client, sub_id);
    assert_string_equal (st->tstats.v[idx].state, "DONE");
    assert_string_equal (st->tstats.v[idx].site, "slow");
    jm_msg_destroy (&st);
    s_cancel_sub (client, &sub_id);
    zsock_destroy (&slow);
    zsock_destroy (&fast);
    zsock_destroy (&client);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_submit_dispatch_fetch),
        cmocka_unit_test (test_watch_and_cancel),
        cmocka_unit_test (test_unallowed_agent),
        cmocka_unit_test (test_bad_submit),
        cmocka_unit_test (test_bad_messages),
        cmocka_unit_test (test_site_lost),
        cmocka_unit_test (test_restart_ignores_old_reports),
        cmocka_unit_test (test_resources_kept),
        cmocka_unit_test (test_backward_common),
        cmocka_unit_test (test_throughput),
        cmocka_unit_test (test_large_result_keeps_loop_running),
        cmocka_unit_test (test_cancel_while_placing),
        cmocka_unit_test (test_machine_entries),
        cmocka_unit_test (test_ratio_cap),
        cmocka_unit_test (test_withdraw_and_requeue),
        cmocka_unit_test (test_speculative),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
