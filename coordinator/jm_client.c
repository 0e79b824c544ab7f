/*  jm_client.c - the jobman-submit client and its commands. */
#include "jm_client.h"

#include "jm_config.h"
#include "jm_keys.h"
#include "jm_machine.h"
#include "jm_state.h"
#include "jm_store.h"
#include "jm_submission.h"
#include "jm_util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct _jm_client_t {
    char *home;
    char *endpoint;
    zsock_t *sock;
    zpoller_t *poller;
    uint64_t heartbeat_ms;
    int timeout_ms;
};

/* Program name in messages (jobman-coord's site commands change it). */
static const char *s_prog = "jobman-submit";

static void s_errmsg (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
s_errmsg (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    fprintf (stderr, "%s: ", s_prog);
    vfprintf (stderr, fmt, ap);
    fprintf (stderr, "\n");
    va_end (ap);
}

int
jm_client_timeout_ms (void)
{
    const char *env = getenv ("JOBMAN_TIMEOUT_MS");
    if (env && *env) {
        char *end;
        long v = strtol (env, &end, 10);
        if (*end == 0 && v > 0 && v < INT_MAX)
            return (int)v;
    }
    return JM_CLIENT_TIMEOUT_MS;
}

/* Endpoint: <home>/coord.endpoint, else config.yml's endpoint. */
static char *
s_endpoint (const char *home, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/coord.endpoint", home);
    char *text = jm_read_file (path, NULL, NULL, 0);
    if (text) {
        size_t n = strlen (text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
            text[--n] = 0;
        if (n)
            return text;
        free (text);
    }
    jm_config_t *cfg = jm_config_load (home, err, errlen);
    if (!cfg)
        return NULL;
    char *ep = cfg->endpoint && *cfg->endpoint ? strdup (cfg->endpoint)
                                               : jm_endpoint_for_connect (cfg->bind);
    jm_config_destroy (&cfg);
    return ep;
}

static jm_msg_t *
s_hello_msg (void)
{
    jm_msg_t *hello = jm_msg_new (JM_MSG_HELLO);
    jm_str_set (&hello->role, "client");
    jm_str_set (&hello->name, "jobman-submit");
    jm_str_set (&hello->scheduler, "");
    char host[256] = "";
    gethostname (host, sizeof host - 1);
    jm_str_set (&hello->host, host);
    hello->slots = 0;
    return hello;
}

/* Wait for WELCOME; 0, or -1 + err (*code_p = exit code). */
static int
s_handshake (jm_client_t *self, int *code_p, char *err, size_t errlen)
{
    *code_p = JM_EXIT_UNREACHABLE;
    jm_msg_t *hello = s_hello_msg ();
    if (jm_client_send (self, &hello, err, errlen))
        return -1;
    int64_t deadline = jm_now_ms () + self->timeout_ms;
    for (;;) {
        int64_t left = deadline - jm_now_ms ();
        if (left <= 0)
            break;
        char rerr[512] = "";
        jm_msg_t *msg = jm_client_recv (self, (int)left, rerr, sizeof rerr);
        if (!msg) {
            if (zsys_interrupted) {
                *code_p = JM_EXIT_FAILED;
                return jm_err (err, errlen, "interrupted");
            }
            continue;
        }
        if (msg->id == JM_MSG_WELCOME) {
            self->heartbeat_ms = msg->heartbeat_ms ? msg->heartbeat_ms : 1000;
            jm_msg_destroy (&msg);
            return 0;
        }
        if (msg->id == JM_MSG_ERROR) {
            jm_err (err, errlen,
                    "the coordinator at %s refused the connection: %s (code %" PRIu64 ")",
                    self->endpoint, msg->reason ? msg->reason : "", msg->code);
            *code_p = JM_EXIT_FAILED;
            jm_msg_destroy (&msg);
            return -1;
        }
        jm_msg_destroy (&msg);
    }
    int t = self->timeout_ms;
    if (t % 1000 == 0)
        return jm_err (err, errlen,
                       "cannot reach the coordinator at %s: no answer within %d s "
                       "(is 'jobman-coord run' running with --home %s?)",
                       self->endpoint, t / 1000, self->home);
    return jm_err (err, errlen,
                   "cannot reach the coordinator at %s: no answer within %d ms "
                   "(is 'jobman-coord run' running with --home %s?)",
                   self->endpoint, t, self->home);
}

jm_client_t *
jm_client_new (const char *home, int *errcode_p, char *err, size_t errlen)
{
    assert (home);
    int dummy;
    if (!errcode_p)
        errcode_p = &dummy;
    *errcode_p = JM_EXIT_UNREACHABLE;

    char path[PATH_MAX];
    char kerr[1024] = "";
    snprintf (path, sizeof path, "%s/client.cert_secret", home);
    zcert_t *own = jm_keys_load_secret (path, kerr, sizeof kerr);
    if (!own) {
        jm_err (err, errlen,
                "cannot load the client key: %s (run 'jobman-coord init --home %s' first)", kerr,
                home);
        return NULL;
    }
    snprintf (path, sizeof path, "%s/coord.cert", home);
    zcert_t *server = jm_keys_load_public (path, kerr, sizeof kerr);
    if (!server) {
        jm_err (err, errlen,
                "cannot load the coordinator's key: %s (run 'jobman-coord init --home %s' first)",
                kerr, home);
        zcert_destroy (&own);
        return NULL;
    }
    char cerr[1024] = "";
    char *endpoint = s_endpoint (home, cerr, sizeof cerr);
    if (!endpoint) {
        jm_err (err, errlen, "cannot find the coordinator's endpoint: %s", cerr);
        zcert_destroy (&own);
        zcert_destroy (&server);
        return NULL;
    }

    jm_client_t *self = calloc (1, sizeof *self);
    self->home = strdup (home);
    self->endpoint = endpoint;
    self->timeout_ms = jm_client_timeout_ms ();
    self->heartbeat_ms = 1000;
    self->sock = zsock_new (ZMQ_DEALER);
    assert (self->sock);
    zsock_set_linger (self->sock, 0);
    zsock_set_sndhwm (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    jm_curve_client (self->sock, own, zcert_public_txt (server));
    zcert_destroy (&own);
    zcert_destroy (&server);
    if (zsock_connect (self->sock, "%s", endpoint) != 0) {
        jm_err (err, errlen, "cannot connect to '%s': %s", endpoint, zmq_strerror (zmq_errno ()));
        *errcode_p = JM_EXIT_UNREACHABLE;
        jm_client_destroy (&self);
        return NULL;
    }
    self->poller = zpoller_new (self->sock, NULL);
    assert (self->poller);
    if (s_handshake (self, errcode_p, err, errlen)) {
        jm_client_destroy (&self);
        return NULL;
    }
    *errcode_p = JM_EXIT_OK;
    return self;
}

void
jm_client_destroy (jm_client_t **self_p)
{
    assert (self_p);
    jm_client_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->sock);
    free (self->home);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

const char *
jm_client_endpoint (jm_client_t *self)
{
    return self->endpoint;
}

const char *
jm_client_home (jm_client_t *self)
{
    return self->home;
}

uint64_t
jm_client_heartbeat_ms (jm_client_t *self)
{
    return self->heartbeat_ms;
}

int
jm_client_send (jm_client_t *self, jm_msg_t **msg_p, char *err, size_t errlen)
{
    const char *name = jm_msg_name ((*msg_p)->id);
    if (jm_msg_send (msg_p, self->sock, NULL))
        return jm_err (err, errlen, "cannot send %s to %s", name ? name : "?", self->endpoint);
    return 0;
}

jm_msg_t *
jm_client_recv (jm_client_t *self, int timeout_ms, char *err, size_t errlen)
{
    void *which = zpoller_wait (self->poller, timeout_ms);
    if (!which) {
        jm_err (err, errlen, "%s", zpoller_terminated (self->poller) ? "interrupted" : "timeout");
        return NULL;
    }
    char derr[1024] = "";
    int code = 0;
    jm_msg_t *msg = jm_msg_recv (self->sock, NULL, &code, NULL, derr, sizeof derr);
    if (!msg)
        jm_err (err, errlen, "undecodable message from the coordinator at %s: %s", self->endpoint,
                derr);
    return msg;
}

jm_msg_t *
jm_client_request (jm_client_t *self, jm_msg_t **req, int timeout_ms, char *err, size_t errlen)
{
    const char *name = jm_msg_name ((*req)->id);
    if (jm_client_send (self, req, err, errlen))
        return NULL;
    int64_t deadline = timeout_ms < 0 ? -1 : jm_now_ms () + timeout_ms;
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - jm_now_ms ();
            if (l <= 0)
                break;
            left = (int)l;
        }
        char rerr[1024] = "";
        jm_msg_t *msg = jm_client_recv (self, left, rerr, sizeof rerr);
        if (msg) {
            /* Stray progress or heartbeats are not replies. */
            if (msg->id == JM_MSG_PROGRESS || msg->id == JM_MSG_HEARTBEAT ||
                msg->id == JM_MSG_WELCOME) {
                jm_msg_destroy (&msg);
                continue;
            }
            return msg;
        }
        if (zsys_interrupted) {
            jm_err (err, errlen, "interrupted");
            return NULL;
        }
        if (strcmp (rerr, "timeout") != 0) {
            jm_err (err, errlen, "%s", rerr);
            return NULL;
        }
    }
    jm_err (err, errlen, "no reply to %s from the coordinator at %s within %d ms",
            name ? name : "?", self->endpoint, timeout_ms);
    return NULL;
}

int
jm_client_rehello (jm_client_t *self, char *err, size_t errlen)
{
    int code;
    return s_handshake (self, &code, err, errlen);
}

/* ---------------------------------------------------------------- output */

void
jm_json_str (FILE *f, const char *s)
{
    fputc ('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs ("\\\"", f);
            break;
        case '\\':
            fputs ("\\\\", f);
            break;
        case '\n':
            fputs ("\\n", f);
            break;
        case '\r':
            fputs ("\\r", f);
            break;
        case '\t':
            fputs ("\\t", f);
            break;
        case '\b':
            fputs ("\\b", f);
            break;
        case '\f':
            fputs ("\\f", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf (f, "\\u%04x", *p);
            else
                fputc (*p, f);
        }
    }
    fputc ('"', f);
}

static uint64_t
s_count (const uint64_t *counts, size_t n, jm_task_state_t st)
{
    return (size_t)st < n ? counts[st] : 0;
}

void
jm_client_progress_line (char *buf, size_t buflen, uint64_t total, const uint64_t *counts,
                         size_t ncounts, bool bar)
{
    uint64_t done = s_count (counts, ncounts, JM_TASK_DONE);
    uint64_t failed = s_count (counts, ncounts, JM_TASK_FAILED);
    uint64_t cancelled = s_count (counts, ncounts, JM_TASK_CANCELLED);
    uint64_t running =
        s_count (counts, ncounts, JM_TASK_RUNNING) + s_count (counts, ncounts, JM_TASK_FETCHING);
    uint64_t queued =
        s_count (counts, ncounts, JM_TASK_STAGING) + s_count (counts, ncounts, JM_TASK_QUEUED);
    uint64_t pending = s_count (counts, ncounts, JM_TASK_PENDING);
    uint64_t finished = done + failed + cancelled;
    size_t off = 0;
    buf[0] = 0;
    if (bar && buflen > 32) {
        const int width = 20;
        int filled = total ? (int)(finished * width / total) : width;
        if (filled > width)
            filled = width;
        buf[off++] = '[';
        for (int i = 0; i < width; i++)
            buf[off++] = i < filled ? '#' : '-';
        buf[off++] = ']';
        buf[off++] = ' ';
        buf[off++] = ' ';
        buf[off] = 0;
    }
    int n = snprintf (buf + off, buflen - off,
                      "%" PRIu64 "/%" PRIu64 "  done %" PRIu64 "  failed %" PRIu64, finished, total,
                      done, failed);
    if (n > 0 && (size_t)n < buflen - off)
        off += (size_t)n;
    if (cancelled && off < buflen) {
        n = snprintf (buf + off, buflen - off, "  cancelled %" PRIu64, cancelled);
        if (n > 0 && (size_t)n < buflen - off)
            off += (size_t)n;
    }
    if (off < buflen)
        snprintf (buf + off, buflen - off,
                  "  running %" PRIu64 "  queued %" PRIu64 "  pending %" PRIu64, running, queued,
                  pending);
}

static FILE *
s_out (const jm_client_opts_t *opts)
{
    return opts->out ? opts->out : stdout;
}

/* Connect, printing the error. NULL + *code_p. */
static jm_client_t *
s_connect (const jm_client_opts_t *opts, int *code_p)
{
    char err[2048] = "";
    jm_client_t *client = jm_client_new (opts->home, code_p, err, sizeof err);
    if (!client)
        s_errmsg ("%s", err);
    return client;
}

/* Report an ERROR reply; returns the exit code. */
static int
s_error_reply (const char *what, const char *sub_id, jm_msg_t *msg)
{
    const char *reason = msg->reason ? msg->reason : "";
    if (msg->code == 4) {
        if (sub_id && *sub_id)
            s_errmsg ("%s: no submission '%s' (%s)", what, sub_id, reason);
        else
            s_errmsg ("%s: not found: %s", what, reason);
        return JM_EXIT_USAGE;
    }
    s_errmsg ("%s: the coordinator refused the request: %s (code %" PRIu64 ")", what, reason,
              msg->code);
    return msg->code == 5 ? JM_EXIT_USAGE : JM_EXIT_FAILED;
}

/* ---------------------------------------------------------------- wait */

typedef struct {
    FILE *out;
    bool bar;
    bool dirty;
    bool drawn;
    int64_t last_print;
    char last_line[512];
} s_display_t;

static void
s_display (s_display_t *d, const char *line, bool final)
{
    int64_t now = jm_now_ms ();
    if (strcmp (line, d->last_line) != 0) {
        snprintf (d->last_line, sizeof d->last_line, "%s", line);
        d->dirty = true;
    }
    int min_gap = d->bar ? 100 : 1000;
    if (!d->dirty)
        return;
    if (!final && d->drawn && now - d->last_print < min_gap)
        return;
    if (d->bar)
        fprintf (d->out, "\r%s\033[K", d->last_line);
    else
        fprintf (d->out, "%s\n", d->last_line);
    fflush (d->out);
    d->dirty = false;
    d->drawn = true;
    d->last_print = now;
}

/* Watch sub_id on an open connection until it finishes. */
static int
s_watch (const jm_client_opts_t *opts, jm_client_t *client, const char *sub_id)
{
    FILE *out = s_out (opts);
    char err[2048] = "";
    s_display_t disp = {.out = out};
    disp.bar = opts->progress < 0 ? isatty (fileno (out)) : opts->progress > 0;

    jm_msg_t *watch = jm_msg_new (JM_MSG_WATCH);
    jm_str_set (&watch->sub_id, sub_id);
    if (jm_client_send (client, &watch, err, sizeof err)) {
        s_errmsg ("wait: %s", err);
        return JM_EXIT_UNREACHABLE;
    }
    uint64_t hb = jm_client_heartbeat_ms (client);
    int64_t silence_limit = JM_CLIENT_SILENCE_MS;
    if ((int64_t)hb * 10 > silence_limit)
        silence_limit = (int64_t)hb * 10;
    int64_t rehello_after = (int64_t)hb * 3 < 3000 ? 3000 : (int64_t)hb * 3;
    int64_t last_heard = jm_now_ms ();
    int64_t last_hello = last_heard;
    bool rewatch = false;
    uint64_t total = 0;
    uint64_t counts[JM_TASK_NSTATES] = {0};

    for (;;) {
        char rerr[1024] = "";
        jm_msg_t *msg = jm_client_recv (client, 250, rerr, sizeof rerr);
        int64_t now = jm_now_ms ();
        if (!msg) {
            if (zsys_interrupted) {
                if (disp.bar && disp.drawn)
                    fputc ('\n', out);
                s_errmsg ("wait: interrupted (the submission goes on; "
                          "'jobman-submit wait %s' resumes watching)",
                          sub_id);
                return JM_EXIT_FAILED;
            }
            if (strcmp (rerr, "timeout") != 0)
                s_errmsg ("wait: %s", rerr);
            if (disp.dirty) {
                char line[512];
                jm_client_progress_line (line, sizeof line, total, counts, JM_TASK_NSTATES,
                                         disp.bar);
                s_display (&disp, line, false);
            }
            if (now - last_heard > silence_limit) {
                if (disp.bar && disp.drawn)
                    fputc ('\n', out);
                s_errmsg ("wait: lost the coordinator at %s: nothing heard for %d s",
                          jm_client_endpoint (client), (int)(silence_limit / 1000));
                return JM_EXIT_UNREACHABLE;
            }
            if (now - last_heard > rehello_after && now - last_hello > rehello_after) {
                /* The coordinator may have restarted: attach again. */
                jm_msg_t *hello = s_hello_msg ();
                jm_client_send (client, &hello, NULL, 0);
                last_hello = now;
                rewatch = true;
            }
            continue;
        }
        last_heard = now;
        if (msg->id == JM_MSG_PROGRESS) {
            total = msg->total;
            memset (counts, 0, sizeof counts);
            for (size_t i = 0; i < msg->counts.n && i < JM_TASK_NSTATES; i++)
                counts[i] = msg->counts.v[i];
            char line[512];
            jm_client_progress_line (line, sizeof line, total, counts, JM_TASK_NSTATES, disp.bar);
            s_display (&disp, line, msg->finished);
            if (msg->finished) {
                if (disp.bar)
                    fputc ('\n', out);
                uint64_t done = counts[JM_TASK_DONE];
                /* the submission can fail with every task DONE: its
                   backward common files could not be collected */
                bool ok = done == total && msg->state && strcmp (msg->state, "DONE") == 0;
                fprintf (out,
                         "submission %s finished %s: %" PRIu64 " tasks, %" PRIu64 " done, %" PRIu64
                         " failed, %" PRIu64 " cancelled%s\n",
                         sub_id, msg->state ? msg->state : "?", total, done, counts[JM_TASK_FAILED],
                         counts[JM_TASK_CANCELLED],
                         done == total && !ok ? " (backward common files missing: see the "
                                                "coordinator's log)"
                                              : "");
                fflush (out);
                jm_msg_destroy (&msg);
                return ok ? JM_EXIT_OK : JM_EXIT_FAILED;
            }
        }
        else if (msg->id == JM_MSG_WELCOME) {
            if (rewatch) {
                jm_msg_t *w = jm_msg_new (JM_MSG_WATCH);
                jm_str_set (&w->sub_id, sub_id);
                jm_client_send (client, &w, NULL, 0);
                rewatch = false;
            }
        }
        else if (msg->id == JM_MSG_ERROR) {
            if (msg->code == 3) {
                jm_msg_t *hello = s_hello_msg ();
                jm_client_send (client, &hello, NULL, 0);
                last_hello = now;
                rewatch = true;
            }
            else {
                if (disp.bar && disp.drawn)
                    fputc ('\n', out);
                int code = s_error_reply ("wait", sub_id, msg);
                jm_msg_destroy (&msg);
                return code;
            }
        }
        jm_msg_destroy (&msg);
    }
}

int
jm_client_cmd_wait (const jm_client_opts_t *opts, const char *sub_id)
{
    int code;
    jm_client_t *client = s_connect (opts, &code);
    if (!client)
        return code;
    code = s_watch (opts, client, sub_id);
    jm_client_destroy (&client);
    return code;
}

/* ---------------------------------------------------------------- submit */

/* Print each line of text on stderr, prefixed with the program name. */
static void
s_print_lines (const char *text)
{
    while (text && *text) {
        const char *nl = strchr (text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen (text);
        if (n)
            fprintf (stderr, "%s: %.*s\n", s_prog, (int)n, text);
        text += n + (nl ? 1 : 0);
    }
}

/*  After SUBMITTED: for each entry no connected agent serves, say so and
    how to start its agent (the entry from the machine file fills in the
    flags). */
static void
s_report_unserved (const jm_strs_t *unserved, const jm_machines_t *machines, const char *endpoint)
{
    for (size_t i = 0; i < unserved->n; i++) {
        const char *name = unserved->v[i];
        const jm_machine_t *m = machines ? jm_machines_find (machines, name) : NULL;
        const char *host = m ? m->remote_profile.hostname : NULL;
        const char *site = m ? jm_machine_site_for (m) : NULL;
        char where[400];
        if (host)
            snprintf (where, sizeof where, " (host %s)", host);
        else if (site)
            snprintf (where, sizeof where, " (site %s)", site);
        else
            where[0] = 0;
        fprintf (stderr,
                 "%s: machine entry '%s'%s is served by no connected agent; its share waits "
                 "for one or goes to the other entries. Start its agent on %s with:\n"
                 "    jobman-agent run --home ~/.jobman-agent --coordinator %s "
                 "--coordinator-cert coord.cert --site %s --root %s --scheduler %s\n",
                 s_prog, name, where, host ? "that host" : "its login node", endpoint,
                 site ? site : "<site>", m && m->remote_root ? m->remote_root : "~/jobman",
                 m && m->batch_type ? m->batch_type : "shell");
    }
}

int
jm_client_cmd_submit (const jm_client_opts_t *opts, const char *file)
{
    FILE *out = s_out (opts);
    char err[4096] = "";
    jm_submission_t *sub = jm_submission_load (file, opts->work_dir, err, sizeof err);
    if (!sub) {
        s_errmsg ("%s", err);
        return JM_EXIT_USAGE;
    }
    if (sub->n_tasks == 0) {
        s_errmsg ("%s: task_list: no tasks", file);
        jm_submission_destroy (&sub);
        return JM_EXIT_USAGE;
    }
    if (sub->notices && *sub->notices)
        fprintf (stderr, "%s%s", sub->notices,
                 sub->notices[strlen (sub->notices) - 1] == '\n' ? "" : "\n");
    jm_machines_t *machines = NULL;
    if (opts->machine_file) {
        char *notices = NULL;
        machines = jm_machines_load (opts->machine_file, opts->prefix, &notices, err, sizeof err);
        if (!machines) {
            s_errmsg ("%s", err);
            jm_submission_destroy (&sub);
            return JM_EXIT_USAGE;
        }
        s_print_lines (notices);
        free (notices);
    }
    else if (jm_submission_check_no_machine (sub, err, sizeof err)) {
        s_errmsg ("%s", err);
        jm_submission_destroy (&sub);
        return JM_EXIT_USAGE;
    }
    int code;
    jm_client_t *client = s_connect (opts, &code);
    if (!client) {
        jm_submission_destroy (&sub);
        jm_machines_destroy (&machines);
        return code;
    }
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/store", opts->home);
    jm_store_t *store = jm_store_new (path, err, sizeof err);
    if (!store) {
        s_errmsg ("cannot open the coordinator's store: %s", err);
        jm_submission_destroy (&sub);
        jm_machines_destroy (&machines);
        jm_client_destroy (&client);
        return JM_EXIT_FAILED;
    }
    jm_msg_t *req = jm_submission_to_msg (sub, store, err, sizeof err);
    jm_store_destroy (&store);
    jm_submission_destroy (&sub);
    if (!req) {
        s_errmsg ("%s: %s", file, err);
        jm_machines_destroy (&machines);
        jm_client_destroy (&client);
        return JM_EXIT_FAILED;
    }
    if (machines)
        jm_submission_add_machines (req, machines);
    /* A large submission takes the coordinator a while to commit. */
    int timeout = jm_client_timeout_ms () * 12;
    jm_msg_t *reply = jm_client_request (client, &req, timeout, err, sizeof err);
    if (!reply) {
        s_errmsg ("submit: %s", err);
        jm_machines_destroy (&machines);
        jm_client_destroy (&client);
        return JM_EXIT_UNREACHABLE;
    }
    if (reply->id == JM_MSG_ERROR) {
        code = s_error_reply ("submit", NULL, reply);
        jm_msg_destroy (&reply);
        jm_machines_destroy (&machines);
        jm_client_destroy (&client);
        return code;
    }
    if (reply->id != JM_MSG_SUBMITTED) {
        s_errmsg ("submit: unexpected %s from the coordinator", jm_msg_name (reply->id));
        jm_msg_destroy (&reply);
        jm_machines_destroy (&machines);
        jm_client_destroy (&client);
        return JM_EXIT_FAILED;
    }
    char *sub_id = strdup (reply->sub_id ? reply->sub_id : "");
    if (opts->json) {
        fprintf (out, "{\"id\":");
        jm_json_str (out, sub_id);
        fprintf (out, ",\"total\":%" PRIu64 "}\n", reply->total);
    }
    else
        fprintf (out, "%s\n", sub_id);
    fflush (out);
    s_report_unserved (&reply->unserved, machines, jm_client_endpoint (client));
    jm_machines_destroy (&machines);
    jm_msg_destroy (&reply);
    code = JM_EXIT_OK;
    if (opts->wait) {
        /* With --json, keep stdout machine-readable: progress goes to stderr. */
        jm_client_opts_t wopts = *opts;
        if (opts->json)
            wopts.out = stderr;
        code = s_watch (&wopts, client, sub_id);
    }
    free (sub_id);
    jm_client_destroy (&client);
    return code;
}

/* ---------------------------------------------------------------- status */

static void
s_fmt_time (uint64_t t, char *buf, size_t len)
{
    if (t == 0) {
        snprintf (buf, len, "-");
        return;
    }
    /* 'created' is Unix seconds (or milliseconds from some coordinators). */
    time_t secs = (time_t)(t > 100000000000ULL ? t / 1000 : t);
    struct tm tm;
    localtime_r (&secs, &tm);
    strftime (buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static jm_msg_t *
s_status_request (jm_client_t *client, const char *sub_id, bool detail, int *code_p)
{
    char err[2048] = "";
    jm_msg_t *req = jm_msg_new (JM_MSG_STATUS);
    jm_str_set (&req->sub_id, sub_id ? sub_id : "");
    req->detail = detail;
    jm_msg_t *reply =
        jm_client_request (client, &req, jm_client_timeout_ms () * 6, err, sizeof err);
    if (!reply) {
        s_errmsg ("status: %s", err);
        *code_p = JM_EXIT_UNREACHABLE;
        return NULL;
    }
    if (reply->id == JM_MSG_ERROR) {
        *code_p = s_error_reply ("status", sub_id, reply);
        jm_msg_destroy (&reply);
        return NULL;
    }
    if (reply->id != JM_MSG_STATUS_REPLY) {
        s_errmsg ("status: unexpected %s from the coordinator", jm_msg_name (reply->id));
        jm_msg_destroy (&reply);
        *code_p = JM_EXIT_FAILED;
        return NULL;
    }
    *code_p = JM_EXIT_OK;
    return reply;
}

static void
s_json_sub (FILE *out, const jm_wsub_t *s, const jm_wtstats_t *tstats)
{
    fprintf (out, "{\"id\":");
    jm_json_str (out, s->id);
    fprintf (out, ",\"state\":");
    jm_json_str (out, s->state);
    fprintf (out, ",\"work_base\":");
    jm_json_str (out, s->work_base);
    fprintf (out, ",\"total\":%" PRIu64 ",\"counts\":{", s->total);
    for (int st = 0; st < JM_TASK_NSTATES; st++)
        fprintf (out, "%s\"%s\":%" PRIu64, st ? "," : "", jm_task_state_name (st),
                 s_count (s->counts.v, s->counts.n, st));
    fprintf (out, "},\"created\":%" PRIu64 ",\"bytes_sent\":%" PRIu64, s->created, s->bytes);
    if (tstats) {
        fprintf (out, ",\"tasks\":[");
        for (size_t i = 0; i < tstats->n; i++) {
            const jm_wtstat_t *t = &tstats->v[i];
            fprintf (out, "%s{\"id\":%" PRIu64 ",\"path\":", i ? "," : "", t->id);
            jm_json_str (out, t->path);
            fprintf (out, ",\"state\":");
            jm_json_str (out, t->state);
            fprintf (out, ",\"exit_code\":%" PRId64 ",\"site\":", t->exit_code);
            jm_json_str (out, t->site);
            fprintf (out, ",\"reason\":");
            jm_json_str (out, t->reason);
            fprintf (out, "}");
        }
        fprintf (out, "]");
    }
    fprintf (out, "}");
}

static const char *
s_or_dash (const char *s)
{
    return s && *s ? s : "-";
}

static void
s_text_sub (FILE *out, const jm_wsub_t *s, const jm_wtstats_t *tstats)
{
    char created[64];
    s_fmt_time (s->created, created, sizeof created);
    fprintf (out, "submission %s  %s  %" PRIu64 " tasks  created %s  bytes_sent %" PRIu64 "\n",
             s->id, s_or_dash (s->state), s->total, created, s->bytes);
    fprintf (out, "work_base %s\n", s_or_dash (s->work_base));
    for (int st = 0; st < JM_TASK_NSTATES; st++)
        fprintf (out, "%s%s %" PRIu64, st ? "  " : "", jm_task_state_name (st),
                 s_count (s->counts.v, s->counts.n, st));
    fprintf (out, "\n");
    if (!tstats || tstats->n == 0)
        return;
    size_t pw = 4;
    for (size_t i = 0; i < tstats->n; i++) {
        size_t l = strlen (s_or_dash (tstats->v[i].path));
        if (l > pw)
            pw = l;
    }
    if (pw > 60)
        pw = 60;
    fprintf (out, "\n%-6s  %-*s  %-9s  %4s  %-12s  %s\n", "IDX", (int)pw, "PATH", "STATE", "EXIT",
             "SITE", "REASON");
    for (size_t i = 0; i < tstats->n; i++) {
        const jm_wtstat_t *t = &tstats->v[i];
        bool ended =
            t->state && (strcmp (t->state, "DONE") == 0 || strcmp (t->state, "FAILED") == 0);
        char code[32];
        if (ended)
            snprintf (code, sizeof code, "%" PRId64, t->exit_code);
        else
            snprintf (code, sizeof code, "-");
        fprintf (out, "%-6" PRIu64 "  %-*s  %-9s  %4s  %-12s  %s\n", t->id, (int)pw,
                 s_or_dash (t->path), s_or_dash (t->state), code, s_or_dash (t->site),
                 t->reason ? t->reason : "");
    }
}

int
jm_client_cmd_status (const jm_client_opts_t *opts, const char *sub_id)
{
    FILE *out = s_out (opts);
    bool detail = sub_id && *sub_id;
    int code;
    jm_client_t *client = s_connect (opts, &code);
    if (!client)
        return code;
    jm_msg_t *reply = s_status_request (client, sub_id, detail, &code);
    jm_client_destroy (&client);
    if (!reply)
        return code;
    if (opts->json) {
        fprintf (out, "{\"submissions\":[");
        for (size_t i = 0; i < reply->subs.n; i++) {
            if (i)
                fprintf (out, ",");
            s_json_sub (out, &reply->subs.v[i], detail && i == 0 ? &reply->tstats : NULL);
        }
        fprintf (out, "]}\n");
    }
    else {
        if (reply->subs.n == 0)
            fprintf (out, "no submissions\n");
        for (size_t i = 0; i < reply->subs.n; i++) {
            if (i)
                fprintf (out, "\n");
            s_text_sub (out, &reply->subs.v[i], detail && i == 0 ? &reply->tstats : NULL);
        }
    }
    fflush (out);
    jm_msg_destroy (&reply);
    return JM_EXIT_OK;
}

int
jm_client_cmd_list (const jm_client_opts_t *opts)
{
    FILE *out = s_out (opts);
    int code;
    jm_client_t *client = s_connect (opts, &code);
    if (!client)
        return code;
    jm_msg_t *reply = s_status_request (client, "", false, &code);
    jm_client_destroy (&client);
    if (!reply)
        return code;
    if (opts->json) {
        fprintf (out, "{\"submissions\":[");
        for (size_t i = 0; i < reply->subs.n; i++) {
            if (i)
                fprintf (out, ",");
            s_json_sub (out, &reply->subs.v[i], NULL);
        }
        fprintf (out, "]}\n");
    }
    else {
        for (size_t i = 0; i < reply->subs.n; i++) {
            const jm_wsub_t *s = &reply->subs.v[i];
            char created[64];
            s_fmt_time (s->created, created, sizeof created);
            uint64_t done = s_count (s->counts.v, s->counts.n, JM_TASK_DONE);
            uint64_t failed = s_count (s->counts.v, s->counts.n, JM_TASK_FAILED);
            uint64_t cancelled = s_count (s->counts.v, s->counts.n, JM_TASK_CANCELLED);
            fprintf (out,
                     "%s  %-9s  %" PRIu64 "/%" PRIu64 " done  %" PRIu64 " failed  %" PRIu64
                     " cancelled  %s  %s\n",
                     s->id, s_or_dash (s->state), done, s->total, failed, cancelled, created,
                     s_or_dash (s->work_base));
        }
    }
    fflush (out);
    jm_msg_destroy (&reply);
    return JM_EXIT_OK;
}

/* ---------------------------------------------------------------- cancel */

int
jm_client_cmd_cancel (const jm_client_opts_t *opts, const char *sub_id)
{
    FILE *out = s_out (opts);
    char err[2048] = "";
    int code;
    jm_client_t *client = s_connect (opts, &code);
    if (!client)
        return code;
    jm_msg_t *req = jm_msg_new (JM_MSG_CANCEL);
    jm_str_set (&req->sub_id, sub_id);
    jm_msg_t *reply =
        jm_client_request (client, &req, jm_client_timeout_ms () * 6, err, sizeof err);
    jm_client_destroy (&client);
    if (!reply) {
        s_errmsg ("cancel: %s", err);
        return JM_EXIT_UNREACHABLE;
    }
    if (reply->id == JM_MSG_ERROR) {
        code = s_error_reply ("cancel", sub_id, reply);
        jm_msg_destroy (&reply);
        return code;
    }
    if (reply->id != JM_MSG_CANCELLED) {
        s_errmsg ("cancel: unexpected %s from the coordinator", jm_msg_name (reply->id));
        jm_msg_destroy (&reply);
        return JM_EXIT_FAILED;
    }
    if (opts->json) {
        fprintf (out, "{\"id\":");
        jm_json_str (out, sub_id);
        fprintf (out, ",\"cancelled\":%" PRIu64 "}\n", reply->total);
    }
    else
        fprintf (out, "cancelled %" PRIu64 " tasks\n", reply->total);
    fflush (out);
    jm_msg_destroy (&reply);
    return JM_EXIT_OK;
}

/* ---------------------------------------------------------------- sites */

/* A duration in ms as "0s", "850ms", "12s", "4m10s", "3h05m", "2d04h". */
static void
s_fmt_duration (uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (ms == 0)
        snprintf (buf, len, "0s");
    else if (ms < 1000)
        snprintf (buf, len, "%" PRIu64 "ms", ms);
    else if (s < 60)
        snprintf (buf, len, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf (buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf (buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf (buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

#define S_SITE_FMT "%-16s  %-12s  %-8s  %-18s  %7s  %6s  %8s  %7s  %-14s  %s"

void
jm_client_site_line (char *buf, size_t buflen, const jm_wsite_t *site, uint64_t now_ms, bool header)
{
    if (header) {
        snprintf (buf, buflen, S_SITE_FMT, "NAME", "STATE", "SCHED", "CAPACITY", "RUNNING",
                  "QUEUED", "DONE/MIN", "WAIT", "LAST-HEARTBEAT", "TUNNEL");
        return;
    }
    char state[64], cap[96], running[24], queued[24], done[24], wait[32], seen[48];
    snprintf (state, sizeof state, "%s%s", s_or_dash (site->state),
              site->drained ? ",drained" : "");
    /* jobs at once (slots; max_jobs when it differs), cores and GPUs per job */
    int n = (site->max_jobs && site->max_jobs != site->slots)
                ? snprintf (cap, sizeof cap, "%" PRIu64 "/%" PRIu64 " jobs", site->slots,
                            site->max_jobs)
                : snprintf (cap, sizeof cap, "%" PRIu64 " jobs", site->slots);
    if (site->cores && n > 0 && (size_t)n < sizeof cap)
        n += snprintf (cap + n, sizeof cap - (size_t)n, ", %" PRIu64 "c", site->cores);
    if (site->gpus && n > 0 && (size_t)n < sizeof cap)
        snprintf (cap + n, sizeof cap - (size_t)n, ", %" PRIu64 "g", site->gpus);
    snprintf (running, sizeof running, "%" PRIu64, site->running);
    snprintf (queued, sizeof queued, "%" PRIu64, site->queued);
    snprintf (done, sizeof done, "%" PRIu64, site->done_1m);
    s_fmt_duration (site->wait_ms, wait, sizeof wait);
    if (site->last_seen == 0)
        snprintf (seen, sizeof seen, "never");
    else {
        /* whole seconds: "0s ago", "2s ago", "4m10s ago" */
        uint64_t age = now_ms > site->last_seen ? (now_ms - site->last_seen) / 1000 : 0;
        char text[32];
        s_fmt_duration (age * 1000, text, sizeof text);
        snprintf (seen, sizeof seen, "%s ago", text);
    }
    snprintf (buf, buflen, S_SITE_FMT, s_or_dash (site->name), state, s_or_dash (site->scheduler),
              cap, running, queued, done, wait, seen, s_or_dash (site->tunnel));
}

void
jm_client_site_json (FILE *f, const jm_wsite_t *s)
{
    fprintf (f, "{\"name\":");
    jm_json_str (f, s->name);
    fprintf (f, ",\"state\":");
    jm_json_str (f, s->state);
    fprintf (f, ",\"drained\":%s,\"scheduler\":", s->drained ? "true" : "false");
    jm_json_str (f, s->scheduler);
    fprintf (f, ",\"host\":");
    jm_json_str (f, s->host);
    fprintf (f,
             ",\"slots\":%" PRIu64 ",\"max_jobs\":%" PRIu64 ",\"cores\":%" PRIu64
             ",\"gpus\":%" PRIu64 ",\"running\":%" PRIu64 ",\"queued\":%" PRIu64
             ",\"free_slots\":%" PRIu64 ",\"done_1m\":%" PRIu64 ",\"wait_ms\":%" PRIu64
             ",\"jobs\":%" PRIu64 ",\"last_seen\":%" PRIu64 ",\"tunnel\":",
             s->slots, s->max_jobs, s->cores, s->gpus, s->running, s->queued, s->free_slots,
             s->done_1m, s->wait_ms, s->jobs, s->last_seen);
    jm_json_str (f, s->tunnel);
    fprintf (f, "}");
}

static void
s_print_sites (FILE *out, const jm_wsites_t *sites, bool json)
{
    if (json) {
        fprintf (out, "[");
        for (size_t i = 0; i < sites->n; i++) {
            fprintf (out, "%s", i ? "," : "");
            jm_client_site_json (out, &sites->v[i]);
        }
        fprintf (out, "]\n");
    }
    else if (sites->n == 0)
        fprintf (out, "no sites\n");
    else {
        char line[1024];
        uint64_t now = (uint64_t)zclock_time ();
        jm_client_site_line (line, sizeof line, NULL, now, true);
        fprintf (out, "%s\n", line);
        for (size_t i = 0; i < sites->n; i++) {
            jm_client_site_line (line, sizeof line, &sites->v[i], now, false);
            fprintf (out, "%s\n", line);
        }
    }
    fflush (out);
}

/*  Send req, expect SITES_REPLY.  NULL + *code_p (errors printed); an
    ERROR 4 names the site. */
static jm_msg_t *
s_sites_request (const jm_client_opts_t *opts, jm_msg_t **req, const char *what, const char *name,
                 int *code_p)
{
    jm_client_t *client = s_connect (opts, code_p);
    if (!client) {
        jm_msg_destroy (req);
        return NULL;
    }
    char err[2048] = "";
    jm_msg_t *reply = jm_client_request (client, req, jm_client_timeout_ms () * 6, err, sizeof err);
    jm_client_destroy (&client);
    if (!reply) {
        s_errmsg ("%s: %s", what, err);
        *code_p = JM_EXIT_UNREACHABLE;
        return NULL;
    }
    if (reply->id == JM_MSG_ERROR) {
        if (reply->code == 4 && name) {
            s_errmsg ("no site named '%s'", name);
            *code_p = JM_EXIT_FAILED;
        }
        else
            *code_p = s_error_reply (what, NULL, reply);
        jm_msg_destroy (&reply);
        return NULL;
    }
    if (reply->id != JM_MSG_SITES_REPLY) {
        s_errmsg ("%s: unexpected %s from the coordinator", what, jm_msg_name (reply->id));
        jm_msg_destroy (&reply);
        *code_p = JM_EXIT_FAILED;
        return NULL;
    }
    *code_p = JM_EXIT_OK;
    return reply;
}

int
jm_client_cmd_sites (const jm_client_opts_t *opts)
{
    jm_msg_t *req = jm_msg_new (JM_MSG_SITES);
    jm_str_set (&req->name, "");
    int code;
    jm_msg_t *reply = s_sites_request (opts, &req, "sites", NULL, &code);
    if (!reply)
        return code;
    s_print_sites (s_out (opts), &reply->sites, opts->json);
    jm_msg_destroy (&reply);
    return JM_EXIT_OK;
}

int
jm_client_cmd_site_set (const jm_client_opts_t *opts, const char *name, bool drain)
{
    assert (name);
    const char *saved = s_prog;
    s_prog = opts->prog ? opts->prog : "jobman-coord";
    jm_msg_t *req = jm_msg_new (JM_MSG_SITE_SET);
    jm_str_set (&req->name, name);
    jm_str_set (&req->state, drain ? "drained" : "up");
    int code;
    jm_msg_t *reply =
        s_sites_request (opts, &req, drain ? "site drain" : "site resume", name, &code);
    if (reply) {
        s_print_sites (s_out (opts), &reply->sites, opts->json);
        jm_msg_destroy (&reply);
    }
    s_prog = saved;
    /* jobman-coord: anything but success is exit 1 */
    return code == JM_EXIT_OK ? JM_EXIT_OK : JM_EXIT_FAILED;
}
