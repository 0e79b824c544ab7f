/*  test_agent.c - the real agent loop (jm_agent_run in a thread) against a
    minimal fake coordinator: a CURVE ROUTER on 127.0.0.1 with zauth. */
#define _GNU_SOURCE
#include "jm_agent.h"
#include "jm_keys.h"
#include "jm_path.h"
#include "jm_proto.h"
#include "jm_sha256.h"
#include "jm_store.h"
#include "jm_util.h"
#include "jm_xfer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_testutil.h"

#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define T_SLOTS 2

typedef struct {
    char tmp[256];
    char home[300], allowed[300], coord_home[300], root[300], cstore_dir[300];
    char endpoint[64], coord_cert[400];
    zactor_t *auth;
    zsock_t *router;
    zframe_t *rid; /* the agent's routing id */
    jm_store_t *cstore;
    jm_agent_config_t cfg;
    int stop[2];
    pthread_t thread;
    int agent_rc;
    bool running;
    bool no_fetch; /* s_expect leaves FETCHes unanswered (staging hangs) */
} s_fix_t;

static void *
s_agent_thread (void *arg)
{
    s_fix_t *f = arg;
    f->agent_rc = jm_agent_run (&f->cfg);
    return NULL;
}

/* Receives one message within timeout_ms (NULL on timeout); remembers the
   routing id. */
static jm_msg_t *
s_recv (s_fix_t *f, int timeout_ms)
{
    zpoller_t *p = zpoller_new (f->router, NULL);
    void *which = zpoller_wait (p, timeout_ms);
    zpoller_destroy (&p);
    if (!which)
        return NULL;
    zframe_t *rid = NULL;
    char err[512];
    int code;
    jm_msg_t *m = jm_msg_recv (f->router, &rid, &code, NULL, err, sizeof err);
    if (!m) {
        fprintf (stderr, "fake coordinator: bad message: %s\n", err);
        zframe_destroy (&rid);
        return NULL;
    }
    zframe_destroy (&f->rid);
    f->rid = rid;
    return m;
}

static void
s_send (s_fix_t *f, jm_msg_t *m)
{
    assert_non_null (f->rid);
    assert_int_equal (jm_msg_send (&m, f->router, f->rid), 0);
}

/* Waits for a message of type id; serves FETCHes from the coordinator store
   and answers HEARTBEATs meanwhile; other messages go to sink (may be NULL:
   dropped). */
typedef void (s_sink_fn) (void *arg, jm_msg_t *m);

static jm_msg_t *
s_expect (s_fix_t *f, jm_msg_id_t id, int timeout_ms, s_sink_fn *sink, void *arg)
{
    int64_t deadline = jm_now_ms () + timeout_ms;
    while (jm_now_ms () < deadline) {
        jm_msg_t *m = s_recv (f, (int)(deadline - jm_now_ms ()));
        if (!m)
            continue;
        if (m->id == id)
            return m;
        if (m->id == JM_MSG_FETCH && f->no_fetch)
            jm_msg_destroy (&m);
        else if (m->id == JM_MSG_FETCH) {
            s_send (f, jm_xfer_serve (f->cstore, m, NULL));
            jm_msg_destroy (&m);
        }
        else if (m->id == JM_MSG_HEARTBEAT) {
            s_send (f, jm_msg_new (JM_MSG_HEARTBEAT));
            jm_msg_destroy (&m);
        }
        else if (sink)
            sink (arg, m);
        else
            jm_msg_destroy (&m);
    }
    fail_msg ("timed out waiting for %s", jm_msg_name (id));
    return NULL;
}

static void
s_put (s_fix_t *f, const char *content, char hash[JM_HASH_HEX], uint64_t *size)
{
    char path[400], err[512];
    snprintf (path, sizeof path, "%s/upload", f->tmp);
    assert_int_equal (jm_write_file_atomic (path, content, strlen (content), 0644, err, sizeof err),
                      0);
    assert_int_equal (jm_store_import (f->cstore, path, hash, size, err, sizeof err), 0);
}

static void
s_start_agent (s_fix_t *f)
{
    assert_int_equal (pipe (f->stop), 0);
    f->cfg.stop_fd = f->stop[0];
    assert_int_equal (pthread_create (&f->thread, NULL, s_agent_thread, f), 0);
    f->running = true;
}

static void
s_stop_agent (s_fix_t *f)
{
    if (!f->running)
        return;
    assert_int_equal (write (f->stop[1], "x", 1), 1);
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += 15;
    assert_int_equal (pthread_timedjoin_np (f->thread, NULL, &ts), 0);
    f->running = false;
    close (f->stop[0]);
    close (f->stop[1]);
}

/* HELLO -> WELCOME -> CREDIT */
static void
s_handshake (s_fix_t *f, uint64_t hb)
{
    jm_msg_t *m = s_expect (f, JM_MSG_HELLO, 10000, NULL, NULL);
    assert_int_equal (m->version, JM_PROTO_VERSION);
    assert_string_equal (m->role, "agent");
    assert_string_equal (m->name, "test-site");
    assert_string_equal (m->scheduler, "shell");
    assert_int_equal (m->slots, T_SLOTS);
    assert_true (strlen (m->host) > 0);
    /* capacity: max_jobs = slots; shell's cores default to the online CPUs */
    assert_int_equal (m->max_jobs, T_SLOTS);
    long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
    assert_int_equal (m->cores, f->cfg.cores ? f->cfg.cores : (uint64_t)ncpu);
    assert_int_equal (m->gpus, f->cfg.gpus);
    jm_msg_destroy (&m);
    m = jm_msg_new (JM_MSG_WELCOME);
    m->heartbeat_ms = hb;
    s_send (f, m);
    m = s_expect (f, JM_MSG_CREDIT, 5000, NULL, NULL);
    assert_int_equal (m->credit, T_SLOTS);
    jm_msg_destroy (&m);
}

