/*  jm_cmd.c - scheduler commands run from the zloop without blocking it.

    The child gets its own process group (a wrapper script's children are
    killed with it on timeout), default signal dispositions and an empty
    signal mask.  Its stdout and stderr are non-blocking pipes polled by
    the loop.  The command is over when both pipes are at EOF and the
    child is reaped (waitpid on its pid only): EOF usually comes first, so
    the reap is retried on a short timer; a child that exited while a
    grandchild still holds a pipe open is noticed by a slower watch timer,
    and the pipes get a short grace to drain before the result is given. */
#define _GNU_SOURCE
#include "jm_cmd.h"
#include "jm_log.h"
#include "jm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_OUT_CAP (64u << 20)
#define S_ERR_CAP (1u << 20)
#define S_KILL_AFTER_MS 2000
#define S_REAP_RETRY_MS 5
#define S_WATCH_MS 200
#define S_DRAIN_MS 500

typedef struct {
    int fd; /* -1 after EOF */
    char *buf;
    size_t len, cap, limit;
    bool truncated;
} s_pipe_t;

struct _jm_cmd_t {
    zloop_t *loop;
    char *prog; /* argv[0], for messages */
    pid_t pid;
    s_pipe_t p[2]; /* stdout, stderr */
    bool reaped;
    int status;
    bool timed_out;
    int64_t start_ms;
    int timeout_timer, kill_timer, reap_timer, watch_timer, drain_timer;
    jm_cmd_done_fn *fn;
    void *arg;
    uintptr_t serial; /* the timers' arg (see s_from_timer) */
    jm_cmd_t *next;   /* in s_live */
};

/*  zloop still runs a timer that was ended earlier in the same loop pass
    if it is due, so a timer's arg must not be a pointer that may have been
    freed meanwhile: timers carry the command's serial number, looked up
    among the live commands.  (The agent runs one loop thread.) */
static jm_cmd_t *s_live;
static uintptr_t s_last_serial;

static jm_cmd_t *
s_from_timer (void *arg)
{
    for (jm_cmd_t *c = s_live; c; c = c->next)
        if (c->serial == (uintptr_t)arg)
            return c;
    return NULL;
}

static void *
s_timer_arg (jm_cmd_t *self)
{
    return (void *)self->serial;
}

extern char **environ;

static void s_check (jm_cmd_t *self);

static void
s_timer_stop (jm_cmd_t *self, int *id)
{
    if (*id >= 0)
        zloop_timer_end (self->loop, *id);
    *id = -1;
}

static void
s_pipe_close (jm_cmd_t *self, s_pipe_t *p)
{
    if (p->fd < 0)
        return;
    zmq_pollitem_t item = {NULL, p->fd, ZMQ_POLLIN, 0};
    zloop_poller_end (self->loop, &item);
    close (p->fd);
    p->fd = -1;
}

/* Reads what is there; closes the pipe at EOF or on error. */
static void
s_pipe_read (jm_cmd_t *self, s_pipe_t *p)
{
    char chunk[65536];
    while (p->fd >= 0) {
        ssize_t n = read (p->fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            s_pipe_close (self, p);
            return;
        }
        size_t take = (size_t)n;
        if (p->len + take > p->limit) {
            take = p->limit - p->len;
            p->truncated = true;
        }
        if (take == 0)
            continue;
        if (p->len + take + 1 > p->cap) {
            size_t cap = p->cap ? p->cap : 4096;
            while (cap < p->len + take + 1)
                cap *= 2;
            char *nb = realloc (p->buf, cap);
            if (!nb) {
                p->truncated = true;
                continue;
            }
            p->buf = nb;
            p->cap = cap;
        }
        memcpy (p->buf + p->len, chunk, take);
        p->len += take;
    }
}

