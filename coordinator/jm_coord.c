/*  jm_coord.c - jobman-coord: one zloop over one CURVE ROUTER socket.

    Per loop pass: drain up to S_DRAIN messages, then end the pass: hand
    the files that became ready during the pass to the file worker, write
    the batched SQLite updates in one transaction, commit, and only then
    send the replies that acknowledge durable state (CANCELLED) and the
    coalesced PROGRESS messages.

    Result files and backward common files are copied out of the store
    into the work base by a jm_worker actor (its own thread), so that a
    large file does not stop the loop: one request per work base and pass.
    A task is DONE or FAILED only once the worker has answered for every
    one of its files (place_rec_t counts them); answers for a task that
    has meanwhile ended (cancelled) are ignored.                          */
#include "jm_coord.h"

#include "jm_config.h"
#include "jm_coord_db.h"
#include "jm_db.h"
#include "jm_keys.h"
#include "jm_log.h"
#include "jm_machine.h"
#include "jm_path.h"
#include "jm_proto.h"
#include "jm_resources.h"
#include "jm_state.h"
#include "jm_store.h"
#include "jm_tunnel.h"
#include "jm_util.h"
#include "jm_worker.h"
#include "jm_xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_DRAIN 1000
#define S_MAXMSG (256 * 1024 * 1024)
#define S_HWM 100000
#define S_CREDIT_MAX 100000
#define S_JOB_ID_BLOCK 1024
#define S_COLLECT_WAIT 10 /* heartbeat intervals a collection waits for a site */

typedef enum { ROLE_NONE, ROLE_AGENT, ROLE_CLIENT } role_t;

typedef struct {
    char *key;     /* routing id as hex */
    zframe_t *rid; /* routing id */
    role_t role;
    char *site;       /* agents: site name */
    char *keyname;    /* name of the allowed cert ("?" if unknown) */
    zlist_t *watches; /* clients: watched submission ids (autofree) */
} peer_t;

typedef struct {
    char *name;
    char *pubkey;
    char *scheduler;
    char *host;
    uint64_t slots;
    uint64_t max_jobs, cores, gpus; /* capacity (HELLO) */
    /* newest LOAD figures */
    uint64_t running, queued, free_slots, done_1m, wait_ms;
    char *peer_key; /* current session, NULL if none */
    zframe_t *rid;
    uint64_t credit;
    size_t outstanding;
    size_t promised;     /* credit promised to work being withdrawn elsewhere */
    int64_t last_seen;   /* monotonic ms; 0 = not this run */
    int64_t seen_before; /* unix ms of the last contact in an earlier run, 0 none */
    int64_t lost_since;  /* ms, while lost */
    bool lost;
    bool requeued; /* lost long enough: its work went to other sites */
    bool drained;  /* gets no new jobs (kept in SQLite) */
    /* after giving work back: no tasks of this submission until then */
    const jm_csub_t *gave_back;
    int64_t gave_back_until;
    jm_u64s_t cancel_on_return; /* jobs taken away while it was lost */
} site_t;

typedef struct {
    uint64_t id;
    jm_csub_t *sub;
    char *site;
    uint32_t *idx;
    size_t n;
    bool finished;
    int32_t machine;    /* machine entry index, -1 none */
    int64_t sent_ms;    /* when the JOB left */
    bool started;       /* s_rebalance saw a task of it past QUEUED */
    char *withdraw_for; /* WITHDRAW sent: the site its credit was promised to */
} job_t;

typedef struct {
    zframe_t *rid;
    jm_msg_t *msg;
} ack_t;

/*  Collection of a submission's backward common files from one site:
    WAIT (for the site to be connected) -> SENT (COLLECT sent) -> FETCH
    (COLLECTED received, files being fetched and written) -> OVER. */
typedef enum { CS_WAIT, CS_SENT, CS_FETCH, CS_OVER } csite_state_t;

typedef struct _collect_t collect_t;

typedef struct {
    collect_t *coll; /* back pointer */
    char *site;
    csite_state_t state;
    int64_t wait_since; /* CS_WAIT: when the wait for the site began (ms) */
    jm_wfiles_t files;  /* CS_FETCH: what the site sent */
    bool *file_done;
    size_t left;
} csite_t;

struct _collect_t {
    uint64_t id; /* names it in file worker requests */
    jm_csub_t *sub;
    csite_t **sites;
    size_t n;
    char *fail;        /* first failure (the submission ends FAILED), or NULL */
    zhashx_t *written; /* path -> "site\nhash" written into the work base */
    size_t placing;    /* files handed to the file worker, not answered yet */
    bool over;         /* finished: freed at the end of the pass */
};

/*  One file for the file worker to write, and whom it is for.  A result
    file of task idx of sub_id as it ran in job job_id, or a backward
    common file of collection coll_id from site. */
typedef struct {
    bool collect;
    char *sub_id;
    uint32_t idx;
    uint64_t job_id;
    uint64_t coll_id;
    char *site;
    char *dir; /* relative to the work base ("" = the work base) */
    char *rel; /* relative to dir */
    char hash[JM_HASH_HEX];
    uint32_t mode;
} place_t;

/* One request to the file worker: files beneath one work base. */
typedef struct {
    char *base;
    place_t *v;
    size_t n, cap;
} preq_t;

/* A FETCHING task some of whose files are with the file worker. */
typedef struct {
    uint64_t job_id; /* the run the files belong to */
    size_t placing;  /* files handed to the worker, not answered yet */
    char *fail;      /* the task fails with this once placing is 0 */
    bool dir_made;   /* the task directory exists */
} place_rec_t;

typedef struct {
    char *home;
    jm_config_t *cfg;
    zcert_t *cert;
    zsock_t *router;
    zactor_t *auth;
    zloop_t *loop;
    jm_db_t *db;
    jm_store_t *store;
    jm_xfer_t *xfer;
    jm_worker_t *worker; /* copies files out of the store */
    zhashx_t *pbatch;    /* work base -> preq_t: this pass's files */
    zhashx_t *preqs;     /* "request id" -> preq_t: with the worker */
    zhashx_t *precs;     /* "sub_id/idx" -> place_rec_t */
    uint64_t next_coll_id;
    zhashx_t *peers;     /* key -> peer_t */
    zhashx_t *sites;     /* name -> site_t */
    zhashx_t *jobs;      /* "id" -> job_t */
    zhashx_t *sub_by_id; /* id -> jm_csub_t (owned by subs) */
    zlist_t *subs;       /* jm_csub_t, oldest first (owned) */
    zlist_t *acks;       /* ack_t, sent after the pass's commit */
    zlist_t *forget;     /* jm_ctask_t* whose pending wants to drop */
    zlist_t *collects;   /* collect_t: backward common collections */
    zhashx_t *keynames;  /* Z85 public key -> allowed cert name */
    char allowed_dir[JM_PATH_MAX];
    struct timespec allowed_mtime;
    uint64_t next_job_id;
    bool rebalance;           /* look for work to withdraw at the end of the pass */
    jm_tunnels_t *tunnels;    /* ssh tunnels to login nodes, or NULL */
    uint64_t job_id_reserved; /* job ids up to this are reserved in meta */
    size_t results_waiting;   /* result files waiting for their site */
    bool progress_dirty;
    bool bytes_dirty;
    char endpoint_file[JM_PATH_MAX];
    char pid_file[JM_PATH_MAX];
    bool files_written;
} coord_t;

/* ------------------------------------------------------------ helpers */

static char *
s_dup (const char *s)
{
    char *d = strdup (s ? s : "");
    assert (d);
    return d;
}

static void
s_set (char **dst, const char *s)
{
    free (*dst);
    *dst = s_dup (s);
}

static bool
s_name_ok (const char *name)
{
    if (!name || !*name || strlen (name) > 128)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return strcmp (name, ".") != 0 && strcmp (name, "..") != 0;
}

static bool
s_exists (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0;
}

static void
s_peer_destroy (void **item)
{
    peer_t *p = (peer_t *)*item;
    if (!p)
        return;
    free (p->key);
    zframe_destroy (&p->rid);
    free (p->site);
    free (p->keyname);
    zlist_destroy (&p->watches);
    free (p);
    *item = NULL;
}

static void
s_site_destroy (void **item)
{
    site_t *s = (site_t *)*item;
    if (!s)
        return;
    free (s->name);
    free (s->pubkey);
    free (s->scheduler);
    free (s->host);
    free (s->peer_key);
    zframe_destroy (&s->rid);
    free (s->cancel_on_return.v);
    free (s);
    *item = NULL;
}

static void
s_job_destroy (void **item)
{
    job_t *j = (job_t *)*item;
    if (!j)
        return;
    free (j->site);
    free (j->idx);
    free (j->withdraw_for);
    free (j);
    *item = NULL;
}

static job_t *
s_job_lookup (coord_t *self, uint64_t id)
{
    char key[32];
    snprintf (key, sizeof key, "%" PRIu64, id);
    return (job_t *)zhashx_lookup (self->jobs, key);
}

static void
s_send (coord_t *self, zframe_t *rid, jm_msg_t **msg_p)
{
    const char *name = jm_msg_name ((*msg_p)->id);
    if (jm_msg_send (msg_p, self->router, rid) != 0)
        jm_warn ("cannot send %s to a peer", name);
}

static void s_send_error (coord_t *self, zframe_t *rid, uint64_t code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_send_error (coord_t *self, zframe_t *rid, uint64_t code, const char *fmt, ...)
{
    char reason[8192];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (reason, sizeof reason, fmt, ap);
    va_end (ap);
    jm_msg_t *msg = jm_msg_new (JM_MSG_ERROR);
    msg->code = code;
    jm_str_set (&msg->reason, reason);
    s_send (self, rid, &msg);
}

/* Reply sent after this pass's commit. */
static void
s_queue_ack (coord_t *self, zframe_t *rid, jm_msg_t *msg)
{
    ack_t *a = calloc (1, sizeof *a);
    assert (a);
    a->rid = zframe_dup (rid);
    a->msg = msg;
    zlist_append (self->acks, a);
}

/* ------------------------------------------------ file worker records */

static void
s_preq_destroy (preq_t **req_p)
{
    preq_t *r = *req_p;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free (r->v[i].sub_id);
        free (r->v[i].site);
        free (r->v[i].dir);
        free (r->v[i].rel);
    }
    free (r->v);
    free (r->base);
    free (r);
    *req_p = NULL;
}

static void
s_prec_destroy (void **item)
{
    place_rec_t *r = (place_rec_t *)*item;
    if (!r)
        return;
    free (r->fail);
    free (r);
    *item = NULL;
}

static char *
s_prec_key (const jm_ctask_t *t, char *buf, size_t len)
{
    snprintf (buf, len, "%s/%u", t->sub->id, t->idx);
    return buf;
}

/* The placement record of t, or NULL. */
static place_rec_t *
s_prec (coord_t *self, const jm_ctask_t *t)
{
    if (zhashx_size (self->precs) == 0)
        return NULL;
    char key[256];
    return (place_rec_t *)zhashx_lookup (self->precs, s_prec_key (t, key, sizeof key));
}

/* A new file in this pass's request for work base base. */
static place_t *
s_place_new (coord_t *self, const char *base)
{
    preq_t *r = (preq_t *)zhashx_lookup (self->pbatch, base);
    if (!r) {
        r = calloc (1, sizeof *r);
        assert (r);
        r->base = s_dup (base);
        zhashx_insert (self->pbatch, base, r);
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->v = realloc (r->v, r->cap * sizeof *r->v);
        assert (r->v);
    }
    place_t *p = &r->v[r->n++];
    memset (p, 0, sizeof *p);
    return p;
}

/* ------------------------------------------------------ state changes */

static bool
s_sub_all_terminal (const jm_csub_t *sub)
{
    return sub->counts[JM_TASK_DONE] + sub->counts[JM_TASK_FAILED] +
               sub->counts[JM_TASK_CANCELLED] ==
           sub->ntasks;
}

static collect_t *s_collect_find (coord_t *self, jm_csub_t *sub);
static bool s_collect_start (coord_t *self, jm_csub_t *sub);

/* All tasks are terminal (and backward common files, if any, collected or
   failed: collect_fail says why). */
static void
s_sub_finish (coord_t *self, jm_csub_t *sub, const char *collect_fail)
{
    if (sub->counts[JM_TASK_FAILED] > 0 || collect_fail)
        sub->state = JM_SUB_FAILED;
    else if (sub->counts[JM_TASK_CANCELLED] > 0)
        sub->state = JM_SUB_CANCELLED;
    else
        sub->state = JM_SUB_DONE;
    jm_info ("submission %s finished: %s (%" PRIu64 " done, %" PRIu64 " failed, %" PRIu64
             " cancelled)",
             sub->id, jm_sub_state_name (sub->state), sub->counts[JM_TASK_DONE],
             sub->counts[JM_TASK_FAILED], sub->counts[JM_TASK_CANCELLED]);
    if (collect_fail)
        jm_warn ("submission %s FAILED: %s", sub->id, collect_fail);
    jm_coord_db_sub_update (self->db, sub);
    sub->progress_dirty = true;
    self->progress_dirty = true;
}

/*  Every task is terminal: the submission is finished, unless its backward
    common files are still to be collected (not after a cancel). */
static void
s_sub_check_finished (coord_t *self, jm_csub_t *sub)
{
    if (sub->state != JM_SUB_ACTIVE || !s_sub_all_terminal (sub))
        return;
    if (s_collect_find (self, sub))
        return;
    if (sub->backward_common.n > 0 && sub->counts[JM_TASK_CANCELLED] == 0 &&
        s_collect_start (self, sub))
        return;
    s_sub_finish (self, sub, NULL);
}

/*  The one place a task changes state: checks the transition table,
    records the row update in the current batch, keeps counts, the pending
    FIFO and the submission state.  -1 if refused. */
static int
s_task_set (coord_t *self, jm_ctask_t *t, jm_task_state_t to)
{
    jm_csub_t *sub = t->sub;
    if (!jm_task_transition_ok (t->state, to)) {
        jm_warn ("task %u of submission %s: illegal transition %s -> %s refused", t->idx, sub->id,
                 jm_task_state_name (t->state), jm_task_state_name (to));
        return -1;
    }
    jm_debug ("task %u of %s: %s -> %s", t->idx, sub->id, jm_task_state_name (t->state),
              jm_task_state_name (to));
    if (t->state == JM_TASK_FETCHING && t->results_stored) {
        jm_wfiles_t keep = t->results;
        t->results = (jm_wfiles_t){0};
        jm_coord_db_task_results (self->db, sub, t);
        t->results = keep;
    }
    if (t->state == JM_TASK_FETCHING && zhashx_size (self->precs) > 0) {
        /* answers from the file worker for this run are ignored from now */
        char key[256];
        zhashx_delete (self->precs, s_prec_key (t, key, sizeof key));
    }
    sub->counts[t->state]--;
    sub->counts[to]++;
    if (t->machine >= 0 && (size_t)t->machine < sub->machines.n) {
        bool was_out = jm_ctask_state_out (t->state), now_out = jm_ctask_state_out (to);
        if (was_out && !now_out && sub->m_out[t->machine] > 0)
            sub->m_out[t->machine]--;
        else if (!was_out && now_out)
            sub->m_out[t->machine]++;
        if (to == JM_TASK_PENDING) {
            if (sub->m_assigned[t->machine] > 0)
                sub->m_assigned[t->machine]--;
            t->machine = -1;
        }
    }
    t->state = to;
    if (to == JM_TASK_PENDING) {
        /* given back: no longer assigned to a site or job (reports of
           that job are ignored from now) */
        s_set (&t->site, "");
        t->job_id = 0;
        jm_csub_pending_push (sub, t->idx);
        self->rebalance = true;
    }
    jm_coord_db_task_update (self->db, sub, t);
    sub->progress_dirty = true;
    self->progress_dirty = true;
    if (jm_task_state_terminal (to))
        s_sub_check_finished (self, sub);
    return 0;
}