static int
s_setup (void **state)
{
    s_fix_t *f = calloc (1, sizeof *f);
    snprintf (f->tmp, sizeof f->tmp, "/tmp/jm_test_agent.XXXXXX");
    assert_non_null (mkdtemp (f->tmp));
    snprintf (f->home, sizeof f->home, "%s/ahome", f->tmp);
    snprintf (f->allowed, sizeof f->allowed, "%s/allowed", f->tmp);
    snprintf (f->coord_home, sizeof f->coord_home, "%s/chome", f->tmp);
    snprintf (f->root, sizeof f->root, "%s/sites/root", f->tmp);
    snprintf (f->cstore_dir, sizeof f->cstore_dir, "%s/chome/store", f->tmp);
    char err[512];
    assert_int_equal (mkdir (f->home, 0700), 0);
    assert_int_equal (mkdir (f->allowed, 0700), 0);
    assert_int_equal (mkdir (f->coord_home, 0700), 0);
    assert_int_equal (jm_keys_create (f->home, "agent", err, sizeof err), 0);
    assert_int_equal (jm_keys_create (f->coord_home, "coord", err, sizeof err), 0);
    char src[400], dst[400];
    snprintf (src, sizeof src, "%s/agent.cert", f->home);
    snprintf (dst, sizeof dst, "%s/agent.cert", f->allowed);
    char *cert = jm_read_file (src, NULL, err, sizeof err);
    assert_non_null (cert);
    assert_int_equal (jm_write_file_atomic (dst, cert, strlen (cert), 0644, err, sizeof err), 0);
    free (cert);
    snprintf (f->coord_cert, sizeof f->coord_cert, "%s/coord.cert", f->coord_home);

    f->auth = zactor_new (zauth, NULL);
    assert_int_equal (zstr_sendx (f->auth, "CURVE", f->allowed, NULL), 0);
    assert_int_equal (zsock_wait (f->auth), 0);
    char sec[400];
    snprintf (sec, sizeof sec, "%s/coord.cert_secret", f->coord_home);
    zcert_t *ccert = jm_keys_load_secret (sec, err, sizeof err);
    assert_non_null (ccert);
    f->router = zsock_new (ZMQ_ROUTER);
    jm_curve_server (f->router, ccert);
    zcert_destroy (&ccert);
    int port = zsock_bind (f->router, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    snprintf (f->endpoint, sizeof f->endpoint, "tcp://127.0.0.1:%d", port);
    f->cstore = jm_store_new (f->cstore_dir, err, sizeof err);
    assert_non_null (f->cstore);

    f->cfg.home = f->home;
    f->cfg.coordinator = f->endpoint;
    f->cfg.coordinator_cert = f->coord_cert;
    f->cfg.site = "test-site";
    f->cfg.root = f->root;
    f->cfg.scheduler = "shell";
    f->cfg.slots = T_SLOTS;
    f->cfg.heartbeat_ms = 1000;
    f->cfg.stop_fd = -1;
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fix_t *f = *state;
    s_stop_agent (f);
    zframe_destroy (&f->rid);
    zsock_destroy (&f->router);
    zactor_destroy (&f->auth);
    jm_store_destroy (&f->cstore);
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->tmp);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

/* Collects what the agent reports about a job. */
typedef struct {
    char states[512]; /* "STAGING QUEUED RUNNING DONE " */
    char state_reason[8192];
    jm_msg_t *ends[16];
    size_t nends;
    size_t nstarted;
} s_report_t;

static void
s_collect (void *arg, jm_msg_t *m)
{
    s_report_t *r = arg;
    if (m->id == JM_MSG_JOB_STATE) {
        strcat (r->states, m->state);
        strcat (r->states, " ");
        if (*m->reason)
            snprintf (r->state_reason, sizeof r->state_reason, "%s", m->reason);
    }
    else if (m->id == JM_MSG_TASK_STARTED)
        r->nstarted += m->ids.n;
    else if (m->id == JM_MSG_TASK_END && r->nends < 16) {
        r->ends[r->nends++] = m;
        return;
    }
    jm_msg_destroy (&m);
}

static jm_msg_t *
s_end_of (s_report_t *r, uint64_t task_id)
{
    for (size_t i = 0; i < r->nends; i++)
        if (r->ends[i]->task_id == task_id)
            return r->ends[i];
    return NULL;
}

static const jm_wfile_t *
s_file_of (const jm_msg_t *end, const char *path)
{
    for (size_t i = 0; i < end->files.n; i++)
        if (strcmp (end->files.v[i].path, path) == 0)
            return &end->files.v[i];
    return NULL;
}

/* Waits for JOB_STATE <final>, then the CREDIT{1} that follows. */
static void
s_wait_job_end (s_fix_t *f, s_report_t *r, const char *final)
{
    int64_t deadline = jm_now_ms () + 30000;
    while (!strstr (r->states, final) && jm_now_ms () < deadline) {
        jm_msg_t *m = s_expect (f, JM_MSG_JOB_STATE, (int)(deadline - jm_now_ms ()), s_collect, r);
        s_collect (r, m);
    }
    assert_non_null (strstr (r->states, final));
    jm_msg_t *m = s_expect (f, JM_MSG_CREDIT, 5000, s_collect, r);
    assert_int_equal (m->credit, 1);
    jm_msg_destroy (&m);
}

/* Fetches a whole object from the agent. */
static char *
s_fetch (s_fix_t *f, const char *hash, size_t *len_p)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_FETCH);
    m->job_id = 1;
    snprintf (m->hash, sizeof m->hash, "%s", hash);
    m->offset = 0;
    m->size = JM_XFER_CHUNK;
    s_send (f, m);
    m = s_expect (f, JM_MSG_CHUNK, 5000, NULL, NULL);
    assert_string_equal (m->hash, hash);
    char *data = malloc (m->data_size + 1);
    memcpy (data, m->data, m->data_size);
    data[m->data_size] = 0;
    *len_p = m->data_size;
    jm_msg_destroy (&m);
    return data;
}

/* A JOB message: id, submission, para_deg; tasks added with s_task. */
static jm_msg_t *
s_job (uint64_t id, const char *sub, uint64_t para_deg)
{
    jm_msg_t *job = jm_msg_new (JM_MSG_JOB);
    job->job_id = id;
    jm_str_set (&job->sub_id, sub);
    job->para_deg = para_deg;
    return job;
}

