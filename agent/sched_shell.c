/*  sched_shell.c - the Shell backend: every job is 'bash job.sh', a child
    of the agent in its own process group.

    The script's stdout is a pipe the agent's zloop polls; its "S"/"E" lines
    become task events as they arrive (no polling of per-task state).  End of
    job = EOF on the pipe + waitpid.  Cancel = SIGTERM to the job's process
    group, SIGKILL a few seconds later, and to what is left of the group
    when the job script ends (while it is still an unreaped zombie, so that
    the group's number cannot have been given to anybody else). */
#define _GNU_SOURCE
#include "jm_log.h"
#include "jm_sched.h"
#include "jm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_KILL_AFTER_MS 3000
#define S_REAP_RETRY_MS 5
#define S_LINE_MAX 4096

typedef struct _s_job_t s_job_t;

struct _jm_sched_t {
    jm_sched_opts_t opts;
    zlistx_t *jobs; /* s_job_t *, not owned */
};

struct _s_job_t {
    jm_sched_t *owner;
    uint64_t job_id;
    pid_t pid; /* also the process group id */
    int fd;    /* read end of the stdout pipe, -1 after EOF */
    char line[S_LINE_MAX];
    size_t len;
    bool overlong; /* discarding the rest of an overlong line */
    bool cancelled;
    int reap_timer; /* -1 or zloop timer id */
    int kill_timer; /* -1 or zloop timer id: SIGKILL after a cancel's SIGTERM */
};

/* --------------------------------------------------------------------- */

typedef struct {
    jm_sched_ev_t *v;
    size_t n, cap;
} s_evs_t;

static void
s_evs_push (s_evs_t *evs, const jm_sched_ev_t *ev)
{
    if (evs->n == evs->cap) {
        evs->cap = evs->cap ? evs->cap * 2 : 64;
        evs->v = realloc (evs->v, evs->cap * sizeof *evs->v);
    }
    evs->v[evs->n++] = *ev;
}

static void
s_parse_line (s_job_t *job, const char *line, s_evs_t *evs)
{
    jm_sched_ev_t ev = {.job_id = job->job_id, .reason = ""};
    char *end;
    if (line[0] == 'S' && line[1] == ' ') {
        errno = 0;
        ev.task_id = strtoull (line + 2, &end, 10);
        if (errno == 0 && end != line + 2 && *end == 0) {
            ev.type = JM_SCHED_TASK_START;
            s_evs_push (evs, &ev);
            return;
        }
    }
    else if (line[0] == 'E' && line[1] == ' ') {
        errno = 0;
        ev.task_id = strtoull (line + 2, &end, 10);
        if (errno == 0 && end != line + 2 && *end == ' ') {
            char *p = end + 1;
            long code = strtol (p, &end, 10);
            if (end != p && *end == 0) {
                ev.type = JM_SCHED_TASK_END;
                ev.exit_code = (int)code;
                s_evs_push (evs, &ev);
                return;
            }
        }
    }
    jm_warn ("shell job %" PRIu64 ": ignoring unexpected output line '%.80s'", job->job_id, line);
}

static void
s_job_free (s_job_t *job)
{
    zloop_t *loop = job->owner->opts.loop;
    if (job->fd >= 0) {
        zmq_pollitem_t item = {NULL, job->fd, ZMQ_POLLIN, 0};
        zloop_poller_end (loop, &item);
        close (job->fd);
    }
    if (job->reap_timer >= 0)
        zloop_timer_end (loop, job->reap_timer);
    if (job->kill_timer >= 0)
        zloop_timer_end (loop, job->kill_timer);
    free (job);
}

static void
s_job_remove (s_job_t *job)
{
    void *h = zlistx_find (job->owner->jobs, job);
    if (h)
        zlistx_delete (job->owner->jobs, h);
}

/* Job over (reaped with status): remove it, then tell the agent. */
static void
s_job_ended (s_job_t *job, int status)
{
    jm_sched_t *self = job->owner;
    jm_sched_ev_t ev = {.type = JM_SCHED_JOB_END, .job_id = job->job_id};
    if (WIFEXITED (status)) {
        ev.job_exit = WEXITSTATUS (status);
        ev.job_signal = 0;
    }
    else {
        ev.job_exit = -1;
        ev.job_signal = WIFSIGNALED (status) ? WTERMSIG (status) : 0;
    }
    ev.reason = job->cancelled ? "cancelled" : "";
    s_job_remove (job);
    s_job_free (job);
    self->opts.event (self->opts.arg, &ev, 1);
}