/* Free t's fetch bookkeeping, keeping the count of waiting results. */
static void
s_results_clear (coord_t *self, jm_ctask_t *t)
{
    assert (self->results_waiting >= t->results_waiting);
    self->results_waiting -= t->results_waiting;
    jm_ctask_results_clear (t);
}

/*  t fails with reason; while some of its files are with the file worker
    (FETCHING), it stops fetching and fails once they are answered
    (s_task_check_fetch). */
static void
s_task_fail (coord_t *self, jm_ctask_t *t, const char *reason)
{
    place_rec_t *rec = t->state == JM_TASK_FETCHING ? s_prec (self, t) : NULL;
    if (rec && rec->placing > 0) {
        if (!rec->fail)
            rec->fail = s_dup (reason);
        if (t->results_left > t->results_waiting)
            zlist_append (self->forget, t);
        s_results_clear (self, t);
        return;
    }
    s_set (&t->reason, reason);
    if (t->results_left > t->results_waiting)
        zlist_append (self->forget, t);
    s_results_clear (self, t);
    if (jm_task_transition_ok (t->state, JM_TASK_FAILED))
        jm_info ("task %u (%s) of %s FAILED: %s", t->idx, t->path, t->sub->id, reason);
    s_task_set (self, t, JM_TASK_FAILED);
}

/* ------------------------------------------------------------ dispatch */

static void s_job_finish (coord_t *self, job_t *job, const char *state);

/*  Work is pulled: a site's CREDIT says how many more jobs it takes.  A
    submission with machine entries goes only to the sites serving them
    (an entry's site:, else its host), each job with its entry's command,
    root and resources, within the entry's caps (submit_size: tasks out
    at once; work_load_ratio: share of all tasks).  Near the end
    (s_rebalance) jobs still waiting at one site are withdrawn when
    another site that could run them has free credit.                   */

/* Host names match exactly, or by their first label when one of them is
   short ("hpc1" and "hpc1.example.org"). */
static bool
s_host_eq (const char *a, const char *b)
{
    if (!a || !b || !*a || !*b)
        return false;
    if (strcmp (a, b) == 0)
        return true;
    const char *da = strchr (a, '.'), *db = strchr (b, '.');
    if (da && db)
        return false;
    size_t la = da ? (size_t)(da - a) : strlen (a);
    size_t lb = db ? (size_t)(db - b) : strlen (b);
    return la == lb && strncmp (a, b, la) == 0;
}

/* Site serves machine entry m: by its explicit site, else by host, else
   any site does. */
static bool
s_site_serves (const site_t *site, const jm_wmachine_t *m)
{
    if (m->site && *m->site)
        return strcmp (m->site, site->name) == 0;
    if (m->host && *m->host)
        return s_host_eq (m->host, site->name) || s_host_eq (m->host, site->host);
    return true;
}

/* A site that may be given new jobs now. */
static bool
s_site_open (const site_t *site)
{
    return site->rid && !site->lost && !site->drained;
}

static void
s_sub_needs (jm_csub_t *sub)
{
    if (sub->need_known)
        return;
    for (size_t i = 0; i <= sub->machines.n; i++) {
        const char *json =
            i < sub->machines.n && sub->machines.v[i].resources && *sub->machines.v[i].resources
                ? sub->machines.v[i].resources
                : sub->resources;
        sub->m_cpu[i] = sub->m_gpu[i] = 0;
        if (!json || !*json)
            continue;
        char err[256];
        jm_resources_t *res = jm_resources_from_json (json, "resources", err, sizeof err);
        if (!res)
            continue;
        sub->m_cpu[i] = res->cpu_per_node;
        sub->m_gpu[i] = res->gpu_per_node;
        jm_resources_destroy (&res);
    }
    sub->need_known = true;
}

/* One job of entry i (machines.n: the submission's own resources) fits
   the capacity the site advertised (0 = not stated: anything fits). */
static bool
s_site_fits (const site_t *site, jm_csub_t *sub, size_t i)
{
    s_sub_needs (sub);
    if (site->cores && sub->m_cpu[i] > site->cores)
        return false;
    if (site->gpus && sub->m_gpu[i] > site->gpus)
        return false;
    return true;
}

/* Tasks entry i may still take now (its caps), at most group_size. */
static size_t
s_machine_room (const jm_csub_t *sub, size_t i)
{
    size_t room = sub->group_size;
    const jm_wmachine_t *m = &sub->machines.v[i];
    if (m->submit_size) {
        size_t left = m->submit_size > sub->m_out[i] ? m->submit_size - sub->m_out[i] : 0;
        if (left < room)
            room = left;
    }
    if (m->ratio) {
        /* ceil (ratio * total) tasks over the whole submission */
        uint64_t cap = (m->ratio * (uint64_t)sub->ntasks + 999999) / 1000000;
        size_t left = cap > sub->m_assigned[i] ? cap - sub->m_assigned[i] : 0;
        if (left < room)
            room = left;
    }
    return room;
}

/*  The machine entry of sub a job for site would run under: its index,
    -1 when sub has no entries (any site), -2 when site may not take a
    job of sub now.  *room_p gets the tasks such a job may hold. */
static int
s_pick_machine (const site_t *site, jm_csub_t *sub, size_t *room_p)
{
    if (sub->machines.n == 0) {
        *room_p = sub->group_size;
        return s_site_fits (site, sub, 0) ? -1 : -2;
    }
    for (size_t i = 0; i < sub->machines.n; i++) {
        if (!s_site_serves (site, &sub->machines.v[i]) || !s_site_fits (site, sub, i))
            continue;
        size_t room = s_machine_room (sub, i);
        if (room > 0) {
            *room_p = room;
            return (int)i;
        }
    }
    return -2;
}

static void
s_send_job (coord_t *self, site_t *site, jm_csub_t *sub, int machine, size_t room)
{
    const jm_wmachine_t *m = machine >= 0 ? &sub->machines.v[machine] : NULL;
    job_t *job = calloc (1, sizeof *job);
    assert (job);
    job->id = ++self->next_job_id;
    if (job->id > self->job_id_reserved) {
        /* an agent may report on this job after a crash of this process:
           its id must never be handed out again, so reserve ids durably
           before the first of them leaves */
        self->job_id_reserved = job->id + S_JOB_ID_BLOCK;
        jm_coord_db_meta_set (self->db, "job_id_reserved", self->job_id_reserved);
        jm_db_commit (self->db);
    }
    job->sub = sub;
    job->site = s_dup (site->name);
    job->machine = machine;
    job->sent_ms = jm_now_ms ();
    size_t cap = room < 1024 ? room : 1024;
    job->idx = calloc (cap ? cap : 1, sizeof (uint32_t));
    assert (job->idx);

    jm_msg_t *msg = jm_msg_new (JM_MSG_JOB);
    msg->job_id = job->id;
    jm_str_set (&msg->sub_id, sub->id);
    msg->para_deg = sub->para_deg;
    jm_str_set (&msg->resources,
                m && m->resources && *m->resources ? m->resources : sub->resources);
    jm_str_set (&msg->root, m ? m->root : "");
    const char *mcommand = m && m->command && *m->command ? m->command : NULL;
    for (size_t i = 0; i < sub->common.n; i++) {
        const jm_wfile_t *f = &sub->common.v[i];
        jm_wfiles_push (&msg->common, f->path, f->hash, f->size, f->mode);
    }
    jm_coord_db_job_insert (self->db, job->id, sub->id, site->name, "STAGING", time (NULL));
    while (job->n < room) {
        int64_t idx = jm_csub_pending_pop (sub);
        if (idx < 0)
            break;
        jm_ctask_t *t = &sub->tasks[idx];
        s_set (&t->site, site->name);
        t->job_id = job->id;
        if (m) {
            t->machine = machine;
            sub->m_assigned[machine]++;
        }
        if (s_task_set (self, t, JM_TASK_STAGING) != 0)
            continue;
        if (job->n == cap) {
            cap *= 2;
            job->idx = realloc (job->idx, cap * sizeof (uint32_t));
            assert (job->idx);
        }
        job->idx[job->n++] = t->idx;
        jm_wtask_t *w = jm_wtasks_push (&msg->tasks);
        w->id = JM_COORD_TASK_WIRE_ID (job->id, t->idx);
        w->path = s_dup (t->path);
        w->command = jm_machine_substitute_command (t->command, mcommand);
        w->outlog = s_dup (t->outlog);
        w->errlog = s_dup (t->errlog);
        for (size_t i = 0; i < t->forward.n; i++) {
            const jm_wfile_t *f = &t->forward.v[i];
            jm_wfiles_push (&w->forward, f->path, f->hash, f->size, f->mode);
        }
        for (size_t i = 0; i < t->backward.n; i++)
            jm_strs_push (&w->backward, t->backward.v[i]);
    }
    char key[32];
    snprintf (key, sizeof key, "%" PRIu64, job->id);
    zhashx_insert (self->jobs, key, job);
    jm_debug ("job %" PRIu64 " (%zu tasks of %s%s%s) -> site %s", job->id, job->n, sub->id,
              m ? ", machine " : "", m ? m->name : "", site->name);
    s_send (self, site->rid, &msg);
    site->credit--;
    site->outstanding++;
}

/* The oldest submission with pending tasks site may take a job of. */
static jm_csub_t *
s_pick_sub (coord_t *self, site_t *site, int *machine_p, size_t *room_p)
{
    for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs)) {
        if (sub->state != JM_SUB_ACTIVE || !jm_csub_has_pending (sub))
            continue;
        if (site->gave_back == sub && jm_now_ms () < site->gave_back_until)
            continue; /* it just gave these back: they go elsewhere */
        int m = s_pick_machine (site, sub, room_p);
        if (m >= -1) {
            *machine_p = m;
            return sub;
        }
    }
    return NULL;
}

/* Jobs for site while it has credit and there is work it may take. */
static void
s_fill_site (coord_t *self, site_t *site)
{
    while (s_site_open (site) && site->credit > 0) {
        int machine;
        size_t room;
        jm_csub_t *sub = s_pick_sub (self, site, &machine, &room);
        if (!sub)
            break;
        s_send_job (self, site, sub, machine, room);
    }
}

static void
s_dispatch (coord_t *self)
{
    bool spare = false;
    for (site_t *site = zhashx_first (self->sites); site; site = zhashx_next (self->sites)) {
        s_fill_site (self, site);
        if (s_site_open (site) && site->credit > site->promised)
            spare = true;
    }
    if (spare)
        self->rebalance = true;
}

/*  Near the end of a submission (none of its tasks pending), a job whose
    tasks all still wait at their site (none started) for longer than a
    heartbeat interval is asked back (WITHDRAW) when another open site
    that may run it has credit not yet promised.  Its tasks stay with the
    slow site until it answers WITHDRAWN, so no task runs at two sites -
    unless the submission is speculative: then the tasks are handed out
    again at once and the slow site's job is cancelled; a result from
    either copy is taken (alt_job_id). */
static void
s_rebalance (coord_t *self)
{
    self->rebalance = false;
    int64_t now = jm_now_ms ();
    int64_t min_age = (int64_t)self->cfg->heartbeat_ms;
    if (min_age < 1000)
        min_age = 1000;
    bool any = false;
    for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs))
        if (sub->state == JM_SUB_ACTIVE && !jm_csub_has_pending (sub) &&
            (sub->counts[JM_TASK_STAGING] || sub->counts[JM_TASK_QUEUED]))
            any = true;
    if (!any)
        return;
    bool redispatch = false;
    for (job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        jm_csub_t *sub = job->sub;
        if (job->finished || job->started || job->withdraw_for || sub->state != JM_SUB_ACTIVE ||
            jm_csub_has_pending (sub) || now - job->sent_ms < min_age)
            continue;
        bool waiting = job->n > 0;
        for (size_t i = 0; i < job->n && waiting; i++) {
            const jm_ctask_t *t = &sub->tasks[job->idx[i]];
            if (t->job_id == job->id && t->state != JM_TASK_STAGING && t->state != JM_TASK_QUEUED)
                waiting = false;
        }
        if (!waiting) {
            job->started = true;
            continue;
        }
        site_t *slow = (site_t *)zhashx_lookup (self->sites, job->site);
        if (!slow || !slow->rid || slow->lost)
            continue;
        site_t *free_site = NULL;
        for (site_t *s = zhashx_first (self->sites); s && !free_site;
             s = zhashx_next (self->sites)) {
            size_t room;
            if (s != slow && s_site_open (s) && s->credit > s->promised &&
                s_pick_machine (s, sub, &room) >= -1)
                free_site = s;
        }
        if (!free_site)
            continue;
        if (sub->speculative) {
            jm_info ("submission %s (speculative): job %" PRIu64 " waits at site %s; its tasks "
                     "go to site %s too",
                     sub->id, job->id, slow->name, free_site->name);
            for (size_t i = 0; i < job->n; i++) {
                jm_ctask_t *t = &sub->tasks[job->idx[i]];
                if (t->job_id != job->id)
                    continue;
                t->alt_job_id = job->id;
                s_task_set (self, t, JM_TASK_PENDING);
            }
            jm_msg_t *cj = jm_msg_new (JM_MSG_CANCEL_JOB);
            cj->job_id = job->id;
            s_send (self, slow->rid, &cj);
            s_job_finish (self, job, "WITHDRAWN");
            redispatch = true; /* not here: dispatching adds to self->jobs */
            continue;
        }
        jm_info ("submission %s: job %" PRIu64 " (%zu tasks) still waits at site %s while site "
                 "%s has room: withdrawing it",
                 sub->id, job->id, job->n, slow->name, free_site->name);
        job->withdraw_for = s_dup (free_site->name);
        free_site->promised++;
        jm_msg_t *wd = jm_msg_new (JM_MSG_WITHDRAW);
        wd->job_id = job->id;
        s_send (self, slow->rid, &wd);
    }
    if (redispatch)
        s_dispatch (self);
}

/* The answer to a WITHDRAW arrived (or the job ended): release the
   credit promised to the free site. */
static void
s_withdraw_settle (coord_t *self, job_t *job)
{
    if (!job->withdraw_for)
        return;
    site_t *s = (site_t *)zhashx_lookup (self->sites, job->withdraw_for);
    if (s && s->promised > 0)
        s->promised--;
    free (job->withdraw_for);
    job->withdraw_for = NULL;
}

/* ------------------------------------------------------- result files */

static int
s_xfer_send (void *arg, const char *peer, jm_msg_t **msg_p)
{
    coord_t *self = (coord_t *)arg;
    site_t *site = (site_t *)zhashx_lookup (self->sites, peer);
    if (!site || !site->rid) {
        jm_msg_destroy (msg_p);
        return -1;
    }
    s_send (self, site->rid, msg_p);
    return 0;
}

