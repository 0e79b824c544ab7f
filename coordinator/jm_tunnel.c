/*  jm_tunnel.c - reverse ssh tunnels kept up from the coordinator's loop.

    Each tunnel is a small state machine:

      IDLE --start--> STARTING --alive 2 s--> UP
      STARTING/UP --ssh exits--> DOWN --back-off--> STARTING
      (a spawn that fails goes straight to DOWN)

    One timer per tunnel at a time, always a one-shot re-armed by its
    handler (CZMQ 4.2.1 misbehaves when a repeating timer is ended from its
    own handler): the watch timer while ssh runs (reaps by PID, notices
    "up"), the retry timer while it is down.  zloop may still run a timer
    or poller that was ended earlier in the same pass, so their arg is the
    tunnel's serial number, looked up among the live tunnels, and a timer
    whose id is not the tunnel's current one is ignored. */
#define _GNU_SOURCE
#include "jm_tunnel.h"
#include "jm_cmd.h"
#include "jm_log.h"
#include "jm_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_UP_AFTER_MS 2000
#define S_WATCH_MS 200
#define S_BACKOFF_MIN_MS 1000
#define S_BACKOFF_MAX_MS 60000
#define S_STABLE_MS 60000 /* up this long: the next restart is quick again */
#define S_KILL_GRACE_MS 1000
#define S_ALIVE_INTERVAL_S 10
#define S_LINE_MAX 512

typedef enum { S_IDLE, S_STARTING, S_UP, S_DOWN } s_state_t;

typedef struct s_tunnel {
    jm_tunnels_t *owner;
    uintptr_t serial;
    char *entry;  /* first entry's name */
    char **sites; /* sites of the entries it serves (>= 1) */
    size_t nsites;
    char *host; /* hostname, for messages */
    jm_argv_t argv;
    char *describe; /* argv for logs */
    s_state_t state;
    pid_t pid;             /* 0 when none runs */
    int errfd;             /* read end of ssh's stderr, -1 when closed */
    char part[S_LINE_MAX]; /* the line being read */
    size_t partlen;
    char last[S_LINE_MAX];      /* ssh's last non-empty stderr line this run */
    char down[S_LINE_MAX + 64]; /* why it is down */
    int64_t started_ms, up_ms, retry_at_ms;
    time_t up_since;
    int64_t backoff_ms;
    int timer; /* -1 when none */
    char text[S_LINE_MAX + 160];
    struct s_tunnel *next; /* in s_live */
} s_tunnel_t;

struct _jm_tunnels_t {
    zloop_t *loop;
    s_tunnel_t **t;
    size_t n;
    bool started;
};

static s_tunnel_t *s_live;
static uintptr_t s_last_serial;

extern char **environ;

static s_tunnel_t *
s_from_arg (void *arg)
{
    for (s_tunnel_t *t = s_live; t; t = t->next)
        if (t->serial == (uintptr_t)arg)
            return t;
    return NULL;
}

static void *
s_arg (s_tunnel_t *t)
{
    return (void *)t->serial;
}

static void s_spawn (s_tunnel_t *t);

static void
s_timer_stop (s_tunnel_t *t)
{
    if (t->timer >= 0)
        zloop_timer_end (t->owner->loop, t->timer);
    t->timer = -1;
}

static void
s_timer_arm (s_tunnel_t *t, int64_t ms, zloop_timer_fn *fn)
{
    s_timer_stop (t);
    t->timer = zloop_timer (t->owner->loop, ms > 0 ? (size_t)ms : 1, 1, fn, s_arg (t));
}

/* "~" and "~/x" below $HOME, "~user/x" below user's home. malloc'ed. */
static char *
s_expand_tilde (const char *path)
{
    char *out = NULL;
    if (path[0] != '~')
        out = strdup (path);
    else {
        const char *rest = strchr (path, '/');
        size_t ulen = rest ? (size_t)(rest - path - 1) : strlen (path + 1);
        const char *home = NULL;
        if (ulen == 0) {
            home = getenv ("HOME");
            if (!home || !*home) {
                struct passwd *pw = getpwuid (getuid ());
                home = pw ? pw->pw_dir : NULL;
            }
        }
        else {
            char user[256];
            if (ulen < sizeof user) {
                memcpy (user, path + 1, ulen);
                user[ulen] = 0;
                struct passwd *pw = getpwnam (user);
                home = pw ? pw->pw_dir : NULL;
            }
        }
        if (!home)
            out = strdup (path);
        else if (asprintf (&out, "%s%s", home, rest ? rest : "") < 0)
            out = NULL;
    }
    assert (out);
    return out;
}