static void
s_free (jm_cmd_t *self)
{
    for (jm_cmd_t **pp = &s_live; *pp; pp = &(*pp)->next)
        if (*pp == self) {
            *pp = self->next;
            break;
        }
    s_timer_stop (self, &self->timeout_timer);
    s_timer_stop (self, &self->kill_timer);
    s_timer_stop (self, &self->reap_timer);
    s_timer_stop (self, &self->watch_timer);
    s_timer_stop (self, &self->drain_timer);
    for (int i = 0; i < 2; i++) {
        s_pipe_close (self, &self->p[i]);
        free (self->p[i].buf);
    }
    free (self->prog);
    free (self);
}

static void
s_finish (jm_cmd_t *self)
{
    s_timer_stop (self, &self->timeout_timer);
    s_timer_stop (self, &self->kill_timer);
    s_timer_stop (self, &self->reap_timer);
    s_timer_stop (self, &self->watch_timer);
    s_timer_stop (self, &self->drain_timer);
    for (int i = 0; i < 2; i++)
        s_pipe_close (self, &self->p[i]);
    if (self->p[0].truncated)
        jm_warn ("%s: standard output cut at %u bytes", self->prog, (unsigned)S_OUT_CAP);
    jm_cmd_result_t r = {0};
    r.status = self->status;
    r.timed_out = self->timed_out;
    r.out = self->p[0].buf ? self->p[0].buf : "";
    r.out_len = self->p[0].len;
    r.err = self->p[1].buf ? self->p[1].buf : "";
    r.err_len = self->p[1].len;
    if (self->p[0].buf)
        self->p[0].buf[self->p[0].len] = 0;
    if (self->p[1].buf)
        self->p[1].buf[self->p[1].len] = 0;
    r.secs = (double)(jm_now_ms () - self->start_ms) / 1000.0;
    self->fn (self->arg, &r);
    s_free (self);
}

static bool
s_try_reap (jm_cmd_t *self)
{
    if (self->reaped)
        return true;
    int st = 0;
    pid_t r = jm_reap_group (self->pid, 0, &st);
    if (r == 0)
        return false;
    self->reaped = true;
    if (r < 0) {
        jm_warn ("%s: waitpid %d: %s", self->prog, (int)self->pid, strerror (errno));
        self->status = 255;
    }
    else if (WIFEXITED (st))
        self->status = WEXITSTATUS (st);
    else if (WIFSIGNALED (st))
        self->status = 128 + WTERMSIG (st);
    else
        self->status = 255;
    return true;
}

static int
s_on_drain (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t *self = s_from_timer (arg);
    if (!self)
        return 0;
    self->drain_timer = -1;
    for (int i = 0; i < 2; i++) {
        s_pipe_read (self, &self->p[i]);
        s_pipe_close (self, &self->p[i]);
    }
    s_finish (self);
    return 0;
}

static int
s_on_reap_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t *self = s_from_timer (arg);
    if (self) {
        self->reap_timer = -1; /* a one-shot, gone after this call */
        s_check (self);
    }
    return 0;
}

/* Finishes the command if it is over, or arranges to look again. */
static void
s_check (jm_cmd_t *self)
{
    bool eof = self->p[0].fd < 0 && self->p[1].fd < 0;
    if (!s_try_reap (self)) {
        if (eof && self->reap_timer < 0)
            self->reap_timer =
                zloop_timer (self->loop, S_REAP_RETRY_MS, 1, s_on_reap_timer, s_timer_arg (self));
        return;
    }
    if (eof) {
        s_finish (self);
        return;
    }
    /* Reaped, but a grandchild holds a pipe: take what comes, briefly. */
    s_timer_stop (self, &self->watch_timer);
    s_timer_stop (self, &self->reap_timer);
    if (self->drain_timer < 0)
        self->drain_timer = zloop_timer (self->loop, S_DRAIN_MS, 1, s_on_drain, s_timer_arg (self));
}