static void
s_task_finish_fetch (coord_t *self, jm_ctask_t *t)
{
    s_results_clear (self, t);
    if (t->exit_code == 0 && (!t->reason || !*t->reason))
        s_task_set (self, t, JM_TASK_DONE);
    else {
        if (jm_task_transition_ok (t->state, JM_TASK_FAILED))
            jm_info ("task %u (%s) of %s FAILED: exit code %" PRId64 "%s%s", t->idx, t->path,
                     t->sub->id, t->exit_code, t->reason && *t->reason ? ": " : "",
                     t->reason ? t->reason : "");
        s_task_set (self, t, JM_TASK_FAILED);
    }
}

/*  A FETCHING task is finished when every result file is fetched and the
    file worker has answered for each (or one failed and the worker has
    answered for those it had). */
static void
s_task_check_fetch (coord_t *self, jm_ctask_t *t)
{
    if (t->state != JM_TASK_FETCHING)
        return;
    place_rec_t *rec = s_prec (self, t);
    if (rec && rec->placing > 0)
        return;
    if (rec && rec->fail) {
        char *fail = rec->fail;
        rec->fail = NULL;
        s_task_fail (self, t, fail); /* frees rec */
        free (fail);
        return;
    }
    if (!t->result_done || t->results_left > 0)
        return;
    s_task_finish_fetch (self, t);
}

/*  Result file f of t is in the store: the file worker is to copy it into
    the task directory (created here, beneath the work base) at the end of
    the pass.  0, or -1 + err. */
static int
s_place_result (coord_t *self, jm_ctask_t *t, const jm_wfile_t *f, char *err, size_t errlen)
{
    char key[256];
    s_prec_key (t, key, sizeof key);
    place_rec_t *rec = (place_rec_t *)zhashx_lookup (self->precs, key);
    if (!rec || rec->job_id != t->job_id) {
        rec = calloc (1, sizeof *rec);
        assert (rec);
        rec->job_id = t->job_id;
        zhashx_update (self->precs, key, rec);
    }
    if (!rec->dir_made) {
        int wfd = open (t->sub->work_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (wfd < 0)
            return jm_err (err, errlen, "cannot open work base '%s': %s", t->sub->work_base,
                           strerror (errno));
        char e2[1024];
        int tfd = jm_path_mkdirs_beneath (wfd, t->path, e2, sizeof e2);
        close (wfd);
        if (tfd < 0)
            return jm_err (err, errlen, "cannot create task dir '%s' in '%s': %s", t->path,
                           t->sub->work_base, e2);
        close (tfd);
        rec->dir_made = true;
    }
    place_t *p = s_place_new (self, t->sub->work_base);
    p->sub_id = s_dup (t->sub->id);
    p->idx = t->idx;
    p->job_id = t->job_id;
    p->dir = s_dup (t->path);
    p->rel = s_dup (f->path);
    snprintf (p->hash, sizeof p->hash, "%s", f->hash);
    p->mode = f->mode & 07777;
    rec->placing++;
    return 0;
}

/* ------------------------------------------------ backward common files */

static collect_t *
s_collect_find (coord_t *self, jm_csub_t *sub)
{
    for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects))
        if (c->sub == sub && !c->over)
            return c;
    return NULL;
}

/* The collection site that cookie is, or NULL (then it is a task). */
static csite_t *
s_csite_of (coord_t *self, void *cookie)
{
    for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects))
        for (size_t i = 0; i < c->n; i++)
            if ((void *)c->sites[i] == cookie)
                return c->sites[i];
    return NULL;
}

static void
s_csite_clear (csite_t *cs)
{
    jm_wfiles_clear (&cs->files);
    free (cs->file_done);
    cs->file_done = NULL;
    cs->left = 0;
}

static void
s_collect_destroy (coord_t *self, collect_t **coll_p)
{
    collect_t *c = *coll_p;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        if (self->xfer)
            jm_xfer_forget (self->xfer, c->sites[i]);
        s_csite_clear (c->sites[i]);
        free (c->sites[i]->site);
        free (c->sites[i]);
    }
    free (c->sites);
    free (c->fail);
    zhashx_destroy (&c->written);
    free (c);
    *coll_p = NULL;
}

/* Every site has answered (or failed): the submission is finished. */
static void
s_collect_check (coord_t *self, collect_t *coll)
{
    if (coll->over)
        return;
    for (size_t i = 0; i < coll->n; i++)
        if (coll->sites[i]->state != CS_OVER)
            return;
    if (coll->placing > 0)
        return; /* the file worker is still writing some */
    coll->over = true;
    if (!coll->fail)
        jm_info ("submission %s: backward common files collected", coll->sub->id);
    s_sub_finish (self, coll->sub, coll->fail);
}

static void
s_csite_fail (coord_t *self, csite_t *cs, const char *reason)
{
    if (cs->state == CS_OVER)
        return;
    collect_t *coll = cs->coll;
    jm_warn ("submission %s: %s", coll->sub->id, reason);
    if (!coll->fail)
        coll->fail = s_dup (reason);
    cs->state = CS_OVER;
    s_csite_clear (cs);
    s_collect_check (self, coll);
}

static void
s_csite_over (coord_t *self, csite_t *cs)
{
    cs->state = CS_OVER;
    s_csite_clear (cs);
    s_collect_check (self, cs->coll);
}

/* Send COLLECT if the site is connected, else (keep) waiting for it. */
static void
s_csite_send (coord_t *self, csite_t *cs)
{
    site_t *site = (site_t *)zhashx_lookup (self->sites, cs->site);
    if (!site || !site->rid || site->lost) {
        if (cs->state != CS_WAIT) {
            cs->state = CS_WAIT;
            cs->wait_since = jm_now_ms ();
        }
        jm_info ("submission %s: backward common files wait for site %s to connect",
                 cs->coll->sub->id, cs->site);
        return;
    }
    jm_msg_t *msg = jm_msg_new (JM_MSG_COLLECT);
    jm_str_set (&msg->sub_id, cs->coll->sub->id);
    const jm_csub_t *sub = cs->coll->sub;
    for (size_t i = 0; i < sub->backward_common.n; i++)
        jm_strs_push (&msg->backward_common, sub->backward_common.v[i]);
    s_send (self, site->rid, &msg);
    cs->state = CS_SENT;
    jm_debug ("submission %s: COLLECT -> site %s", sub->id, cs->site);
}

/*  Start collecting sub's backward common files from every site that ran
    tasks of it.  False if there is no such site (nothing to collect). */
static bool
s_collect_start (coord_t *self, jm_csub_t *sub)
{
    collect_t *coll = calloc (1, sizeof *coll);
    assert (coll);
    coll->id = ++self->next_coll_id;
    coll->sub = sub;
    coll->written = zhashx_new ();
    zhashx_set_destructor (coll->written, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator (coll->written, (zhashx_duplicator_fn *)strdup);
    for (size_t i = 0; i < sub->ntasks; i++) {
        const char *name = sub->tasks[i].site;
        if (!name || !*name)
            continue;
        size_t j;
        for (j = 0; j < coll->n; j++)
            if (strcmp (coll->sites[j]->site, name) == 0)
                break;
        if (j < coll->n)
            continue;
        coll->sites = realloc (coll->sites, (coll->n + 1) * sizeof *coll->sites);
        assert (coll->sites);
        csite_t *cs = calloc (1, sizeof *cs);
        assert (cs);
        cs->coll = coll;
        cs->site = s_dup (name);
        cs->state = CS_WAIT;
        cs->wait_since = jm_now_ms ();
        coll->sites[coll->n++] = cs;
    }
    if (coll->n == 0) {
        s_collect_destroy (self, &coll);
        return false;
    }
    zlist_append (self->collects, coll);
    jm_info ("submission %s: all tasks ended; collecting %zu backward common pattern(s) from "
             "%zu site(s)",
             sub->id, sub->backward_common.n, coll->n);
    for (size_t i = 0; i < coll->n; i++)
        s_csite_send (self, coll->sites[i]);
    return true;
}

/* Site is connected again (HELLO, or heard from after it was lost): send
   COLLECT again where it is waiting (resend: also where it was sent). */
static void
s_collect_resume (coord_t *self, site_t *site, bool resend)
{
    for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects)) {
        if (c->over)
            continue;
        for (size_t i = 0; i < c->n; i++) {
            csite_t *cs = c->sites[i];
            if (strcmp (cs->site, site->name) == 0 &&
                (cs->state == CS_WAIT || (resend && cs->state == CS_SENT)))
                s_csite_send (self, cs);
        }
    }
}

/* Site lost: a COLLECT it has not answered waits for it to come back. */
static void
s_collect_site_lost (coord_t *self, site_t *site)
{
    for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects))
        for (size_t i = 0; i < c->n && !c->over; i++) {
            csite_t *cs = c->sites[i];
            if (cs->state == CS_SENT && strcmp (cs->site, site->name) == 0) {
                cs->state = CS_WAIT;
                cs->wait_since = jm_now_ms ();
            }
        }
}

/* Heartbeat: a site waited for longer than S_COLLECT_WAIT intervals fails
   its part of the collection. */
static void
s_collect_timeouts (coord_t *self)
{
    int64_t now = jm_now_ms ();
    int64_t limit = S_COLLECT_WAIT * (int64_t)self->cfg->heartbeat_ms;
    for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects))
        for (size_t i = 0; i < c->n && !c->over; i++) {
            csite_t *cs = c->sites[i];
            if (cs->state != CS_WAIT || now - cs->wait_since <= limit)
                continue;
            char reason[512];
            snprintf (reason, sizeof reason,
                      "site %s did not connect within %" PRId64
                      " ms to hand over the backward common files",
                      cs->site, limit);
            s_csite_fail (self, cs, reason);
        }
}

/* Free the collections that are over (outside any xfer callback). */
static void
s_collect_reap (coord_t *self)
{
    collect_t *c = zlist_first (self->collects);
    while (c) {
        collect_t *next = zlist_next (self->collects);
        if (c->over) {
            zlist_remove (self->collects, c);
            s_collect_destroy (self, &c);
        }
        c = next;
    }
}

/* A collected file is in the store: the file worker is to write it into
   the work base (confined beneath it) at the end of the pass. */
static int
s_place_collected (coord_t *self, csite_t *cs, const jm_wfile_t *f, char *err, size_t errlen)
{
    collect_t *coll = cs->coll;
    if (jm_path_check_rel (f->path, "backward common file", err, errlen) != 0)
        return -1;
    place_t *p = s_place_new (self, coll->sub->work_base);
    p->collect = true;
    p->sub_id = s_dup (coll->sub->id);
    p->coll_id = coll->id;
    p->site = s_dup (cs->site);
    p->dir = s_dup ("");
    p->rel = s_dup (f->path);
    snprintf (p->hash, sizeof p->hash, "%s", f->hash);
    p->mode = f->mode & 07777;
    coll->placing++;
    return 0;
}

/* The file worker has written (ok) a collected file, or could not. */
static void
s_collect_place_done (coord_t *self, const place_t *p, bool ok, const char *error)
{
    collect_t *coll;
    for (coll = zlist_first (self->collects); coll; coll = zlist_next (self->collects))
        if (coll->id == p->coll_id)
            break;
    if (!coll || coll->over || coll->placing == 0) {
        jm_debug ("backward common file '%s' of %s written for a collection that has ended", p->rel,
                  p->sub_id);
        return;
    }
    coll->placing--;
    const jm_csub_t *sub = coll->sub;
    if (!ok) {
        char err[4096];
        snprintf (err, sizeof err, "cannot write backward common file '%s/%s': %s", sub->work_base,
                  p->rel, error);
        csite_t *cs = NULL;
        for (size_t i = 0; i < coll->n && !cs; i++)
            if (strcmp (coll->sites[i]->site, p->site) == 0)
                cs = coll->sites[i];
        if (cs && cs->state != CS_OVER)
            s_csite_fail (self, cs, err);
        else {
            jm_warn ("submission %s: %s", sub->id, err);
            if (!coll->fail)
                coll->fail = s_dup (err);
            s_collect_check (self, coll);
        }
        return;
    }
    char *key = zsys_sprintf ("%s\n%s", p->site, p->hash);
    const char *before = (const char *)zhashx_lookup (coll->written, p->rel);
    if (before && strcmp (strchr (before, '\n') + 1, p->hash) != 0)
        jm_warn ("submission %s: backward common file '%s' differs between site %.*s and site %s; "
                 "the work base holds the one from %s",
                 sub->id, p->rel, (int)(strchr (before, '\n') - before), before, p->site, p->site);
    zhashx_update (coll->written, p->rel, key);
    zstr_free (&key);
    s_collect_check (self, coll);
}

/* xfer: a collected file is in the store, or failed. */
static void
s_collect_xfer_done (coord_t *self, csite_t *cs, const char *peer, const char *hash, int ok,
                     const char *reason)
{
    if (cs->state != CS_FETCH || cs->coll->over)
        return;
    size_t i;
    for (i = 0; i < cs->files.n; i++)
        if (!cs->file_done[i] && strcmp (cs->files.v[i].hash, hash) == 0)
            break;
    if (i == cs->files.n)
        return;
    if (ok != 0 && jm_xfer_peer_losing (self->xfer, peer)) {
        /* the connection went, not the files: ask again when the site is back */
        jm_info ("submission %s: backward common files of site %s wait for it to come back",
                 cs->coll->sub->id, cs->site);
        jm_xfer_forget (self->xfer, cs);
        s_csite_clear (cs);
        cs->state = CS_WAIT;
        cs->wait_since = jm_now_ms ();
        return;
    }
    cs->file_done[i] = true;
    cs->left--;
    char err[2048];
    const jm_wfile_t *f = &cs->files.v[i];
    if (ok != 0) {
        snprintf (err, sizeof err, "cannot fetch backward common file '%s' from site %s: %s",
                  f->path, peer, reason ? reason : "failed");
        s_csite_fail (self, cs, err);
        return;
    }
    if (s_place_collected (self, cs, f, err, sizeof err) != 0) {
        s_csite_fail (self, cs, err);
        return;
    }
    if (cs->left == 0)
        s_csite_over (self, cs);
}

static void
s_on_collected (coord_t *self, site_t *site, jm_msg_t *msg)
{
    jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, msg->sub_id);
    collect_t *coll = sub ? s_collect_find (self, sub) : NULL;
    csite_t *cs = NULL;
    for (size_t i = 0; coll && i < coll->n; i++)
        if (strcmp (coll->sites[i]->site, site->name) == 0)
            cs = coll->sites[i];
    if (!cs || cs->state != CS_SENT) {
        jm_debug ("site %s: COLLECTED for %s not expected; ignored", site->name, msg->sub_id);
        return;
    }
    char err[8400];
    if (msg->reason && *msg->reason) {
        snprintf (err, sizeof err, "backward common files at site %s: %s", site->name, msg->reason);
        s_csite_fail (self, cs, err);
        return;
    }
    for (size_t i = 0; i < msg->files.n; i++) {
        const jm_wfile_t *f = &msg->files.v[i];
        char what[256];
        snprintf (what, sizeof what, "backward common file from site %s", site->name);
        if (jm_path_check_rel (f->path, what, err, sizeof err) != 0) {
            s_csite_fail (self, cs, err);
            return;
        }
        if (!jm_hash_valid (f->hash)) {
            snprintf (err, sizeof err, "backward common file '%s' from site %s has no valid hash",
                      f->path, site->name);
            s_csite_fail (self, cs, err);
            return;
        }
    }
    jm_info ("submission %s: site %s sends %zu backward common file(s)", sub->id, site->name,
             msg->files.n);
    s_csite_clear (cs);
    for (size_t i = 0; i < msg->files.n; i++) {
        const jm_wfile_t *f = &msg->files.v[i];
        jm_wfiles_push (&cs->files, f->path, f->hash, f->size, f->mode);
    }
    cs->file_done = calloc (cs->files.n + 1, sizeof (bool));
    assert (cs->file_done);
    cs->left = cs->files.n;
    cs->state = CS_FETCH;
    if (cs->left == 0) {
        s_csite_over (self, cs);
        return;
    }
    /* done() may run inside want() and end this site's part (clearing
       its files): work from copies and re-check the state */
    size_t n = cs->files.n;
    char (*hashes)[JM_HASH_HEX] = calloc (n, JM_HASH_HEX);
    uint64_t *sizes = calloc (n, sizeof (uint64_t));
    assert (hashes && sizes);
    for (size_t i = 0; i < n; i++) {
        memcpy (hashes[i], cs->files.v[i].hash, JM_HASH_HEX);
        sizes[i] = cs->files.v[i].size;
    }
    for (size_t i = 0; i < n && cs->state == CS_FETCH; i++)
        jm_xfer_want (self->xfer, site->name, hashes[i], sizes[i], 0, cs);
    free (hashes);
    free (sizes);
}