static void
s_close_pipe (s_tunnel_t *t)
{
    if (t->errfd < 0)
        return;
    zmq_pollitem_t item = {NULL, t->errfd, ZMQ_POLLIN, 0};
    zloop_poller_end (t->owner->loop, &item);
    close (t->errfd);
    t->errfd = -1;
}

static void
s_line_done (s_tunnel_t *t)
{
    t->part[t->partlen] = 0;
    size_t n = t->partlen;
    while (n > 0 && (t->part[n - 1] == '\r' || t->part[n - 1] == ' '))
        t->part[--n] = 0;
    t->partlen = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) /* ssh's text goes into logs and replies */
        if ((unsigned char)t->part[i] < 0x20)
            t->part[i] = ' ';
    memcpy (t->last, t->part, n + 1);
    jm_info ("tunnel to %s (site %s), ssh said: %s", t->host, t->sites[0], t->last);
}

/* Reads what ssh wrote; closes the pipe at EOF. */
static void
s_read_pipe (s_tunnel_t *t)
{
    char buf[4096];
    while (t->errfd >= 0) {
        ssize_t n = read (t->errfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (t->partlen)
                s_line_done (t);
            s_close_pipe (t);
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n')
                s_line_done (t);
            else if (t->partlen < S_LINE_MAX - 1)
                t->part[t->partlen++] = buf[i];
        }
    }
}

static int
s_on_retry (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    s_tunnel_t *t = s_from_arg (arg);
    if (!t || t->timer != timer_id)
        return 0;
    t->timer = -1;
    if (t->state == S_DOWN) {
        jm_info ("tunnel to %s (site %s): restarting ssh", t->host, t->sites[0]);
        s_spawn (t);
    }
    return 0;
}

/* ssh is gone (reaped, or never started): DOWN, restart after back-off. */
static void
s_went_down (s_tunnel_t *t, const char *why)
{
    int64_t now = jm_now_ms ();
    if (t->state == S_UP && now - t->up_ms >= S_STABLE_MS)
        t->backoff_ms = S_BACKOFF_MIN_MS;
    int64_t delay = t->backoff_ms;
    t->backoff_ms = t->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : t->backoff_ms * 2;
    snprintf (t->down, sizeof t->down, "%s", why);
    t->state = S_DOWN;
    t->pid = 0;
    t->retry_at_ms = now + delay;
    jm_warn ("tunnel to %s (site %s, entry %s) down: %s; restarting in %lld s", t->host,
             t->sites[0], t->entry, why, (long long)((delay + 999) / 1000));
    s_timer_arm (t, delay, s_on_retry);
}

/* True if ssh was reaped (then the tunnel is DOWN). */
static bool
s_try_reap (s_tunnel_t *t)
{
    if (t->pid <= 0)
        return false;
    int st = 0;
    /* what it leaves behind in its group (a ProxyCommand) goes too */
    pid_t r = jm_reap_group (t->pid, SIGTERM, &st);
    if (r == 0)
        return false;
    char how[64];
    if (r < 0)
        snprintf (how, sizeof how, "lost (waitpid: %s)", strerror (errno));
    else if (WIFEXITED (st))
        snprintf (how, sizeof how, "exited with status %d", WEXITSTATUS (st));
    else if (WIFSIGNALED (st))
        snprintf (how, sizeof how, "killed by signal %d", WTERMSIG (st));
    else
        snprintf (how, sizeof how, "ended (status 0x%x)", (unsigned)st);
    /* take what it wrote last, then forget the pipe (a ProxyCommand
       still holding it open must not keep us waiting) */
    s_read_pipe (t);
    if (t->partlen)
        s_line_done (t);
    s_close_pipe (t);
    jm_info ("tunnel to %s (site %s): ssh (pid %d) %s", t->host, t->sites[0], (int)t->pid, how);
    char why[S_LINE_MAX + 64];
    if (r > 0 && WIFSIGNALED (st))
        snprintf (why, sizeof why, "ssh %s", how);
    else if (t->last[0])
        snprintf (why, sizeof why, "%s", t->last);
    else
        snprintf (why, sizeof why, "ssh %s", how);
    s_went_down (t, why);
    return true;
}