static int
s_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    jm_cmd_t *self = arg;
    s_pipe_t *p = item->fd == self->p[0].fd ? &self->p[0] : &self->p[1];
    s_pipe_read (self, p);
    if (p->fd < 0)
        s_check (self);
    return 0;
}

static int
s_on_kill (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t *self = s_from_timer (arg);
    if (!self)
        return 0;
    self->kill_timer = -1;
    if (!s_try_reap (self)) {
        kill (-self->pid, SIGKILL);
        kill (self->pid, SIGKILL);
    }
    s_check (self);
    return 0;
}

static int
s_on_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t *self = s_from_timer (arg);
    if (!self)
        return 0;
    self->timeout_timer = -1;
    if (s_try_reap (self)) {
        /* Exited, only its pipes linger: stop waiting for them. */
        if (self->drain_timer < 0)
            self->drain_timer = zloop_timer (self->loop, 1, 1, s_on_drain, s_timer_arg (self));
        return 0;
    }
    self->timed_out = true;
    jm_warn ("%s (pid %d) did not finish in time: terminating it", self->prog, (int)self->pid);
    kill (-self->pid, SIGTERM);
    kill (self->pid, SIGTERM);
    self->kill_timer = zloop_timer (self->loop, S_KILL_AFTER_MS, 1, s_on_kill, s_timer_arg (self));
    return 0;
}

static int
s_on_watch (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop, (void)timer_id;
    jm_cmd_t *self = s_from_timer (arg);
    if (!self)
        return 0;
    self->watch_timer = -1; /* a one-shot, gone after this call */
    if (s_try_reap (self))
        s_check (self);
    else
        self->watch_timer = zloop_timer (self->loop, S_WATCH_MS, 1, s_on_watch, s_timer_arg (self));
    return 0;
}

jm_cmd_t *
jm_cmd_start (zloop_t *loop, char *const argv[], const char *stdin_path, unsigned timeout_ms,
              jm_cmd_done_fn *fn, void *arg, char *err, size_t errlen)
{
    if (!loop || !argv || !argv[0] || !fn) {
        jm_err (err, errlen, "jm_cmd_start: no loop, command or callback");
        return NULL;
    }
    const char *prog = argv[0];
    const char *in = stdin_path ? stdin_path : "/dev/null";
    int infd = open (in, O_RDONLY | O_CLOEXEC);
    if (infd < 0) {
        jm_err (err, errlen, "cannot run %s: cannot open '%s' for its input: %s", prog, in,
                strerror (errno));
        return NULL;
    }
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2 (po, O_CLOEXEC) != 0 || pipe2 (pe, O_CLOEXEC) != 0) {
        int e = errno;
        close (infd);
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close (po[i]);
            if (pe[i] >= 0)
                close (pe[i]);
        }
        jm_err (err, errlen, "cannot run %s: cannot create a pipe: %s", prog, strerror (e));
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, infd, 0);
    posix_spawn_file_actions_adddup2 (&fa, po[1], 1);
    posix_spawn_file_actions_adddup2 (&fa, pe[1], 2);
    jm_cmd_spawnattr_init (&at);
    pid_t pid;
    int rc = posix_spawnp (&pid, prog, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&at);
    close (infd);
    close (po[1]);
    close (pe[1]);
    if (rc != 0) {
        close (po[0]);
        close (pe[0]);
        if (rc == ENOENT && !strchr (prog, '/'))
            jm_err (err, errlen, "cannot run %s: not found on PATH (%s)", prog,
                    getenv ("PATH") ? getenv ("PATH") : "PATH not set");
        else
            jm_err (err, errlen, "cannot run %s: %s", prog, strerror (rc));
        return NULL;
    }
    jm_cmd_t *self = calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->loop = loop;
    self->prog = strdup (prog);
    self->pid = pid;
    self->fn = fn;
    self->arg = arg;
    self->start_ms = jm_now_ms ();
    self->serial = ++s_last_serial;
    self->next = s_live;
    s_live = self;
    self->timeout_timer = self->kill_timer = self->reap_timer = -1;
    self->watch_timer = self->drain_timer = -1;
    self->p[0] = (s_pipe_t){.fd = po[0], .limit = S_OUT_CAP};
    self->p[1] = (s_pipe_t){.fd = pe[0], .limit = S_ERR_CAP};
    for (int i = 0; i < 2; i++) {
        int fd = self->p[i].fd;
        fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (zloop_poller (loop, &item, s_on_readable, self) == 0)
            /* a hang-up without data comes as POLLERR: still read (EOF) */
            zloop_poller_set_tolerant (loop, &item);
        else {
            jm_err (err, errlen, "cannot run %s: cannot poll its output", prog);
            kill (-pid, SIGKILL);
            kill (pid, SIGKILL);
            while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
                ;
            s_free (self);
            return NULL;
        }
    }
    if (timeout_ms > 0)
        self->timeout_timer = zloop_timer (loop, timeout_ms, 1, s_on_timeout, s_timer_arg (self));
    self->watch_timer = zloop_timer (loop, S_WATCH_MS, 1, s_on_watch, s_timer_arg (self));
    return self;
}