static void
s_xfer_done (void *arg, const char *peer, const char *hash, int ok, const char *reason,
             void *cookie)
{
    coord_t *self = (coord_t *)arg;
    csite_t *cs = s_csite_of (self, cookie);
    if (cs) {
        s_collect_xfer_done (self, cs, peer, hash, ok, reason);
        return;
    }
    jm_ctask_t *t = (jm_ctask_t *)cookie;
    if (t->state != JM_TASK_FETCHING || !t->result_done) {
        jm_debug ("result %s for task %u of %s no longer wanted", hash, t->idx, t->sub->id);
        return;
    }
    size_t i;
    for (i = 0; i < t->results.n; i++)
        if (!t->result_done[i] && !t->result_wait[i] && strcmp (t->results.v[i].hash, hash) == 0)
            break;
    if (i == t->results.n)
        return;
    const jm_wfile_t *f = &t->results.v[i];
    if (ok != 0 && jm_xfer_peer_losing (self->xfer, peer)) {
        /* the connection went, not the file: it is still in the agent's
           store; fetch it again when the site is back */
        t->result_wait[i] = true;
        t->results_waiting++;
        self->results_waiting++;
        jm_info ("result file '%s' of task %u of %s waits for site %s to come back", f->path,
                 t->idx, t->sub->id, peer);
        return;
    }
    t->result_done[i] = true;
    t->results_left--;
    char err[2048];
    if (ok != 0) {
        snprintf (err, sizeof err, "cannot fetch result file '%s' from site %s: %s", f->path, peer,
                  reason ? reason : "failed");
        s_task_fail (self, t, err);
        return;
    }
    if (s_place_result (self, t, f, err, sizeof err) != 0) {
        s_task_fail (self, t, err);
        return;
    }
    s_task_check_fetch (self, t);
}

/* ------------------------------------------------------- file worker */

#define S_WORKER_GONE "the coordinator's file worker has stopped"

/* The file worker has written (ok) file p, or could not (error). */
static void
s_place_done (coord_t *self, const place_t *p, bool ok, const char *error)
{
    if (p->collect) {
        s_collect_place_done (self, p, ok, error);
        return;
    }
    jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, p->sub_id);
    jm_ctask_t *t = sub && p->idx < sub->ntasks ? &sub->tasks[p->idx] : NULL;
    place_rec_t *rec = t && t->state == JM_TASK_FETCHING ? s_prec (self, t) : NULL;
    if (!rec || rec->job_id != p->job_id || rec->placing == 0) {
        jm_debug ("result file '%s' of task %u of %s written for a task that has ended", p->rel,
                  p->idx, p->sub_id);
        return;
    }
    rec->placing--;
    if (!ok) {
        char err[4096];
        snprintf (err, sizeof err, "cannot write result file '%s/%s/%s': %s", sub->work_base,
                  p->dir, p->rel, error);
        s_task_fail (self, t, err);
        return;
    }
    s_task_check_fetch (self, t);
}

/* Is p still wanted (its task or collection still waits for it)? */
static bool
s_place_wanted (coord_t *self, const place_t *p)
{
    if (p->collect) {
        for (collect_t *c = zlist_first (self->collects); c; c = zlist_next (self->collects))
            if (c->id == p->coll_id)
                return !c->over;
        return false;
    }
    jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, p->sub_id);
    if (!sub || p->idx >= sub->ntasks || sub->tasks[p->idx].state != JM_TASK_FETCHING)
        return false;
    place_rec_t *rec = s_prec (self, &sub->tasks[p->idx]);
    return rec && rec->job_id == p->job_id;
}

/*  End of a pass: hand the files that became ready to the file worker,
    one request per work base.  If the worker has stopped they fail. */
static void
s_place_flush (coord_t *self)
{
    while (zhashx_size (self->pbatch) > 0) {
        zlist_t *batch = zlist_new ();
        for (preq_t *r = zhashx_first (self->pbatch); r; r = zhashx_next (self->pbatch))
            zlist_append (batch, r);
        zhashx_purge (self->pbatch);
        for (preq_t *r = zlist_pop (batch); r; r = zlist_pop (batch)) {
            /* drop what was cancelled during the pass */
            size_t n = 0;
            for (size_t i = 0; i < r->n; i++) {
                if (s_place_wanted (self, &r->v[i]))
                    r->v[n++] = r->v[i];
                else {
                    free (r->v[i].sub_id);
                    free (r->v[i].site);
                    free (r->v[i].dir);
                    free (r->v[i].rel);
                }
            }
            r->n = n;
            if (n == 0) {
                s_preq_destroy (&r);
                continue;
            }
            jm_worker_item_t *items = calloc (n, sizeof *items);
            assert (items);
            for (size_t i = 0; i < n; i++) {
                items[i].dir = r->v[i].dir;
                items[i].rel = r->v[i].rel;
                items[i].hash = r->v[i].hash;
                items[i].mode = r->v[i].mode;
            }
            uint64_t id = jm_worker_place (self->worker, r->base, items, n);
            free (items);
            if (id == 0) {
                for (size_t i = 0; i < n; i++)
                    s_place_done (self, &r->v[i], false, S_WORKER_GONE);
                s_preq_destroy (&r);
                continue;
            }
            jm_debug ("file worker request %" PRIu64 ": %zu file(s) into %s", id, n, r->base);
            char key[32];
            snprintf (key, sizeof key, "%" PRIu64, id);
            zhashx_insert (self->preqs, key, r);
        }
        zlist_destroy (&batch);
    }
}

static void s_end_pass (coord_t *self);

/* Replies from the file worker (all that have arrived), or the news that
   it has stopped: then every file with it fails, and so will later ones. */
static int
s_on_worker (zloop_t *loop, zsock_t *sock, void *arg)
{
    coord_t *self = (coord_t *)arg;
    do {
        jm_worker_reply_t *reply = jm_worker_recv (self->worker);
        if (!reply) {
            if (jm_worker_alive (self->worker))
                continue;
            jm_error ("%s; the tasks and backward common files it was to write fail",
                      S_WORKER_GONE);
            zloop_reader_end (loop, sock);
            preq_t *r;
            while ((r = (preq_t *)zhashx_first (self->preqs))) {
                zhashx_delete (self->preqs, zhashx_cursor (self->preqs));
                for (size_t i = 0; i < r->n; i++)
                    s_place_done (self, &r->v[i], false, S_WORKER_GONE);
                s_preq_destroy (&r);
            }
            break;
        }
        char key[32];
        snprintf (key, sizeof key, "%" PRIu64, reply->id);
        preq_t *r = (preq_t *)zhashx_lookup (self->preqs, key);
        if (!r) {
            jm_warn ("the file worker answered request %" PRIu64 " that is not pending", reply->id);
            jm_worker_reply_destroy (&reply);
            continue;
        }
        zhashx_delete (self->preqs, key);
        for (size_t i = 0; i < r->n; i++) {
            const jm_worker_result_t *res = i < reply->n ? &reply->v[i] : NULL;
            if (res && res->status == JM_WORKER_OK)
                s_place_done (self, &r->v[i], true, NULL);
            else
                s_place_done (self, &r->v[i], false,
                              !res         ? "no answer for it from the file worker"
                              : res->error ? res->error
                                           : "failed");
        }
        s_preq_destroy (&r);
        jm_worker_reply_destroy (&reply);
    } while (zsock_events (sock) & ZMQ_POLLIN);
    s_end_pass (self);
    return 0;
}

/* ------------------------------------------------------------ agents */

static jm_ctask_t *
s_task_by_wire (coord_t *self, site_t *site, uint64_t wid)
{
    uint64_t job_id = JM_COORD_WIRE_JOB (wid);
    uint64_t idx = JM_COORD_WIRE_IDX (wid);
    if (job_id) {
        job_t *job = s_job_lookup (self, job_id);
        if (!job || idx >= job->sub->ntasks ||
            (job->sub->tasks[idx].job_id != job_id && job->sub->tasks[idx].alt_job_id != job_id))
            return NULL;
        if (strcmp (job->site, site->name) != 0) {
            jm_warn ("site %s reported task of job %" PRIu64 " which belongs to site %s; ignored",
                     site->name, job_id, job->site);
            return NULL;
        }
        return &job->sub->tasks[idx];
    }
    /* plain index: find it among this site's unfinished jobs */
    for (job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        if (job->finished || strcmp (job->site, site->name) != 0 || idx >= job->sub->ntasks)
            continue;
        jm_ctask_t *t = &job->sub->tasks[idx];
        if (t->job_id == job->id && !jm_task_state_terminal (t->state))
            return t;
    }
    return NULL;
}

static void
s_job_finish (coord_t *self, job_t *job, const char *state)
{
    if (job->finished)
        return;
    job->finished = true;
    s_withdraw_settle (self, job);
    jm_coord_db_job_state (self->db, job->id, state);
    site_t *site = (site_t *)zhashx_lookup (self->sites, job->site);
    if (site && site->outstanding > 0)
        site->outstanding--;
}

static void
s_on_job_state (coord_t *self, peer_t *peer, site_t *site, jm_msg_t *msg)
{
    job_t *job = s_job_lookup (self, msg->job_id);
    if (!job) {
        jm_debug ("site %s: JOB_STATE for unknown job %" PRIu64 " ignored", site->name,
                  msg->job_id);
        return;
    }
    if (strcmp (job->site, site->name) != 0) {
        jm_warn ("site %s: JOB_STATE for job %" PRIu64 " of site %s ignored", site->name,
                 msg->job_id, job->site);
        return;
    }
    const char *st = msg->state ? msg->state : "";
    if (job->finished) {
        jm_debug ("site %s: JOB_STATE %s for finished job %" PRIu64 " ignored", site->name, st,
                  job->id);
        return;
    }
    jm_csub_t *sub = job->sub;
    if (strcmp (st, "STAGING") == 0)
        return;
    if (strcmp (st, "WITHDRAWN") == 0) {
        size_t n = 0;
        for (size_t i = 0; i < job->n; i++) {
            jm_ctask_t *t = &sub->tasks[job->idx[i]];
            /* RUNNING too: a task that started just before the site's
               cancel was killed by it, on our request */
            if (t->job_id == job->id && jm_ctask_state_out (t->state) &&
                s_task_set (self, t, JM_TASK_PENDING) == 0)
                n++;
        }
        jm_info ("site %s gave job %" PRIu64 " back: %zu tasks of %s pending again", site->name,
                 job->id, n, sub->id);
        /* the site the work was withdrawn for gets it first, and the slow
           site none of it back for a while */
        site->gave_back = sub;
        site->gave_back_until = jm_now_ms () + 5 * (int64_t)self->cfg->heartbeat_ms;
        site_t *to =
            job->withdraw_for ? (site_t *)zhashx_lookup (self->sites, job->withdraw_for) : NULL;
        s_job_finish (self, job, "WITHDRAWN");
        if (to)
            s_fill_site (self, to);
        s_dispatch (self);
        return;
    }
    if (strcmp (st, "RUNNING") == 0)
        s_withdraw_settle (self, job); /* a refused WITHDRAW, or a start */
    if (strcmp (st, "QUEUED") == 0 || strcmp (st, "RUNNING") == 0) {
        jm_task_state_t to = st[0] == 'Q' ? JM_TASK_QUEUED : JM_TASK_RUNNING;
        for (size_t i = 0; i < job->n; i++) {
            jm_ctask_t *t = &sub->tasks[job->idx[i]];
            if (t->job_id == job->id && t->state < to && t->state >= JM_TASK_STAGING)
                s_task_set (self, t, to);
        }
        jm_coord_db_job_state (self->db, job->id, st);
        return;
    }
    if (strcmp (st, "FAILED") == 0 || strcmp (st, "DONE") == 0) {
        bool failed = st[0] == 'F';
        for (size_t i = 0; i < job->n; i++) {
            jm_ctask_t *t = &sub->tasks[job->idx[i]];
            if (t->job_id != job->id || (t->state != JM_TASK_STAGING &&
                                         t->state != JM_TASK_QUEUED && t->state != JM_TASK_RUNNING))
                continue;
            char reason[8400];
            if (failed)
                snprintf (reason, sizeof reason, "job %" PRIu64 " failed at site %s: %s", job->id,
                          site->name, msg->reason ? msg->reason : "");
            else
                snprintf (reason, sizeof reason,
                          "job %" PRIu64 " at site %s ended without reporting this task", job->id,
                          site->name);
            s_task_fail (self, t, reason);
        }
        s_job_finish (self, job, st);
        return;
    }
    s_send_error (self, peer->rid, 5, "JOB_STATE: unknown state '%s' for job %" PRIu64, st,
                  job->id);
}

static void
s_on_task_started (coord_t *self, site_t *site, jm_msg_t *msg)
{
    for (size_t i = 0; i < msg->ids.n; i++) {
        jm_ctask_t *t = s_task_by_wire (self, site, msg->ids.v[i]);
        if (!t) {
            jm_debug ("site %s: TASK_STARTED for unknown task %" PRIu64 " ignored", site->name,
                      msg->ids.v[i]);
            continue;
        }
        if (t->state == JM_TASK_STAGING || t->state == JM_TASK_QUEUED)
            s_task_set (self, t, JM_TASK_RUNNING);
    }
}

