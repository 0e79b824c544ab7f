/*  jm_batch.c - the core every batch scheduler backend shares (jm_batch.h).

    A job goes PENDING (in the queue, waiting for the flush timer, a token
    or the end of a back-off) -> SUBMITTING (its unit's submit command
    runs) -> IN_SCHED (the scheduler has it; polled) -> ended (removed and
    freed right after its JOB_END is queued for delivery).

    Events are collected per job into batches while a handler works, and
    delivered at the end of the handler, when the core's own state is
    consistent again: the agent's callback may call submit and cancel.
    Nothing is ever delivered from inside submit, cancel or destroy.     */
#define _GNU_SOURCE
#include "jm_batch.h"
#include "jm_log.h"
#include "jm_text.h"
#include "jm_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CMD_TIMEOUT_MS 120000u /* any scheduler command */
#define S_RETRY_MAX_MS 300000u
#define S_GRACE_POLLS 2         /* polls to wait for late tag files */
#define S_SUBMITS_IN_FLIGHT 4   /* submit commands at once */
#define S_EVENTS_LINE_MAX 65536 /* longer "lines" in an events file are skipped */

typedef enum { S_PENDING, S_SUBMITTING, S_IN_SCHED, S_DOOMED } s_jstate_t;

typedef struct {
    uint64_t id;
    bool started, ended;
    bool held; /* ended by a signal (code >= 128): held back until the
                  scheduler says whether it killed the job (verdict) */
    int held_code;
} s_task_t;

typedef struct {
    jm_sched_t *owner;
    uint64_t id;
    char *key; /* id as text: key of by_id */
    void *all_handle;
    char *dir;
    char *work_base;
    char *res_json; /* canonical resources, for grouping into arrays */
    jm_resources_t *res;
    s_task_t *tasks;
    size_t ntasks, nended, nheld;
    s_jstate_t state;
    char *sid; /* canonical scheduler id once submitted */
    off_t ev_off;
    bool ran;         /* a status query saw it running */
    bool cancel_req;  /* jobman's cancel asked for */
    bool withdraw;    /* the cancel is a withdrawal: ends "withdrawn" if no
                         task turned out to have started */
    bool cancel_sent; /* in a cancel command now */
    bool left;        /* has left the scheduler's queue */
    int grace;        /* polls since it left with tags missing */
    jm_verdict_t verdict;
    char *detail;
    bool final_asked, final_pending;
} s_job_t;

typedef enum { S_RUN_SUBMIT, S_RUN_QUERY, S_RUN_FINAL, S_RUN_CANCEL } s_run_kind_t;

/* One scheduler command in flight. */
typedef struct {
    jm_sched_t *owner;
    s_run_kind_t kind;
    jm_cmd_t *cmd;
    char *desc;     /* the command line, for logs */
    uint64_t *jobs; /* ids of the jobs it is about */
    size_t njobs;
    char **sids; /* query/final: the sids asked about */
    size_t nsids;
} s_run_t;

typedef struct {
    uint64_t job_id;
    jm_sched_ev_t *v;
    size_t n, cap;
    bool ended;  /* holds the job's JOB_END (last event) */
    char **strs; /* the events' reasons (owned) */
    size_t nstrs;
} s_batch_t;

struct _jm_sched_t {
    const jm_batch_dialect_t *d;
    jm_sched_opts_t opts;
    char *user;
    zhashx_t *by_id;  /* key -> s_job_t (owned, freed by s_job_free) */
    zhashx_t *by_sid; /* sid -> s_job_t (not owned) */
    zlistx_t *all;    /* every s_job_t in submission order (not owned) */
    zlistx_t *queue;  /* pending s_job_t, in order (not owned) */
    zlistx_t *runs;   /* s_run_t in flight (owned) */
    size_t n_in_sched;
    size_t submitting;
    int flush_timer, refill_timer, retry_timer, poll_timer, cancel_timer, end_timer;
    double tokens;
    int64_t tokens_ms;
    unsigned retry_cur;
    size_t array_cap; /* 0, or at most this many elements per array after
                         refusals (halved per refused array, doubled back
                         per accepted one) */
    bool retry_logged;
    bool query_running, final_running;
    bool query_failing;
    zlistx_t *cancel_sids; /* char *: sids to cancel with no job waiting (ERROR) */
    s_batch_t *out;        /* events waiting for delivery */
    size_t nout, capout;
};

static void s_pump (jm_sched_t *self);
static void s_poll_update (jm_sched_t *self);
static void s_cancel_arm (jm_sched_t *self);

const char *
jm_verdict_name (jm_verdict_t v)
{
    switch (v) {
    case JM_VERDICT_COMPLETED:
        return "COMPLETED";
    case JM_VERDICT_FAILED:
        return "FAILED";
    case JM_VERDICT_TIMEOUT:
        return "TIMEOUT";
    case JM_VERDICT_NODE_FAIL:
        return "NODE_FAIL";
    case JM_VERDICT_OUT_OF_MEMORY:
        return "OUT_OF_MEMORY";
    case JM_VERDICT_CANCELLED:
        return "CANCELLED";
    case JM_VERDICT_NONE:
    default:
        return "NONE";
    }
}

static void *
s_xalloc (void *p)
{
    if (!p)
        abort ();
    return p;
}

static char *
s_strdup (const char *s)
{
    return s_xalloc (strdup (s ? s : ""));
}