static jm_wtask_t *
s_task (jm_msg_t *job, uint64_t id, const char *path, const char *cmd)
{
    jm_wtask_t *t = jm_wtasks_push (&job->tasks);
    t->id = id;
    t->path = strdup (path);
    t->command = strdup (cmd);
    t->outlog = strdup ("stdout");
    t->errlog = strdup ("stderr");
    return t;
}

static void
test_job_round_trip (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 1000);

    char h_common[JM_HASH_HEX], h_in[JM_HASH_HEX];
    uint64_t sz_common, sz_in;
    s_put (f, "common\n", h_common, &sz_common);
    s_put (f, "input\n", h_in, &sz_in);

    jm_msg_t *job = s_job (1, "sub-1", 2);
    jm_wfiles_push (&job->common, "data/common.txt", h_common, sz_common, 0644);
    jm_wtask_t *t = s_task (job, 11, "t1", "cat ../data/common.txt in.txt > out.dat");
    jm_wfiles_push (&t->forward, "in.txt", h_in, sz_in, 0640);
    jm_strs_push (&t->backward, "out.dat");
    t = s_task (job, 12, "t2", "echo bad >&2; exit 3");
    jm_strs_push (&t->backward, "*.none");
    t = s_task (job, 13, "deep/t3", "echo three; cp sub/in.txt copy.txt; chmod 700 copy.txt");
    jm_wfiles_push (&t->forward, "sub/in.txt", h_in, sz_in, 0644);
    jm_strs_push (&t->backward, "copy.txt");
    jm_strs_push (&t->backward, "missing.dat");
    s_send (f, job);

    s_report_t r = {0};
    s_wait_job_end (f, &r, "DONE");
    assert_non_null (strstr (r.states, "STAGING QUEUED "));
    assert_int_equal (r.nends, 3);
    assert_int_equal (r.nstarted, 3);

    jm_msg_t *e1 = s_end_of (&r, 11), *e2 = s_end_of (&r, 12), *e3 = s_end_of (&r, 13);
    assert_non_null (e1);
    assert_non_null (e2);
    assert_non_null (e3);
    assert_int_equal (e1->exit_code, 0);
    assert_int_equal (e2->exit_code, 3);
    assert_int_equal (e3->exit_code, 0);
    assert_string_equal (e1->reason, "");
    assert_string_equal (e2->reason, ""); /* a glob matching nothing is fine */
    assert_non_null (strstr (e3->reason, "backward file 'missing.dat' not found"));

    /* task 1: out.dat then stdout, stderr */
    assert_int_equal (e1->files.n, 3);
    assert_string_equal (e1->files.v[0].path, "out.dat");
    assert_string_equal (e1->files.v[1].path, "stdout");
    assert_string_equal (e1->files.v[2].path, "stderr");
    assert_int_equal (e1->files.v[0].size, strlen ("common\ninput\n"));
    assert_string_equal (e1->files.v[2].hash, JM_HASH_EMPTY);
    size_t len;
    char *data = s_fetch (f, e1->files.v[0].hash, &len);
    assert_string_equal (data, "common\ninput\n");
    free (data);
    /* task 2's errlog */
    const jm_wfile_t *fe = s_file_of (e2, "stderr");
    assert_non_null (fe);
    data = s_fetch (f, fe->hash, &len);
    assert_string_equal (data, "bad\n");
    free (data);
    /* task 3: copy.txt with its mode */
    fe = s_file_of (e3, "copy.txt");
    assert_non_null (fe);
    assert_int_equal (fe->mode, 0700);
    assert_string_equal (fe->hash, h_in);
    fe = s_file_of (e3, "stdout");
    assert_non_null (fe);
    data = s_fetch (f, fe->hash, &len);
    assert_string_equal (data, "three\n");
    free (data);
    /* forward file placed with its mode */
    char path[600];
    struct stat st;
    snprintf (path, sizeof path, "%s/sub-1/t1/in.txt", f->root);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);

    /* an unknown object: NOFILE from us fails the job, naming task and file */
    s_report_t r2 = {0};
    job = s_job (2, "sub-1", 1);
    t = s_task (job, 21, "t21", "true");
    jm_wfiles_push (&t->forward, "gone.bin",
                    "0000000000000000000000000000000000000000000000000000000000000001", 10, 0644);
    s_send (f, job);
    s_wait_job_end (f, &r2, "FAILED");
    assert_non_null (strstr (r2.state_reason, "task 21"));
    assert_non_null (strstr (r2.state_reason, "gone.bin"));
    assert_int_equal (r2.nends, 0);

    /* a malformed frame does not hurt the agent */
    zframe_send (&(zframe_t *){zframe_dup (f->rid)}, f->router, ZFRAME_MORE);
    zstr_send (f->router, "garbage");
    jm_msg_t *hb = jm_msg_new (JM_MSG_HEARTBEAT);
    s_send (f, hb);
    /* a cancel of an unknown job neither */
    jm_msg_t *c = jm_msg_new (JM_MSG_CANCEL_JOB);
    c->job_id = 777;
    s_send (f, c);

    /* a job that runs long is cancelled quickly */
    s_report_t r3 = {0};
    job = s_job (3, "sub-1", 1);
    s_task (job, 31, "t31", "sleep 100");
    s_send (f, job);
    jm_msg_t *m = s_expect (f, JM_MSG_TASK_STARTED, 10000, s_collect, &r3);
    assert_int_equal (m->ids.n, 1);
    assert_int_equal (m->ids.v[0], 31);
    jm_msg_destroy (&m);
    int64_t t0 = jm_now_ms ();
    c = jm_msg_new (JM_MSG_CANCEL_JOB);
    c->job_id = 3;
    s_send (f, c);
    s_wait_job_end (f, &r3, "DONE");
    assert_true (jm_now_ms () - t0 < 5000);

    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