static void
s_on_task_end (coord_t *self, site_t *site, jm_msg_t *msg)
{
    jm_ctask_t *t = s_task_by_wire (self, site, msg->task_id);
    if (!t) {
        jm_debug ("site %s: TASK_END for unknown task %" PRIu64 " ignored", site->name,
                  msg->task_id);
        return;
    }
    if (t->state != JM_TASK_STAGING && t->state != JM_TASK_QUEUED && t->state != JM_TASK_RUNNING) {
        jm_debug ("site %s: TASK_END for task %u of %s in state %s ignored", site->name, t->idx,
                  t->sub->id, jm_task_state_name (t->state));
        return;
    }
    uint64_t wire_job = JM_COORD_WIRE_JOB (msg->task_id);
    if (wire_job && t->alt_job_id == wire_job && t->job_id != wire_job) {
        /* the speculative copy at the slow site ended first: its result
           is taken; the other copy's report will be ignored */
        jm_info ("task %u of %s: the copy at site %s ended first", t->idx, t->sub->id, site->name);
        if (t->machine >= 0 && (size_t)t->machine < t->sub->machines.n) {
            /* it leaves the other copy's entry */
            if (t->sub->m_out[t->machine] > 0)
                t->sub->m_out[t->machine]--;
            if (t->sub->m_assigned[t->machine] > 0)
                t->sub->m_assigned[t->machine]--;
        }
        t->machine = -1;
        t->job_id = wire_job;
        s_set (&t->site, site->name);
    }
    t->alt_job_id = 0;
    t->exit_code = msg->exit_code;
    char err[2048];
    for (size_t i = 0; i < msg->files.n; i++) {
        const jm_wfile_t *f = &msg->files.v[i];
        char what[128];
        snprintf (what, sizeof what, "result file of task %u", t->idx);
        if (jm_path_check_rel (f->path, what, err, sizeof err) != 0) {
            s_task_fail (self, t, err);
            return;
        }
        if (!jm_hash_valid (f->hash)) {
            snprintf (err, sizeof err, "result file '%s' of task %u has no valid hash", f->path,
                      t->idx);
            s_task_fail (self, t, err);
            return;
        }
    }
    s_set (&t->reason, msg->reason);
    if (s_task_set (self, t, JM_TASK_FETCHING) != 0)
        return;
    s_results_clear (self, t);
    for (size_t i = 0; i < msg->files.n; i++) {
        const jm_wfile_t *f = &msg->files.v[i];
        jm_wfiles_push (&t->results, f->path, f->hash, f->size, f->mode);
    }
    t->results_left = t->results.n;
    t->result_done = calloc (t->results.n + 1, sizeof (bool));
    t->result_wait = calloc (t->results.n + 1, sizeof (bool));
    assert (t->result_done && t->result_wait);
    if (t->results.n > 0)
        jm_coord_db_task_results (self->db, t->sub, t);
    if (t->results.n == 0) {
        s_task_finish_fetch (self, t);
        return;
    }
    /* done() may run (and finish or fail the task) inside want() */
    size_t n = t->results.n;
    char **hashes = calloc (n, sizeof (char *));
    uint64_t *sizes = calloc (n, sizeof (uint64_t));
    assert (hashes && sizes);
    for (size_t i = 0; i < n; i++) {
        hashes[i] = s_dup (t->results.v[i].hash);
        sizes[i] = t->results.v[i].size;
    }
    for (size_t i = 0; i < n; i++) {
        if (t->state != JM_TASK_FETCHING)
            break;
        if (jm_xfer_want (self->xfer, site->name, hashes[i], sizes[i], t->job_id, t) < 0) {
            snprintf (err, sizeof err, "result file of task %u has an invalid hash", t->idx);
            s_task_fail (self, t, err);
        }
    }
    for (size_t i = 0; i < n; i++)
        free (hashes[i]);
    free (hashes);
    free (sizes);
}

static void
s_on_fetch (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    size_t bytes = 0;
    jm_msg_t *reply = jm_xfer_serve (self->store, msg, &bytes);
    s_send (self, peer->rid, &reply);
    if (msg->job_id && bytes) {
        job_t *job = s_job_lookup (self, msg->job_id);
        if (job) {
            job->sub->bytes_sent += bytes;
            job->sub->bytes_dirty = true;
            self->bytes_dirty = true;
        }
    }
}

/*  The connection to site went (silence or a new session): its result
    fetches in flight are not failed but wait for the site to come back
    (s_xfer_done), since the files are still in the agent's store.
    Tasks out at the site stay assigned to it: the agent reports them
    when it is back.  Answers to the FETCHes sent before may still come
    (the site was only slow): jm_xfer drops them. */
static void
s_xfer_peer_lost (coord_t *self, site_t *site, const char *reason)
{
    jm_xfer_peer_lost (self->xfer, site->name, reason);
}

/*  Site is back (HELLO, or heard from again after it was lost): want the
    result files that wait for it again.  Only a NOFILE (or a failed
    verification) from the agent fails their task now. */
static void
s_site_resume_fetches (coord_t *self, site_t *site)
{
    if (self->results_waiting == 0)
        return;
    size_t n = 0;
    for (jm_csub_t *sub = zlist_first (self->subs); sub && self->results_waiting > 0;
         sub = zlist_next (self->subs)) {
        if (sub->state != JM_SUB_ACTIVE)
            continue;
        for (size_t k = 0; k < sub->ntasks && self->results_waiting > 0; k++) {
            jm_ctask_t *t = &sub->tasks[k];
            if (t->state != JM_TASK_FETCHING || t->results_waiting == 0 ||
                strcmp (t->site, site->name) != 0)
                continue;
            /* done() may run inside want() and finish or fail t (which
               frees its arrays): re-check after every call */
            for (size_t i = 0; t->state == JM_TASK_FETCHING && t->result_wait && i < t->results.n &&
                               t->results_waiting > 0;
                 i++) {
                if (!t->result_wait[i])
                    continue;
                t->result_wait[i] = false;
                t->results_waiting--;
                self->results_waiting--;
                n++;
                char hash[JM_HASH_HEX];
                snprintf (hash, sizeof hash, "%s", t->results.v[i].hash);
                if (jm_xfer_want (self->xfer, site->name, hash, t->results.v[i].size, t->job_id,
                                  t) < 0) {
                    char err[512];
                    snprintf (err, sizeof err, "result file of task %u has an invalid hash",
                              t->idx);
                    s_task_fail (self, t, err);
                }
            }
        }
    }
    if (n)
        jm_info ("site %s is back: fetching %zu result files again", site->name, n);
}

static void
s_site_lost (coord_t *self, site_t *site, const char *why)
{
    site->lost = true;
    site->lost_since = jm_now_ms ();
    site->credit = 0;
    jm_warn ("site %s lost: %s", site->name, why);
    jm_coord_db_site_state (self->db, site->name, "lost", time (NULL));
    char reason[512];
    snprintf (reason, sizeof reason, "site %s lost: %s", site->name, why);
    s_xfer_peer_lost (self, site, reason);
    s_collect_site_lost (self, site);
}

/*  Site has been lost for requeue_after_ms: every task it held that has
    not ended (or whose results were not fetched) goes back to PENDING and
    on to other sites; its jobs are cancelled there when it is back. */
static void
s_site_requeue (coord_t *self, site_t *site)
{
    site->requeued = true;
    size_t n = 0;
    for (job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        if (job->finished || strcmp (job->site, site->name) != 0)
            continue;
        jm_u64s_push (&site->cancel_on_return, job->id);
        s_job_finish (self, job, "LOST");
    }
    for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs)) {
        if (sub->state != JM_SUB_ACTIVE)
            continue;
        for (size_t i = 0; i < sub->ntasks; i++) {
            jm_ctask_t *t = &sub->tasks[i];
            if (t->state == JM_TASK_PENDING || jm_task_state_terminal (t->state) ||
                strcmp (t->site, site->name) != 0)
                continue;
            if (t->state == JM_TASK_FETCHING) {
                place_rec_t *rec = s_prec (self, t);
                if (rec && rec->placing > 0)
                    continue; /* its files are already here, being written */
                jm_xfer_forget (self->xfer, t);
                s_results_clear (self, t);
            }
            if (s_task_set (self, t, JM_TASK_PENDING) == 0)
                n++;
        }
    }
    jm_warn ("site %s lost for %" PRId64 " ms: %zu of its tasks are pending again for other "
             "sites",
             site->name, jm_now_ms () - site->lost_since, n);
    s_dispatch (self);
}

/* Site is back: cancel the jobs that were taken away from it. */
static void
s_site_back (coord_t *self, site_t *site)
{
    site->requeued = false;
    for (size_t i = 0; i < site->cancel_on_return.n && site->rid; i++) {
        jm_msg_t *cj = jm_msg_new (JM_MSG_CANCEL_JOB);
        cj->job_id = site->cancel_on_return.v[i];
        s_send (self, site->rid, &cj);
    }
    if (site->cancel_on_return.n)
        jm_info ("site %s is back: cancelling %zu jobs whose tasks went to other sites", site->name,
                 site->cancel_on_return.n);
    free (site->cancel_on_return.v);
    site->cancel_on_return = (jm_u64s_t){0};
}

static void
s_on_agent (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    site_t *site = (site_t *)zhashx_lookup (self->sites, peer->site);
    if (!site || !site->peer_key || strcmp (site->peer_key, peer->key) != 0) {
        s_send_error (self, peer->rid, 3, "session of site %s was replaced; send HELLO",
                      peer->site);
        return;
    }
    site->last_seen = jm_now_ms ();
    if (site->lost) {
        site->lost = false;
        jm_info ("site %s is back", site->name);
        jm_coord_db_site_state (self->db, site->name, "up", time (NULL));
        s_site_back (self, site);
        s_site_resume_fetches (self, site);
        s_collect_resume (self, site, false);
    }
    switch (msg->id) {
    case JM_MSG_HEARTBEAT: {
        jm_msg_t *hb = jm_msg_new (JM_MSG_HEARTBEAT);
        s_send (self, peer->rid, &hb);
        break;
    }
    case JM_MSG_LOAD:
        site->running = msg->running;
        site->queued = msg->queued;
        site->free_slots = msg->free_slots;
        site->done_1m = msg->done_1m;
        site->wait_ms = msg->wait_ms;
        break;
    case JM_MSG_CREDIT:
        site->credit += msg->credit;
        if (site->credit > S_CREDIT_MAX)
            site->credit = S_CREDIT_MAX;
        s_dispatch (self);
        break;
    case JM_MSG_JOB_STATE:
        s_on_job_state (self, peer, site, msg);
        break;
    case JM_MSG_TASK_STARTED:
        s_on_task_started (self, site, msg);
        break;
    case JM_MSG_TASK_END:
        s_on_task_end (self, site, msg);
        break;
    case JM_MSG_COLLECTED:
        s_on_collected (self, site, msg);
        break;
    case JM_MSG_FETCH:
        s_on_fetch (self, peer, msg);
        break;
    case JM_MSG_CHUNK:
    case JM_MSG_NOFILE:
        jm_xfer_on_message (self->xfer, site->name, msg);
        break;
    case JM_MSG_ERROR:
        jm_warn ("site %s reports error %" PRIu64 ": %s", site->name, msg->code,
                 msg->reason ? msg->reason : "");
        break;
    default:
        s_send_error (self, peer->rid, 5, "%s is not a message an agent sends",
                      jm_msg_name (msg->id));
    }
}

/* ----------------------------------------------------------- clients */

static void
s_counts_push (jm_u64s_t *list, const jm_csub_t *sub)
{
    for (int i = 0; i < JM_TASK_NSTATES; i++)
        jm_u64s_push (list, sub->counts[i]);
}

static bool
s_send_progress (coord_t *self, peer_t *peer, jm_csub_t *sub)
{
    jm_msg_t *msg = jm_msg_new (JM_MSG_PROGRESS);
    jm_str_set (&msg->sub_id, sub->id);
    jm_str_set (&msg->state, jm_sub_state_name (sub->state));
    msg->total = sub->ntasks;
    s_counts_push (&msg->counts, sub);
    /* all tasks terminal is not enough: backward common files may still
       be on their way (the state is then still ACTIVE) */
    msg->finished = sub->state != JM_SUB_ACTIVE && s_sub_all_terminal (sub);
    bool finished = msg->finished;
    s_send (self, peer->rid, &msg);
    return finished;
}

static char *
s_new_sub_id (coord_t *self)
{
    char id[64];
    for (;;) {
        time_t now = time (NULL);
        struct tm tm;
        localtime_r (&now, &tm);
        size_t n = strftime (id, sizeof id, "%Y%m%d-%H%M%S-", &tm);
        unsigned char rnd[2];
        randombytes_buf (rnd, sizeof rnd);
        snprintf (id + n, sizeof id - n, "%02x%02x", rnd[0], rnd[1]);
        if (!zhashx_lookup (self->sub_by_id, id))
            return s_dup (id);
    }
}