static char *s_fmt (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *
s_fmt (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        abort ();
    va_end (ap);
    return s;
}

/* -------------------------------------------------------------------------
   Events */

static void
s_emit (jm_sched_t *self, const jm_sched_ev_t *ev, const char *reason)
{
    s_batch_t *b = self->nout ? &self->out[self->nout - 1] : NULL;
    if (!b || b->job_id != ev->job_id || b->ended) {
        if (self->nout == self->capout) {
            self->capout = self->capout ? self->capout * 2 : 16;
            self->out = s_xalloc (realloc (self->out, self->capout * sizeof *self->out));
        }
        b = &self->out[self->nout++];
        memset (b, 0, sizeof *b);
        b->job_id = ev->job_id;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->v = s_xalloc (realloc (b->v, b->cap * sizeof *b->v));
    }
    jm_sched_ev_t *e = &b->v[b->n++];
    *e = *ev;
    e->reason = NULL;
    if (reason) {
        b->strs = s_xalloc (realloc (b->strs, (b->nstrs + 1) * sizeof *b->strs));
        e->reason = b->strs[b->nstrs++] = s_strdup (reason);
    }
    if (ev->type == JM_SCHED_JOB_END)
        b->ended = true;
}

/* Hands the collected batches to the agent.  Call last in a handler. */
static void
s_deliver (jm_sched_t *self)
{
    while (self->nout > 0) {
        s_batch_t *out = self->out;
        size_t n = self->nout;
        self->out = NULL;
        self->nout = self->capout = 0;
        for (size_t i = 0; i < n; i++) {
            s_batch_t *b = &out[i];
            self->opts.event (self->opts.arg, b->v, b->n);
            free (b->v);
            for (size_t k = 0; k < b->nstrs; k++)
                free (b->strs[k]);
            free (b->strs);
        }
        free (out);
    }
}

/* -------------------------------------------------------------------------
   Jobs */

static s_job_t *
s_job_lookup (jm_sched_t *self, uint64_t id)
{
    char key[32];
    snprintf (key, sizeof key, "%" PRIu64, id);
    return zhashx_lookup (self->by_id, key);
}

static void
s_job_free (s_job_t *job)
{
    jm_resources_destroy (&job->res);
    free (job->key);
    free (job->dir);
    free (job->work_base);
    free (job->res_json);
    free (job->tasks);
    free (job->sid);
    free (job->detail);
    free (job);
}

static void
s_queue_remove (jm_sched_t *self, s_job_t *job)
{
    void *h = zlistx_find (self->queue, job);
    if (h)
        zlistx_delete (self->queue, h);
}

/* Has any task of the job started (or ended), or did a query see it run? */
static bool
s_job_started (const s_job_t *job)
{
    if (job->ran || job->nended > 0)
        return true;
    for (size_t i = 0; i < job->ntasks; i++)
        if (job->tasks[i].started || job->tasks[i].ended || job->tasks[i].held)
            return true;
    return false;
}

/* Queues the job's JOB_END and forgets the job.  A withdrawn job that
   never started ends "withdrawn" instead of "cancelled". */
static void
s_job_end (s_job_t *job, const char *reason)
{
    jm_sched_t *self = job->owner;
    if (job->withdraw && reason && strcmp (reason, "cancelled") == 0 && !s_job_started (job))
        reason = "withdrawn";
    jm_sched_ev_t ev = {.type = JM_SCHED_JOB_END, .job_id = job->id};
    ev.job_exit = reason && *reason ? -1 : 0;
    s_emit (self, &ev, reason ? reason : "");
    if (*reason)
        jm_info ("%s job %" PRIu64 "%s%s: %s", self->d->name, job->id, job->sid ? " = " : "",
                 job->sid ? job->sid : "", reason);
    else
        jm_debug ("%s job %" PRIu64 " (%s) is over", self->d->name, job->id,
                  job->sid ? job->sid : "-");
    if (job->state == S_IN_SCHED)
        self->n_in_sched--;
    if (job->state == S_PENDING)
        s_queue_remove (self, job);
    if (job->sid && zhashx_lookup (self->by_sid, job->sid) == job)
        zhashx_delete (self->by_sid, job->sid);
    zhashx_delete (self->by_id, job->key);
    zlistx_delete (self->all, job->all_handle);
    s_job_free (job);
    s_poll_update (self);
}

static s_task_t *
s_task (s_job_t *job, uint64_t task_id)
{
    for (size_t i = 0; i < job->ntasks; i++)
        if (job->tasks[i].id == task_id)
            return &job->tasks[i];
    return NULL;
}

static void
s_task_emit_end (s_job_t *job, s_task_t *t, int code, const char *reason)
{
    if (t->held) {
        t->held = false;
        job->nheld--;
    }
    t->ended = true;
    job->nended++;
    jm_sched_ev_t ev = {.type = JM_SCHED_TASK_END, .job_id = job->id, .task_id = t->id};
    ev.exit_code = code;
    s_emit (job->owner, &ev, reason);
}

/*  A task killed by a signal (exit code 128+N) while its job is in the
    scheduler may have been killed by the scheduler (time limit, memory,
    scancel): Slurm sends SIGTERM to the whole job, and the job script may
    still write the task's 143 before it dies.  Such an end is held back
    until the next status query: job still there -> the end goes out as it
    is; job gone with a verdict -> it carries the verdict as its reason. */
static void
s_task_end (s_job_t *job, s_task_t *t, int code)
{
    if (t->ended || t->held)
        return;
    if (code >= 128 && code < 256 && !job->left && !job->cancel_req) {
        t->held = true;
        t->held_code = code;
        job->nheld++;
        return;
    }
    s_task_emit_end (job, t, code, NULL);
}

/* Lets the held-back ends go, with reason (NULL = none). */
static void
s_release_held (s_job_t *job, const char *reason)
{
    for (size_t i = 0; i < job->ntasks && job->nheld > 0; i++)
        if (job->tasks[i].held)
            s_task_emit_end (job, &job->tasks[i], job->tasks[i].held_code, reason);
}

static void
s_event_line (s_job_t *job, const char *line)
{
    char *end;
    uint64_t id;
    if ((line[0] != 'S' && line[0] != 'E') || line[1] != ' ' || line[2] < '0' || line[2] > '9')
        goto bad;
    errno = 0;
    id = strtoull (line + 2, &end, 10);
    if (errno)
        goto bad;
    s_task_t *t = s_task (job, id);
    if (line[0] == 'S' && *end == 0) {
        if (!t)
            goto bad;
        if (!t->started && !t->ended) {
            t->started = true;
            jm_sched_ev_t ev = {.type = JM_SCHED_TASK_START, .job_id = job->id, .task_id = id};
            s_emit (job->owner, &ev, NULL);
        }
        return;
    }
    if (line[0] == 'E' && *end == ' ') {
        const char *p = end + 1;
        errno = 0;
        long code = strtol (p, &end, 10);
        if (errno || end == p || *end != 0 || !t)
            goto bad;
        s_task_end (job, t, (int)code);
        return;
    }
bad:
    jm_debug ("%s job %" PRIu64 ": ignoring line '%.80s' in %s/events", job->owner->d->name,
              job->id, line, job->dir);
}

/* Reads the complete lines added to D/events since the last call. */
static void
s_read_events (s_job_t *job)
{
    char path[PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/events", job->dir);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* most polls find nothing new: no buffer then */
    struct stat st;
    if (fstat (fd, &st) != 0 || st.st_size <= job->ev_off) {
        close (fd);
        return;
    }
    size_t cap = (size_t)(st.st_size - job->ev_off), len = 0;
    char *buf = s_xalloc (malloc (cap + 1));
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = s_xalloc (realloc (buf, cap + 1));
        }
        ssize_t n = pread (fd, buf + len, cap - len, job->ev_off + (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close (fd);
    size_t pos = 0;
    for (;;) {
        char *nl = memchr (buf + pos, '\n', len - pos);
        if (!nl)
            break;
        *nl = 0;
        if (strlen (buf + pos) == (size_t)(nl - (buf + pos))) /* no NUL inside */
            s_event_line (job, buf + pos);
        pos = (size_t)(nl - buf) + 1;
    }
    if (len - pos > S_EVENTS_LINE_MAX) { /* garbage without newline: skip it */
        jm_warn ("%s job %" PRIu64 ": skipping %zu bytes without a newline in %s",
                 job->owner->d->name, job->id, len - pos, path);
        pos = len;
    }
    job->ev_off += (off_t)pos;
    free (buf);
}

/* Tag files of tasks without an end so far. */
static void
s_read_tags (s_job_t *job)
{
    for (size_t i = 0; i < job->ntasks && job->nended < job->ntasks; i++) {
        s_task_t *t = &job->tasks[i];
        if (t->ended)
            continue;
        char path[PATH_MAX + 40], buf[64];
        snprintf (path, sizeof path, "%s/%" PRIu64 ".exit", job->dir, t->id);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read (fd, buf, sizeof buf - 1);
        close (fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *end;
        errno = 0;
        long code = strtol (buf, &end, 10);
        while (*end == '\n' || *end == ' ' || *end == '\r')
            end++;
        if (errno || end == buf || *end)
            continue; /* half-written or garbage: look again later */
        s_task_end (job, t, (int)code);
    }
}

/* The reason for a job that left the queue with tasks unfinished. */
static char *
s_left_reason (s_job_t *job)
{
    const char *name = job->owner->d->name;
    if (job->cancel_req)
        return s_strdup ("cancelled");
    if (job->verdict != JM_VERDICT_NONE && job->verdict != JM_VERDICT_COMPLETED) {
        if (job->detail && *job->detail)
            return s_fmt ("%s: %s job %s (%s)", jm_verdict_name (job->verdict), name, job->sid,
                          job->detail);
        return s_fmt ("%s: %s job %s", jm_verdict_name (job->verdict), name, job->sid);
    }
    bool started = job->ran;
    for (size_t i = 0; i < job->ntasks && !started; i++)
        started = job->tasks[i].started || job->tasks[i].ended || job->tasks[i].held;
    if (!started)
        /* e.g. qdel of a pending SGE job: no accounting record is written */
        return s_fmt ("CANCELLED: %s job %s left the queue before it started, with no verdict "
                      "from the scheduler (deleted?)",
                      name, job->sid);
    return s_fmt ("FAILED: %s job %s left the queue without writing its tags", name, job->sid);
}

/* A job that left the queue: reads its files; ends it when every task is
   accounted for, or when the grace is over (and no final query is
   pending for it). */
static void
s_left_check (s_job_t *job)
{
    s_read_events (job);
    s_read_tags (job);
    bool give_up = job->grace >= S_GRACE_POLLS && !job->final_pending;
    if (job->nheld > 0 && (job->verdict != JM_VERDICT_NONE || give_up ||
                           !job->owner->d->final_argv || job->cancel_req)) {
        bool killed = job->verdict != JM_VERDICT_NONE && job->verdict != JM_VERDICT_COMPLETED;
        char *reason = killed || job->cancel_req ? s_left_reason (job) : NULL;
        s_release_held (job, reason);
        free (reason);
    }
    if (job->nended == job->ntasks) {
        s_job_end (job, "");
        return;
    }
    if (give_up) {
        char *reason = s_left_reason (job);
        s_job_end (job, reason);
        free (reason);
    }
}

/* -------------------------------------------------------------------------
   Commands */

static void s_on_cmd_done (void *arg, const jm_cmd_result_t *r);

static void
s_run_free (s_run_t *run)
{
    free (run->desc);
    free (run->jobs);
    for (size_t i = 0; i < run->nsids; i++)
        free (run->sids[i]);
    free (run->sids);
    free (run);
}

static s_run_t *
s_run_new (jm_sched_t *self, s_run_kind_t kind)
{
    s_run_t *run = s_xalloc (calloc (1, sizeof *run));
    run->owner = self;
    run->kind = kind;
    return run;
}

static void
s_run_add_job (s_run_t *run, s_job_t *job)
{
    run->jobs = s_xalloc (realloc (run->jobs, (run->njobs + 1) * sizeof *run->jobs));
    run->jobs[run->njobs++] = job->id;
}

static void
s_run_add_sid (s_run_t *run, const char *sid)
{
    run->sids = s_xalloc (realloc (run->sids, (run->nsids + 1) * sizeof *run->sids));
    run->sids[run->nsids++] = s_strdup (sid);
}

/* Starts argv for run (which it then owns).  0, or -1 + err (run freed
   by the caller then). */
static int
s_run_start (jm_sched_t *self, s_run_t *run, jm_argv_t *argv, const char *stdin_path, char *err,
             size_t errlen)
{
    if (!argv->v || !argv->v[0])
        return jm_err (err, errlen, "the %s dialect built an empty command", self->d->name);
    run->desc = jm_cmd_describe (argv->v);
    run->cmd = jm_cmd_start (self->opts.loop, argv->v, stdin_path, S_CMD_TIMEOUT_MS, s_on_cmd_done,
                             run, err, errlen);
    if (!run->cmd)
        return -1;
    zlistx_add_end (self->runs, run);
    return 0;
}

/* A short, one-line form of a command's message for reasons and logs. */
static char *
s_msg (const char *a, const char *b)
{
    const char *s = a && *a ? a : b ? b : "";
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    size_t n = strlen (s);
    if (n > 400)
        n = 400;
    char *m = s_xalloc (strndup (s, n));
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ' || m[n - 1] == '\r'))
        m[--n] = 0;
    for (char *p = m; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return m;
}

/* --- submit --------------------------------------------------------------- */

static bool
s_take_token (jm_sched_t *self)
{
    unsigned per_min = self->opts.submit_per_min;
    if (per_min == 0)
        return true;
    double burst = self->opts.submit_burst ? self->opts.submit_burst : 5;
    int64_t now = jm_now_ms ();
    self->tokens += (double)(now - self->tokens_ms) * per_min / 60000.0;
    if (self->tokens > burst)
        self->tokens = burst;
    self->tokens_ms = now;
    if (self->tokens >= 1.0) {
        self->tokens -= 1.0;
        return true;
    }
    return false;
}

static int
s_on_pump_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    jm_sched_t *self = arg;
    if (timer_id == self->flush_timer)
        self->flush_timer = -1;
    if (timer_id == self->refill_timer)
        self->refill_timer = -1;
    if (timer_id == self->retry_timer)
        self->retry_timer = -1;
    s_pump (self);
    s_deliver (self);
    return 0;
}

static bool
s_array_ok (jm_sched_t *self, s_job_t *job)
{
    return self->d->array_index_var && job->res->job_array && !job->res->header_template;
}

static void
s_fail_jobs (jm_sched_t *self, s_job_t **jobs, size_t n, const char *msg)
{
    char *reason = s_fmt ("cannot submit to %s: %s", self->d->name, msg);
    for (size_t i = 0; i < n; i++)
        s_job_end (jobs[i], jobs[i]->cancel_req ? "cancelled" : reason);
    free (reason);
}

/* Writes F/submit.sh for the unit and starts its submit command. */
static void
s_submit_unit (jm_sched_t *self, s_job_t **jobs, size_t n)
{
    const jm_batch_dialect_t *d = self->d;
    s_job_t *first = jobs[0];
    const jm_resources_t *res = first->res;
    char err[1024] = "";
    char *name = res->job_name && *res->job_name ? s_strdup (res->job_name)
                                                 : s_fmt ("jm%" PRIu64, first->id);
    char *header = res->header_template ? jm_resources_fill_template (res, name, err, sizeof err)
                                        : d->header (res, name, n, first->dir, err, sizeof err);
    free (name);
    if (!header) {
        s_fail_jobs (self, jobs, n, *err ? err : "cannot build the job header");
        return;
    }
    jm_text_t t = JM_TEXT_INIT;
    jm_text_add (&t, "#!/bin/bash\n%s%s", header,
                 *header && header[strlen (header) - 1] != '\n' ? "\n" : "");
    free (header);
    if (n == 1) {
        char *q = jm_sh_quote (first->dir);
        jm_text_add (&t, "jm_d=%s\n", q);
        free (q);
    }
    else {
        jm_text_add (&t, "case \"$%s\" in\n", d->array_index_var);
        for (size_t i = 0; i < n; i++) {
            char *q = jm_sh_quote (jobs[i]->dir);
            jm_text_add (&t, "%zu) jm_d=%s ;;\n", i + 1, q);
            free (q);
        }
        jm_text_add (&t, "*) echo \"jobman: no job for array index '$%s'\" >&2; exit 1 ;;\nesac\n",
                     d->array_index_var);
    }
    jm_text_add (&t, "exec /bin/bash \"$jm_d/job.sh\" >>\"$jm_d/events\" 2>>\"$jm_d/job.err\"\n");
    size_t len = t.len;
    char *text = s_xalloc (jm_text_take (&t));
    char *path = s_fmt ("%s/submit.sh", first->dir);
    int rc = jm_write_file_atomic (path, text, len, 0700, err, sizeof err);
    free (text);
    if (rc != 0) {
        s_fail_jobs (self, jobs, n, err);
        free (path);
        return;
    }
    jm_argv_t argv = {0};
    d->submit_argv (path, n, &argv);
    s_run_t *run = s_run_new (self, S_RUN_SUBMIT);
    for (size_t i = 0; i < n; i++)
        s_run_add_job (run, jobs[i]);
    if (s_run_start (self, run, &argv, d->submit_stdin ? path : NULL, err, sizeof err) != 0) {
        s_run_free (run);
        s_fail_jobs (self, jobs, n, err);
    }
    else {
        for (size_t i = 0; i < n; i++)
            jobs[i]->state = S_SUBMITTING;
        self->submitting++;
    }
    jm_argv_clear (&argv);
    free (path);
}

/* Sends out queued jobs as far as back-off, tokens and the commands in
   flight allow. */
static void
s_pump (jm_sched_t *self)
{
    if (self->retry_timer >= 0)
        return;
    while (zlistx_size (self->queue) > 0 && self->submitting < S_SUBMITS_IN_FLIGHT) {
        if (!s_take_token (self)) {
            if (self->refill_timer < 0) {
                double need = (1.0 - self->tokens) * 60000.0 / self->opts.submit_per_min;
                self->refill_timer = zloop_timer (self->opts.loop, (size_t)ceil (need) + 1, 1,
                                                  s_on_pump_timer, self);
            }
            return;
        }
        s_job_t *head = zlistx_first (self->queue);
        size_t max = self->d->max_array ? self->d->max_array : SIZE_MAX;
        if (self->array_cap && self->array_cap < max)
            max = self->array_cap;
        size_t n = 0, cap = 8;
        s_job_t **unit = s_xalloc (malloc (cap * sizeof *unit));
        unit[n++] = head;
        zlistx_delete (self->queue, zlistx_cursor (self->queue));
        if (s_array_ok (self, head)) {
            for (s_job_t *j = zlistx_first (self->queue); j && n < max;) {
                if (s_array_ok (self, j) && strcmp (j->work_base, head->work_base) == 0 &&
                    strcmp (j->res_json, head->res_json) == 0) {
                    if (n == cap) {
                        cap *= 2;
                        unit = s_xalloc (realloc (unit, cap * sizeof *unit));
                    }
                    unit[n++] = j;
                    zlistx_delete (self->queue, zlistx_cursor (self->queue));
                    j = zlistx_first (self->queue);
                    /* restart: the cursor went with the deleted item; skip
                       the ones already looked at (they did not match) */
                    continue;
                }
                j = zlistx_next (self->queue);
            }
        }
        /* taken off the queue: not PENDING any more for s_job_end */
        for (size_t i = 0; i < n; i++)
            unit[i]->state = S_SUBMITTING;
        s_submit_unit (self, unit, n);
        free (unit);
    }
}

static void
s_submit_done (jm_sched_t *self, s_run_t *run, const jm_cmd_result_t *r)
{
    const jm_batch_dialect_t *d = self->d;
    self->submitting--;
    size_t n = 0;
    s_job_t **jobs = s_xalloc (calloc (run->njobs + 1, sizeof *jobs));
    size_t *idx = s_xalloc (calloc (run->njobs + 1, sizeof *idx)); /* 1-based element */
    for (size_t i = 0; i < run->njobs; i++) {
        s_job_t *j = s_job_lookup (self, run->jobs[i]);
        if (j && j->state == S_SUBMITTING) {
            idx[n] = i + 1;
            jobs[n++] = j;
        }
    }
    char id[256] = "", msg[1024] = "";
    jm_submit_rc_t rc;
    if (r->timed_out) {
        rc = JM_SUBMIT_FAIL;
        snprintf (msg, sizeof msg, "%s did not answer within %u s", d->submit_prog,
                  S_CMD_TIMEOUT_MS / 1000);
    }
    else {
        rc = d->parse_submit (r->status, r->out, r->err, id, sizeof id, msg, sizeof msg);
        if (rc == JM_SUBMIT_OK && !*id) {
            rc = JM_SUBMIT_FAIL;
            snprintf (msg, sizeof msg, "no job id in the output of %s", d->submit_prog);
        }
        if (rc != JM_SUBMIT_OK && !*msg) {
            char *m = s_msg (r->err, r->out);
            snprintf (msg, sizeof msg, "%s exited %d%s%s", d->submit_prog, r->status,
                      *m ? ": " : "", m);
            free (m);
        }
    }
    if (rc == JM_SUBMIT_OK) {
        if (self->retry_logged)
            jm_info ("%s accepts submissions again", d->name);
        self->retry_logged = false;
        self->retry_cur = self->opts.retry_ms ? self->opts.retry_ms : 10000;
        if (self->array_cap && run->njobs >= self->array_cap)
            self->array_cap *= 2; /* room again: grow back */
        for (size_t i = 0; i < n; i++) {
            s_job_t *j = jobs[i];
            char sid[256];
            if (run->njobs == 1 || !d->element_id)
                snprintf (sid, sizeof sid, "%s", id);
            else
                d->element_id (id, idx[i], sid, sizeof sid);
            j->sid = s_strdup (sid);
            j->state = S_IN_SCHED;
            self->n_in_sched++;
            zhashx_update (self->by_sid, j->sid, j);
            jm_debug ("%s job %" PRIu64 " submitted as %s", d->name, j->id, j->sid);
            if (j->cancel_req)
                s_cancel_arm (self);
        }
        s_poll_update (self);
    }
    else if (rc == JM_SUBMIT_RETRY) {
        /* A limit counts array elements as jobs (LSF's pending threshold,
           Slurm's MaxSubmitJobs): an array bigger than the room left would
           be refused for ever, so the next tries send smaller ones. */
        if (run->njobs > 1)
            self->array_cap = run->njobs / 2;
        for (size_t i = n; i-- > 0;) {
            s_job_t *j = jobs[i];
            if (j->cancel_req)
                s_job_end (j, "cancelled");
            else {
                j->state = S_PENDING;
                zlistx_add_start (self->queue, j);
            }
        }
        unsigned wait = self->retry_cur;
        if (!self->retry_logged)
            jm_warn ("%s refused a submission for now (%s); retrying in %.1f s (longer while it "
                     "keeps refusing)",
                     d->name, msg, wait / 1000.0);
        self->retry_logged = true;
        if (self->retry_timer < 0)
            self->retry_timer = zloop_timer (self->opts.loop, wait, 1, s_on_pump_timer, self);
        self->retry_cur = wait >= S_RETRY_MAX_MS / 2 ? S_RETRY_MAX_MS : wait * 2;
    }
    else {
        jm_warn ("%s: %s", d->name, msg);
        s_fail_jobs (self, jobs, n, msg);
    }
    free (jobs);
    free (idx);
    s_pump (self);
}

/* --- cancel ---------------------------------------------------------------- */

static int
s_on_cancel_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_sched_t *self = arg;
    self->cancel_timer = -1;
    s_run_t *run = s_run_new (self, S_RUN_CANCEL);
    for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
        if (j->state == S_IN_SCHED && j->cancel_req && !j->cancel_sent && !j->left) {
            s_run_add_job (run, j);
            s_run_add_sid (run, j->sid);
        }
    for (char *sid = zlistx_first (self->cancel_sids); sid; sid = zlistx_next (self->cancel_sids))
        s_run_add_sid (run, sid);
    zlistx_purge (self->cancel_sids);
    if (run->nsids == 0) {
        s_run_free (run);
        return 0;
    }
    jm_argv_t argv = {0};
    jm_batch_cancel_argv (self->d, (const char *const *)run->sids, run->nsids, &argv);
    char err[1024];
    if (s_run_start (self, run, &argv, NULL, err, sizeof err) != 0) {
        jm_warn ("cannot cancel %zu %s job(s): %s (trying again at the next poll)", run->nsids,
                 self->d->name, err);
        s_run_free (run);
    }
    else
        for (size_t i = 0; i < run->njobs; i++)
            s_job_lookup (self, run->jobs[i])->cancel_sent = true;
    jm_argv_clear (&argv);
    return 0;
}

static void
s_cancel_arm (jm_sched_t *self)
{
    if (self->cancel_timer < 0)
        self->cancel_timer = zloop_timer (self->opts.loop, 0, 1, s_on_cancel_timer, self);
}

static void
s_cancel_done (jm_sched_t *self, s_run_t *run, const jm_cmd_result_t *r)
{
    bool ok = r->status == 0 && !r->timed_out;
    if (!ok) {
        char *m = s_msg (r->err, r->out);
        jm_warn ("%s: cancelling %zu job(s) failed (exit %d%s%s); jobs still queued are "
                 "cancelled again at the next poll",
                 self->d->name, run->nsids, r->status, *m ? ": " : "", m);
        free (m);
    }
    for (size_t i = 0; i < run->njobs; i++) {
        s_job_t *j = s_job_lookup (self, run->jobs[i]);
        if (!j)
            continue;
        j->cancel_sent = false;
        if (ok) {
            s_read_events (j);
            s_read_tags (j);
            s_job_end (j, "cancelled");
        }
    }
}

/* --- status ---------------------------------------------------------------- */

typedef struct {
    jm_bstate_t state;
    jm_verdict_t verdict;
    char *detail;
} s_seen_t;

static void
s_seen_free (void **item)
{
    s_seen_t *s = *item;
    if (s) {
        free (s->detail);
        free (s);
    }
    *item = NULL;
}

static void
s_on_seen (void *arg, const jm_batch_seen_t *seen)
{
    zhashx_t *h = arg;
    if (!seen || !seen->sid)
        return;
    s_seen_t *s = s_xalloc (calloc (1, sizeof *s));
    s->state = seen->state;
    s->verdict = seen->verdict;
    s->detail = s_strdup (seen->detail);
    zhashx_update (h, seen->sid, s);
}

static zhashx_t *
s_seen_new (void)
{
    zhashx_t *h = zhashx_new ();
    zhashx_set_destructor (h, s_seen_free);
    return h;
}

/* Takes the scheduler's verdict on j, if it gave one. */
static void
s_job_verdict (s_job_t *j, const s_seen_t *s)
{
    if (s->verdict == JM_VERDICT_NONE)
        return;
    j->verdict = s->verdict;
    free (j->detail);
    j->detail = s_strdup (s->detail);
}

static void
s_query_done (jm_sched_t *self, s_run_t *run, const jm_cmd_result_t *r)
{
    self->query_running = false;
    zhashx_t *seen = s_seen_new ();
    char err[1024] = "";
    int rc = -1;
    if (r->timed_out)
        snprintf (err, sizeof err, "no answer within %u s", S_CMD_TIMEOUT_MS / 1000);
    else {
        rc = self->d->parse_query (r->status, r->out, r->err, s_on_seen, seen, err, sizeof err);
        if (rc != 0 && !*err) {
            char *m = s_msg (r->err, r->out);
            snprintf (err, sizeof err, "exit %d%s%s", r->status, *m ? ": " : "", m);
            free (m);
        }
    }
    if (rc != 0) {
        if (!self->query_failing)
            jm_warn ("%s status query failed (%s): %s; nothing concluded until it works again",
                     self->d->name, run->desc, err);
        self->query_failing = true;
        zhashx_destroy (&seen);
        return;
    }
    if (self->query_failing)
        jm_info ("%s status query works again", self->d->name);
    self->query_failing = false;
    for (size_t i = 0; i < run->nsids; i++) {
        s_job_t *j = zhashx_lookup (self->by_sid, run->sids[i]);
        if (!j || j->state != S_IN_SCHED || j->left)
            continue;
        s_seen_t *s = zhashx_lookup (seen, run->sids[i]);
        if (s && s->state == JM_BST_ERROR) {
            zlistx_add_end (self->cancel_sids, s_strdup (j->sid));
            s_cancel_arm (self);
            s_read_events (j);
            s_read_tags (j);
            char *reason = *s->detail ? s_fmt ("FAILED: %s job %s is in an error state (%s)",
                                               self->d->name, j->sid, s->detail)
                                      : s_fmt ("FAILED: %s job %s is in an error state",
                                               self->d->name, j->sid);
            s_job_end (j, j->cancel_req ? "cancelled" : reason);
            free (reason);
            continue;
        }
        if (s && s->state != JM_BST_DONE) {
            if (s->state == JM_BST_RUNNING)
                j->ran = true;
            s_release_held (j, NULL); /* the scheduler did not kill it */
            continue;
        }
        /* left the queue */
        j->left = true;
        j->grace = 0;
        if (s)
            s_job_verdict (j, s);
        s_left_check (j);
    }
    zhashx_destroy (&seen);
}

static void
s_final_done (jm_sched_t *self, s_run_t *run, const jm_cmd_result_t *r)
{
    self->final_running = false;
    zhashx_t *seen = s_seen_new ();
    char err[1024] = "";
    int rc = -1;
    if (!r->timed_out && self->d->parse_final)
        rc = self->d->parse_final (r->status, r->out, r->err, s_on_seen, seen, err, sizeof err);
    if (rc != 0) {
        char *m = s_msg (r->err, r->out);
        jm_warn ("%s: %s failed (%s)", self->d->name, run->desc,
                 *err           ? err
                 : r->timed_out ? "no answer"
                                : m);
        free (m);
    }
    for (size_t i = 0; i < run->njobs; i++) {
        s_job_t *j = s_job_lookup (self, run->jobs[i]);
        if (!j)
            continue;
        j->final_pending = false;
        s_seen_t *s = j->sid ? zhashx_lookup (seen, j->sid) : NULL;
        if (s && j->verdict == JM_VERDICT_NONE)
            s_job_verdict (j, s);
        s_left_check (j);
    }
    zhashx_destroy (&seen);
}

static void
s_final_start (jm_sched_t *self)
{
    if (self->final_running || !self->d->final_argv)
        return;
    s_run_t *run = s_run_new (self, S_RUN_FINAL);
    for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
        if (j->state == S_IN_SCHED && j->left && !j->final_asked && j->verdict == JM_VERDICT_NONE &&
            j->nended < j->ntasks && !j->cancel_req && j->grace < S_GRACE_POLLS) {
            s_run_add_job (run, j);
            s_run_add_sid (run, j->sid);
        }
    if (run->nsids == 0) {
        s_run_free (run);
        return;
    }
    jm_argv_t argv = {0};
    self->d->final_argv (self->user, (const char *const *)run->sids, run->nsids, &argv);
    char err[1024];
    if (s_run_start (self, run, &argv, NULL, err, sizeof err) != 0) {
        jm_warn ("%s: cannot ask for the end of %zu job(s): %s", self->d->name, run->nsids, err);
        for (size_t i = 0; i < run->njobs; i++)
            s_job_lookup (self, run->jobs[i])->final_asked = true;
        s_run_free (run);
    }
    else {
        self->final_running = true;
        for (size_t i = 0; i < run->njobs; i++) {
            s_job_t *j = s_job_lookup (self, run->jobs[i]);
            j->final_asked = true;
            j->final_pending = true;
        }
    }
    jm_argv_clear (&argv);
}

static int
s_on_poll (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_sched_t *self = arg;
    self->poll_timer = -1; /* a one-shot; s_poll_update re-arms it */
    /* Collect first: s_left_check may end (and free) jobs. */
    size_t n = zhashx_size (self->by_id), k = 0;
    uint64_t *ids = s_xalloc (calloc (n + 1, sizeof *ids));
    for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
        if (j->state == S_IN_SCHED)
            ids[k++] = j->id;
    bool recancel = false;
    for (size_t i = 0; i < k; i++) {
        s_job_t *j = s_job_lookup (self, ids[i]);
        if (!j)
            continue;
        if (j->left) {
            j->grace++;
            /* no verdict yet: ask again at this poll, within the grace
               (SGE's accounting, e.g., comes up to 15 s late) */
            if (!j->final_pending && j->verdict == JM_VERDICT_NONE)
                j->final_asked = false;
            s_left_check (j);
            continue;
        }
        s_read_events (j);
        if (j->cancel_req && !j->cancel_sent)
            recancel = true;
    }
    free (ids);
    if (recancel)
        s_cancel_arm (self);
    if (!self->query_running) {
        s_run_t *run = s_run_new (self, S_RUN_QUERY);
        for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
            if (j->state == S_IN_SCHED && !j->left)
                s_run_add_sid (run, j->sid);
        if (run->nsids > 0) {
            jm_argv_t argv = {0};
            self->d->query_argv (self->user, (const char *const *)run->sids, run->nsids, &argv);
            char err[1024];
            if (s_run_start (self, run, &argv, NULL, err, sizeof err) != 0) {
                if (!self->query_failing)
                    jm_warn ("%s status query failed: %s", self->d->name, err);
                self->query_failing = true;
                s_run_free (run);
            }
            else
                self->query_running = true;
            jm_argv_clear (&argv);
        }
        else
            s_run_free (run);
    }
    s_final_start (self);
    s_poll_update (self);
    s_deliver (self);
    return 0;
}

/* The poll timer runs while the scheduler has any of our jobs (a one-shot
   re-armed after each poll: see jm_cmd.c on zloop_timer_end). */
static void
s_poll_update (jm_sched_t *self)
{
    if (self->n_in_sched > 0 && self->poll_timer < 0)
        self->poll_timer = zloop_timer (self->opts.loop, self->opts.poll_ms, 1, s_on_poll, self);
    else if (self->n_in_sched == 0 && self->poll_timer >= 0) {
        zloop_timer_end (self->opts.loop, self->poll_timer);
        self->poll_timer = -1;
    }
}

static void
s_on_cmd_done (void *arg, const jm_cmd_result_t *r)
{
    s_run_t *run = arg;
    jm_sched_t *self = run->owner;
    void *h = zlistx_find (self->runs, run);
    if (h)
        zlistx_detach (self->runs, h);
    jm_debug ("%s: %s: exit %d%s in %.3f s", self->d->name, run->desc, r->status,
              r->timed_out ? " (timed out)" : "", r->secs);
    switch (run->kind) {
    case S_RUN_SUBMIT:
        s_submit_done (self, run, r);
        break;
    case S_RUN_QUERY:
        s_query_done (self, run, r);
        s_final_start (self);
        break;
    case S_RUN_FINAL:
        s_final_done (self, run, r);
        s_final_start (self);
        break;
    case S_RUN_CANCEL:
        s_cancel_done (self, run, r);
        break;
    }
    s_run_free (run);
    s_deliver (self);
}

/* -------------------------------------------------------------------------
   The backend */

/* Is prog an executable file on PATH (or a path to one)? */
static bool
s_on_path (const char *prog)
{
    if (strchr (prog, '/'))
        return access (prog, X_OK) == 0;
    const char *path = getenv ("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    const char *p = path;
    for (;;) {
        const char *colon = strchr (p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen (p);
        char full[PATH_MAX];
        snprintf (full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", prog);
        struct stat st;
        if (stat (full, &st) == 0 && S_ISREG (st.st_mode) && access (full, X_OK) == 0)
            return true;
        if (!colon)
            return false;
        p = colon + 1;
    }
}

jm_sched_t *
jm_batch_create (const jm_batch_dialect_t *dialect, const jm_sched_opts_t *opts, char *err,
                 size_t errlen)
{
    assert (dialect && dialect->name && dialect->submit_prog && dialect->header &&
            dialect->submit_argv && dialect->parse_submit && dialect->query_argv &&
            dialect->parse_query && dialect->cancel_prog);
    assert (!dialect->array_index_var || dialect->element_id);
    assert (!dialect->final_argv || dialect->parse_final);
    if (!opts || !opts->loop || !opts->event) {
        jm_err (err, errlen, "%s scheduler: no event loop or event callback", dialect->name);
        return NULL;
    }
    if (!s_on_path (dialect->submit_prog)) {
        const char *path = getenv ("PATH");
        jm_err (err, errlen,
                "cannot use the %s scheduler: '%s' is not on PATH (%s); run the agent on a "
                "host where %s works, or fix PATH",
                dialect->name, dialect->submit_prog, path ? path : "PATH not set",
                dialect->submit_prog);
        return NULL;
    }
    jm_sched_t *self = s_xalloc (calloc (1, sizeof *self));
    self->d = dialect;
    self->opts = *opts;
    if (!self->opts.poll_ms)
        self->opts.poll_ms = 10000;
    if (!self->opts.flush_ms)
        self->opts.flush_ms = 200;
    if (!self->opts.retry_ms)
        self->opts.retry_ms = 10000;
    if (!self->opts.submit_burst)
        self->opts.submit_burst = 5;
    self->retry_cur = self->opts.retry_ms;
    self->tokens = self->opts.submit_burst;
    self->tokens_ms = jm_now_ms ();
    struct passwd *pw = getpwuid (getuid ());
    if (pw && pw->pw_name)
        self->user = s_strdup (pw->pw_name);
    else if (getenv ("USER"))
        self->user = s_strdup (getenv ("USER"));
    else
        self->user = s_fmt ("%u", (unsigned)getuid ());
    self->by_id = zhashx_new ();
    self->by_sid = zhashx_new ();
    self->queue = zlistx_new ();
    self->all = zlistx_new ();
    self->runs = zlistx_new ();
    self->cancel_sids = zlistx_new ();
    zlistx_set_destructor (self->cancel_sids, (zlistx_destructor_fn *)zstr_free);
    self->flush_timer = self->refill_timer = self->retry_timer = -1;
    self->poll_timer = self->cancel_timer = self->end_timer = -1;
    return self;
}

void
jm_batch_destroy (jm_sched_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jm_sched_t *self = *self_p;
    *self_p = NULL;
    for (s_run_t *run = zlistx_first (self->runs); run; run = zlistx_next (self->runs)) {
        jm_cmd_cancel (&run->cmd);
        s_run_free (run);
    }
    zlistx_destroy (&self->runs);
    int *timers[] = {&self->flush_timer, &self->refill_timer, &self->retry_timer,
                     &self->poll_timer,  &self->cancel_timer, &self->end_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (*timers[i] >= 0)
            zloop_timer_end (self->opts.loop, *timers[i]);
    size_t n = zhashx_size (self->by_id);
    if (n)
        jm_info ("%s: forgetting %zu job(s) (jobs in the scheduler keep running there)",
                 self->d->name, n);
    for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
        s_job_free (j);
    zhashx_destroy (&self->by_id);
    zhashx_destroy (&self->by_sid);
    zlistx_destroy (&self->queue);
    zlistx_destroy (&self->all);
    zlistx_destroy (&self->cancel_sids);
    for (size_t i = 0; i < self->nout; i++) {
        free (self->out[i].v);
        for (size_t k = 0; k < self->out[i].nstrs; k++)
            free (self->out[i].strs[k]);
        free (self->out[i].strs);
    }
    free (self->out);
    free (self->user);
    free (self);
}

int
jm_batch_submit (jm_sched_t *self, jm_jobscript_t *script, char *err, size_t errlen)
{
    uint64_t id = jm_jobscript_job_id (script);
    const char *name = self->d->name;
    if (self->opts.slots && zhashx_size (self->by_id) >= self->opts.slots)
        return jm_err (err, errlen, "%s job %" PRIu64 ": all %zu slots are busy", name, id,
                       self->opts.slots);
    if (s_job_lookup (self, id))
        return jm_err (err, errlen, "%s job %" PRIu64 ": already submitted", name, id);
    const char *dir = jm_jobscript_job_dir (script);
    const char *wb = jm_jobscript_work_base (script);
    char path[PATH_MAX + 16];
    snprintf (path, sizeof path, "%s/job.sh", dir);
    jm_jobscript_set_tag_files (script, true);
    if (jm_jobscript_write (script, path, err, errlen) != 0)
        return -1;
    /* a fresh events file, no stale tags (a job id used again) */
    snprintf (path, sizeof path, "%s/events", dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return jm_err (err, errlen, "%s job %" PRIu64 ": cannot create '%s': %s", name, id, path,
                       strerror (errno));
    close (fd);
    s_job_t *job = s_xalloc (calloc (1, sizeof *job));
    job->owner = self;
    job->id = id;
    job->key = s_fmt ("%" PRIu64, id);
    job->dir = s_strdup (dir);
    job->work_base = s_strdup (wb ? wb : "");
    const jm_resources_t *res = jm_jobscript_resources (script);
    job->res = res ? jm_resources_dup (res) : jm_resources_new ();
    job->res_json = jm_resources_to_json (job->res);
    if (!job->res_json)
        job->res_json = s_strdup ("");
    job->ntasks = jm_jobscript_ntasks (script);
    job->tasks = s_xalloc (calloc (job->ntasks + 1, sizeof *job->tasks));
    for (size_t i = 0; i < job->ntasks; i++) {
        job->tasks[i].id = jm_jobscript_task_id (script, i);
        snprintf (path, sizeof path, "%s/%" PRIu64 ".exit", dir, job->tasks[i].id);
        unlink (path);
    }
    job->state = S_PENDING;
    zhashx_insert (self->by_id, job->key, job);
    job->all_handle = zlistx_add_end (self->all, job);
    zlistx_add_end (self->queue, job);
    if (self->flush_timer < 0)
        self->flush_timer =
            zloop_timer (self->opts.loop, self->opts.flush_ms, 1, s_on_pump_timer, self);
    return 0;
}

static int
s_on_end_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_sched_t *self = arg;
    self->end_timer = -1;
    size_t n = zhashx_size (self->by_id), k = 0;
    s_job_t **doomed = s_xalloc (calloc (n + 1, sizeof *doomed));
    for (s_job_t *j = zlistx_first (self->all); j; j = zlistx_next (self->all))
        if (j->state == S_DOOMED || (j->state == S_IN_SCHED && j->left && j->cancel_req))
            doomed[k++] = j;
    for (size_t i = 0; i < k; i++) {
        if (doomed[i]->state == S_IN_SCHED) {
            s_read_events (doomed[i]);
            s_read_tags (doomed[i]);
        }
        s_job_end (doomed[i], "cancelled");
    }
    free (doomed);
    s_deliver (self);
    return 0;
}

int
jm_batch_cancel (jm_sched_t *self, uint64_t job_id)
{
    s_job_t *job = s_job_lookup (self, job_id);
    if (!job)
        return -1;
    if (job->cancel_req || job->state == S_DOOMED)
        return 0;
    jm_debug ("%s job %" PRIu64 ": cancel asked (%s)", self->d->name, job_id,
              job->state == S_PENDING ? "not submitted yet"
              : job->sid              ? job->sid
                                      : "submitting");
    switch (job->state) {
    case S_PENDING:
        s_queue_remove (self, job);
        job->state = S_DOOMED;
        if (self->end_timer < 0)
            self->end_timer = zloop_timer (self->opts.loop, 0, 1, s_on_end_timer, self);
        break;
    case S_SUBMITTING: /* decided when the submit command answers */
        job->cancel_req = true;
        break;
    case S_IN_SCHED:
        job->cancel_req = true;
        if (job->left) { /* nothing to cancel in the scheduler: end it */
            if (self->end_timer < 0)
                self->end_timer = zloop_timer (self->opts.loop, 0, 1, s_on_end_timer, self);
        }
        else
            s_cancel_arm (self);
        break;
    case S_DOOMED:
        break;
    }
    return 0;
}

int
jm_batch_withdraw (jm_sched_t *self, uint64_t job_id)
{
    s_job_t *job = s_job_lookup (self, job_id);
    if (!job || job->cancel_req || job->state == S_DOOMED)
        return -1;
    /* as of the last poll; a start seen when the cancel command has
       returned turns the withdrawal into a cancel (s_job_end) */
    if (s_job_started (job))
        return 1;
    jm_debug ("%s job %" PRIu64 ": withdrawing it", self->d->name, job_id);
    job->withdraw = true;
    return jm_batch_cancel (self, job_id);
}

size_t
jm_batch_active (jm_sched_t *self)
{
    return zhashx_size (self->by_id);
}