static int
s_on_watch (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    s_tunnel_t *t = s_from_arg (arg);
    if (!t || t->timer != timer_id)
        return 0;
    t->timer = -1; /* one-shot: gone after this call */
    if (s_try_reap (t))
        return 0;
    int64_t now = jm_now_ms ();
    if (t->state == S_STARTING && now - t->started_ms >= S_UP_AFTER_MS) {
        t->state = S_UP;
        t->up_ms = now;
        t->up_since = time (NULL);
        jm_info ("tunnel to %s (site %s) up: ssh pid %d", t->host, t->sites[0], (int)t->pid);
    }
    s_timer_arm (t, S_WATCH_MS, s_on_watch);
    return 0;
}

static int
s_on_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    s_tunnel_t *t = s_from_arg (arg);
    if (!t || t->errfd < 0 || item->fd != t->errfd)
        return 0;
    s_read_pipe (t);
    if (t->errfd < 0 && t->pid > 0)
        s_timer_arm (t, 5, s_on_watch); /* EOF: ssh is about to exit */
    return 0;
}

static void
s_spawn (s_tunnel_t *t)
{
    zloop_t *loop = t->owner->loop;
    t->last[0] = 0;
    t->partlen = 0;
    int pe[2] = {-1, -1};
    if (pipe2 (pe, O_CLOEXEC) != 0) {
        char why[128];
        snprintf (why, sizeof why, "cannot create a pipe for ssh: %s", strerror (errno));
        s_went_down (t, why);
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2 (&fa, pe[1], 2);
    jm_cmd_spawnattr_init (&at);
    pid_t pid = 0;
    int rc = posix_spawnp (&pid, t->argv.v[0], &fa, &at, t->argv.v, environ);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&at);
    close (pe[1]);
    if (rc != 0) {
        close (pe[0]);
        char why[S_LINE_MAX];
        if (rc == ENOENT && !strchr (t->argv.v[0], '/'))
            snprintf (why, sizeof why, "cannot run %s: not found on PATH", t->argv.v[0]);
        else
            snprintf (why, sizeof why, "cannot run %s: %s", t->argv.v[0], strerror (rc));
        s_went_down (t, why);
        return;
    }
    fcntl (pe[0], F_SETFL, fcntl (pe[0], F_GETFL) | O_NONBLOCK);
    t->errfd = pe[0];
    zmq_pollitem_t item = {NULL, t->errfd, ZMQ_POLLIN, 0};
    if (zloop_poller (loop, &item, s_on_readable, s_arg (t)) != 0) {
        jm_warn ("tunnel to %s: cannot watch ssh's stderr; its messages are lost", t->host);
        close (t->errfd);
        t->errfd = -1;
    }
    t->pid = pid;
    t->state = S_STARTING;
    t->started_ms = jm_now_ms ();
    jm_info ("tunnel to %s (site %s, entry %s): started ssh (pid %d): %s", t->host, t->sites[0],
             t->entry, (int)pid, t->describe);
    s_timer_arm (t, S_WATCH_MS, s_on_watch);
}

/* Ends ssh's process group: TERM, KILL after the grace; reaps by PID. */
static void
s_kill (s_tunnel_t *t)
{
    if (t->pid <= 0)
        return;
    kill (-t->pid, SIGTERM);
    kill (t->pid, SIGTERM);
    int st;
    pid_t r = 0;
    for (int i = 0; i < S_KILL_GRACE_MS / 10; i++) {
        r = waitpid (t->pid, &st, WNOHANG);
        if (r != 0 && !(r < 0 && errno == EINTR))
            break;
        usleep (10000);
    }
    if (r == 0) {
        kill (-t->pid, SIGKILL);
        kill (t->pid, SIGKILL);
        do
            r = waitpid (t->pid, &st, 0);
        while (r < 0 && errno == EINTR);
    }
    jm_info ("tunnel to %s (site %s): stopped ssh (pid %d)", t->host, t->sites[0], (int)t->pid);
    t->pid = 0;
}