/* Every path and hash of a SUBMIT; -1 + err naming task and file. */
static int
s_check_submit (coord_t *self, const jm_msg_t *msg, char *err, size_t errlen)
{
    char what[256];
    const char *wb = msg->work_base ? msg->work_base : "";
    if (wb[0] != '/')
        return jm_err (err, errlen, "SUBMIT: work_base '%s' is not an absolute path", wb);
    struct stat st;
    if (stat (wb, &st) != 0 || !S_ISDIR (st.st_mode))
        return jm_err (err, errlen, "SUBMIT: work_base '%s' is not an existing directory", wb);
    if (msg->group_size < 1)
        return jm_err (err, errlen, "SUBMIT: group_size must be at least 1");
    if (msg->para_deg < 1)
        return jm_err (err, errlen, "SUBMIT: para_deg must be at least 1");
    if (msg->tasks.n == 0)
        return jm_err (err, errlen, "SUBMIT: the submission has no tasks");
    if (msg->resources && *msg->resources) {
        jm_resources_t *res = jm_resources_from_json (msg->resources, "SUBMIT", err, errlen);
        if (!res)
            return -1;
        bool same = res->group_size == msg->group_size && res->para_deg == msg->para_deg;
        jm_resources_destroy (&res);
        if (!same)
            return jm_err (err, errlen,
                           "SUBMIT: resources.group_size/para_deg differ from the message's "
                           "group_size/para_deg");
    }
    bool uses_command = false;
    for (size_t i = 0; i < msg->tasks.n && !uses_command; i++)
        uses_command = msg->tasks.v[i].command && strstr (msg->tasks.v[i].command, "{command}");
    for (size_t i = 0; i < msg->machines.n; i++) {
        const jm_wmachine_t *m = &msg->machines.v[i];
        const char *name = m->name && *m->name ? m->name : "?";
        if (!m->name || !*m->name)
            return jm_err (err, errlen, "SUBMIT: machine entry %zu has no name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp (msg->machines.v[j].name, m->name) == 0)
                return jm_err (err, errlen, "SUBMIT: machine entry '%s' appears twice", name);
        if (m->site && *m->site && !s_name_ok (m->site))
            return jm_err (err, errlen,
                           "SUBMIT: machine entry '%s': site '%s' must match [A-Za-z0-9._-]+", name,
                           m->site);
        if (m->root && *m->root && m->root[0] != '/')
            return jm_err (err, errlen,
                           "SUBMIT: machine entry '%s': remote_root '%s' is not an absolute path",
                           name, m->root);
        if (m->ratio > 1000000)
            return jm_err (err, errlen,
                           "SUBMIT: machine entry '%s': work_load_ratio %.6f is above 1", name,
                           (double)m->ratio / 1e6);
        if (uses_command && (!m->command || !*m->command))
            return jm_err (err, errlen,
                           "SUBMIT: task commands use {command} but machine entry '%s' has no "
                           "'command'",
                           name);
        if (m->resources && *m->resources) {
            char w[200];
            snprintf (w, sizeof w, "SUBMIT: machine entry '%s'", name);
            jm_resources_t *res = jm_resources_from_json (m->resources, w, err, errlen);
            if (!res)
                return -1;
            jm_resources_destroy (&res);
        }
    }
    if (uses_command && msg->machines.n == 0)
        return jm_err (err, errlen,
                       "SUBMIT: task commands use {command} but no machine entries were given");
    for (size_t i = 0; i < msg->common.n; i++) {
        const jm_wfile_t *f = &msg->common.v[i];
        snprintf (what, sizeof what, "forward common file %zu", i);
        if (jm_path_check_rel (f->path, what, err, errlen))
            return -1;
        if (!jm_hash_valid (f->hash) || !jm_store_has (self->store, f->hash))
            return jm_err (err, errlen,
                           "forward common file '%s' (%s) is not in the coordinator's store",
                           f->path, f->hash);
    }
    for (size_t i = 0; i < msg->backward_common.n; i++) {
        snprintf (what, sizeof what, "backward common pattern %zu", i);
        if (jm_path_check_rel (msg->backward_common.v[i], what, err, errlen))
            return -1;
    }
    for (size_t i = 0; i < msg->tasks.n; i++) {
        const jm_wtask_t *t = &msg->tasks.v[i];
        snprintf (what, sizeof what, "task_work_path of task %zu", i);
        if (jm_path_check_rel (t->path, what, err, errlen))
            return -1;
        snprintf (what, sizeof what, "outlog of task %zu", i);
        if (jm_path_check_rel (t->outlog, what, err, errlen))
            return -1;
        snprintf (what, sizeof what, "errlog of task %zu", i);
        if (jm_path_check_rel (t->errlog, what, err, errlen))
            return -1;
        for (size_t j = 0; j < t->forward.n; j++) {
            const jm_wfile_t *f = &t->forward.v[j];
            snprintf (what, sizeof what, "forward file %zu of task %zu", j, i);
            if (jm_path_check_rel (f->path, what, err, errlen))
                return -1;
            if (!jm_hash_valid (f->hash) || !jm_store_has (self->store, f->hash))
                return jm_err (err, errlen,
                               "forward file '%s' of task %zu (%s) is not in the coordinator's "
                               "store",
                               f->path, i, f->hash);
        }
        for (size_t j = 0; j < t->backward.n; j++) {
            snprintf (what, sizeof what, "backward pattern %zu of task %zu", j, i);
            if (jm_path_check_rel (t->backward.v[j], what, err, errlen))
                return -1;
        }
    }
    return 0;
}

static void
s_on_submit (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    char err[8192];
    if (s_check_submit (self, msg, err, sizeof err) != 0) {
        jm_info ("SUBMIT refused: %s", err);
        s_send_error (self, peer->rid, 5, "%s", err);
        return;
    }
    char *id = s_new_sub_id (self);
    jm_csub_t *sub =
        jm_csub_new (id, time (NULL), msg->work_base, msg->group_size, msg->para_deg, msg->tasks.n);
    free (id);
    jm_str_set (&sub->resources, msg->resources);
    sub->speculative = msg->speculative;
    for (size_t i = 0; i < msg->machines.n; i++) {
        const jm_wmachine_t *w = &msg->machines.v[i];
        jm_wmachine_t *m = jm_wmachines_push (&sub->machines);
        m->name = s_dup (w->name);
        m->site = s_dup (w->site);
        m->host = s_dup (w->host);
        m->command = s_dup (w->command);
        m->root = s_dup (w->root);
        m->resources = s_dup (w->resources);
        m->submit_size = w->submit_size;
        m->ratio = w->ratio;
    }
    jm_csub_machines_alloc (sub);
    for (size_t i = 0; i < msg->common.n; i++) {
        const jm_wfile_t *f = &msg->common.v[i];
        jm_wfiles_push (&sub->common, f->path, f->hash, f->size, f->mode);
    }
    for (size_t i = 0; i < msg->backward_common.n; i++)
        jm_strs_push (&sub->backward_common, msg->backward_common.v[i]);
    for (size_t i = 0; i < msg->tasks.n; i++) {
        const jm_wtask_t *w = &msg->tasks.v[i];
        jm_ctask_t *t = &sub->tasks[i];
        t->path = s_dup (w->path);
        t->command = s_dup (w->command);
        t->outlog = s_dup (w->outlog);
        t->errlog = s_dup (w->errlog);
        t->reason = s_dup ("");
        t->site = s_dup ("");
        for (size_t j = 0; j < w->forward.n; j++) {
            const jm_wfile_t *f = &w->forward.v[j];
            jm_wfiles_push (&t->forward, f->path, f->hash, f->size, f->mode);
        }
        for (size_t j = 0; j < w->backward.n; j++)
            jm_strs_push (&t->backward, w->backward.v[j]);
    }
    /* the submission gets a transaction of its own: it is acknowledged
       right after its commit and a failure leaves nothing behind */
    jm_db_commit (self->db);
    if (jm_coord_db_insert_sub (self->db, sub, err, sizeof err) != 0 ||
        jm_db_commit (self->db) != 0) {
        jm_db_rollback (self->db);
        jm_error ("cannot record a submission: %s", err);
        s_send_error (self, peer->rid, 6, "cannot record the submission: %s", err);
        jm_csub_destroy (&sub);
        return;
    }
    jm_csub_recount (sub);
    for (size_t i = 0; i < sub->ntasks; i++)
        jm_csub_pending_push (sub, (uint32_t)i);
    zlist_append (self->subs, sub);
    zhashx_insert (self->sub_by_id, sub->id, sub);
    jm_info ("submission %s: %zu tasks in %s (group_size %" PRIu64 ", para_deg %" PRIu64 ")",
             sub->id, sub->ntasks, sub->work_base, sub->group_size, sub->para_deg);
    jm_msg_t *reply = jm_msg_new (JM_MSG_SUBMITTED);
    jm_str_set (&reply->sub_id, sub->id);
    reply->total = sub->ntasks;
    for (size_t i = 0; i < sub->machines.n; i++) {
        const jm_wmachine_t *m = &sub->machines.v[i];
        bool served = false;
        for (site_t *site = zhashx_first (self->sites); site; site = zhashx_next (self->sites))
            if (site->rid && !site->lost && s_site_serves (site, m))
                served = true;
        if (!served) {
            jm_strs_push (&reply->unserved, m->name);
            jm_warn ("submission %s: machine entry '%s' (site '%s', host '%s') is served by no "
                     "connected agent; its work waits for one or goes to the other entries",
                     sub->id, m->name, m->site, m->host);
        }
    }
    s_send (self, peer->rid, &reply);
    s_dispatch (self);
}

static void
s_sub_summary (jm_wsubs_t *list, const jm_csub_t *sub)
{
    jm_wsub_t *w = jm_wsubs_push (list);
    w->id = s_dup (sub->id);
    w->state = s_dup (jm_sub_state_name (sub->state));
    w->work_base = s_dup (sub->work_base);
    w->total = sub->ntasks;
    s_counts_push (&w->counts, sub);
    w->created = (uint64_t)sub->created;
    w->bytes = sub->bytes_sent;
}

static void
s_on_status (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    jm_msg_t *reply = jm_msg_new (JM_MSG_STATUS_REPLY);
    if (msg->sub_id && *msg->sub_id) {
        jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, msg->sub_id);
        if (!sub) {
            jm_msg_destroy (&reply);
            s_send_error (self, peer->rid, 4, "no submission '%s'", msg->sub_id);
            return;
        }
        s_sub_summary (&reply->subs, sub);
        if (msg->detail)
            for (size_t i = 0; i < sub->ntasks; i++) {
                const jm_ctask_t *t = &sub->tasks[i];
                jm_wtstat_t *w = jm_wtstats_push (&reply->tstats);
                w->id = t->idx;
                w->path = s_dup (t->path);
                w->state = s_dup (jm_task_state_name (t->state));
                w->exit_code = t->exit_code;
                w->site = s_dup (t->site);
                w->reason = s_dup (t->reason);
            }
    }
    else
        for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs))
            s_sub_summary (&reply->subs, sub);
    s_send (self, peer->rid, &reply);
}

static void
s_on_watch (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, msg->sub_id);
    if (!sub) {
        s_send_error (self, peer->rid, 4, "no submission '%s'", msg->sub_id);
        return;
    }
    if (s_send_progress (self, peer, sub))
        return;
    for (char *w = zlist_first (peer->watches); w; w = zlist_next (peer->watches))
        if (strcmp (w, sub->id) == 0)
            return;
    zlist_append (peer->watches, sub->id); /* autofree: copied */
}

static void
s_on_cancel (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, msg->sub_id);
    if (!sub) {
        s_send_error (self, peer->rid, 4, "no submission '%s'", msg->sub_id);
        return;
    }
    uint64_t n = 0;
    bool was_active = sub->state == JM_SUB_ACTIVE;
    if (was_active) {
        /* set first so that the last task does not finish it as FAILED/DONE */
        sub->state = JM_SUB_CANCELLED;
        jm_coord_db_sub_update (self->db, sub);
        collect_t *coll = s_collect_find (self, sub);
        if (coll) {
            jm_info ("submission %s: collection of backward common files cancelled", sub->id);
            coll->over = true;
        }
    }
    for (size_t i = 0; i < sub->ntasks; i++) {
        jm_ctask_t *t = &sub->tasks[i];
        if (jm_task_state_terminal (t->state))
            continue;
        if (t->state == JM_TASK_FETCHING) {
            jm_xfer_forget (self->xfer, t);
            s_results_clear (self, t);
        }
        if (s_task_set (self, t, JM_TASK_CANCELLED) == 0)
            n++;
    }
    for (job_t *job = zhashx_first (self->jobs); job; job = zhashx_next (self->jobs)) {
        if (job->sub != sub || job->finished)
            continue;
        site_t *site = (site_t *)zhashx_lookup (self->sites, job->site);
        if (site && site->rid) {
            jm_msg_t *cj = jm_msg_new (JM_MSG_CANCEL_JOB);
            cj->job_id = job->id;
            s_send (self, site->rid, &cj);
        }
        s_job_finish (self, job, "CANCELLED");
    }
    jm_info ("submission %s cancelled (%" PRIu64 " tasks)", sub->id, n);
    jm_msg_t *reply = jm_msg_new (JM_MSG_CANCELLED);
    jm_str_set (&reply->sub_id, sub->id);
    reply->total = n;
    s_queue_ack (self, peer->rid, reply);
}

static void
s_site_record (coord_t *self, jm_wsites_t *list, const site_t *site)
{
    jm_wsite_t *w = jm_wsites_push (list);
    w->name = s_dup (site->name);
    w->state = s_dup (site->rid ? (site->lost ? "lost" : "up") : "gone");
    w->drained = site->drained;
    w->scheduler = s_dup (site->scheduler);
    w->host = s_dup (site->host);
    w->slots = site->slots;
    w->max_jobs = site->max_jobs;
    w->cores = site->cores;
    w->gpus = site->gpus;
    w->running = site->running;
    w->queued = site->queued;
    w->free_slots = site->free_slots;
    w->done_1m = site->done_1m;
    w->wait_ms = site->wait_ms;
    w->jobs = site->outstanding;
    if (site->last_seen > 0) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        w->last_seen = (uint64_t)(wall - (jm_now_ms () - site->last_seen));
    }
    else
        w->last_seen = (uint64_t)site->seen_before;
    const char *tunnel = self->tunnels ? jm_tunnels_state_for (self->tunnels, site->name) : NULL;
    w->tunnel = s_dup (tunnel ? tunnel : "");
}

/* The site named name, created (never connected: "gone") if unknown. */
static site_t *
s_tunnel_site (coord_t *self, const char *name)
{
    site_t *site = (site_t *)zhashx_lookup (self->sites, name);
    if (!site && s_name_ok (name)) {
        site = calloc (1, sizeof *site);
        assert (site);
        site->name = s_dup (name);
        site->scheduler = s_dup ("");
        site->host = s_dup ("");
        zhashx_insert (self->sites, site->name, site);
    }
    return site;
}

static void
s_on_site_row (void *arg, const char *name, const char *scheduler, uint64_t slots, const char *host,
               bool drained, int64_t last_seen)
{
    coord_t *self = (coord_t *)arg;
    site_t *site = s_tunnel_site (self, name);
    if (!site)
        return;
    s_set (&site->scheduler, scheduler);
    s_set (&site->host, host);
    site->slots = slots;
    site->drained = drained;
    site->seen_before = last_seen * 1000;
}

static int
s_site_cmp (const void *a, const void *b)
{
    return strcmp ((*(site_t *const *)a)->name, (*(site_t *const *)b)->name);
}

static void
s_on_sites (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    jm_msg_t *reply = jm_msg_new (JM_MSG_SITES_REPLY);
    const char *want = msg->name ? msg->name : "";
    size_t n = zhashx_size (self->sites), k = 0;
    site_t **v = calloc (n ? n : 1, sizeof (site_t *));
    assert (v);
    for (site_t *site = zhashx_first (self->sites); site; site = zhashx_next (self->sites))
        if (!*want || strcmp (want, site->name) == 0)
            v[k++] = site;
    qsort (v, k, sizeof v[0], s_site_cmp);
    for (size_t i = 0; i < k; i++)
        s_site_record (self, &reply->sites, v[i]);
    free (v);
    if (*want && reply->sites.n == 0) {
        jm_msg_destroy (&reply);
        s_send_error (self, peer->rid, 4, "no site named '%s'", want);
        return;
    }
    s_send (self, peer->rid, &reply);
}

static void
s_on_site_set (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    const char *name = msg->name ? msg->name : "";
    const char *state = msg->state ? msg->state : "";
    site_t *site = (site_t *)zhashx_lookup (self->sites, name);
    if (!site) {
        s_send_error (self, peer->rid, 4, "no site named '%s'", name);
        return;
    }
    bool drain = strcmp (state, "drained") == 0;
    if (!drain && strcmp (state, "up") != 0) {
        s_send_error (self, peer->rid, 5, "SITE_SET: state '%s' is neither 'drained' nor 'up'",
                      state);
        return;
    }
    if (site->drained != drain) {
        site->drained = drain;
        jm_info ("site %s %s", site->name,
                 drain ? "drained: it gets no new jobs, its running ones finish"
                       : "resumed: it gets new jobs again");
        jm_coord_db_site_drained (self->db, site->name, drain);
    }
    jm_msg_t *reply = jm_msg_new (JM_MSG_SITES_REPLY);
    s_site_record (self, &reply->sites, site);
    s_queue_ack (self, peer->rid, reply);
    if (!drain)
        s_dispatch (self);
}

static void
s_on_client (coord_t *self, peer_t *peer, jm_msg_t *msg)
{
    switch (msg->id) {
    case JM_MSG_SUBMIT:
        s_on_submit (self, peer, msg);
        break;
    case JM_MSG_STATUS:
        s_on_status (self, peer, msg);
        break;
    case JM_MSG_WATCH:
        s_on_watch (self, peer, msg);
        break;
    case JM_MSG_CANCEL:
        s_on_cancel (self, peer, msg);
        break;
    case JM_MSG_SITES:
        s_on_sites (self, peer, msg);
        break;
    case JM_MSG_SITE_SET:
        s_on_site_set (self, peer, msg);
        break;
    case JM_MSG_HEARTBEAT: {
        jm_msg_t *hb = jm_msg_new (JM_MSG_HEARTBEAT);
        s_send (self, peer->rid, &hb);
        break;
    }
    case JM_MSG_FETCH:
        s_on_fetch (self, peer, msg);
        break;
    default:
        s_send_error (self, peer->rid, 5, "%s is not a message a client sends",
                      jm_msg_name (msg->id));
    }
}

/* ----------------------------------------------------------- sessions */

