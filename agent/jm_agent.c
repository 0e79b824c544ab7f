/*  jm_agent.c - the agent's event loop.

    One zloop drives everything: the DEALER to the coordinator, the
    heartbeat timer, the scheduler backend's pollers/timers and the stop fd.
    A job goes STAGING (files fetched into <home>/store by jm_xfer) ->
    placed under <root>/<sub_id>/ -> job script submitted (QUEUED) -> first
    task start (RUNNING) -> TASK_END per task as it finishes -> DONE + CREDIT
    when the job's process ends.

    File work that may block for seconds (copying staged objects out to
    the work directories, hashing result files into the store) runs on a
    jm_worker actor; its replies come back through this loop.  A task's
    TASK_END is sent when the worker has imported its results, and a job's
    DONE only after all of its TASK_ENDs. */
#define _GNU_SOURCE
#include "jm_agent.h"
#include "jm_jobscript.h"
#include "jm_keys.h"
#include "jm_log.h"
#include "jm_path.h"
#include "jm_proto.h"
#include "jm_resources.h"
#include "jm_sched.h"
#include "jm_store.h"
#include "jm_util.h"
#include "jm_worker.h"
#include "jm_xfer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PEER "coord"
#define S_REASON_MAX 8000
#define S_COLLECT_MAX 100000 /* files in one COLLECTED (the table's limit) */

typedef struct _s_agent_t s_agent_t;

/* A TASK_END waiting for the worker to import the task's files. */
typedef struct {
    uint64_t job_id;
    jm_msg_t *msg; /* TASK_END; files are appended from the reply */
    char *reason;  /* reason so far, malloc'ed */
    size_t first;  /* its files are items first .. first+n-1 */
    size_t n;
} s_end_t;

/* A request to the file worker and what to do with its reply.  Import:
   ends (items name the task directory and the file); place: one job's
   staged files (tidx -1 = common file fidx, else task tidx's forward file
   fidx). */
typedef struct {
    bool place;
    char *base;          /* the root its items are relative to (owned) */
    jm_msg_t *collected; /* a COLLECTED waiting for the import (else NULL) */
    char *creason;       /* its reason so far, malloc'ed */
    uint64_t job_id;
    jm_worker_item_t *items;
    size_t n, cap;
    zlist_t *strings; /* owns the items' strings until submitted */
    s_end_t *ends;
    size_t nends, ends_cap;
    struct {
        int tidx;
        size_t fidx;
    } * what;
} s_req_t;

typedef struct {
    s_agent_t *agent;
    uint64_t id;
    jm_msg_t *msg;  /* the JOB message (owns sub_id, common, tasks) */
    int pending;    /* file wants not yet done (+1 while issuing them) */
    char *fail;     /* first staging failure, malloc'ed */
    bool submitted; /* handed to the backend */
    bool running;   /* JOB_STATE RUNNING sent */
    bool cancelled;
    bool placing;        /* files being placed by the worker */
    bool over;           /* the job's process has ended */
    size_t ends_queued;  /* TASK_ENDs waiting for the worker */
    jm_wfiles_t rewant;  /* files whose fetch the lost connection broke:
                            wanted again after the next WELCOME */
    bool *ended;         /* per task index */
    bool *started;       /* per task index: TASK_START seen */
    zhashx_t *index;     /* "task_id" -> task index + 1 */
    char *root;          /* the job's root (canonical; owned) */
    int rootfd;          /* open on root, or -1 */
    int64_t submit_ms;   /* when it was handed to the scheduler */
    bool withdrawing;    /* the backend is withdrawing it */
    bool withdraw_asked; /* the coordinator asked for it back and the backend
                            cancels it: if a task started meanwhile, the
                            tasks it kills are not failures - the job ends
                            WITHDRAWN and the coordinator hands them out again */
} s_job_t;

#define S_WAITS 50    /* queue waits kept for the median */
#define S_RECENT 1000 /* task ends whose result files the cache keeps */

/* The result files of one TASK_END (or COLLECTED): kept in the cache
   while the coordinator may still fetch them. */
typedef struct {
    char **h;
    size_t n;
} s_recent_t;

struct _s_agent_t {
    const jm_agent_config_t *cfg;
    const jm_sched_backend_t *backend;
    jm_sched_t *sched;
    zloop_t *loop;
    zsock_t *dealer;
    zcert_t *cert;
    char coord_key[41];
    jm_store_t *store;
    jm_xfer_t *xfer;
    jm_worker_t *worker;
    zhashx_t *reqs; /* "request id" -> s_req_t *: worker requests */
    s_req_t *batch; /* imports collected in this event callback */
    char root[PATH_MAX];
    int rootfd;
    const char *ep; /* the endpoint, for messages */
    char **allow;   /* canonical --allow-root dirs */
    size_t nallow;
    zhashx_t *sub_roots; /* sub_id -> root of its work base (strings) */
    size_t cores;
    int64_t *done; /* times of task ends (ms), done[done_lo..done_hi) */
    size_t done_lo, done_hi, done_cap;
    uint64_t waits[S_WAITS]; /* submit-to-first-start times (ms) */
    size_t nwaits, wait_pos;
    s_recent_t recent[S_RECENT];
    size_t recent_pos;
    bool hello_unsent; /* bind mode: no coordinator to say HELLO to yet */
    bool trim_due;     /* a job ended since the last cache trim */
    char host[256];
    size_t slots;
    uint64_t hb_ms;
    int hb_timer;
    int64_t last_recv;
    int64_t last_hello;
    int hello_pending; /* HELLOs not yet answered */
    bool welcomed;
    zhashx_t *jobs;   /* "job_id" -> s_job_t * */
    zhashx_t *placed; /* "sub_id\npath" -> hash: common files placed */
    int rc;
};

/* ------------------------------------------------------------------ */
/* Sending */

static void
s_send (s_agent_t *self, jm_msg_t *msg)
{
    const char *name = jm_msg_name (msg->id);
    if (jm_msg_send (&msg, self->dealer, NULL) != 0)
        jm_warn ("cannot send %s to the coordinator %s", name, self->ep);
}

static int
s_xfer_send (void *arg, const char *peer, jm_msg_t **msg_p)
{
    (void)peer;
    s_agent_t *self = arg;
    return jm_msg_send (msg_p, self->dealer, NULL);
}

static void
s_job_state (s_agent_t *self, uint64_t job_id, const char *state, const char *reason)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_JOB_STATE);
    m->job_id = job_id;
    jm_str_set (&m->state, state);
    char buf[S_REASON_MAX + 1];
    snprintf (buf, sizeof buf, "%s", reason ? reason : "");
    jm_str_set (&m->reason, buf);
    s_send (self, m);
}

static size_t
s_free_slots (s_agent_t *self)
{
    size_t used = zhashx_size (self->jobs);
    return used >= self->slots ? 0 : self->slots - used;
}

static void
s_credit (s_agent_t *self, uint64_t n)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_CREDIT);
    m->credit = n;
    s_send (self, m);
}

/* A slot came free.  While a HELLO is unanswered the CREDIT that follows
   WELCOME grants all free slots, so nothing is sent now. */
static void
s_credit_one (s_agent_t *self)
{
    if (self->welcomed && self->hello_pending == 0)
        s_credit (self, 1);
}

static void
s_hello (s_agent_t *self)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_HELLO);
    m->version = JM_PROTO_VERSION;
    jm_str_set (&m->role, "agent");
    jm_str_set (&m->name, self->cfg->site);
    jm_str_set (&m->scheduler, self->backend->name);
    m->slots = self->slots;
    jm_str_set (&m->host, self->host);
    m->max_jobs = self->slots;
    m->cores = self->cores;
    m->gpus = self->cfg->gpus;
    self->last_hello = jm_now_ms ();
    if (jm_msg_send (&m, self->dealer, NULL) != 0) {
        /* bind mode before the coordinator connected: try again at the
           next heartbeat tick */
        jm_debug ("cannot send HELLO yet (%s)", zmq_strerror (zmq_errno ()));
        jm_msg_destroy (&m);
        self->hello_unsent = true;
        return;
    }
    self->hello_unsent = false;
    self->hello_pending++;
}

/* ------------------------------------------------------------------ */
/* Live figures (LOAD) */

/* Drops task ends older than 60 s from the window. */
static void
s_done_prune (s_agent_t *self, int64_t now)
{
    while (self->done_lo < self->done_hi && self->done[self->done_lo] < now - 60000)
        self->done_lo++;
}

static void
s_note_task_end (s_agent_t *self)
{
    int64_t now = jm_now_ms ();
    s_done_prune (self, now);
    if (self->done_hi == self->done_cap) {
        size_t n = self->done_hi - self->done_lo;
        if (self->done_lo > 0)
            memmove (self->done, self->done + self->done_lo, n * sizeof *self->done);
        self->done_lo = 0;
        self->done_hi = n;
        if (n == self->done_cap) {
            self->done_cap = self->done_cap ? 2 * self->done_cap : 256;
            self->done = realloc (self->done, self->done_cap * sizeof *self->done);
            assert (self->done);
        }
    }
    self->done[self->done_hi++] = now;
}