static void
test_bad_paths_refused (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 1000);
    char h[JM_HASH_HEX];
    uint64_t sz;
    s_put (f, "x\n", h, &sz);
    struct {
        const char *sub, *task, *fwd, *out;
    } cases[] = {
        {"sub-2", "../evil", "f.txt", "stdout"}, {"..", "t", "f.txt", "stdout"},
        {"a/b", "t", "f.txt", "stdout"},         {"sub-2", "t", "../../evil", "stdout"},
        {"sub-2", "t", "f.txt", "../evil.log"},  {"sub-2", "/tmp/evil", "f.txt", "stdout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jm_msg_t *job = s_job (100 + i, cases[i].sub, 1);
        jm_wtask_t *t = s_task (job, 1000 + i, cases[i].task, "touch /tmp/jm_agent_pwned");
        jm_wfiles_push (&t->forward, cases[i].fwd, h, sz, 0644);
        free (t->outlog);
        t->outlog = strdup (cases[i].out);
        s_send (f, job);
        s_report_t r = {0};
        s_wait_job_end (f, &r, "FAILED");
        assert_string_equal (r.states, "FAILED ");
        assert_true (strlen (r.state_reason) > 0);
        assert_int_equal (r.nends, 0);
    }
    char path[600];
    struct stat st;
    snprintf (path, sizeof path, "%s/sites/evil", f->tmp);
    assert_int_not_equal (stat (path, &st), 0);
    snprintf (path, sizeof path, "%s/sites/evil.log", f->tmp);
    assert_int_not_equal (stat (path, &st), 0);
    snprintf (path, sizeof path, "%s/sub-2", f->root);
    assert_int_not_equal (stat (path, &st), 0);
    assert_int_not_equal (stat ("/tmp/evil", &st), 0);
    assert_int_not_equal (stat ("/tmp/jm_agent_pwned", &st), 0);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* Silence for 3 heartbeat intervals: the agent says HELLO again and, after
   WELCOME, grants its free slots again. */
static void
test_heartbeat_and_rehello (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 100);
    jm_msg_t *m = s_expect (f, JM_MSG_HEARTBEAT, 2000, NULL, NULL);
    jm_msg_destroy (&m);
    /* now stay silent: drain without answering */
    int64_t t0 = jm_now_ms ();
    jm_msg_t *hello = NULL;
    while (!hello && jm_now_ms () - t0 < 5000) {
        m = s_recv (f, 100);
        if (m && m->id == JM_MSG_HELLO)
            hello = m;
        else
            jm_msg_destroy (&m);
    }
    assert_non_null (hello);
    assert_true (jm_now_ms () - t0 >= 100); /* not at once: after 3 silent intervals */
    jm_msg_destroy (&hello);
    m = jm_msg_new (JM_MSG_WELCOME);
    m->heartbeat_ms = 1000;
    s_send (f, m);
    m = s_expect (f, JM_MSG_CREDIT, 3000, NULL, NULL);
    assert_int_equal (m->credit, T_SLOTS);
    jm_msg_destroy (&m);
    /* ERROR 3 (coordinator forgot us) -> HELLO again */
    m = jm_msg_new (JM_MSG_ERROR);
    m->code = 3;
    jm_str_set (&m->reason, "message before HELLO");
    s_send (f, m);
    m = s_expect (f, JM_MSG_HELLO, 3000, NULL, NULL);
    jm_msg_destroy (&m);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* The job's process dies under its tasks: every task that never reported
   gets TASK_END -1 naming the signal; then DONE and CREDIT. */
static void
test_job_killed (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 1000);
    jm_msg_t *job = s_job (9, "sub-9", 1);
    s_task (job, 91, ".", "true");
    s_task (job, 92, ".", "kill -KILL 0");
    s_task (job, 93, ".", "true");
    s_send (f, job);
    s_report_t r = {0};
    s_wait_job_end (f, &r, "DONE");
    assert_int_equal (r.nends, 3);
    jm_msg_t *e = s_end_of (&r, 91);
    assert_non_null (e);
    assert_int_equal (e->exit_code, 0);
    for (uint64_t id = 92; id <= 93; id++) {
        e = s_end_of (&r, id);
        assert_non_null (e);
        assert_int_equal (e->exit_code, -1);
        assert_non_null (
            strstr (e->reason, "job ended before the task finished (killed by signal 9)"));
    }
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* A task writes large results (3 x 64 MiB): while the agent hashes them
   into its store it keeps its heartbeats going and answers a FETCH
   within a small part of the time the import takes. */
static void
test_large_result_keeps_loop_running (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 50);
    jm_msg_t *job = s_job (5, "sub-big", 1);
    jm_wtask_t *t = s_task (job, 51, "t",
                            "head -c 67108864 /dev/urandom > big1.bin && "
                            "cp big1.bin big2.bin && cp big1.bin big3.bin");
    jm_strs_push (&t->backward, "big*.bin");
    s_send (f, job);

    s_report_t r = {0};
    int64_t last_hb = 0, max_hb_gap = 0, probe_sent = 0, max_probe = 0;
    size_t probes = 0, hbs = 0;
    int64_t deadline = jm_now_ms () + 60000;
    while (r.nends == 0 && jm_now_ms () < deadline) {
        if (!probe_sent) {
            jm_msg_t *p = jm_msg_new (JM_MSG_FETCH);
            p->job_id = 5;
            snprintf (p->hash, sizeof p->hash, "%064d", 7);
            p->size = 16;
            s_send (f, p);
            probe_sent = jm_now_ms ();
        }
        jm_msg_t *m = s_recv (f, 5);
        if (!m)
            continue;
        int64_t now = jm_now_ms ();
        if (m->id == JM_MSG_NOFILE) {
            if (now - probe_sent > max_probe)
                max_probe = now - probe_sent;
            probes++;
            probe_sent = 0;
            jm_msg_destroy (&m);
        }
        else if (m->id == JM_MSG_HEARTBEAT) {
            if (last_hb && now - last_hb > max_hb_gap)
                max_hb_gap = now - last_hb;
            last_hb = now;
            hbs++;
            s_send (f, jm_msg_new (JM_MSG_HEARTBEAT));
            jm_msg_destroy (&m);
        }
        else
            s_collect (&r, m);
    }
    assert_int_equal (r.nends, 1);
    s_wait_job_end (f, &r, "DONE");
    jm_msg_t *e = r.ends[0];
    assert_int_equal (e->exit_code, 0);
    assert_string_equal (e->reason, "");

    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
    /* the results are right */
    char path[600], hash[JM_HASH_HEX], err[512];
    uint64_t size;
    snprintf (path, sizeof path, "%s/sub-big/t/big1.bin", f->root);
    assert_int_equal (jm_sha256_file (path, hash, &size), 0);
    assert_int_equal (size, 67108864);
    for (int i = 1; i <= 3; i++) {
        char name[32];
        snprintf (name, sizeof name, "big%d.bin", i);
        const jm_wfile_t *fe = s_file_of (e, name);
        assert_non_null (fe);
        assert_int_equal (fe->size, 67108864);
        assert_string_equal (fe->hash, hash);
    }
    /* how long that import takes here, done inline */
    char sdir[400];
    snprintf (sdir, sizeof sdir, "%s/probe-store", f->tmp);
    jm_store_t *st = jm_store_new (sdir, err, sizeof err);
    assert_non_null (st);
    int64_t t0 = jm_now_ms ();
    for (int i = 1; i <= 3; i++) {
        snprintf (path, sizeof path, "%s/sub-big/t/big%d.bin", f->root, i);
        assert_int_equal (jm_store_import (st, path, hash, &size, err, sizeof err), 0);
    }
    int64_t import_ms = jm_now_ms () - t0;
    jm_store_destroy (&st);
    fprintf (stderr,
             "import of 3 x 64 MiB: %" PRId64 " ms; during the task: %zu FETCH probes, slowest "
             "answer %" PRId64 " ms; %zu heartbeats, largest gap %" PRId64 " ms\n",
             import_ms, probes, max_probe, hbs, max_hb_gap);
    assert_true (probes > 10);
    assert_true (max_probe * 2 < import_ms);
    /* the coordinator declares a site lost after 3 silent intervals */
    assert_true (hbs > 2);
    assert_true (max_hb_gap < 3 * 50);
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);
}