/* Name of the allowed cert holding this public key ("?" if none). */
static const char *
s_keyname (coord_t *self, const char *pubkey)
{
    if (!pubkey || !*pubkey)
        return "?";
    const char *name = (const char *)zhashx_lookup (self->keynames, pubkey);
    if (name)
        return name;
    /* (re)read the allowlist */
    DIR *dir = opendir (self->allowed_dir);
    if (dir) {
        struct dirent *de;
        while ((de = readdir (dir))) {
            size_t l = strlen (de->d_name);
            if (l < 6 || strcmp (de->d_name + l - 5, ".cert") != 0)
                continue;
            char path[JM_PATH_MAX + 512];
            snprintf (path, sizeof path, "%s/%s", self->allowed_dir, de->d_name);
            zcert_t *c = zcert_load (path);
            if (!c)
                continue;
            const char *n = zcert_meta (c, "name");
            char stem[256];
            snprintf (stem, sizeof stem, "%.*s", (int)(l - 5), de->d_name);
            zhashx_update (self->keynames, zcert_public_txt (c), s_dup (n && *n ? n : stem));
            zcert_destroy (&c);
        }
        closedir (dir);
    }
    name = (const char *)zhashx_lookup (self->keynames, pubkey);
    return name ? name : "?";
}

static void
s_on_hello (coord_t *self, zframe_t *rid, const char *key, zframe_t *body, jm_msg_t *msg)
{
    if (msg->version != JM_PROTO_VERSION) {
        s_send_error (self, rid, 1,
                      "protocol version mismatch: peer speaks version %" PRIu64
                      ", this coordinator speaks version %d",
                      msg->version, JM_PROTO_VERSION);
        return;
    }
    const char *role = msg->role ? msg->role : "";
    bool agent = strcmp (role, "agent") == 0;
    if (!agent && strcmp (role, "client") != 0) {
        s_send_error (self, rid, 3, "HELLO: role '%s' is neither 'agent' nor 'client'", role);
        return;
    }
    if (agent && !s_name_ok (msg->name)) {
        s_send_error (self, rid, 5, "HELLO: site name '%s' must match [A-Za-z0-9._-]+",
                      msg->name ? msg->name : "");
        return;
    }
    const char *pubkey = zframe_meta (body, "User-Id");
    const char *keyname = s_keyname (self, pubkey);
    /* a second HELLO resets the session */
    zhashx_delete (self->peers, key);
    peer_t *peer = calloc (1, sizeof *peer);
    assert (peer);
    peer->key = s_dup (key);
    peer->rid = zframe_dup (rid);
    peer->keyname = s_dup (keyname);
    peer->role = agent ? ROLE_AGENT : ROLE_CLIENT;
    peer->watches = zlist_new ();
    zlist_autofree (peer->watches);
    zhashx_insert (self->peers, key, peer);

    if (agent) {
        peer->site = s_dup (msg->name);
        site_t *site = (site_t *)zhashx_lookup (self->sites, msg->name);
        if (!site) {
            site = calloc (1, sizeof *site);
            assert (site);
            site->name = s_dup (msg->name);
            zhashx_insert (self->sites, site->name, site);
        }
        else if (site->peer_key && strcmp (site->peer_key, key) != 0) {
            jm_info ("site %s said HELLO on a new connection; replacing its old session",
                     site->name);
            zhashx_delete (self->peers, site->peer_key);
            char reason[256];
            snprintf (reason, sizeof reason, "site %s reconnected during the transfer", site->name);
            s_xfer_peer_lost (self, site, reason);
            /* the old connection's answers never arrive on the new one */
            jm_xfer_peer_reset (self->xfer, site->name);
        }
        s_set (&site->peer_key, key);
        zframe_destroy (&site->rid);
        site->rid = zframe_dup (rid);
        s_set (&site->pubkey, pubkey);
        s_set (&site->scheduler, msg->scheduler);
        s_set (&site->host, msg->host);
        site->slots = msg->slots;
        site->max_jobs = msg->max_jobs;
        site->cores = msg->cores;
        site->gpus = msg->gpus;
        site->credit = 0;
        site->promised = 0;
        site->lost = false;
        site->last_seen = jm_now_ms ();
        jm_coord_db_site_upsert (self->db, site->name, site->pubkey, site->scheduler, site->slots,
                                 site->host, "up", time (NULL));
        jm_info ("site %s connected (key '%s', scheduler %s, %" PRIu64 " slots, %" PRIu64
                 " max jobs, %" PRIu64 " cores, %" PRIu64 " GPUs, host %s%s)",
                 site->name, keyname, site->scheduler, site->slots, site->max_jobs, site->cores,
                 site->gpus, site->host, site->drained ? ", drained" : "");
    }
    else
        jm_debug ("client connected (key '%s')", keyname);
    jm_msg_t *welcome = jm_msg_new (JM_MSG_WELCOME);
    welcome->heartbeat_ms = self->cfg->heartbeat_ms;
    s_send (self, rid, &welcome);
    if (agent) {
        site_t *site = (site_t *)zhashx_lookup (self->sites, msg->name);
        if (site) {
            s_site_back (self, site);
            s_site_resume_fetches (self, site);
            s_collect_resume (self, site, true);
        }
    }
}

static void
s_handle (coord_t *self, zmsg_t *zm)
{
    zframe_t *rid = zmsg_pop (zm);
    zframe_t *body = zmsg_pop (zm);
    if (!rid) {
        zframe_destroy (&body);
        return;
    }
    char *key = zframe_strhex (rid);
    char err[1024];
    if (!body || zmsg_size (zm) > 0) {
        s_send_error (self, rid, 2, "malformed message: expected one frame, got %zu",
                      (body ? 1 : 0) + zmsg_size (zm));
        goto done;
    }
    jm_msg_t *msg = NULL;
    uint64_t peer_version = 0;
    int rc = jm_msg_decode (zframe_data (body), zframe_size (body), &msg, &peer_version, err,
                            sizeof err);
    if (rc == JM_PROTO_EVERSION) {
        s_send_error (self, rid, 1,
                      "protocol version mismatch: peer speaks version %" PRIu64
                      ", this coordinator speaks version %d",
                      peer_version, JM_PROTO_VERSION);
        goto done;
    }
    if (rc != 0 || !msg) {
        jm_debug ("malformed message from a peer: %s", err);
        s_send_error (self, rid, 2, "malformed message: %s", err);
        goto done;
    }
    if (msg->id == JM_MSG_HELLO)
        s_on_hello (self, rid, key, body, msg);
    else {
        peer_t *peer = (peer_t *)zhashx_lookup (self->peers, key);
        if (!peer)
            s_send_error (self, rid, 3, "%s before HELLO: send HELLO first", jm_msg_name (msg->id));
        else if (peer->role == ROLE_AGENT)
            s_on_agent (self, peer, msg);
        else
            s_on_client (self, peer, msg);
    }
    jm_msg_destroy (&msg);
done:
    free (key);
    zframe_destroy (&rid);
    zframe_destroy (&body);
}

/* ------------------------------------------------------------ passes */

static void
s_end_pass (coord_t *self)
{
    if (self->rebalance)
        s_rebalance (self);
    s_place_flush (self);
    for (jm_ctask_t *t = zlist_pop (self->forget); t; t = zlist_pop (self->forget))
        jm_xfer_forget (self->xfer, t);
    s_collect_reap (self);
    if (self->bytes_dirty) {
        for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs))
            if (sub->bytes_dirty) {
                jm_coord_db_sub_update (self->db, sub);
                sub->bytes_dirty = false;
            }
        self->bytes_dirty = false;
    }
    int rc = jm_db_commit (self->db);
    for (ack_t *a = zlist_pop (self->acks); a; a = zlist_pop (self->acks)) {
        if (rc != 0) {
            jm_msg_destroy (&a->msg);
            s_send_error (self, a->rid, 6, "cannot commit to the state database: %s",
                          jm_db_errmsg (self->db));
        }
        else
            s_send (self, a->rid, &a->msg);
        zframe_destroy (&a->rid);
        free (a);
    }
    if (self->progress_dirty) {
        for (peer_t *p = zhashx_first (self->peers); p; p = zhashx_next (self->peers)) {
            char *w = zlist_first (p->watches);
            while (w) {
                jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, w);
                char *next = zlist_next (p->watches);
                if (sub && sub->progress_dirty && s_send_progress (self, p, sub))
                    zlist_remove (p->watches, w);
                w = next;
            }
        }
        for (jm_csub_t *sub = zlist_first (self->subs); sub; sub = zlist_next (self->subs))
            sub->progress_dirty = false;
        self->progress_dirty = false;
    }
}

static int
s_on_router (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    coord_t *self = (coord_t *)arg;
    for (int n = 0; n < S_DRAIN; n++) {
        if (n > 0 && !(zsock_events (reader) & ZMQ_POLLIN))
            break;
        zmsg_t *zm = zmsg_recv (reader);
        if (!zm)
            break;
        s_handle (self, zm);
        zmsg_destroy (&zm);
    }
    s_end_pass (self);
    return 0;
}

static int
s_on_heartbeat (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    coord_t *self = (coord_t *)arg;
    int64_t now = jm_now_ms ();
    int64_t limit = 3 * (int64_t)self->cfg->heartbeat_ms;
    int64_t requeue_after = self->cfg->requeue_after_ms ? (int64_t)self->cfg->requeue_after_ms
                                                        : 10 * (int64_t)self->cfg->heartbeat_ms;
    for (site_t *s = zhashx_first (self->sites); s; s = zhashx_next (self->sites)) {
        if (s->rid && !s->lost && now - s->last_seen > limit) {
            char why[128];
            snprintf (why, sizeof why, "nothing heard for %" PRId64 " ms", now - s->last_seen);
            s_site_lost (self, s, why);
        }
    }
    /* one at a time: requeueing dispatches, which walks the sites */
    for (;;) {
        site_t *due = NULL;
        for (site_t *s = zhashx_first (self->sites); s && !due; s = zhashx_next (self->sites))
            if (s->lost && !s->requeued && now - s->lost_since >= requeue_after)
                due = s;
        if (!due)
            break;
        s_site_requeue (self, due);
    }
    self->rebalance = true;
    s_collect_timeouts (self);
    /* periodic PROGRESS to every watcher */
    for (peer_t *p = zhashx_first (self->peers); p; p = zhashx_next (self->peers)) {
        char *w = zlist_first (p->watches);
        while (w) {
            jm_csub_t *sub = (jm_csub_t *)zhashx_lookup (self->sub_by_id, w);
            char *next = zlist_next (p->watches);
            if (!sub || s_send_progress (self, p, sub))
                zlist_remove (p->watches, w);
            w = next;
        }
    }
    s_end_pass (self);
    return 0;
}

/* zcertstore re-reads the allowlist on lookups; re-arming zauth when the
   directory changes makes 'allow' and 'deny' certain to take effect. */
static int
s_on_allow_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    coord_t *self = (coord_t *)arg;
    struct stat st;
    if (stat (self->allowed_dir, &st) != 0)
        return 0;
    if (st.st_mtim.tv_sec == self->allowed_mtime.tv_sec &&
        st.st_mtim.tv_nsec == self->allowed_mtime.tv_nsec)
        return 0;
    self->allowed_mtime = st.st_mtim;
    zstr_sendx (self->auth, "CURVE", self->allowed_dir, NULL);
    zsock_wait (self->auth);
    zhashx_purge (self->keynames);
    jm_info ("allowlist %s changed; reloaded", self->allowed_dir);
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void)loop;
    (void)arg;
    char *cmd = zstr_recv (reader);
    bool term = !cmd || streq (cmd, "$TERM");
    zstr_free (&cmd);
    return term ? -1 : 0;
}

/* ------------------------------------------------------- start / stop */

static void
s_coord_destroy (coord_t **self_p)
{
    coord_t *self = *self_p;
    if (!self)
        return;
    if (self->db)
        jm_db_commit (self->db);
    if (self->files_written) {
        unlink (self->endpoint_file);
        unlink (self->pid_file);
    }
    for (ack_t *a = self->acks ? zlist_pop (self->acks) : NULL; a; a = zlist_pop (self->acks)) {
        jm_msg_destroy (&a->msg);
        zframe_destroy (&a->rid);
        free (a);
    }
    zlist_destroy (&self->acks);
    zlist_destroy (&self->forget);
    for (collect_t *c = self->collects ? zlist_pop (self->collects) : NULL; c;
         c = zlist_pop (self->collects))
        s_collect_destroy (self, &c);
    zlist_destroy (&self->collects);
    jm_tunnels_destroy (&self->tunnels);
    zloop_destroy (&self->loop);
    /* the worker first: nothing answers its requests after this */
    if (self->worker)
        jm_worker_destroy (&self->worker);
    zhashx_t *reqs[] = {self->pbatch, self->preqs};
    for (size_t i = 0; i < 2; i++) {
        if (!reqs[i])
            continue;
        for (preq_t *r = zhashx_first (reqs[i]); r; r = zhashx_next (reqs[i]))
            s_preq_destroy (&r);
        zhashx_destroy (&reqs[i]);
    }
    zhashx_destroy (&self->precs);
    zsock_destroy (&self->router);
    zactor_destroy (&self->auth);
    jm_xfer_destroy (&self->xfer);
    zhashx_destroy (&self->peers);
    zhashx_destroy (&self->sites);
    zhashx_destroy (&self->jobs);
    zhashx_destroy (&self->sub_by_id);
    zhashx_destroy (&self->keynames);
    if (self->subs)
        for (jm_csub_t *sub = zlist_pop (self->subs); sub; sub = zlist_pop (self->subs))
            jm_csub_destroy (&sub);
    zlist_destroy (&self->subs);
    jm_store_destroy (&self->store);
    jm_db_destroy (&self->db);
    zcert_destroy (&self->cert);
    jm_config_destroy (&self->cfg);
    free (self->home);
    free (self);
    *self_p = NULL;
}

/* Load state; tasks that were out at agents go back to PENDING. */
static int
s_load_state (coord_t *self, char *err, size_t errlen)
{
    zlist_t *list = zlist_new ();
    if (jm_coord_db_load (self->db, list, err, errlen) != 0) {
        zlist_destroy (&list);
        return -1;
    }
    size_t requeued = 0;
    for (jm_csub_t *sub = zlist_pop (list); sub; sub = zlist_pop (list)) {
        for (size_t i = 0; i < sub->ntasks; i++) {
            jm_ctask_t *t = &sub->tasks[i];
            if (t->state >= JM_TASK_STAGING && t->state <= JM_TASK_FETCHING) {
                /* recovery, not a transition of the table (FETCHING -> PENDING);
                   a report on the old job is ignored: its job id is unknown
                   now and never handed out again (job_id_reserved) */
                t->state = JM_TASK_PENDING;
                s_set (&t->site, "");
                t->job_id = 0;
                t->machine = -1;
                jm_coord_db_task_update (self->db, sub, t);
                requeued++;
            }
            if (t->state != JM_TASK_FETCHING && (t->results_stored || t->results.n)) {
                jm_ctask_results_clear (t);
                jm_coord_db_task_results (self->db, sub, t);
            }
            if (t->state == JM_TASK_PENDING)
                jm_csub_pending_push (sub, t->idx);
        }
        jm_csub_recount (sub);
        zlist_append (self->subs, sub);
        zhashx_insert (self->sub_by_id, sub->id, sub);
        s_sub_check_finished (self, sub);
    }
    zlist_destroy (&list);
    jm_coord_db_jobs_abandon (self->db, "ABANDONED");
    self->next_job_id = jm_coord_db_max_job_id (self->db);
    self->job_id_reserved = jm_coord_db_meta_get (self->db, "job_id_reserved", 0);
    if (self->next_job_id < self->job_id_reserved)
        self->next_job_id = self->job_id_reserved;
    if (requeued)
        jm_warn ("%zu tasks that were at agents when the coordinator stopped are PENDING again",
                 requeued);
    jm_info ("loaded %zu submissions from the state database", zlist_size (self->subs));
    if (jm_db_commit (self->db) != 0)
        return jm_err (err, errlen, "cannot commit recovered state: %s", jm_db_errmsg (self->db));
    return 0;
}