static void
s_note_wait (s_agent_t *self, int64_t ms)
{
    self->waits[self->wait_pos] = ms > 0 ? (uint64_t)ms : 0;
    self->wait_pos = (self->wait_pos + 1) % S_WAITS;
    if (self->nwaits < S_WAITS)
        self->nwaits++;
}

static int
s_u64_cmp (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t s_free_slots (s_agent_t *self);

static void
s_send_load (s_agent_t *self)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_LOAD);
    for (s_job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        bool any = false;
        for (size_t i = 0; i < job->msg->tasks.n; i++) {
            any = any || job->started[i];
            if (job->started[i] && !job->ended[i])
                m->running++;
        }
        if (!any && !job->over)
            m->queued++;
    }
    m->free_slots = s_free_slots (self);
    s_done_prune (self, jm_now_ms ());
    m->done_1m = self->done_hi - self->done_lo;
    if (self->nwaits) {
        uint64_t w[S_WAITS];
        memcpy (w, self->waits, self->nwaits * sizeof *w);
        qsort (w, self->nwaits, sizeof *w, s_u64_cmp);
        m->wait_ms = self->nwaits % 2 ? w[self->nwaits / 2]
                                      : (w[self->nwaits / 2 - 1] + w[self->nwaits / 2]) / 2;
    }
    s_send (self, m);
}

/* Remembers the result files of a task end (msg's files) for the cache. */
static void
s_note_results (s_agent_t *self, const jm_wfiles_t *files)
{
    s_recent_t *r = &self->recent[self->recent_pos];
    self->recent_pos = (self->recent_pos + 1) % S_RECENT;
    for (size_t i = 0; i < r->n; i++)
        free (r->h[i]);
    free (r->h);
    r->h = NULL;
    r->n = 0;
    if (!files->n)
        return;
    r->h = calloc (files->n, sizeof *r->h);
    assert (r->h);
    for (size_t i = 0; i < files->n; i++) {
        r->h[i] = strdup (files->v[i].hash);
        assert (r->h[i]);
    }
    r->n = files->n;
}

/* ------------------------------------------------------------------ */
/* Jobs */

static char *
s_key (uint64_t id, char *buf, size_t len)
{
    snprintf (buf, len, "%" PRIu64, id);
    return buf;
}

static void
s_wfiles_free (jm_wfiles_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free (list->v[i].path);
    free (list->v);
    list->v = NULL;
    list->n = 0;
}

static s_job_t *
s_job_lookup (s_agent_t *self, uint64_t id)
{
    char key[32];
    return zhashx_lookup (self->jobs, s_key (id, key, sizeof key));
}

static void
s_job_destroy (s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job)
        return;
    s_agent_t *self = job->agent;
    self->trim_due = true;
    if (job->pending > 0)
        jm_xfer_forget (self->xfer, job);
    char key[32];
    zhashx_delete (self->jobs, s_key (job->id, key, sizeof key));
    jm_msg_destroy (&job->msg);
    s_wfiles_free (&job->rewant);
    zhashx_destroy (&job->index);
    free (job->ended);
    free (job->started);
    free (job->root);
    if (job->rootfd >= 0)
        close (job->rootfd);
    free (job->fail);
    free (job);
    *job_p = NULL;
}

static void
s_job_fail (s_job_t *job, const char *reason)
{
    s_agent_t *self = job->agent;
    jm_warn ("job %" PRIu64 ": %s", job->id, reason);
    s_job_state (self, job->id, "FAILED", reason);
    s_job_destroy (&job);
    s_credit_one (self);
}