static void
s_tunnel_free (s_tunnel_t *t)
{
    for (s_tunnel_t **pp = &s_live; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    s_timer_stop (t);
    s_kill (t);
    s_close_pipe (t);
    jm_argv_clear (&t->argv);
    free (t->describe);
    for (size_t i = 0; i < t->nsites; i++)
        free (t->sites[i]);
    free (t->sites);
    free (t->entry);
    free (t->host);
    free (t);
}

static bool
s_same (const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp (a, b) == 0);
}

jm_tunnels_t *
jm_tunnels_new (zloop_t *loop, const jm_machines_t *machines, const char *ssh_prog,
                unsigned remote_port, const char *local_host, unsigned local_port, char *err,
                size_t errlen)
{
    assert (loop && machines && local_host);
    if (remote_port < 1 || remote_port > 65535 || local_port < 1 || local_port > 65535) {
        jm_err (err, errlen, "tunnel ports must be 1..65535 (remote %u, local %u)", remote_port,
                local_port);
        return NULL;
    }
    if (!*local_host || strpbrk (local_host, " \t\r\n")) {
        jm_err (err, errlen, "tunnel: '%s' is not a host the coordinator listens on", local_host);
        return NULL;
    }
    jm_tunnels_t *self = calloc (1, sizeof *self);
    assert (self);
    self->loop = loop;
    size_t count = jm_machines_count (machines);
    self->t = calloc (count ? count : 1, sizeof (s_tunnel_t *));
    assert (self->t);
    bool v6 = strchr (local_host, ':') && local_host[0] != '[';
    for (size_t i = 0; i < count; i++) {
        const jm_machine_t *m = jm_machines_entry (machines, i);
        const char *host = m->remote_profile.hostname;
        if (!host || !*host)
            continue;
        const char *site = jm_machine_site_for (m);
        s_tunnel_t *same = NULL;
        for (size_t j = 0; j < self->n && !same; j++) {
            const jm_machine_t *o = jm_machines_find (machines, self->t[j]->entry);
            if (o && s_same (o->remote_profile.hostname, host) &&
                s_same (o->remote_profile.port, m->remote_profile.port) &&
                s_same (o->remote_profile.username, m->remote_profile.username))
                same = self->t[j];
        }
        if (same) { /* one ssh per login node: add the site it serves */
            bool have = false;
            for (size_t k = 0; k < same->nsites; k++)
                have = have || strcmp (same->sites[k], site) == 0;
            if (!have) {
                same->sites = realloc (same->sites, (same->nsites + 1) * sizeof (char *));
                assert (same->sites);
                same->sites[same->nsites++] = strdup (site);
            }
            continue;
        }
        s_tunnel_t *t = calloc (1, sizeof *t);
        assert (t);
        t->owner = self;
        t->serial = ++s_last_serial;
        t->entry = strdup (m->name);
        t->host = strdup (host);
        t->sites = calloc (1, sizeof (char *));
        assert (t->entry && t->host && t->sites);
        t->sites[0] = strdup (site);
        t->nsites = 1;
        t->errfd = -1;
        t->timer = -1;
        t->pid = 0;
        t->state = S_IDLE;
        t->backoff_ms = S_BACKOFF_MIN_MS;
        jm_argv_add (&t->argv, ssh_prog && *ssh_prog ? ssh_prog : "ssh");
        jm_argv_add (&t->argv, "-N");
        jm_argv_add (&t->argv, "-R");
        jm_argv_addf (&t->argv, "127.0.0.1:%u:%s%s%s:%u", remote_port, v6 ? "[" : "", local_host,
                      v6 ? "]" : "", local_port);
        if (m->remote_profile.port) {
            jm_argv_add (&t->argv, "-p");
            jm_argv_add (&t->argv, m->remote_profile.port);
        }
        if (m->remote_profile.username) {
            jm_argv_add (&t->argv, "-l");
            jm_argv_add (&t->argv, m->remote_profile.username);
        }
        if (m->remote_profile.key_filename && *m->remote_profile.key_filename) {
            char *key = s_expand_tilde (m->remote_profile.key_filename);
            jm_argv_add (&t->argv, "-i");
            jm_argv_add (&t->argv, key);
            free (key);
        }
        if (m->remote_profile.proxy_command && *m->remote_profile.proxy_command) {
            jm_argv_add (&t->argv, "-o");
            jm_argv_addf (&t->argv, "ProxyCommand=%s", m->remote_profile.proxy_command);
        }
        jm_argv_add (&t->argv, "-o");
        jm_argv_add (&t->argv, "ExitOnForwardFailure=yes");
        jm_argv_add (&t->argv, "-o");
        jm_argv_addf (&t->argv, "ServerAliveInterval=%d", S_ALIVE_INTERVAL_S);
        jm_argv_add (&t->argv, "-o");
        jm_argv_add (&t->argv, "ServerAliveCountMax=3");
        jm_argv_add (&t->argv, "-o");
        jm_argv_add (&t->argv, "BatchMode=yes");
        jm_argv_add (&t->argv, host);
        t->describe = jm_cmd_describe (t->argv.v);
        t->next = s_live;
        s_live = t;
        self->t[self->n++] = t;
    }
    return self;
}