/* COLLECT with these patterns for sub_id; returns the COLLECTED. */
static jm_msg_t *
s_collect_req (s_fix_t *f, const char *sub_id, const char **patterns, size_t n)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_COLLECT);
    jm_str_set (&m->sub_id, sub_id);
    for (size_t i = 0; i < n; i++)
        jm_strs_push (&m->backward_common, patterns[i]);
    s_send (f, m);
    m = s_expect (f, JM_MSG_COLLECTED, 10000, NULL, NULL);
    assert_string_equal (m->sub_id, sub_id);
    return m;
}

/*  COLLECT: the backward common patterns are expanded in the work base,
    the files imported and listed with paths relative to the work base;
    a missing literal file, a pattern or symlink leading out of the work
    base and an unknown submission are reported in reason. */
static void
test_collect (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 1000);
    char secret[400];
    snprintf (secret, sizeof secret, "%s/secret.txt", f->tmp);
    FILE *fp = fopen (secret, "w");
    assert_non_null (fp);
    fputs ("secret\n", fp);
    fclose (fp);

    jm_msg_t *job = s_job (7, "sub-c", 1);
    s_task (job, 71, "t1", "echo one >> ../summary.txt; printf 'all\\n' > ../all.dat");
    s_task (job, 72, "t2", "echo two >> ../summary.txt; mkdir -p ../d; echo deep > ../d/x.dat");
    char cmd[600];
    snprintf (cmd, sizeof cmd, "ln -s '%s' ../leak.lnk; chmod 600 ../all.dat", secret);
    s_task (job, 73, "t3", cmd);
    s_send (f, job);
    s_report_t r = {0};
    s_wait_job_end (f, &r, "DONE");
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);

    const char *pats[] = {"summary.txt", "*.dat", "*/*.dat", "summary.txt"};
    jm_msg_t *m = s_collect_req (f, "sub-c", pats, 4);
    assert_string_equal (m->reason, "");
    assert_int_equal (m->files.n, 3); /* summary.txt once */
    assert_string_equal (m->files.v[0].path, "summary.txt");
    assert_string_equal (m->files.v[1].path, "all.dat");
    assert_string_equal (m->files.v[2].path, "d/x.dat");
    assert_int_equal (m->files.v[1].mode, 0600);
    const char *want[] = {"one\ntwo\n", "all\n", "deep\n"};
    for (size_t i = 0; i < 3; i++) {
        char hash[JM_HASH_HEX];
        jm_sha256_buf (want[i], strlen (want[i]), hash);
        assert_string_equal (m->files.v[i].hash, hash);
        assert_int_equal (m->files.v[i].size, strlen (want[i]));
        size_t len;
        char *data = s_fetch (f, hash, &len); /* it is in the agent's store */
        assert_string_equal (data, want[i]);
        free (data);
    }
    jm_msg_destroy (&m);

    /* a literal file that is not there; a glob matching nothing is fine */
    const char *miss[] = {"missing.txt", "*.none"};
    m = s_collect_req (f, "sub-c", miss, 2);
    assert_non_null (strstr (m->reason, "backward common file 'missing.txt' not found"));
    assert_null (strstr (m->reason, "*.none"));
    assert_int_equal (m->files.n, 0);
    jm_msg_destroy (&m);

    /* out of the work base: by '..' or through a symlink */
    const char *esc[] = {"../*", "../sub-c/summary.txt", "leak.lnk", "*.lnk"};
    m = s_collect_req (f, "sub-c", esc, 4);
    assert_non_null (strstr (m->reason, "'../*'"));
    assert_non_null (strstr (m->reason, "'../sub-c/summary.txt'"));
    assert_non_null (strstr (m->reason, "leak.lnk"));
    assert_int_equal (m->files.n, 0);
    jm_msg_destroy (&m);

    /* a submission that never ran here, and a sub_id that is a path */
    m = s_collect_req (f, "sub-never", pats, 1);
    assert_non_null (strstr (m->reason, "not at this site"));
    assert_int_equal (m->files.n, 0);
    jm_msg_destroy (&m);
    m = s_collect_req (f, "..", pats, 1);
    assert_non_null (strstr (m->reason, "not a plain name"));
    assert_int_equal (m->files.n, 0);
    jm_msg_destroy (&m);

    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/*  The coordinator falls silent (> 3 heartbeats) while a job stages a
    3-chunk file: the agent says HELLO again but keeps the job staging;
    late answers to the FETCHes sent before are dropped; after WELCOME
    the file is fetched again and the job runs -- no JOB_STATE FAILED. */