/* Endpoint a local client connects to, given the bind and the real port. */
static char *
s_connect_endpoint (const char *bind, int port)
{
    char buf[1024];
    snprintf (buf, sizeof buf, "%s", bind);
    char *colon = strrchr (buf, ':');
    if (port > 0 && strncmp (buf, "tcp://", 6) == 0 && colon && colon > buf + 5)
        snprintf (colon + 1, sizeof buf - (size_t)(colon + 1 - buf), "%d", port);
    return jm_endpoint_for_connect (buf);
}

/*  One ssh -R tunnel per machine entry of tunnel_machines with a
    remote_profile: the login node's 127.0.0.1:tunnel_port (default: our
    port) leads to our bound address. */
static int
s_tunnels_start (coord_t *self, const char *bind, int port)
{
    char err[2048];
    char *notices = NULL;
    jm_machines_t *machines = jm_machines_load (
        self->cfg->tunnel_machines, self->cfg->tunnel_prefix, &notices, err, sizeof err);
    free (notices); /* the SSH notice does not apply: ssh is what we use here */
    if (!machines) {
        jm_error ("%s/config.yml: tunnel_machines: %s", self->home, err);
        return -1;
    }
    /* the host part of the endpoint a local peer connects to */
    char *ep = s_connect_endpoint (bind, port);
    char host[512] = "127.0.0.1";
    if (strncmp (ep, "tcp://", 6) == 0) {
        const char *h = ep + 6;
        const char *colon = strrchr (h, ':');
        if (colon && colon > h)
            snprintf (host, sizeof host, "%.*s", (int)(colon - h), h);
    }
    free (ep);
    unsigned remote = self->cfg->tunnel_port ? self->cfg->tunnel_port : (unsigned)port;
    self->tunnels = jm_tunnels_new (self->loop, machines, getenv ("JOBMAN_SSH"), remote, host,
                                    (unsigned)port, err, sizeof err);
    jm_machines_destroy (&machines);
    if (!self->tunnels) {
        jm_error ("%s/config.yml: tunnel_machines: %s", self->home, err);
        return -1;
    }
    for (size_t i = 0; i < jm_tunnels_size (self->tunnels); i++)
        s_tunnel_site (self, jm_tunnels_site (self->tunnels, i));
    jm_info ("keeping %zu ssh tunnels (login node port %u -> %s:%d)",
             jm_tunnels_size (self->tunnels), remote, host, port);
    return jm_tunnels_start (self->tunnels) == 0 ? 0 : -1;
}

static coord_t *
s_coord_new (const char *home, const char *bind_override, int *exit_p)
{
    char err[2048];
    char path[JM_PATH_MAX];
    *exit_p = 2;
    coord_t *self = calloc (1, sizeof *self);
    assert (self);
    self->home = s_dup (home);
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_peer_destroy);
    self->sites = zhashx_new ();
    zhashx_set_destructor (self->sites, s_site_destroy);
    self->jobs = zhashx_new ();
    zhashx_set_destructor (self->jobs, s_job_destroy);
    self->sub_by_id = zhashx_new ();
    self->keynames = zhashx_new ();
    zhashx_set_destructor (self->keynames, (zhashx_destructor_fn *)zstr_free);
    self->subs = zlist_new ();
    self->acks = zlist_new ();
    self->forget = zlist_new ();
    self->collects = zlist_new ();
    self->pbatch = zhashx_new ();
    self->preqs = zhashx_new ();
    self->precs = zhashx_new ();
    zhashx_set_destructor (self->precs, s_prec_destroy);
    snprintf (self->allowed_dir, sizeof self->allowed_dir, "%s/allowed", home);
    snprintf (self->endpoint_file, sizeof self->endpoint_file, "%s/coord.endpoint", home);
    snprintf (self->pid_file, sizeof self->pid_file, "%s/coord.pid", home);

    if (sodium_init () < 0) {
        jm_error ("cannot initialise libsodium (random submission ids)");
        goto fail;
    }
    struct stat st;
    if (stat (home, &st) != 0 || !S_ISDIR (st.st_mode)) {
        jm_error ("home '%s' is not a directory: run 'jobman-coord init --home %s' first", home,
                  home);
        goto fail;
    }
    self->cfg = jm_config_load (home, err, sizeof err);
    if (!self->cfg) {
        jm_error ("%s", err);
        goto fail;
    }
    snprintf (path, sizeof path, "%s/coord.cert_secret", home);
    if (jm_keys_check_private (path, err, sizeof err) != 0) {
        jm_error ("refusing to start: %s", err);
        goto fail;
    }
    self->cert = jm_keys_load_secret (path, err, sizeof err);
    if (!self->cert) {
        jm_error ("refusing to start: %s", err);
        goto fail;
    }
    if (stat (self->allowed_dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
        jm_error ("allowlist directory '%s' is missing: run 'jobman-coord init'",
                  self->allowed_dir);
        goto fail;
    }
    self->allowed_mtime = st.st_mtim;
    *exit_p = 1;
    snprintf (path, sizeof path, "%s/state.db", home);
    self->db = jm_db_open (path, err, sizeof err);
    if (!self->db || jm_coord_db_init (self->db, err, sizeof err) != 0 ||
        s_load_state (self, err, sizeof err) != 0) {
        jm_error ("%s", err);
        goto fail;
    }
    snprintf (path, sizeof path, "%s/store", home);
    self->store = jm_store_new (path, err, sizeof err);
    if (!self->store) {
        jm_error ("%s", err);
        goto fail;
    }
    self->xfer = jm_xfer_new (self->store, self->cfg->chunk_size, self->cfg->window, s_xfer_send,
                              s_xfer_done, self);
    self->worker = jm_worker_new (path, err, sizeof err);
    if (!self->worker) {
        jm_error ("cannot start the coordinator's file worker: %s", err);
        goto fail;
    }

    self->auth = zactor_new (zauth, NULL);
    if (!self->auth) {
        jm_error ("cannot start the ZAP authenticator (is another one running in this "
                  "process?)");
        goto fail;
    }
    const char *lvl = getenv ("JOBMAN_LOG");
    if (lvl && strcmp (lvl, "debug") == 0) {
        zstr_sendx (self->auth, "VERBOSE", NULL);
        zsock_wait (self->auth);
    }
    zstr_sendx (self->auth, "CURVE", self->allowed_dir, NULL);
    zsock_wait (self->auth);

    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    jm_curve_server (self->router, self->cert);
    zsock_set_maxmsgsize (self->router, S_MAXMSG);
    zsock_set_sndhwm (self->router, S_HWM);
    zsock_set_rcvhwm (self->router, S_HWM);
    zsock_set_router_mandatory (self->router, 0);
    zsock_set_linger (self->router, 1000);
    const char *bind = bind_override && *bind_override ? bind_override : self->cfg->bind;
    int port = zsock_bind (self->router, "%s", bind);
    if (port < 0) {
        jm_error ("cannot bind %s: %s", bind, zmq_strerror (zmq_errno ()));
        goto fail;
    }
    char *ep = s_connect_endpoint (bind, port);
    char text[1100];
    int len = snprintf (text, sizeof text, "%s\n", ep);
    int rc = jm_write_file_atomic (self->endpoint_file, text, (size_t)len, 0600, err, sizeof err);
    if (rc == 0) {
        len = snprintf (text, sizeof text, "%d\n", (int)getpid ());
        rc = jm_write_file_atomic (self->pid_file, text, (size_t)len, 0600, err, sizeof err);
        if (rc != 0)
            unlink (self->endpoint_file);
    }
    if (rc != 0) {
        free (ep);
        jm_error ("%s", err);
        goto fail;
    }
    self->files_written = true;
    jm_info ("listening on %s (clients connect to %s), home %s", bind, ep, home);
    free (ep);

    self->loop = zloop_new ();
    zloop_reader (self->loop, self->router, s_on_router, self);
    zloop_reader_set_tolerant (self->loop, self->router);
    zloop_reader (self->loop, jm_worker_sock (self->worker), s_on_worker, self);
    zloop_timer (self->loop, self->cfg->heartbeat_ms ? self->cfg->heartbeat_ms : 1000, 0,
                 s_on_heartbeat, self);
    zloop_timer (self->loop, 1000, 0, s_on_allow_timer, self);
    if (jm_coord_db_sites_load (self->db, s_on_site_row, self) != 0)
        jm_warn ("cannot read the sites table: %s", jm_db_errmsg (self->db));
    /* agents started with --bind: this side dials them */
    for (size_t i = 0; i < self->cfg->nconnect; i++) {
        if (zsock_connect (self->router, "%s", self->cfg->connect[i]) != 0) {
            jm_error ("%s/config.yml: connect: cannot connect to %s: %s", home,
                      self->cfg->connect[i], zmq_strerror (zmq_errno ()));
            goto fail;
        }
        jm_info ("connecting to the agent at %s", self->cfg->connect[i]);
    }
    if (self->cfg->tunnel_machines && s_tunnels_start (self, bind, port) != 0)
        goto fail;
    *exit_p = 0;
    return self;
fail:
    s_coord_destroy (&self);
    return NULL;
}

static int
s_coord_loop (coord_t *self, zsock_t *pipe)
{
    if (pipe)
        zloop_reader (self->loop, pipe, s_on_pipe, self);
    zloop_start (self->loop);
    s_end_pass (self);
    jm_info ("stopping");
    return 0;
}

int
jm_coord_run (const char *home, const char *bind_override)
{
    int code;
    coord_t *self = s_coord_new (home, bind_override, &code);
    if (!self)
        return code;
    s_coord_loop (self, NULL);
    s_coord_destroy (&self);
    return 0;
}

void
jm_coord_actor (zsock_t *pipe, void *args)
{
    jm_coord_args_t *a = (jm_coord_args_t *)args;
    int code;
    coord_t *self = s_coord_new (a->home, a->bind, &code);
    zsock_signal (pipe, self ? 0 : 1);
    if (!self)
        return;
    s_coord_loop (self, pipe);
    s_coord_destroy (&self);
}

/* ------------------------------------------------------ home commands */

int
jm_coord_allow (const char *home, const char *cert_path, const char *name, char *err, size_t errlen)
{
    if (!s_name_ok (name))
        return jm_err (err, errlen, "name '%s' must match [A-Za-z0-9._-]+", name ? name : "");
    zcert_t *cert = jm_keys_load_public (cert_path, err, errlen);
    if (!cert)
        return -1;
    char dir[JM_PATH_MAX], dest[JM_PATH_MAX + 256], tmp[JM_PATH_MAX + 256];
    snprintf (dir, sizeof dir, "%s/allowed", home);
    snprintf (dest, sizeof dest, "%s/%s.cert", dir, name);
    snprintf (tmp, sizeof tmp, "%s/.allow-%s.tmp", home, name);
    if (jm_mkdirs (dir, 0700, err, errlen) != 0) {
        zcert_destroy (&cert);
        return -1;
    }
    if (s_exists (dest)) {
        zcert_t *old = zcert_load (dest);
        bool same = old && streq (zcert_public_txt (old), zcert_public_txt (cert));
        zcert_destroy (&old);
        zcert_destroy (&cert);
        if (same)
            return 0;
        return jm_err (err, errlen,
                       "'%s' is already allowed with a different key (%s); choose another "
                       "name or remove it first ('jobman-coord deny %s')",
                       name, dest, name);
    }
    byte zero[32] = {0};
    zcert_t *pub = zcert_new_from (zcert_public_key (cert), zero);
    zcert_destroy (&cert);
    assert (pub);
    zcert_set_meta (pub, "name", "%s", name);
    int rc = zcert_save_public (pub, tmp);
    zcert_destroy (&pub);
    if (rc != 0) {
        unlink (tmp);
        return jm_err (err, errlen, "cannot write '%s': %s", tmp, strerror (errno));
    }
    if (rename (tmp, dest) != 0) {
        int e = errno;
        unlink (tmp);
        return jm_err (err, errlen, "cannot rename '%s' to '%s': %s", tmp, dest, strerror (e));
    }
    return 0;
}

int
jm_coord_deny (const char *home, const char *name, char *err, size_t errlen)
{
    if (!s_name_ok (name))
        return jm_err (err, errlen, "name '%s' must match [A-Za-z0-9._-]+", name ? name : "");
    char dest[JM_PATH_MAX];
    snprintf (dest, sizeof dest, "%s/allowed/%s.cert", home, name);
    if (unlink (dest) != 0)
        return jm_err (err, errlen, "cannot remove '%s': %s", dest, strerror (errno));
    return 0;
}

int
jm_coord_init_home (const char *home, const char *bind, char *err, size_t errlen)
{
    static const char *parts[] = {
        "coord.cert",          "coord.cert_secret", "client.cert", "client.cert_secret",
        "allowed/client.cert", "config.yml",        "state.db",    "store"};
    char path[JM_PATH_MAX];
    bool all = true;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf (path, sizeof path, "%s/%s", home, parts[i]);
        if (!s_exists (path))
            all = false;
    }
    if (all) {
        jm_err (err, errlen, "'%s' is already a jobman-coord home; not touching it", home);
        return 2;
    }
    if (jm_mkdirs (home, 0700, err, errlen) != 0)
        return 1;
    chmod (home, 0700);
    static const char *pairs[] = {"coord", "client"};
    for (int i = 0; i < 2; i++) {
        snprintf (path, sizeof path, "%s/%s.cert_secret", home, pairs[i]);
        char pub[JM_PATH_MAX];
        snprintf (pub, sizeof pub, "%s/%s.cert", home, pairs[i]);
        if (s_exists (path) && s_exists (pub))
            continue;
        if (s_exists (path) || s_exists (pub)) {
            jm_err (err, errlen,
                    "half a key pair in '%s': %s exists but not its partner; remove it or "
                    "restore the other half",
                    home, s_exists (path) ? path : pub);
            return 1;
        }
        if (jm_keys_create (home, pairs[i], err, errlen) != 0)
            return 1;
    }
    snprintf (path, sizeof path, "%s/allowed/client.cert", home);
    if (!s_exists (path)) {
        char pub[JM_PATH_MAX];
        snprintf (pub, sizeof pub, "%s/client.cert", home);
        if (jm_coord_allow (home, pub, "client", err, errlen) != 0)
            return 1;
    }
    snprintf (path, sizeof path, "%s/config.yml", home);
    if (!s_exists (path) && jm_config_write_default (home, bind, err, errlen) != 0)
        return 1;
    snprintf (path, sizeof path, "%s/state.db", home);
    jm_db_t *db = jm_db_open (path, err, errlen);
    if (!db)
        return 1;
    int rc = jm_coord_db_init (db, err, errlen);
    jm_db_destroy (&db);
    if (rc != 0)
        return 1;
    snprintf (path, sizeof path, "%s/store", home);
    jm_store_t *store = jm_store_new (path, err, errlen);
    if (!store)
        return 1;
    jm_store_destroy (&store);
    return 0;
}