int
jm_tunnels_start (jm_tunnels_t *self)
{
    assert (self);
    if (self->started)
        return -1;
    self->started = true;
    for (size_t i = 0; i < self->n; i++)
        s_spawn (self->t[i]);
    return 0;
}

void
jm_tunnels_destroy (jm_tunnels_t **self_p)
{
    assert (self_p);
    jm_tunnels_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_tunnel_free (self->t[i]);
    free (self->t);
    free (self);
    *self_p = NULL;
}

size_t
jm_tunnels_size (jm_tunnels_t *self)
{
    assert (self);
    return self->n;
}

const char *
jm_tunnels_site (jm_tunnels_t *self, size_t i)
{
    assert (self && i < self->n);
    return self->t[i]->sites[0];
}

const char *
jm_tunnels_entry (jm_tunnels_t *self, size_t i)
{
    assert (self && i < self->n);
    return self->t[i]->entry;
}

int
jm_tunnels_pid (jm_tunnels_t *self, size_t i)
{
    assert (self && i < self->n);
    return (int)self->t[i]->pid;
}

const char *
jm_tunnels_state (jm_tunnels_t *self, size_t i)
{
    assert (self && i < self->n);
    s_tunnel_t *t = self->t[i];
    switch (t->state) {
    case S_IDLE:
        snprintf (t->text, sizeof t->text, "idle");
        break;
    case S_STARTING:
        snprintf (t->text, sizeof t->text, "starting (pid %d)", (int)t->pid);
        break;
    case S_UP: {
        struct tm tm;
        char hms[16] = "?";
        if (localtime_r (&t->up_since, &tm))
            strftime (hms, sizeof hms, "%H:%M:%S", &tm);
        snprintf (t->text, sizeof t->text, "up (pid %d) since %s", (int)t->pid, hms);
        break;
    }
    case S_DOWN: {
        int64_t left = t->retry_at_ms - jm_now_ms ();
        snprintf (t->text, sizeof t->text, "down: %s; retry in %lld s", t->down,
                  (long long)(left > 0 ? (left + 999) / 1000 : 0));
        break;
    }
    }
    return t->text;
}

const char *
jm_tunnels_state_for (jm_tunnels_t *self, const char *site)
{
    assert (self);
    if (!site)
        return NULL;
    for (size_t i = 0; i < self->n; i++)
        for (size_t k = 0; k < self->t[i]->nsites; k++)
            if (strcmp (self->t[i]->sites[k], site) == 0)
                return jm_tunnels_state (self, i);
    return NULL;
}