static void s_job_set_fail (s_job_t *job, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
static void
s_job_set_fail (s_job_t *job, const char *fmt, ...)
{
    if (job->fail)
        return;
    char buf[S_REASON_MAX];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    job->fail = strdup (buf);
}

static bool
s_sub_id_ok (const char *s)
{
    if (!s || !*s || strstr (s, "..") || strcmp (s, ".") == 0)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum ((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool
s_is_glob (const char *s)
{
    return strpbrk (s, "*?[") != NULL;
}

/* Lexical checks of every path in a JOB.  0 or -1 + err. */
static int
s_job_check (const jm_msg_t *m, char *err, size_t errlen)
{
    if (!s_sub_id_ok (m->sub_id))
        return jm_err (err, errlen, "sub_id '%s' is not a plain name ([A-Za-z0-9._-], no '..')",
                       m->sub_id ? m->sub_id : "");
    char what[128];
    for (size_t i = 0; i < m->common.n; i++) {
        if (jm_path_check_rel (m->common.v[i].path, "common file", err, errlen))
            return -1;
        if (!jm_hash_valid (m->common.v[i].hash))
            return jm_err (err, errlen, "common file '%s': bad hash", m->common.v[i].path);
    }
    for (size_t i = 0; i < m->tasks.n; i++) {
        const jm_wtask_t *t = &m->tasks.v[i];
        snprintf (what, sizeof what, "task_work_path of task %" PRIu64, t->id);
        if (jm_path_check_rel (t->path, what, err, errlen))
            return -1;
        for (size_t j = 0; j < t->forward.n; j++) {
            snprintf (what, sizeof what, "forward file of task %" PRIu64, t->id);
            if (jm_path_check_rel (t->forward.v[j].path, what, err, errlen))
                return -1;
            if (!jm_hash_valid (t->forward.v[j].hash))
                return jm_err (err, errlen, "task %" PRIu64 ": forward file '%s': bad hash", t->id,
                               t->forward.v[j].path);
        }
        for (size_t j = 0; j < t->backward.n; j++) {
            snprintf (what, sizeof what, "backward pattern of task %" PRIu64, t->id);
            if (jm_path_check_rel (t->backward.v[j], what, err, errlen))
                return -1;
        }
        snprintf (what, sizeof what, "outlog of task %" PRIu64, t->id);
        if (t->outlog && *t->outlog && jm_path_check_rel (t->outlog, what, err, errlen))
            return -1;
        snprintf (what, sizeof what, "errlog of task %" PRIu64, t->id);
        if (t->errlog && *t->errlog && jm_path_check_rel (t->errlog, what, err, errlen))
            return -1;
    }
    return 0;
}

/* Which file of the job has this hash (for error messages). */
static void
s_describe_hash (s_job_t *job, const char *hash, char *buf, size_t len)
{
    const jm_msg_t *m = job->msg;
    for (size_t i = 0; i < m->common.n; i++)
        if (strcmp (m->common.v[i].hash, hash) == 0) {
            snprintf (buf, len, "common file '%s'", m->common.v[i].path);
            return;
        }
    for (size_t i = 0; i < m->tasks.n; i++)
        for (size_t j = 0; j < m->tasks.v[i].forward.n; j++)
            if (strcmp (m->tasks.v[i].forward.v[j].hash, hash) == 0) {
                snprintf (buf, len, "task %" PRIu64 " forward file '%s'", m->tasks.v[i].id,
                          m->tasks.v[i].forward.v[j].path);
                return;
            }
    snprintf (buf, len, "file %s", hash);
}

/* ------------------------------------------------------------------ */
/* Worker requests */

static s_req_t *
s_req_new (bool place, uint64_t job_id, const char *base)
{
    s_req_t *req = calloc (1, sizeof *req);
    assert (req);
    req->base = strdup (base);
    assert (req->base);
    req->place = place;
    req->job_id = job_id;
    req->strings = zlist_new ();
    return req;
}

static void
s_req_destroy (s_req_t **req_p)
{
    s_req_t *req = *req_p;
    if (!req)
        return;
    for (size_t i = 0; i < req->nends; i++) {
        jm_msg_destroy (&req->ends[i].msg);
        free (req->ends[i].reason);
    }
    free (req->ends);
    jm_msg_destroy (&req->collected);
    free (req->creason);
    free (req->items);
    free (req->what);
    free (req->base);
    zlist_destroy (&req->strings);
    free (req);
    *req_p = NULL;
}

/* A copy of s that lives as long as req. */
static const char *
s_req_str (s_req_t *req, const char *s)
{
    char *copy = strdup (s);
    assert (copy);
    zlist_append (req->strings, copy);
    zlist_freefn (req->strings, copy, free, true);
    return copy;
}

static jm_worker_item_t *
s_req_item (s_req_t *req, int tidx, size_t fidx)
{
    if (req->n == req->cap) {
        req->cap = req->cap ? 2 * req->cap : 16;
        req->items = realloc (req->items, req->cap * sizeof *req->items);
        req->what = realloc (req->what, req->cap * sizeof *req->what);
        assert (req->items && req->what);
    }
    req->what[req->n].tidx = tidx;
    req->what[req->n].fidx = fidx;
    jm_worker_item_t *it = &req->items[req->n++];
    memset (it, 0, sizeof *it);
    return it;
}

static void
s_req_register (s_agent_t *self, s_req_t *req, uint64_t id)
{
    char key[32];
    zhashx_insert (self->reqs, s_key (id, key, sizeof key), req);
}

/* Writes the job script and submits it. */
static void
s_job_submit (s_job_t *job)
{
    s_agent_t *self = job->agent;
    jm_msg_t *m = job->msg;
    char err[1024], reason[S_REASON_MAX];
    char wb[PATH_MAX + 80], jobdir[PATH_MAX + 80];
    snprintf (wb, sizeof wb, "%s/%s", job->root, m->sub_id);
    snprintf (jobdir, sizeof jobdir, "%s/.jobman/jobs/%" PRIu64, self->root, job->id);
    if (jm_mkdirs (jobdir, 0700, err, sizeof err)) {
        snprintf (reason, sizeof reason, "cannot create the job directory: %s", err);
        s_job_fail (job, reason);
        return;
    }
    jm_resources_t *res = NULL;
    if (m->resources && *m->resources) {
        char what[64];
        snprintf (what, sizeof what, "JOB %" PRIu64 " from the coordinator", job->id);
        res = jm_resources_from_json (m->resources, what, err, sizeof err);
        if (!res) {
            snprintf (reason, sizeof reason, "bad resources: %s", err);
            s_job_fail (job, reason);
            return;
        }
    }
    jm_jobscript_t *js = jm_jobscript_new (job->id, wb, jobdir, m->para_deg);
    jm_jobscript_set_resources (js, res);
    jm_resources_destroy (&res);
    for (size_t i = 0; i < m->tasks.n; i++) {
        const jm_wtask_t *t = &m->tasks.v[i];
        jm_jobscript_add_task (js, t->id, t->path, t->command, t->outlog, t->errlog);
    }
    int rc = self->backend->submit (self->sched, js, err, sizeof err);
    jm_jobscript_destroy (&js);
    if (rc != 0) {
        snprintf (reason, sizeof reason, "cannot submit to %s: %s", self->backend->name, err);
        s_job_fail (job, reason);
        return;
    }
    job->submitted = true;
    job->submit_ms = jm_now_ms ();
    s_job_state (self, job->id, "QUEUED", "");
}

/* Creates the work base and task directories (cheap, here) and has the
   worker place the common and forward files; s_place_done submits. */
static void
s_job_launch (s_job_t *job)
{
    s_agent_t *self = job->agent;
    jm_msg_t *m = job->msg;
    if (job->fail) {
        char reason[S_REASON_MAX];
        snprintf (reason, sizeof reason, "%s", job->fail);
        s_job_fail (job, reason);
        return;
    }
    char err[1024], reason[S_REASON_MAX];
    int wbfd = jm_path_mkdirs_beneath (job->rootfd, m->sub_id, err, sizeof err);
    if (wbfd < 0) {
        snprintf (reason, sizeof reason, "cannot create the work base: %s", err);
        s_job_fail (job, reason);
        return;
    }
    s_req_t *req = s_req_new (true, job->id, job->root);
    for (size_t i = 0; i < m->common.n; i++) {
        const jm_wfile_t *f = &m->common.v[i];
        char *key = zsys_sprintf ("%s\n%s\n%s", job->root, m->sub_id, f->path);
        const char *have = zhashx_lookup (self->placed, key);
        zstr_free (&key);
        if (have && strcmp (have, f->hash) == 0)
            continue;
        jm_worker_item_t *it = s_req_item (req, -1, i);
        it->dir = m->sub_id;
        it->rel = f->path;
        it->hash = f->hash;
        it->mode = f->mode ? f->mode & 07777 : 0644;
    }
    for (size_t i = 0; i < m->tasks.n; i++) {
        const jm_wtask_t *t = &m->tasks.v[i];
        int tfd = jm_path_mkdirs_beneath (wbfd, t->path, err, sizeof err);
        if (tfd < 0) {
            close (wbfd);
            s_req_destroy (&req);
            snprintf (reason, sizeof reason, "task %" PRIu64 ": cannot create its directory: %s",
                      t->id, err);
            s_job_fail (job, reason);
            return;
        }
        close (tfd);
        if (t->forward.n == 0)
            continue;
        char *dir = zsys_sprintf ("%s/%s", m->sub_id, t->path);
        const char *tdir = s_req_str (req, dir);
        zstr_free (&dir);
        for (size_t j = 0; j < t->forward.n; j++) {
            const jm_wfile_t *f = &t->forward.v[j];
            jm_worker_item_t *it = s_req_item (req, (int)i, j);
            it->dir = tdir;
            it->rel = f->path;
            it->hash = f->hash;
            it->mode = f->mode ? f->mode & 07777 : 0644;
        }
    }
    close (wbfd);
    if (req->n == 0) {
        s_req_destroy (&req);
        s_job_submit (job);
        return;
    }
    uint64_t id = jm_worker_place (self->worker, job->root, req->items, req->n);
    if (id == 0) {
        s_req_destroy (&req);
        s_job_fail (job, "cannot place the job's files: the agent's file worker has stopped");
        return;
    }
    /* the items' strings (in job->msg) were copied by jm_worker_place */
    job->placing = true;
    s_req_register (self, req, id);
}

/* The worker placed the job's files (reply), or could not (fail). */
static void
s_place_done (s_agent_t *self, s_req_t *req, const jm_worker_reply_t *reply, const char *fail)
{
    s_job_t *job = s_job_lookup (self, req->job_id);
    if (!job || !job->placing)
        return; /* cancelled meanwhile */
    job->placing = false;
    const jm_msg_t *m = job->msg;
    char reason[S_REASON_MAX];
    if (fail) {
        snprintf (reason, sizeof reason, "cannot place the job's files: %s", fail);
        s_job_fail (job, reason);
        return;
    }
    for (size_t i = 0; i < req->n; i++) {
        const jm_worker_result_t *r = &reply->v[i];
        if (r->status == JM_WORKER_OK)
            continue;
        const char *why = r->error ? r->error : "failed";
        int tidx = req->what[i].tidx;
        size_t fidx = req->what[i].fidx;
        if (tidx < 0)
            snprintf (reason, sizeof reason, "cannot place common file '%s': %s",
                      m->common.v[fidx].path, why);
        else
            snprintf (reason, sizeof reason, "task %" PRIu64 ": cannot place forward file '%s': %s",
                      m->tasks.v[tidx].id, m->tasks.v[tidx].forward.v[fidx].path, why);
        s_job_fail (job, reason);
        return;
    }
    for (size_t i = 0; i < req->n; i++)
        if (req->what[i].tidx < 0) {
            const jm_wfile_t *f = &m->common.v[req->what[i].fidx];
            char *key = zsys_sprintf ("%s\n%s\n%s", job->root, m->sub_id, f->path);
            zhashx_update (self->placed, key, (void *)f->hash);
            zstr_free (&key);
        }
    s_job_submit (job);
}

/* xfer: an object wanted by a job is in the store, or failed. */
static void
s_xfer_done (void *arg, const char *peer, const char *hash, int ok, const char *reason,
             void *cookie)
{
    s_agent_t *self = arg;
    s_job_t *job = cookie;
    if (ok != 0 && jm_xfer_peer_losing (self->xfer, peer)) {
        /* the connection went, not the file: the job keeps staging and
           wants it again after the next WELCOME (its pending count stays) */
        const jm_wfile_t *f = NULL;
        for (size_t i = 0; !f && i < job->msg->common.n; i++)
            if (strcmp (job->msg->common.v[i].hash, hash) == 0)
                f = &job->msg->common.v[i];
        for (size_t i = 0; !f && i < job->msg->tasks.n; i++)
            for (size_t j = 0; !f && j < job->msg->tasks.v[i].forward.n; j++)
                if (strcmp (job->msg->tasks.v[i].forward.v[j].hash, hash) == 0)
                    f = &job->msg->tasks.v[i].forward.v[j];
        if (f) {
            jm_wfiles_push (&job->rewant, f->path, f->hash, f->size, f->mode);
            return;
        }
    }
    if (ok != 0 && !job->fail) {
        char what[4400];
        s_describe_hash (job, hash, what, sizeof what);
        s_job_set_fail (job, "%s: %s", what, reason ? reason : "transfer failed");
    }
    if (--job->pending == 0)
        s_job_launch (job);
}

static void
s_want (s_job_t *job, zhashx_t *seen, const jm_wfile_t *f)
{
    if (zhashx_lookup (seen, f->hash))
        return;
    if (jm_store_has (job->agent->store, f->hash)) {
        jm_store_touch (job->agent->store, f->hash); /* used now: LRU order */
        return;
    }
    zhashx_insert (seen, f->hash, (void *)1);
    job->pending++;
    if (jm_xfer_want (job->agent->xfer, S_PEER, f->hash, f->size, job->id, job) < 0) {
        job->pending--;
        s_job_set_fail (job, "file '%s': invalid hash '%s'", f->path, f->hash);
    }
}

/* ------------------------------------------------------------------ */
/* Roots */

/* Is path (canonical) dir or below it? */
static bool
s_is_under (const char *path, const char *dir)
{
    size_t n = strlen (dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp (path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/*  Canonical form of the absolute path, which may not exist yet: the
    realpath of its longest existing prefix + the rest.  '.' and empty
    components are dropped; '..' is refused.  0, or -1 + err. */
static int
s_canon (const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    if (path[0] != '/')
        return jm_err (err, errlen, "root '%s' is not an absolute path", path);
    if (strlen (path) >= PATH_MAX)
        return jm_err (err, errlen, "root '%.100s...' is too long", path);
    char buf[PATH_MAX];
    snprintf (buf, sizeof buf, "%s", path);
    char *comp[PATH_MAX / 2];
    size_t n = 0;
    for (char *save = NULL, *c = strtok_r (buf, "/", &save); c; c = strtok_r (NULL, "/", &save)) {
        if (strcmp (c, ".") == 0)
            continue;
        if (strcmp (c, "..") == 0)
            return jm_err (err, errlen, "root '%s' has a '..' component", path);
        comp[n++] = c;
    }
    char prefix[PATH_MAX], real[PATH_MAX];
    size_t k = n;
    for (;; k--) {
        size_t len = 0;
        prefix[0] = 0;
        for (size_t i = 0; i < k; i++)
            len += (size_t)snprintf (prefix + len, sizeof prefix - len, "/%s", comp[i]);
        if (realpath (k ? prefix : "/", real))
            break;
        if (errno != ENOENT)
            return jm_err (err, errlen, "root '%s': cannot resolve '%s': %s", path,
                           k ? prefix : "/", strerror (errno));
        if (k == 0)
            return jm_err (err, errlen, "root '%s': cannot resolve '/'", path);
    }
    size_t len = (size_t)snprintf (out, outlen, "%s", strcmp (real, "/") == 0 ? "" : real);
    for (size_t i = k; i < n && len < outlen; i++)
        len += (size_t)snprintf (out + len, outlen - len, "/%s", comp[i]);
    if (len == 0)
        snprintf (out, outlen, "/");
    if (len >= outlen)
        return jm_err (err, errlen, "root '%.100s...' is too long", path);
    return 0;
}

static bool
s_root_allowed (s_agent_t *self, const char *canon)
{
    if (s_is_under (canon, self->root))
        return true;
    for (size_t i = 0; i < self->nallow; i++)
        if (s_is_under (canon, self->allow[i]))
            return true;
    return false;
}

/*  The job's root: "" = --root; else it must be --root, below it, or at or
    below an --allow-root dir (on canonical paths); created only then.
    0 + out, or -1 + err (the reason the job fails with). */
static int
s_job_root (s_agent_t *self, const char *want, char *out, size_t outlen, char *err, size_t errlen)
{
    if (!want || !*want) {
        snprintf (out, outlen, "%s", self->root);
        return 0;
    }
    char canon[PATH_MAX];
    if (s_canon (want, canon, sizeof canon, err, errlen) != 0)
        return -1;
    if (!s_root_allowed (self, canon)) {
        char more[PATH_MAX + 32] = "";
        size_t wl = strlen (want);
        if (strncmp (canon, want, wl - (wl > 1 && want[wl - 1] == '/')) != 0)
            snprintf (more, sizeof more, "; it resolves to '%s'", canon);
        return jm_err (err, errlen,
                       "root '%s' is not allowed at site %s (start the agent with --allow-root "
                       "%s)%s",
                       want, self->cfg->site, want, more);
    }
    char e2[1024];
    if (jm_mkdirs (canon, 0755, e2, sizeof e2) != 0)
        return jm_err (err, errlen, "cannot create the root '%s': %s", want, e2);
    /* again, now that it exists (a symlink may have appeared meanwhile) */
    if (!realpath (canon, out) || !s_root_allowed (self, out))
        return jm_err (err, errlen, "root '%s' is not allowed at site %s (it resolves to '%s')",
                       want, self->cfg->site, out);
    return 0;
}

static void
s_on_job (s_agent_t *self, jm_msg_t *m)
{
    char err[1024];
    if (s_job_lookup (self, m->job_id)) {
        jm_warn ("coordinator sent job %" PRIu64 " twice; ignoring the second", m->job_id);
        jm_msg_destroy (&m);
        return;
    }
    if (s_job_check (m, err, sizeof err) != 0) {
        jm_warn ("job %" PRIu64 " refused: %s", m->job_id, err);
        s_job_state (self, m->job_id, "FAILED", err);
        jm_msg_destroy (&m);
        s_credit_one (self);
        return;
    }
    char root[PATH_MAX];
    int rootfd = -1;
    if (s_job_root (self, m->root, root, sizeof root, err, sizeof err) == 0) {
        rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            jm_err (err, sizeof err, "cannot open the root '%s': %s", root, strerror (errno));
    }
    if (rootfd < 0) {
        jm_warn ("job %" PRIu64 " refused: %s", m->job_id, err);
        s_job_state (self, m->job_id, "FAILED", err);
        jm_msg_destroy (&m);
        s_credit_one (self);
        return;
    }
    if (strcmp (root, self->root) != 0 || zhashx_lookup (self->sub_roots, m->sub_id))
        zhashx_update (self->sub_roots, m->sub_id, root);
    s_job_t *job = calloc (1, sizeof *job);
    job->agent = self;
    job->id = m->job_id;
    job->msg = m;
    job->root = strdup (root);
    job->rootfd = rootfd;
    job->ended = calloc (m->tasks.n + 1, sizeof (bool));
    job->started = calloc (m->tasks.n + 1, sizeof (bool));
    job->index = zhashx_new ();
    zhashx_set_destructor (job->index, NULL);
    zhashx_set_duplicator (job->index, NULL);
    char key[32];
    for (size_t i = 0; i < m->tasks.n; i++)
        zhashx_update (job->index, s_key (m->tasks.v[i].id, key, sizeof key),
                       (void *)(uintptr_t)(i + 1));
    zhashx_insert (self->jobs, s_key (job->id, key, sizeof key), job);
    jm_debug ("job %" PRIu64 ": %zu task(s) of %s", job->id, m->tasks.n, m->sub_id);
    s_job_state (self, job->id, "STAGING", "");

    zhashx_t *seen = zhashx_new ();
    job->pending = 1;
    for (size_t i = 0; i < m->common.n; i++)
        s_want (job, seen, &m->common.v[i]);
    for (size_t i = 0; i < m->tasks.n; i++)
        for (size_t j = 0; j < m->tasks.v[i].forward.n; j++)
            s_want (job, seen, &m->tasks.v[i].forward.v[j]);
    zhashx_destroy (&seen);
    if (--job->pending == 0)
        s_job_launch (job);
}

/* Want again what the lost connection broke (after WELCOME). */
static void
s_job_rewant (s_job_t *job)
{
    jm_wfiles_t list = job->rewant;
    job->rewant = (jm_wfiles_t){0};
    jm_debug ("job %" PRIu64 ": fetching %zu file(s) again", job->id, list.n);
    job->pending++; /* hold: done() may run inside want() */
    for (size_t i = 0; i < list.n; i++) {
        const jm_wfile_t *f = &list.v[i];
        if (jm_xfer_want (job->agent->xfer, S_PEER, f->hash, f->size, job->id, job) < 0) {
            job->pending--;
            s_job_set_fail (job, "file '%s': invalid hash '%s'", f->path, f->hash);
        }
    }
    s_wfiles_free (&list);
    if (--job->pending == 0)
        s_job_launch (job);
}

/* After WELCOME: no answer to a FETCH sent before our HELLO can come any
   more (it came before the WELCOME on the same connection, or was lost
   with its connection); staging jobs want their broken files again. */
static void
s_resume_staging (s_agent_t *self)
{
    jm_xfer_peer_reset (self->xfer, S_PEER);
    size_t n = 0, cap = zhashx_size (self->jobs);
    uint64_t *ids = calloc (cap + 1, sizeof (uint64_t));
    assert (ids);
    for (s_job_t *job = zhashx_first (self->jobs); job && n < cap; job = zhashx_next (self->jobs))
        if (job->rewant.n > 0)
            ids[n++] = job->id;
    if (n)
        jm_info ("%zu staging job(s) fetch their files again", n);
    /* s_job_launch may destroy a job: look each one up again */
    for (size_t i = 0; i < n; i++) {
        s_job_t *job = s_job_lookup (self, ids[i]);
        if (job && job->rewant.n > 0)
            s_job_rewant (job);
    }
    free (ids);
}

static void
s_on_cancel (s_agent_t *self, uint64_t job_id)
{
    s_job_t *job = s_job_lookup (self, job_id);
    if (!job) {
        jm_info ("cancel of job %" PRIu64 ": not here (already over?)", job_id);
        return;
    }
    jm_info ("job %" PRIu64 ": cancelled by the coordinator", job_id);
    job->cancelled = true;
    if (job->submitted) {
        if (self->backend->cancel (self->sched, job_id) != 0)
            jm_warn ("job %" PRIu64 ": the scheduler does not know it", job_id);
        return; /* its JOB_END event finishes it */
    }
    /* Still staging: drop it now. */
    s_job_state (self, job_id, "FAILED", "cancelled while staging");
    s_job_destroy (&job);
    s_credit_one (self);
}

/*  WITHDRAW: a job none of whose tasks has started goes back (staging:
    dropped here; submitted: the backend takes it out of the scheduler
    and its JOB_END "withdrawn" finishes it); else JOB_STATE RUNNING. */
static void s_job_withdrawn (s_job_t *job);

static bool
s_job_started (const s_job_t *job)
{
    if (job->running || job->over)
        return true;
    for (size_t i = 0; i < job->msg->tasks.n; i++)
        if (job->started[i] || job->ended[i])
            return true;
    return false;
}

static void
s_on_withdraw (s_agent_t *self, uint64_t job_id)
{
    s_job_t *job = s_job_lookup (self, job_id);
    if (!job) {
        jm_info ("withdraw of job %" PRIu64 ": not here (already over?)", job_id);
        return;
    }
    if (job->cancelled || job->withdrawing) {
        jm_info ("withdraw of job %" PRIu64 ": already being %s", job_id,
                 job->cancelled ? "cancelled" : "withdrawn");
        return;
    }
    if (s_job_started (job)) {
        jm_info ("withdraw of job %" PRIu64 ": refused, it has started", job_id);
        s_job_state (self, job_id, "RUNNING", "");
        return;
    }
    if (!job->submitted) {
        /* staging or placing: nothing is in the scheduler yet; a placing
           reply for it finds no job and is dropped */
        s_job_withdrawn (job);
        return;
    }
    int rc = self->backend->withdraw ? self->backend->withdraw (self->sched, job_id) : 1;
    if (rc == 0) {
        jm_debug ("job %" PRIu64 ": withdrawing it from the %s scheduler", job_id,
                  self->backend->name);
        job->withdrawing = true;
        job->withdraw_asked = true;
        return; /* its JOB_END "withdrawn" finishes it */
    }
    if (rc < 0)
        jm_warn ("job %" PRIu64 ": the %s scheduler cannot withdraw it", job_id,
                 self->backend->name);
    else
        jm_info ("withdraw of job %" PRIu64 ": refused, it has started in the scheduler", job_id);
    s_job_state (self, job_id, "RUNNING", "");
}

/* ------------------------------------------------------------------ */
/* Task results */

static void s_reason_add (char *reason, size_t len, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static void
s_reason_add (char *reason, size_t len, const char *fmt, ...)
{
    size_t used = strlen (reason);
    if (used + 8 >= len)
        return;
    if (used) {
        strcpy (reason + used, "; ");
        used += 2;
    }
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (reason + used, len - used, fmt, ap);
    va_end (ap);
}

/* Adds rel (relative to the task directory dir) to the batch once. */
static void
s_add_file (s_req_t *req, const char *dir, const char *rel, zhashx_t *seen)
{
    if (zhashx_lookup (seen, rel))
        return;
    zhashx_insert (seen, rel, (void *)1);
    jm_worker_item_t *it = s_req_item (req, -1, 0);
    it->dir = dir;
    it->rel = s_req_str (req, rel);
}

static void
s_job_finish (s_job_t *job)
{
    s_agent_t *self = job->agent;
    if (job->withdraw_asked && !job->cancelled)
        s_job_state (self, job->id, "WITHDRAWN", "");
    else
        s_job_state (self, job->id, "DONE", job->cancelled ? "cancelled" : "");
    s_job_destroy (&job);
    s_credit_one (self);
}

/* One TASK_END of an import request is complete: the worker's results
   (res, e->n of them) or a failure of the whole request (fail). */
static void
s_end_done (s_agent_t *self, s_req_t *req, s_end_t *e, const jm_worker_result_t *res,
            const char *fail)
{
    char reason[S_REASON_MAX];
    snprintf (reason, sizeof reason, "%s", e->reason ? e->reason : "");
    if (fail)
        s_reason_add (reason, sizeof reason, "cannot store the result files: %s", fail);
    else
        for (size_t i = 0; i < e->n; i++) {
            const jm_worker_result_t *r = &res[i];
            const char *rel = req->items[e->first + i].rel;
            if (r->status == JM_WORKER_OK)
                jm_wfiles_push (&e->msg->files, rel, r->hash, r->size, r->mode);
            else if (r->status != JM_WORKER_MISSING)
                s_reason_add (reason, sizeof reason, "%s",
                              r->error ? r->error : "cannot store a result file");
        }
    jm_str_set (&e->msg->reason, reason);
    s_note_results (self, &e->msg->files);
    s_send (self, e->msg);
    e->msg = NULL;
    s_job_t *job = s_job_lookup (self, e->job_id);
    if (job && job->ends_queued > 0 && --job->ends_queued == 0 && job->over)
        s_job_finish (job);
}

static void
s_import_done (s_agent_t *self, s_req_t *req, const jm_worker_reply_t *reply, const char *fail)
{
    for (size_t i = 0; i < req->nends; i++)
        s_end_done (self, req, &req->ends[i], fail ? NULL : reply->v + req->ends[i].first, fail);
}

/* Hands the imports collected during this event callback to the worker:
   one request for all of them. */
static void
s_flush_batch (s_agent_t *self)
{
    s_req_t *req = self->batch;
    if (!req)
        return;
    self->batch = NULL;
    if (req->nends == 0) { /* every task had nothing to collect */
        s_req_destroy (&req);
        return;
    }
    uint64_t id = jm_worker_import (self->worker, req->base, req->items, req->n);
    if (id == 0) {
        s_import_done (self, req, NULL, "the agent's file worker has stopped");
        s_req_destroy (&req);
        return;
    }
    s_req_register (self, req, id);
}

/* Sends the task's TASK_END: at once if it has no files to collect, else
   once the worker has imported them (the globbing is done here). */
static void
s_task_end (s_job_t *job, size_t idx, int exit_code, const char *why)
{
    s_agent_t *self = job->agent;
    const jm_wtask_t *t = &job->msg->tasks.v[idx];
    job->ended[idx] = true;
    s_note_task_end (self);
    jm_msg_t *m = jm_msg_new (JM_MSG_TASK_END);
    m->task_id = t->id;
    m->exit_code = exit_code;
    char reason[S_REASON_MAX] = "";
    if (why && *why)
        snprintf (reason, sizeof reason, "%s", why);
    char err[1024], rel[PATH_MAX + 80], dir[2 * PATH_MAX + 256];
    snprintf (rel, sizeof rel, "%s/%s", job->msg->sub_id, t->path);
    int tfd = jm_path_open_beneath (job->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, err,
                                    sizeof err);
    s_req_t *req = NULL;
    size_t first = 0;
    bool collect = t->backward.n > 0 || (t->outlog && *t->outlog) || (t->errlog && *t->errlog);
    if (tfd < 0)
        s_reason_add (reason, sizeof reason, "cannot open the task directory: %s", err);
    else if (collect) {
        close (tfd);
        if (self->batch && strcmp (self->batch->base, job->root) != 0)
            s_flush_batch (self); /* one request per root */
        if (!self->batch)
            self->batch = s_req_new (false, 0, job->root);
        req = self->batch;
        first = req->n;
        const char *tdir = s_req_str (req, rel);
        snprintf (dir, sizeof dir, "%s/%s", job->root, rel);
        zhashx_t *seen = zhashx_new ();
        for (size_t i = 0; i < t->backward.n; i++) {
            const char *pat = t->backward.v[i];
            zlist_t *matches = zlist_new ();
            zlist_autofree (matches);
            err[0] = 0;
            int n = jm_path_glob_beneath (dir, pat, matches, err, sizeof err);
            if (n < 0)
                s_reason_add (reason, sizeof reason, "backward pattern '%s': %s", pat, err);
            else {
                if (err[0])
                    s_reason_add (reason, sizeof reason, "backward pattern '%s': %s", pat, err);
                if (n == 0 && !s_is_glob (pat))
                    s_reason_add (reason, sizeof reason, "backward file '%s' not found", pat);
                for (char *f = zlist_first (matches); f; f = zlist_next (matches))
                    s_add_file (req, tdir, f, seen);
            }
            zlist_destroy (&matches);
        }
        if (t->outlog && *t->outlog)
            s_add_file (req, tdir, t->outlog, seen);
        if (t->errlog && *t->errlog)
            s_add_file (req, tdir, t->errlog, seen);
        zhashx_destroy (&seen);
    }
    else
        close (tfd);
    if (!req || req->n == first) {
        jm_str_set (&m->reason, reason);
        s_note_results (self, &m->files);
        s_send (self, m);
        return;
    }
    if (req->nends == req->ends_cap) {
        req->ends_cap = req->ends_cap ? 2 * req->ends_cap : 16;
        req->ends = realloc (req->ends, req->ends_cap * sizeof *req->ends);
        assert (req->ends);
    }
    s_end_t *e = &req->ends[req->nends++];
    e->job_id = job->id;
    e->msg = m;
    e->reason = strdup (reason);
    e->first = first;
    e->n = req->n - first;
    job->ends_queued++;
}

static void
s_job_ended (s_job_t *job, const jm_sched_ev_t *ev)
{
    char why[S_REASON_MAX];
    if (ev->reason && *ev->reason && strcmp (ev->reason, "cancelled") != 0)
        snprintf (why, sizeof why, "%s", ev->reason);
    else if (ev->job_exit >= 0)
        snprintf (why, sizeof why, "job ended before the task finished (job exit status %d)",
                  ev->job_exit);
    else
        snprintf (why, sizeof why, "job ended before the task finished (killed by signal %d)",
                  ev->job_signal);
    bool withdrawn =
        job->withdraw_asked && ev->reason &&
        (strcmp (ev->reason, "cancelled") == 0 || strcmp (ev->reason, "withdrawn") == 0);
    if (!withdrawn)
        job->withdraw_asked = false;
    if (!job->cancelled && !withdrawn)
        for (size_t i = 0; i < job->msg->tasks.n; i++)
            if (!job->ended[i])
                s_task_end (job, i, -1, why);
    jm_debug ("job %" PRIu64 ": over (%s)", job->id, ev->reason && *ev->reason ? ev->reason : why);
    job->over = true;
    if (job->ends_queued == 0)
        s_job_finish (job);
    /* else the last TASK_END finishes it */
}

/* The job left without running anything: WITHDRAWN, then its slot. */
static void
s_job_withdrawn (s_job_t *job)
{
    s_agent_t *self = job->agent;
    jm_info ("job %" PRIu64 ": withdrawn", job->id);
    s_job_state (self, job->id, "WITHDRAWN", "");
    s_job_destroy (&job);
    s_credit_one (self);
}

static void
s_flush_started (s_agent_t *self, s_job_t *job, jm_msg_t **started_p)
{
    if (!*started_p)
        return;
    if (!job->running) {
        job->running = true;
        s_job_state (self, job->id, "RUNNING", "");
    }
    s_send (self, *started_p);
    *started_p = NULL;
}

/* Scheduler events; the TASK_ENDs' imports collected here go to the
   worker as one request at the end. */
static void
s_on_sched_events (void *arg, const jm_sched_ev_t *evs, size_t n)
{
    s_agent_t *self = arg;
    jm_msg_t *started = NULL;
    s_job_t *job = NULL;
    for (size_t i = 0; i < n; i++) {
        const jm_sched_ev_t *ev = &evs[i];
        if (!job || job->id != ev->job_id) {
            if (job)
                s_flush_started (self, job, &started);
            job = s_job_lookup (self, ev->job_id);
            if (!job) {
                jm_warn ("scheduler event for unknown job %" PRIu64, ev->job_id);
                continue;
            }
        }
        if (job->over)
            continue; /* waiting for its last TASK_ENDs */
        if (ev->type == JM_SCHED_JOB_END) {
            s_flush_started (self, job, &started);
            if (job->withdrawing && ev->reason && strcmp (ev->reason, "withdrawn") == 0)
                s_job_withdrawn (job);
            else
                s_job_ended (job, ev);
            job = NULL;
            continue;
        }
        char key[32];
        size_t idx =
            (size_t)(uintptr_t)zhashx_lookup (job->index, s_key (ev->task_id, key, sizeof key));
        if (idx == 0) {
            jm_warn ("job %" PRIu64 ": event for task %" PRIu64 " that is not in it", job->id,
                     ev->task_id);
            continue;
        }
        idx--;
        if (job->cancelled)
            continue;
        if (ev->type == JM_SCHED_TASK_START) {
            if (!job->running && !started && job->submit_ms)
                s_note_wait (self, jm_now_ms () - job->submit_ms);
            job->started[idx] = true;
            /* a start wins over a withdrawal under way: the RUNNING that
               s_flush_started sends answers the WITHDRAW */
            job->withdrawing = false;
            if (!started)
                started = jm_msg_new (JM_MSG_TASK_STARTED);
            jm_u64s_push (&started->ids, ev->task_id);
        }
        else if (!job->ended[idx]) {
            s_flush_started (self, job, &started);
            s_task_end (job, idx, ev->exit_code, ev->reason ? ev->reason : "");
        }
    }
    if (job)
        s_flush_started (self, job, &started);
    jm_msg_destroy (&started);
    s_flush_batch (self);
}

/* ------------------------------------------------------------------ */
/* Backward common files */

static void
s_collect_done (s_agent_t *self, s_req_t *req, const jm_worker_reply_t *reply, const char *fail)
{
    char reason[S_REASON_MAX];
    snprintf (reason, sizeof reason, "%s", req->creason ? req->creason : "");
    jm_msg_t *m = req->collected;
    req->collected = NULL;
    if (fail)
        s_reason_add (reason, sizeof reason, "cannot store the backward common files: %s", fail);
    else
        for (size_t i = 0; i < req->n; i++) {
            const jm_worker_result_t *r = &reply->v[i];
            const char *rel = req->items[i].rel;
            if (r->status == JM_WORKER_OK)
                jm_wfiles_push (&m->files, rel, r->hash, r->size, r->mode);
            else if (r->status == JM_WORKER_MISSING)
                s_reason_add (reason, sizeof reason, "backward common file '%s' not found", rel);
            else
                s_reason_add (reason, sizeof reason, "%s",
                              r->error ? r->error : "cannot store a backward common file");
        }
    if (fail)
        s_wfiles_free (&m->files);
    s_note_results (self, &m->files);
    jm_str_set (&m->reason, reason);
    jm_info ("backward common files of %s: %zu file(s)%s%s", m->sub_id, m->files.n,
             *reason ? ": " : "", reason);
    s_send (self, m);
}

/*  COLLECT: expand the patterns beneath <root>/<sub_id>/ (confined), have
    the worker import the matches, answer COLLECTED with their paths
    relative to the work base (s_collect_done). */
static void
s_on_collect (s_agent_t *self, const jm_msg_t *m)
{
    jm_msg_t *reply = jm_msg_new (JM_MSG_COLLECTED);
    jm_str_set (&reply->sub_id, m->sub_id);
    char reason[S_REASON_MAX] = "", err[1024];
    if (!s_sub_id_ok (m->sub_id)) {
        snprintf (reason, sizeof reason,
                  "sub_id '%s' is not a plain name ([A-Za-z0-9._-], no '..')",
                  m->sub_id ? m->sub_id : "");
        jm_str_set (&reply->reason, reason);
        s_send (self, reply);
        return;
    }
    const char *root = zhashx_lookup (self->sub_roots, m->sub_id);
    if (!root)
        root = self->root;
    int rfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int wfd = -1;
    if (rfd < 0)
        jm_err (err, sizeof err, "cannot open the root '%s': %s", root, strerror (errno));
    else {
        wfd = jm_path_open_beneath (rfd, m->sub_id, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, err,
                                    sizeof err);
        close (rfd);
    }
    if (wfd < 0) {
        snprintf (reason, sizeof reason, "the work base of %s is not at this site: %s", m->sub_id,
                  err);
        jm_str_set (&reply->reason, reason);
        s_send (self, reply);
        return;
    }
    close (wfd);
    char dir[PATH_MAX + 80];
    snprintf (dir, sizeof dir, "%s/%s", root, m->sub_id);
    s_req_t *req = s_req_new (false, 0, root);
    const char *wb = s_req_str (req, m->sub_id);
    zhashx_t *seen = zhashx_new ();
    for (size_t i = 0; i < m->backward_common.n; i++) {
        const char *pat = m->backward_common.v[i];
        if (jm_path_check_rel (pat, "backward common pattern", err, sizeof err) != 0) {
            s_reason_add (reason, sizeof reason, "%s", err);
            continue;
        }
        zlist_t *matches = zlist_new ();
        zlist_autofree (matches);
        err[0] = 0;
        int n = jm_path_glob_beneath (dir, pat, matches, err, sizeof err);
        if (n < 0)
            s_reason_add (reason, sizeof reason, "backward common pattern '%s': %s", pat, err);
        else {
            if (err[0])
                s_reason_add (reason, sizeof reason, "backward common pattern '%s': %s", pat, err);
            if (n == 0 && !s_is_glob (pat))
                s_reason_add (reason, sizeof reason, "backward common file '%s' not found", pat);
            for (char *f = zlist_first (matches); f; f = zlist_next (matches)) {
                if (req->n == S_COLLECT_MAX) {
                    s_reason_add (reason, sizeof reason,
                                  "more than %d backward common files; the rest are not sent",
                                  S_COLLECT_MAX);
                    break;
                }
                s_add_file (req, wb, f, seen);
            }
        }
        zlist_destroy (&matches);
    }
    zhashx_destroy (&seen);
    req->collected = reply;
    req->creason = strdup (reason);
    assert (req->creason);
    if (req->n == 0) {
        s_collect_done (self, req, NULL, NULL);
        s_req_destroy (&req);
        return;
    }
    uint64_t id = jm_worker_import (self->worker, req->base, req->items, req->n);
    if (id == 0) {
        s_collect_done (self, req, NULL, "the agent's file worker has stopped");
        s_req_destroy (&req);
        return;
    }
    s_req_register (self, req, id);
}

/* A reply from the file worker, or the news that it has stopped. */
static int
s_on_worker (zloop_t *loop, zsock_t *sock, void *arg)
{
    s_agent_t *self = arg;
    jm_worker_reply_t *reply = jm_worker_recv (self->worker);
    if (!reply) {
        if (jm_worker_alive (self->worker))
            return 0;
        jm_error ("the agent's file worker has stopped; tasks and jobs that need it fail");
        zloop_reader_end (loop, sock);
        s_req_t *req;
        while ((req = zhashx_first (self->reqs))) {
            zhashx_delete (self->reqs, zhashx_cursor (self->reqs));
            if (req->place)
                s_place_done (self, req, NULL, "the agent's file worker has stopped");
            else if (req->collected)
                s_collect_done (self, req, NULL, "the agent's file worker has stopped");
            else
                s_import_done (self, req, NULL, "the agent's file worker has stopped");
            s_req_destroy (&req);
        }
        return 0;
    }
    char key[32];
    s_req_t *req = zhashx_lookup (self->reqs, s_key (reply->id, key, sizeof key));
    if (!req) {
        jm_warn ("the file worker answered request %" PRIu64 " that is not pending", reply->id);
        jm_worker_reply_destroy (&reply);
        return 0;
    }
    zhashx_delete (self->reqs, key);
    const char *fail = reply->n == req->n ? NULL : "wrong number of results from the file worker";
    if (req->place)
        s_place_done (self, req, reply, fail);
    else if (req->collected)
        s_collect_done (self, req, reply, fail);
    else
        s_import_done (self, req, reply, fail);
    s_req_destroy (&req);
    jm_worker_reply_destroy (&reply);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Coordinator connection */

static int s_on_heartbeat (zloop_t *loop, int timer_id, void *arg);

/* ------------------------------------------------------------------ */
/* The file cache's size limit */

static bool
s_keep (void *arg, const char *hash)
{
    return zhashx_lookup ((zhashx_t *)arg, hash) != NULL;
}

/*  Over --cache-max: evict least-recently-used objects, keeping every file
    a held job needs (common and forward files) and the result files of the
    last S_RECENT task ends (the coordinator may still fetch them). */
static void
s_cache_trim (s_agent_t *self)
{
    uint64_t max = self->cfg->cache_max;
    /* jm_store_bytes counts only this store handle's own additions (the
       file worker imports results through its own): after a job ended,
       jm_store_evict's scan recounts */
    if (!max || (!self->trim_due && jm_store_bytes (self->store) <= max))
        return;
    self->trim_due = false;
    zhashx_t *keep = zhashx_new ();
    for (s_job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        const jm_msg_t *m = job->msg;
        for (size_t i = 0; i < m->common.n; i++)
            zhashx_update (keep, m->common.v[i].hash, (void *)1);
        for (size_t i = 0; i < m->tasks.n; i++)
            for (size_t j = 0; j < m->tasks.v[i].forward.n; j++)
                zhashx_update (keep, m->tasks.v[i].forward.v[j].hash, (void *)1);
    }
    for (size_t i = 0; i < S_RECENT; i++)
        for (size_t j = 0; j < self->recent[i].n; j++)
            zhashx_update (keep, self->recent[i].h[j], (void *)1);
    size_t n = 0;
    uint64_t freed = jm_store_evict (self->store, max, s_keep, keep, &n);
    zhashx_destroy (&keep);
    if (n)
        jm_info ("file cache: evicted %zu file(s), %" PRIu64 " bytes (limit %" PRIu64
                 " bytes, now %" PRIu64 ")",
                 n, freed, max, jm_store_bytes (self->store));
    else if (jm_store_bytes (self->store) > max)
        jm_debug ("file cache: over its limit, but every file is still needed");
}

static void
s_set_heartbeat (s_agent_t *self, uint64_t ms)
{
    if (ms < 10)
        ms = 10;
    if (ms > 3600000)
        ms = 3600000;
    if (self->hb_timer >= 0 && ms == self->hb_ms)
        return;
    if (self->hb_timer >= 0)
        zloop_timer_end (self->loop, self->hb_timer);
    self->hb_ms = ms;
    self->hb_timer = zloop_timer (self->loop, ms, 0, s_on_heartbeat, self);
}

static int
s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_agent_t *self = arg;
    int64_t now = jm_now_ms ();
    int64_t hb = (int64_t)self->hb_ms;
    s_cache_trim (self);
    if (self->hello_unsent) { /* bind mode: is the coordinator there now? */
        s_hello (self);
        self->last_recv = now;
        return 0;
    }
    if (now - self->last_recv >= 3 * hb) {
        bool forced = self->hello_pending > 0 && now - self->last_hello >= 10 * hb;
        if (self->hello_pending == 0 || forced) {
            if (self->welcomed)
                jm_warn ("nothing heard from the coordinator %s for %" PRId64
                         " ms; saying HELLO again",
                         self->ep, now - self->last_recv);
            self->welcomed = false;
            /* staging jobs keep their place: what they were fetching is
               asked for again after the next WELCOME (s_resume_staging);
               answers to the FETCHes sent before are dropped by jm_xfer */
            jm_xfer_peer_lost (self->xfer, S_PEER, "connection to the coordinator lost");
            if (forced)
                self->hello_pending = 0;
            s_hello (self);
            self->last_recv = now;
        }
        return 0;
    }
    if (self->welcomed) {
        s_send (self, jm_msg_new (JM_MSG_HEARTBEAT));
        s_send_load (self);
    }
    return 0;
}

static int
s_on_dealer (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    s_agent_t *self = arg;
    char err[1024];
    int code = 0;
    uint64_t pv = 0;
    jm_msg_t *m = jm_msg_recv (sock, NULL, &code, &pv, err, sizeof err);
    self->last_recv = jm_now_ms ();
    if (!m) {
        jm_warn ("bad message from the coordinator %s: %s", self->ep, err);
        return 0;
    }
    switch (m->id) {
    case JM_MSG_WELCOME:
        if (self->hello_pending > 0)
            self->hello_pending--;
        if (!self->welcomed)
            jm_info ("connected to the coordinator %s as site '%s'", self->ep, self->cfg->site);
        self->welcomed = true;
        if (m->heartbeat_ms)
            s_set_heartbeat (self, m->heartbeat_ms);
        if (self->hello_pending == 0 && s_free_slots (self) > 0)
            s_credit (self, s_free_slots (self));
        s_resume_staging (self);
        break;
    case JM_MSG_ERROR:
        if (m->code == 1) {
            jm_error ("the coordinator %s refused us: %s", self->ep, m->reason);
            self->rc = 1;
            jm_msg_destroy (&m);
            return -1;
        }
        if (m->code == 3) {
            if (self->hello_pending == 0) {
                jm_info ("the coordinator does not know us (%s); saying HELLO again", m->reason);
                self->welcomed = false;
                s_hello (self);
            }
        }
        else
            jm_warn ("the coordinator reports error %" PRIu64 ": %s", m->code, m->reason);
        break;
    case JM_MSG_HEARTBEAT:
        break;
    case JM_MSG_JOB:
        s_on_job (self, m);
        m = NULL;
        break;
    case JM_MSG_CANCEL_JOB:
        s_on_cancel (self, m->job_id);
        break;
    case JM_MSG_WITHDRAW:
        s_on_withdraw (self, m->job_id);
        break;
    case JM_MSG_FETCH: {
        jm_msg_t *reply = jm_xfer_serve (self->store, m, NULL);
        s_send (self, reply);
        break;
    }
    case JM_MSG_CHUNK:
    case JM_MSG_NOFILE:
        jm_xfer_on_message (self->xfer, S_PEER, m);
        break;
    case JM_MSG_COLLECT:
        s_on_collect (self, m);
        break;
    default:
        jm_warn ("unexpected %s from the coordinator; ignored", jm_msg_name (m->id));
        break;
    }
    jm_msg_destroy (&m);
    return 0;
}

static int
s_on_stop (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    (void)arg;
    jm_info ("stopping");
    return -1;
}

/* ------------------------------------------------------------------ */

int
jm_agent_config_check (const jm_agent_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->home || !*cfg->home)
        return jm_err (err, errlen, "no agent home: give --home DIR or set $JOBMAN_HOME");
    bool dial = cfg->coordinator && *cfg->coordinator, bind = cfg->bind && *cfg->bind;
    if (!dial && !bind)
        return jm_err (err, errlen,
                       "no coordinator endpoint: give --coordinator tcp://HOST:PORT (or --bind "
                       "ENDPOINT for the coordinator to connect to)");
    if (dial && bind)
        return jm_err (err, errlen, "give either --coordinator or --bind, not both");
    for (size_t i = 0; i < cfg->n_allow_roots; i++)
        if (!cfg->allow_roots[i] || cfg->allow_roots[i][0] != '/')
            return jm_err (err, errlen, "--allow-root '%s' is not an absolute path",
                           cfg->allow_roots[i] ? cfg->allow_roots[i] : "");
    if (!cfg->coordinator_cert || !*cfg->coordinator_cert)
        return jm_err (err, errlen, "no coordinator certificate: give --coordinator-cert FILE");
    if (!cfg->site || !*cfg->site)
        return jm_err (err, errlen, "the site name (--site) is empty");
    if (strlen (cfg->site) > 128)
        return jm_err (err, errlen, "the site name (--site) is longer than 128 characters");
    for (const char *p = cfg->site; *p; p++)
        if (!(isalnum ((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
            return jm_err (err, errlen, "site name '%s' has a character outside [A-Za-z0-9._-]",
                           cfg->site);
    if (!cfg->root || !*cfg->root)
        return jm_err (err, errlen, "no work root: give --root DIR");
    const char *sched = cfg->scheduler ? cfg->scheduler : "shell";
    if (!jm_sched_lookup (sched))
        return jm_err (err, errlen, "unknown scheduler '%s' (known: %s)", sched, jm_sched_names ());
    return 0;
}

int
jm_agent_run (const jm_agent_config_t *cfg)
{
    char err[1024];
    if (jm_agent_config_check (cfg, err, sizeof err) != 0) {
        jm_error ("%s", err);
        return 2;
    }
    s_agent_t *self = calloc (1, sizeof *self);
    self->cfg = cfg;
    self->rootfd = -1;
    self->hb_timer = -1;
    bool bind = cfg->bind && *cfg->bind;
    self->ep = bind ? cfg->bind : cfg->coordinator;
    self->backend = jm_sched_lookup (cfg->scheduler ? cfg->scheduler : "shell");
    self->slots = cfg->slots;
    if (self->slots == 0 && self->backend != &jm_sched_shell)
        self->slots = 100;
    long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
    if (self->slots == 0)
        self->slots = ncpu > 0 ? (size_t)ncpu : 1;
    self->cores = cfg->cores;
    if (self->cores == 0 && self->backend == &jm_sched_shell)
        self->cores = ncpu > 0 ? (size_t)ncpu : 1;
    int rc = 2;
    char path[PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/agent.cert_secret", cfg->home);
    self->cert = jm_keys_load_secret (path, err, sizeof err);
    if (!self->cert) {
        if (access (path, F_OK) != 0)
            jm_error ("cannot use the agent key: %s (run 'jobman-agent init --home %s')", err,
                      cfg->home);
        else
            jm_error ("cannot use the agent key: %s", err);
        goto out;
    }
    zcert_t *coord = jm_keys_load_public (cfg->coordinator_cert, err, sizeof err);
    if (!coord) {
        jm_error ("cannot load the coordinator certificate: %s", err);
        goto out;
    }
    snprintf (self->coord_key, sizeof self->coord_key, "%s", zcert_public_txt (coord));
    zcert_destroy (&coord);
    if (jm_mkdirs (cfg->root, 0755, err, sizeof err) != 0) {
        jm_error ("cannot create the work root '%s': %s", cfg->root, err);
        goto out;
    }
    if (!realpath (cfg->root, self->root)) {
        jm_error ("cannot resolve the work root '%s': %s", cfg->root, strerror (errno));
        goto out;
    }
    self->rootfd = open (self->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf (path, sizeof path, "%s/.jobman/jobs", self->root);
    if (self->rootfd < 0 || jm_mkdirs (path, 0700, err, sizeof err) != 0) {
        jm_error ("cannot use the work root '%s': %s", self->root,
                  self->rootfd < 0 ? strerror (errno) : err);
        goto out;
    }
    self->allow = calloc (cfg->n_allow_roots + 1, sizeof *self->allow);
    assert (self->allow);
    for (size_t i = 0; i < cfg->n_allow_roots; i++) {
        char real[PATH_MAX];
        if (jm_mkdirs (cfg->allow_roots[i], 0755, err, sizeof err) != 0) {
            jm_error ("cannot create the allowed root '%s': %s", cfg->allow_roots[i], err);
            goto out;
        }
        if (!realpath (cfg->allow_roots[i], real)) {
            jm_error ("cannot resolve the allowed root '%s': %s", cfg->allow_roots[i],
                      strerror (errno));
            goto out;
        }
        self->allow[self->nallow] = strdup (real);
        assert (self->allow[self->nallow]);
        self->nallow++;
    }
    snprintf (path, sizeof path, "%s/store", cfg->home);
    self->store = jm_store_new (path, err, sizeof err);
    if (!self->store) {
        jm_error ("cannot open the agent store: %s", err);
        goto out;
    }
    self->worker = jm_worker_new (path, err, sizeof err);
    if (!self->worker) {
        jm_error ("cannot start the agent's file worker: %s", err);
        goto out;
    }
    if (gethostname (self->host, sizeof self->host) != 0)
        snprintf (self->host, sizeof self->host, "unknown");
    self->host[sizeof self->host - 1] = 0;

    rc = 1;
    self->loop = zloop_new ();
    self->jobs = zhashx_new ();
    self->placed = zhashx_new ();
    self->reqs = zhashx_new ();
    self->sub_roots = zhashx_new ();
    zhashx_set_duplicator (self->sub_roots, (zhashx_duplicator_fn *)strdup);
    zhashx_set_destructor (self->sub_roots, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator (self->placed, (zhashx_duplicator_fn *)strdup);
    zhashx_set_destructor (self->placed, (zhashx_destructor_fn *)zstr_free);
    self->xfer =
        jm_xfer_new (self->store, JM_XFER_CHUNK, JM_XFER_WINDOW, s_xfer_send, s_xfer_done, self);
    jm_sched_opts_t so = {.loop = self->loop,
                          .slots = self->slots,
                          .poll_ms = cfg->poll_ms,
                          .submit_per_min = cfg->submit_per_min,
                          .submit_burst = cfg->submit_burst,
                          .retry_ms = cfg->retry_ms,
                          .event = s_on_sched_events,
                          .arg = self};
    self->sched = self->backend->create (&so, err, sizeof err);
    if (!self->sched) {
        jm_error ("cannot start the %s scheduler: %s", self->backend->name, err);
        rc = 2;
        goto out;
    }
    uint64_t hb = cfg->heartbeat_ms ? cfg->heartbeat_ms : 5000;
    self->dealer = zsock_new (ZMQ_DEALER);
    jm_curve_client (self->dealer, self->cert, self->coord_key);
    zsock_set_maxmsgsize (self->dealer, 256 * 1024 * 1024);
    zsock_set_sndhwm (self->dealer, 1000000);
    zsock_set_rcvhwm (self->dealer, 1000000);
    zsock_set_linger (self->dealer, 1000);
    zsock_set_reconnect_ivl (self->dealer, 200);
    zsock_set_reconnect_ivl_max (self->dealer, 5000);
    zsock_set_heartbeat_ivl (self->dealer, (int)(hb < 1000 ? hb : 1000));
    zsock_set_heartbeat_timeout (self->dealer, (int)(hb < 1000 ? 3 * hb : 3000));
    if (bind) {
        /* no peer until the coordinator connects: sends must not block */
        zsock_set_sndtimeo (self->dealer, 0);
        if (zsock_bind (self->dealer, "%s", cfg->bind) < 0) {
            jm_error ("cannot bind '%s': %s", cfg->bind, zmq_strerror (zmq_errno ()));
            rc = 2;
            goto out;
        }
    }
    else if (zsock_connect (self->dealer, "%s", cfg->coordinator) != 0) {
        jm_error ("cannot connect to '%s': %s", cfg->coordinator, zmq_strerror (zmq_errno ()));
        rc = 2;
        goto out;
    }
    zloop_reader (self->loop, self->dealer, s_on_dealer, self);
    zloop_reader (self->loop, jm_worker_sock (self->worker), s_on_worker, self);
    if (cfg->stop_fd >= 0) {
        zmq_pollitem_t item = {NULL, cfg->stop_fd, ZMQ_POLLIN, 0};
        zloop_poller (self->loop, &item, s_on_stop, self);
    }
    s_set_heartbeat (self, hb);
    jm_info ("site '%s' (%s scheduler, %zu slots, root %s) %s %s", cfg->site, self->backend->name,
             self->slots, self->root, bind ? "waiting for the coordinator at" : "dialing",
             self->ep);
    self->last_recv = jm_now_ms ();
    s_hello (self);
    zloop_start (self->loop);
    rc = self->rc;
    jm_info ("stopped");

out:
    if (self->sched)
        self->backend->destroy (&self->sched);
    /* the worker first: nothing answers its requests after this */
    jm_worker_destroy (&self->worker);
    s_req_destroy (&self->batch);
    if (self->reqs) {
        s_req_t *req;
        while ((req = zhashx_first (self->reqs))) {
            zhashx_delete (self->reqs, zhashx_cursor (self->reqs));
            s_req_destroy (&req);
        }
        zhashx_destroy (&self->reqs);
    }
    if (self->jobs) {
        s_job_t *job;
        while ((job = zhashx_first (self->jobs)))
            s_job_destroy (&job);
        zhashx_destroy (&self->jobs);
    }
    jm_xfer_destroy (&self->xfer);
    zhashx_destroy (&self->placed);
    zhashx_destroy (&self->sub_roots);
    for (size_t i = 0; i < self->nallow; i++)
        free (self->allow[i]);
    free (self->allow);
    free (self->done);
    for (size_t i = 0; i < S_RECENT; i++) {
        for (size_t j = 0; j < self->recent[i].n; j++)
            free (self->recent[i].h[j]);
        free (self->recent[i].h);
    }
    zloop_destroy (&self->loop);
    zsock_destroy (&self->dealer);
    jm_store_destroy (&self->store);
    zcert_destroy (&self->cert);
    if (self->rootfd >= 0)
        close (self->rootfd);
    free (self);
    return rc;
}