static int
s_try_reap (s_job_t *job)
{
    int status = 0;
    /* the stragglers of a cancelled job go with it */
    pid_t r = jm_reap_group (job->pid, job->cancelled ? SIGKILL : 0, &status);
    if (r == 0)
        return 0;
    if (r < 0) {
        jm_warn ("shell job %" PRIu64 ": waitpid %d: %s", job->job_id, (int)job->pid,
                 strerror (errno));
        status = 0xff00; /* report as exit status 255 */
    }
    s_job_ended (job, status);
    return 1;
}

/* A one-shot, re-armed while the child lives: ending a repeating timer
   from its own handler (s_job_free) corrupts CZMQ 4.2.1's timer list once
   a loop has been started more than once (see jm_cmd.c). */
static int
s_on_reap_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)timer_id;
    s_job_t *job = arg;
    job->reap_timer = -1;      /* this one-shot is over */
    if (s_try_reap (job) == 0) /* if reaped, the job is gone */
        job->reap_timer = zloop_timer (loop, S_REAP_RETRY_MS, 1, s_on_reap_timer, job);
    return 0;
}

static int
s_on_kill_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_job_t *job = arg;
    job->kill_timer = -1;
    /* The job is not reaped yet (that ends this timer), so its group's
       number is still ours: this reaches only the job's processes. */
    kill (-job->pid, SIGKILL);
    return 0;
}

static int
s_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)item;
    s_job_t *job = arg;
    jm_sched_t *self = job->owner;
    s_evs_t evs = {0};
    bool eof = false;
    char buf[65536];
    for (;;) {
        ssize_t n = read (job->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0)
                jm_warn ("shell job %" PRIu64 ": reading its output: %s", job->job_id,
                         strerror (errno));
            eof = true;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                if (!job->overlong) {
                    job->line[job->len] = 0;
                    s_parse_line (job, job->line, &evs);
                }
                job->len = 0;
                job->overlong = false;
            }
            else if (job->len + 1 < sizeof job->line)
                job->line[job->len++] = c;
            else
                job->overlong = true;
        }
    }
    if (eof && job->len > 0 && !job->overlong) {
        job->line[job->len] = 0;
        s_parse_line (job, job->line, &evs);
        job->len = 0;
    }
    if (eof) {
        zmq_pollitem_t pi = {NULL, job->fd, ZMQ_POLLIN, 0};
        zloop_poller_end (loop, &pi);
        close (job->fd);
        job->fd = -1;
    }
    if (evs.n)
        self->opts.event (self->opts.arg, evs.v, evs.n);
    free (evs.v);
    /* The callback cannot have freed the job (only JOB_END does). */
    if (eof && s_try_reap (job) == 0)
        job->reap_timer = zloop_timer (loop, S_REAP_RETRY_MS, 1, s_on_reap_timer, job);
    return 0;
}

/* --------------------------------------------------------------------- */

static jm_sched_t *
s_create (const jm_sched_opts_t *opts, char *err, size_t errlen)
{
    if (!opts->loop || !opts->event) {
        jm_err (err, errlen, "shell scheduler: no event loop or event callback");
        return NULL;
    }
    jm_sched_t *self = calloc (1, sizeof *self);
    self->opts = *opts;
    if (self->opts.slots == 0)
        self->opts.slots = 1;
    self->jobs = zlistx_new ();
    return self;
}

static void
s_destroy (jm_sched_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jm_sched_t *self = *self_p;
    size_t n = zlistx_size (self->jobs);
    if (n)
        jm_info ("stopping %zu running shell job(s)", n);
    for (s_job_t *j = zlistx_first (self->jobs); j; j = zlistx_next (self->jobs))
        kill (-j->pid, SIGTERM);
    /* Give them up to 2 s to go, then SIGKILL. */
    int64_t deadline = jm_now_ms () + 2000;
    while (zlistx_size (self->jobs) > 0) {
        for (s_job_t *j = zlistx_first (self->jobs); j; j = zlistx_next (self->jobs)) {
            int status;
            pid_t r = jm_reap_group (j->pid, SIGKILL, &status); /* and its stragglers */
            if (r == j->pid || (r < 0 && errno == ECHILD)) {
                s_job_remove (j);
                s_job_free (j);
                break;
            }
        }
        if (zlistx_size (self->jobs) == 0)
            break;
        if (jm_now_ms () >= deadline) {
            for (s_job_t *j = zlistx_first (self->jobs); j; j = zlistx_next (self->jobs))
                kill (-j->pid, SIGKILL);
            deadline = INT64_MAX;
        }
        usleep (10000);
    }
    zlistx_destroy (&self->jobs);
    free (self);
    *self_p = NULL;
}