void
jm_cmd_cancel (jm_cmd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jm_cmd_t *self = *self_p;
    *self_p = NULL;
    if (!self->reaped) {
        kill (-self->pid, SIGKILL);
        kill (self->pid, SIGKILL);
        int st;
        while (waitpid (self->pid, &st, 0) < 0 && errno == EINTR)
            ;
        self->reaped = true;
    }
    s_free (self);
}

/* A word that /bin/sh reads as itself. */
static bool
s_plain_word (const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./=:,@%+-",
                     *p))
            return false;
    return true;
}

void
jm_cmd_spawnattr_init (posix_spawnattr_t *at)
{
    posix_spawnattr_init (at);
    sigset_t def, none;
    sigemptyset (&none);
    sigemptyset (&def);
    sigaddset (&def, SIGINT);
    sigaddset (&def, SIGTERM);
    sigaddset (&def, SIGPIPE);
    sigaddset (&def, SIGCHLD);
    sigaddset (&def, SIGHUP);
    sigaddset (&def, SIGQUIT);
    posix_spawnattr_setsigdefault (at, &def);
    posix_spawnattr_setsigmask (at, &none);
    posix_spawnattr_setpgroup (at, 0);
    posix_spawnattr_setflags (at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETPGROUP);
}

char *
jm_cmd_describe (char *const argv[])
{
    size_t cap = 256, len = 0;
    char *out = malloc (cap);
    if (!out)
        abort ();
    out[0] = 0;
    for (size_t i = 0; argv && argv[i]; i++) {
        char *q = s_plain_word (argv[i]) ? strdup (argv[i]) : jm_sh_quote (argv[i]);
        size_t n = strlen (q);
        if (len + n + 2 > cap) {
            while (len + n + 2 > cap)
                cap *= 2;
            out = realloc (out, cap);
            if (!out)
                abort ();
        }
        if (i > 0)
            out[len++] = ' ';
        memcpy (out + len, q, n + 1);
        len += n;
        free (q);
    }
    return out;
}

static void
s_argv_push (jm_argv_t *self, char *s)
{
    if (self->n + 2 > self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->v = realloc (self->v, self->cap * sizeof *self->v);
        if (!self->v)
            abort ();
    }
    self->v[self->n++] = s;
    self->v[self->n] = NULL;
}

void
jm_argv_add (jm_argv_t *self, const char *s)
{
    char *d = strdup (s ? s : "");
    if (!d)
        abort ();
    s_argv_push (self, d);
}

void
jm_argv_addf (jm_argv_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        abort ();
    va_end (ap);
    s_argv_push (self, s);
}

void
jm_argv_clear (jm_argv_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        free (self->v[i]);
    free (self->v);
    self->v = NULL;
    self->n = self->cap = 0;
}