static void
test_staging_survives_silence (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 100);
    size_t big = 3 * JM_XFER_CHUNK - 1000;
    char *content = malloc (big + 1);
    for (size_t i = 0; i < big; i++)
        content[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    content[big] = 0;
    char hash[JM_HASH_HEX];
    uint64_t size;
    s_put (f, content, hash, &size);
    assert_int_equal (size, big);

    jm_msg_t *job = s_job (8, "sub-s", 1);
    jm_wtask_t *t = s_task (job, 81, "t", "wc -c < in.bin > n.txt");
    jm_wfiles_push (&t->forward, "in.bin", hash, size, 0644);
    jm_strs_push (&t->backward, "n.txt");
    s_send (f, job);

    /* silence: FETCHes and heartbeats go unanswered until HELLO */
    s_report_t r = {0};
    jm_msg_t *old[8];
    size_t nold = 0;
    jm_msg_t *hello = NULL;
    int64_t t0 = jm_now_ms ();
    while (!hello && jm_now_ms () - t0 < 5000) {
        jm_msg_t *m = s_recv (f, 100);
        if (!m)
            continue;
        if (m->id == JM_MSG_HELLO)
            hello = m;
        else if (m->id == JM_MSG_FETCH && nold < 8)
            old[nold++] = m;
        else if (m->id == JM_MSG_JOB_STATE || m->id == JM_MSG_TASK_END)
            s_collect (&r, m);
        else
            jm_msg_destroy (&m);
    }
    assert_non_null (hello);
    jm_msg_destroy (&hello);
    assert_int_equal (nold, 3);
    assert_null (strstr (r.states, "FAILED"));
    /* the answers to the old FETCHes arrive late, the last one first */
    for (size_t i = nold; i-- > 0;) {
        s_send (f, jm_xfer_serve (f->cstore, old[i], NULL));
        jm_msg_destroy (&old[i]);
    }
    jm_msg_t *m = jm_msg_new (JM_MSG_WELCOME);
    m->heartbeat_ms = 1000;
    s_send (f, m);
    m = s_expect (f, JM_MSG_CREDIT, 3000, s_collect, &r);
    assert_int_equal (m->credit, T_SLOTS - 1); /* the staging job keeps its slot */
    jm_msg_destroy (&m);
    s_wait_job_end (f, &r, "DONE");
    assert_null (strstr (r.states, "FAILED"));
    assert_non_null (strstr (r.states, "QUEUED"));
    assert_int_equal (r.nends, 1);
    assert_int_equal (r.ends[0]->exit_code, 0);
    const jm_wfile_t *fe = s_file_of (r.ends[0], "n.txt");
    assert_non_null (fe);
    size_t len;
    char *data = s_fetch (f, fe->hash, &len);
    char want[32];
    snprintf (want, sizeof want, "%zu\n", big);
    assert_string_equal (data, want);
    free (data);
    jm_msg_destroy (&r.ends[0]);
    free (content);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* LOAD {running, queued, free_slots, done_1m, wait_ms} after each
   heartbeat: one task done and one sleeping -> running 1, done_1m 1; the
   capacity the agent stated in HELLO (--cores, --gpus). */
static void
test_load (void **state)
{
    s_fix_t *f = *state;
    f->cfg.cores = 48;
    f->cfg.gpus = 4;
    s_start_agent (f);
    s_handshake (f, 200);
    jm_msg_t *job = s_job (1, "sub-l", 1);
    s_task (job, 11, "t1", "true");
    s_task (job, 12, "t2", "sleep 3");
    s_send (f, job);
    s_report_t r = {0};
    bool seen = false;
    int64_t deadline = jm_now_ms () + 10000;
    while (!seen && jm_now_ms () < deadline) {
        jm_msg_t *m = s_expect (f, JM_MSG_LOAD, 5000, s_collect, &r);
        if (m->running == 1 && m->done_1m == 1) {
            seen = true;
            assert_int_equal (m->queued, 0);
            assert_int_equal (m->free_slots, T_SLOTS - 1);
            assert_true (m->wait_ms < 2000); /* shell: starts at once */
        }
        else /* before: staging or queued, nothing ended */
            assert_int_equal (m->done_1m, 0);
        jm_msg_destroy (&m);
    }
    assert_true (seen);
    s_wait_job_end (f, &r, "DONE");
    jm_msg_t *m = s_expect (f, JM_MSG_LOAD, 5000, s_collect, &r);
    assert_int_equal (m->running, 0);
    assert_int_equal (m->queued, 0);
    assert_int_equal (m->done_1m, 2);
    assert_int_equal (m->free_slots, T_SLOTS);
    jm_msg_destroy (&m);
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/*  WITHDRAW of a job that has not started (it stages a file the
    coordinator never sends) -> WITHDRAWN + CREDIT 1, nothing more about
    it, its task never runs; WITHDRAW of a running job -> RUNNING and it
    goes on; of an unknown job -> nothing. */
static void
test_withdraw (void **state)
{
    s_fix_t *f = *state;
    s_start_agent (f);
    s_handshake (f, 300);
    char h[JM_HASH_HEX];
    uint64_t sz;
    s_put (f, "input\n", h, &sz);
    f->no_fetch = true;
    jm_msg_t *job = s_job (1, "sub-w", 1);
    jm_wtask_t *t = s_task (job, 11, "t1", "touch ran.txt");
    jm_wfiles_push (&t->forward, "in.txt", h, sz, 0644);
    s_send (f, job);
    s_report_t r = {0};
    jm_msg_t *m = s_expect (f, JM_MSG_JOB_STATE, 5000, NULL, NULL);
    assert_string_equal (m->state, "STAGING");
    jm_msg_destroy (&m);
    /* LOAD counts it as queued */
    m = s_expect (f, JM_MSG_LOAD, 5000, s_collect, &r);
    assert_int_equal (m->queued, 1);
    assert_int_equal (m->running, 0);
    jm_msg_destroy (&m);
    m = jm_msg_new (JM_MSG_WITHDRAW);
    m->job_id = 1;
    s_send (f, m);
    m = s_expect (f, JM_MSG_JOB_STATE, 5000, NULL, NULL);
    assert_int_equal (m->job_id, 1);
    assert_string_equal (m->state, "WITHDRAWN");
    jm_msg_destroy (&m);
    m = s_expect (f, JM_MSG_CREDIT, 5000, NULL, NULL);
    assert_int_equal (m->credit, 1);
    jm_msg_destroy (&m);
    f->no_fetch = false;
    /* an unknown job: no answer */
    m = jm_msg_new (JM_MSG_WITHDRAW);
    m->job_id = 999;
    s_send (f, m);

    /* a running job stays */
    job = s_job (2, "sub-w", 1);
    s_task (job, 21, "t2", "sleep 30");
    s_send (f, job);
    s_report_t r2 = {0};
    m = s_expect (f, JM_MSG_TASK_STARTED, 10000, s_collect, &r2);
    jm_msg_destroy (&m);
    m = jm_msg_new (JM_MSG_WITHDRAW);
    m->job_id = 2;
    s_send (f, m);
    memset (r2.states, 0, sizeof r2.states);
    m = s_expect (f, JM_MSG_JOB_STATE, 5000, s_collect, &r2);
    assert_int_equal (m->job_id, 2);
    assert_string_equal (m->state, "RUNNING");
    jm_msg_destroy (&m);
    /* nothing about job 1 or 999 for a while (a LOAD or two go by) */
    int64_t until = jm_now_ms () + 1000;
    while (jm_now_ms () < until) {
        m = s_recv (f, 100);
        if (!m)
            continue;
        if (m->id == JM_MSG_HEARTBEAT)
            s_send (f, jm_msg_new (JM_MSG_HEARTBEAT));
        assert_false (m->id == JM_MSG_JOB_STATE || m->id == JM_MSG_TASK_END ||
                      m->id == JM_MSG_TASK_STARTED || m->id == JM_MSG_CREDIT);
        if (m->id == JM_MSG_LOAD)
            assert_int_equal (m->running, 1);
        jm_msg_destroy (&m);
    }
    m = jm_msg_new (JM_MSG_CANCEL_JOB);
    m->job_id = 2;
    s_send (f, m);
    s_wait_job_end (f, &r2, "DONE");
    for (size_t i = 0; i < r2.nends; i++)
        jm_msg_destroy (&r2.ends[i]);
    char path[600];
    snprintf (path, sizeof path, "%s/sub-w/t1/ran.txt", f->root);
    assert_int_equal (access (path, F_OK), -1);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* One job with one task writing out.txt at root want; returns the final
   state's reason (malloc'ed) and the state in state (>= 16 bytes). */
static char *
s_root_job (s_fix_t *f, uint64_t id, const char *want, char *state)
{
    jm_msg_t *job = s_job (id, "sub-r", 1);
    jm_str_set (&job->root, want);
    s_task (job, id * 10, "t", "echo here > out.txt");
    s_send (f, job);
    s_report_t r = {0};
    int64_t deadline = jm_now_ms () + 20000;
    while (!strstr (r.states, "DONE") && !strstr (r.states, "FAILED") && jm_now_ms () < deadline) {
        jm_msg_t *m = s_expect (f, JM_MSG_JOB_STATE, 20000, s_collect, &r);
        s_collect (&r, m);
    }
    jm_msg_t *m = s_expect (f, JM_MSG_CREDIT, 5000, s_collect, &r);
    jm_msg_destroy (&m);
    for (size_t i = 0; i < r.nends; i++)
        jm_msg_destroy (&r.ends[i]);
    snprintf (state, 16, "%s", strstr (r.states, "DONE") ? "DONE" : "FAILED");
    return strdup (r.state_reason);
}

/*  JOB.root: "" and below --root and below --allow-root run there (COLLECT
    finds the work base); elsewhere, through a symlink out, or with '..'
    the job fails naming the flag to use, and nothing is created. */
static void
test_roots (void **state)
{
    s_fix_t *f = *state;
    char other[400], evil[400], link[400], below[400], in_other[500], path[800];
    snprintf (other, sizeof other, "%s/other", f->tmp);
    snprintf (evil, sizeof evil, "%s/evil", f->tmp);
    const char *allow[] = {other};
    f->cfg.allow_roots = allow;
    f->cfg.n_allow_roots = 1;
    s_start_agent (f);
    s_handshake (f, 1000);
    char st[16];
    snprintf (below, sizeof below, "%s/deeper/./still", f->root);
    char *why = s_root_job (f, 1, below, st);
    assert_string_equal (st, "DONE");
    free (why);
    snprintf (path, sizeof path, "%s/deeper/still/sub-r/t/out.txt", f->root);
    assert_int_equal (access (path, F_OK), 0);

    snprintf (in_other, sizeof in_other, "%s/proj", other);
    why = s_root_job (f, 2, in_other, st);
    assert_string_equal (st, "DONE");
    free (why);
    snprintf (path, sizeof path, "%s/sub-r/t/out.txt", in_other);
    assert_int_equal (access (path, F_OK), 0);
    /* COLLECT finds the work base at that root */
    const char *pats[] = {"t/out.txt"};
    jm_msg_t *m = s_collect_req (f, "sub-r", pats, 1);
    assert_string_equal (m->reason, "");
    assert_int_equal (m->files.n, 1);
    jm_msg_destroy (&m);

    why = s_root_job (f, 3, evil, st);
    assert_string_equal (st, "FAILED");
    char want[1200];
    snprintf (want, sizeof want,
              "root '%s' is not allowed at site test-site (start the agent with --allow-root %s)",
              evil, evil);
    assert_string_equal (why, want);
    free (why);
    assert_int_equal (access (evil, F_OK), -1);

    snprintf (path, sizeof path, "%s/../evil", f->root);
    why = s_root_job (f, 4, path, st);
    assert_string_equal (st, "FAILED");
    assert_non_null (strstr (why, "'..'"));
    free (why);

    snprintf (link, sizeof link, "%s/link", f->root);
    assert_int_equal (mkdir (evil, 0755), 0);
    assert_int_equal (symlink (evil, link), 0);
    snprintf (path, sizeof path, "%s/x", link);
    why = s_root_job (f, 5, path, st);
    assert_string_equal (st, "FAILED");
    assert_non_null (strstr (why, "is not allowed at site test-site"));
    assert_non_null (strstr (why, "resolves to"));
    free (why);
    snprintf (path, sizeof path, "%s/x", evil);
    assert_int_equal (access (path, F_OK), -1);

    why = s_root_job (f, 6, "relative/dir", st);
    assert_string_equal (st, "FAILED");
    assert_non_null (strstr (why, "not an absolute path"));
    free (why);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

/* --bind: the agent listens, the coordinator connects (CURVE as before). */
static void
test_bind (void **state)
{
    s_fix_t *f = *state;
    int port = jm_test_free_port ();
    char ep[64];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    f->cfg.coordinator = NULL;
    f->cfg.bind = ep;
    zsock_destroy (&f->router);
    char sec[400], err[512];
    snprintf (sec, sizeof sec, "%s/coord.cert_secret", f->coord_home);
    zcert_t *ccert = jm_keys_load_secret (sec, err, sizeof err);
    assert_non_null (ccert);
    f->router = zsock_new (ZMQ_ROUTER);
    jm_curve_server (f->router, ccert);
    zcert_destroy (&ccert);
    s_start_agent (f);
    usleep (200 * 1000);
    assert_int_equal (zsock_connect (f->router, "%s", ep), 0);
    s_handshake (f, 300);
    jm_msg_t *job = s_job (1, "sub-b", 1);
    s_task (job, 11, "t", "echo bound");
    s_send (f, job);
    s_report_t r = {0};
    s_wait_job_end (f, &r, "DONE");
    assert_int_equal (r.nends, 1);
    assert_int_equal (r.ends[0]->exit_code, 0);
    jm_msg_destroy (&r.ends[0]);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);

    /* both or neither endpoint: refused */
    char msg[256];
    f->cfg.coordinator = f->endpoint;
    assert_int_equal (jm_agent_config_check (&f->cfg, msg, sizeof msg), -1);
    assert_non_null (strstr (msg, "either --coordinator or --bind"));
    f->cfg.coordinator = NULL;
    f->cfg.bind = NULL;
    assert_int_equal (jm_agent_config_check (&f->cfg, msg, sizeof msg), -1);
}

/*  --cache-max: over the limit, an old file no job needs is evicted while
    the file a held (running) job uses stays; once that job is over its
    file goes too, but its result files stay fetchable. */
static void
test_cache_max (void **state)
{
    s_fix_t *f = *state;
    char dir[400], err[512], path[600], hold[JM_HASH_HEX], old[JM_HASH_HEX];
    uint64_t sz;
    snprintf (dir, sizeof dir, "%s/store", f->home);
    jm_store_t *astore = jm_store_new (dir, err, sizeof err);
    assert_non_null (astore);
    char big[3000];
    memset (big, 'o', sizeof big - 1);
    big[sizeof big - 1] = 0;
    snprintf (path, sizeof path, "%s/old", f->tmp);
    assert_int_equal (jm_write_file_atomic (path, big, strlen (big), 0644, err, sizeof err), 0);
    assert_int_equal (jm_store_import (astore, path, old, &sz, err, sizeof err), 0);
    memset (big, 'h', sizeof big - 1);
    s_put (f, big, hold, &sz);
    f->cfg.cache_max = 1000; /* less than either file */
    s_start_agent (f);
    s_handshake (f, 200);
    jm_msg_t *job = s_job (1, "sub-c", 1);
    jm_wtask_t *t = s_task (job, 11, "t", "wc -c < in.txt; sleep 2");
    jm_wfiles_push (&t->forward, "in.txt", hold, sz, 0644);
    s_send (f, job);
    s_report_t r = {0};
    jm_msg_t *m = s_expect (f, JM_MSG_TASK_STARTED, 10000, s_collect, &r);
    jm_msg_destroy (&m);
    /* a few heartbeats while the task sleeps */
    for (int i = 0; i < 3; i++) {
        m = s_expect (f, JM_MSG_LOAD, 5000, s_collect, &r);
        jm_msg_destroy (&m);
    }
    assert_false (jm_store_has (astore, old));
    assert_true (jm_store_has (astore, hold));
    s_wait_job_end (f, &r, "DONE");
    for (int i = 0; i < 3; i++) {
        m = s_expect (f, JM_MSG_LOAD, 5000, s_collect, &r);
        jm_msg_destroy (&m);
    }
    assert_false (jm_store_has (astore, hold));
    assert_int_equal (r.nends, 1);
    const jm_wfile_t *out = s_file_of (r.ends[0], "stdout");
    assert_non_null (out);
    size_t len;
    char *data = s_fetch (f, out->hash, &len);
    assert_string_equal (data, "2999\n");
    free (data);
    jm_msg_destroy (&r.ends[0]);
    jm_store_destroy (&astore);
    s_stop_agent (f);
    assert_int_equal (f->agent_rc, 0);
}

static void
test_refuses_to_start (void **state)
{
    s_fix_t *f = *state;
    jm_agent_config_t cfg = f->cfg;
    cfg.site = "bad site";
    assert_int_equal (jm_agent_run (&cfg), 2);
    cfg = f->cfg;
    cfg.scheduler = "nosuch";
    assert_int_equal (jm_agent_run (&cfg), 2);
    cfg = f->cfg;
    cfg.coordinator_cert = "/nonexistent/coord.cert";
    assert_int_equal (jm_agent_run (&cfg), 2);
    char sec[400];
    snprintf (sec, sizeof sec, "%s/agent.cert_secret", f->home);
    assert_int_equal (chmod (sec, 0644), 0);
    assert_int_equal (jm_agent_run (&f->cfg), 2);
    assert_int_equal (chmod (sec, 0600), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_job_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_paths_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeat_and_rehello, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_job_killed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_large_result_keeps_loop_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_collect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_staging_survives_silence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refuses_to_start, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_withdraw, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_roots, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cache_max, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