static int
s_submit (jm_sched_t *self, jm_jobscript_t *script, char *err, size_t errlen)
{
    uint64_t job_id = jm_jobscript_job_id (script);
    if (zlistx_size (self->jobs) >= self->opts.slots)
        return jm_err (err, errlen, "shell job %" PRIu64 ": all %zu slots are busy", job_id,
                       self->opts.slots);
    const char *dir = jm_jobscript_job_dir (script);
    char path[4200], errpath[4200];
    snprintf (path, sizeof path, "%s/job.sh", dir);
    snprintf (errpath, sizeof errpath, "%s/job.err", dir);
    /* exit codes arrive as "E" lines on the pipe: no tag file per task */
    jm_jobscript_set_tag_files (script, false);
    if (jm_jobscript_write (script, path, err, errlen) != 0)
        return -1;
    int errfd = open (errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (errfd < 0)
        return jm_err (err, errlen, "shell job %" PRIu64 ": cannot create '%s': %s", job_id,
                       errpath, strerror (errno));
    int nullfd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    int pfd[2];
    if (nullfd < 0 || pipe2 (pfd, O_CLOEXEC) != 0) {
        int e = errno;
        close (errfd);
        if (nullfd >= 0)
            close (nullfd);
        return jm_err (err, errlen, "shell job %" PRIu64 ": cannot create a pipe: %s", job_id,
                       strerror (e));
    }
    /* Signals stay blocked from fork until the child has reset CZMQ's
       SIGINT/SIGTERM handlers, so an early kill still kills the child. */
    sigset_t all, saved;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &saved);
    pid_t pid = fork ();
    if (pid != 0)
        pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        int e = errno;
        close (errfd);
        close (nullfd);
        close (pfd[0]);
        close (pfd[1]);
        return jm_err (err, errlen, "shell job %" PRIu64 ": cannot fork: %s", job_id, strerror (e));
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only. */
        setpgid (0, 0);
        signal (SIGPIPE, SIG_DFL);
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        signal (SIGCHLD, SIG_DFL);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        dup2 (nullfd, 0);
        dup2 (pfd[1], 1);
        dup2 (errfd, 2);
        execl ("/bin/bash", "bash", path, (char *)NULL);
        _exit (127);
    }
    setpgid (pid, pid); /* both sides, so kill(-pid) works at once */
    close (errfd);
    close (nullfd);
    close (pfd[1]);
    fcntl (pfd[0], F_SETFL, fcntl (pfd[0], F_GETFL) | O_NONBLOCK);

    s_job_t *job = calloc (1, sizeof *job);
    job->owner = self;
    job->job_id = job_id;
    job->pid = pid;
    job->fd = pfd[0];
    job->reap_timer = job->kill_timer = -1;
    zmq_pollitem_t item = {NULL, job->fd, ZMQ_POLLIN, 0};
    /* Tolerant: a hang-up without data comes as ZMQ_POLLERR, and must reach
       s_on_readable (EOF) instead of silently dropping the poller. */
    int prc = zloop_poller (self->opts.loop, &item, s_on_readable, job);
    if (prc == 0)
        zloop_poller_set_tolerant (self->opts.loop, &item);
    if (prc != 0) {
        kill (-pid, SIGKILL);
        waitpid (pid, NULL, 0);
        close (job->fd);
        free (job);
        return jm_err (err, errlen, "shell job %" PRIu64 ": cannot poll its output", job_id);
    }
    zlistx_add_end (self->jobs, job);
    jm_debug ("shell job %" PRIu64 ": started pid %d", job_id, (int)pid);
    return 0;
}

static int
s_cancel (jm_sched_t *self, uint64_t job_id)
{
    for (s_job_t *j = zlistx_first (self->jobs); j; j = zlistx_next (self->jobs)) {
        if (j->job_id != job_id)
            continue;
        if (!j->cancelled) {
            j->cancelled = true;
            kill (-j->pid, SIGTERM);
            j->kill_timer = zloop_timer (self->opts.loop, S_KILL_AFTER_MS, 1, s_on_kill_timer, j);
        }
        return 0;
    }
    return -1;
}

/* A submitted shell job runs at once: its process is its start. */
static int
s_withdraw (jm_sched_t *self, uint64_t job_id)
{
    for (s_job_t *j = zlistx_first (self->jobs); j; j = zlistx_next (self->jobs))
        if (j->job_id == job_id)
            return j->cancelled ? -1 : 1;
    return -1;
}

static size_t
s_active (jm_sched_t *self)
{
    return zlistx_size (self->jobs);
}

const jm_sched_backend_t jm_sched_shell = {
    .name = "shell",
    .create = s_create,
    .destroy = s_destroy,
    .submit = s_submit,
    .cancel = s_cancel,
    .active = s_active,
    .withdraw = s_withdraw,
};
