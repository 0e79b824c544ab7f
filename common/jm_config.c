/*  jm_config.c - the jobman home and <home>/config.yml. */
#include "jm_config.h"
#include "jm_util.h"
#include "jm_yaml.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JM_DEFAULT_BIND "tcp://127.0.0.1:7100"
#define JM_DEFAULT_HEARTBEAT_MS 1000
#define JM_DEFAULT_CHUNK_SIZE (1024 * 1024)
#define JM_DEFAULT_WINDOW 8
/* A CHUNK's data field is at most 1 MiB on the wire (jm_msgs.h). */
#define JM_MAX_CHUNK_SIZE (1024 * 1024)

static char *
s_join (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    char *out = malloc (la + lb + 2);
    assert (out);
    memcpy (out, a, la);
    size_t o = la;
    if (la == 0 || a[la - 1] != '/')
        out[o++] = '/';
    memcpy (out + o, b, lb + 1);
    return out;
}

char *
jm_home_resolve (const char *flag_home)
{
    const char *home = flag_home && *flag_home ? flag_home : NULL;
    char *owned = NULL;
    if (!home) {
        const char *env = getenv ("JOBMAN_HOME");
        if (env && *env)
            home = env;
    }
    if (!home) {
        const char *h = getenv ("HOME");
        if (!h || !*h) {
            struct passwd *pw = getpwuid (getuid ());
            h = pw && pw->pw_dir ? pw->pw_dir : "/";
        }
        owned = s_join (h, ".jobman");
        home = owned;
    }
    char *out;
    if (home[0] == '/')
        out = strdup (home);
    else {
        char cwd[PATH_MAX];
        if (!getcwd (cwd, sizeof (cwd)))
            snprintf (cwd, sizeof (cwd), "/");
        const char *rel = home;
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        out = strcmp (rel, ".") == 0 || !*rel ? strdup (cwd) : s_join (cwd, rel);
    }
    assert (out);
    /* no trailing slash, so that "<home>/x" reads well in messages */
    size_t n = strlen (out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = 0;
    free (owned);
    return out;
}

char *
jm_endpoint_for_connect (const char *bind)
{
    assert (bind);
    static const struct {
        const char *from, *to;
    } hosts[] = {
        {"tcp://*:", "tcp://127.0.0.1:"},
        {"tcp://0.0.0.0:", "tcp://127.0.0.1:"},
        {"tcp://[::]:", "tcp://[::1]:"},
    };
    for (size_t i = 0; i < sizeof (hosts) / sizeof (hosts[0]); i++) {
        size_t lf = strlen (hosts[i].from);
        if (strncmp (bind, hosts[i].from, lf) == 0) {
            size_t lt = strlen (hosts[i].to), lr = strlen (bind + lf);
            char *out = malloc (lt + lr + 1);
            assert (out);
            memcpy (out, hosts[i].to, lt);
            memcpy (out + lt, bind + lf, lr + 1);
            return out;
        }
    }
    char *out = strdup (bind);
    assert (out);
    return out;
}

void
jm_config_destroy (jm_config_t **self_p)
{
    assert (self_p);
    jm_config_t *self = *self_p;
    if (!self)
        return;
    free (self->home);
    free (self->bind);
    free (self->endpoint);
    for (size_t i = 0; i < self->nconnect; i++)
        free (self->connect[i]);
    free (self->connect);
    free (self->tunnel_machines);
    free (self->tunnel_prefix);
    free (self);
    *self_p = NULL;
}

/* An endpoint we can hand to zmq; also safe to write into YAML quoted. */
static int
s_endpoint_ok (const char *s)
{
    if (strncmp (s, "tcp://", 6) != 0 && strncmp (s, "ipc://", 6) != 0 &&
        strncmp (s, "inproc://", 9) != 0)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '\'' || *p == '"' || *p == '\\')
            return 0;
    return strlen (s) < 1024;
}

static int
s_get_u64 (const jm_ynode_t *v, const char *file, const char *key, uint64_t min, uint64_t max,
           uint64_t *out, char *err, size_t errlen)
{
    const char *s = v->type == JM_Y_SCALAR ? v->value : "";
    int ok = v->type == JM_Y_SCALAR && *s && strlen (s) <= 19;
    uint64_t n = 0;
    for (const char *p = s; ok && *p; p++) {
        if (*p < '0' || *p > '9')
            ok = 0;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || n < min || n > max)
        return jm_err (err, errlen, "%s:%d: '%s' must be an integer from %llu to %llu", file,
                       v->line, key, (unsigned long long)min, (unsigned long long)max);
    *out = n;
    return 0;
}

static int
s_get_endpoint (const jm_ynode_t *v, const char *file, const char *key, char **out, char *err,
                size_t errlen)
{
    if (v->type != JM_Y_SCALAR || !s_endpoint_ok (v->value))
        return jm_err (err, errlen,
                       "%s:%d: '%s' must be a ZeroMQ endpoint such as "
                       "tcp://127.0.0.1:7100",
                       file, v->line, key);
    free (*out);
    *out = strdup (v->value);
    return 0;
}

/* connect: a list of endpoints the coordinator dials (one scalar = a list
   of one).  Only tcp:// and ipc:// make sense across processes, and a
   wildcard host cannot be dialled. */
static int
s_get_connect (const jm_ynode_t *v, const char *file, jm_config_t *self, char *err, size_t errlen)
{
    size_t n = v->type == JM_Y_SEQ ? v->n : 1;
    if (v->type == JM_Y_MAP)
        return jm_err (err, errlen,
                       "%s:%d: 'connect' must be a list of agent endpoints such as "
                       "[tcp://login1:7200]",
                       file, v->line);
    for (size_t i = 0; i < n; i++) {
        const jm_ynode_t *e = v->type == JM_Y_SEQ ? v->items[i] : v;
        if (e->type != JM_Y_SCALAR || !s_endpoint_ok (e->value) ||
            strncmp (e->value, "inproc://", 9) == 0 || strncmp (e->value, "tcp://*:", 8) == 0 ||
            strncmp (e->value, "tcp://0.0.0.0:", 14) == 0)
            return jm_err (err, errlen,
                           "%s:%d: 'connect' item %zu must be an agent's endpoint such as "
                           "tcp://login1:7200 (what the agent was given with --bind)",
                           file, e->line, i + 1);
        for (size_t j = 0; j < self->nconnect; j++)
            if (strcmp (self->connect[j], e->value) == 0)
                return jm_err (err, errlen, "%s:%d: 'connect' lists '%s' twice", file, e->line,
                               e->value);
        char **nc = realloc (self->connect, (self->nconnect + 1) * sizeof (char *));
        assert (nc);
        self->connect = nc;
        self->connect[self->nconnect] = strdup (e->value);
        assert (self->connect[self->nconnect]);
        self->nconnect++;
    }
    return 0;
}

/* A one-line string without control characters. */
static int
s_get_string (const jm_ynode_t *v, const char *file, const char *key, const char *what, char **out,
              char *err, size_t errlen)
{
    int ok = v->type == JM_Y_SCALAR && *v->value && strlen (v->value) < 4096;
    for (const char *p = ok ? v->value : ""; *p; p++)
        if ((unsigned char)*p < 0x20)
            ok = 0;
    if (!ok)
        return jm_err (err, errlen, "%s:%d: '%s' must be %s on one line", file, v->line, key, what);
    free (*out);
    *out = strdup (v->value);
    assert (*out);
    return 0;
}

/* tunnel_machines: ~/x is below the user's home, a relative path below the
   jobman home (where config.yml is). */
static int
s_get_path (const jm_ynode_t *v, const char *file, const char *key, const char *home, char **out,
            char *err, size_t errlen)
{
    char *raw = NULL;
    if (s_get_string (v, file, key, "a file path", &raw, err, errlen))
        return -1;
    char *path;
    if (raw[0] == '~' && (raw[1] == '/' || raw[1] == 0)) {
        const char *h = getenv ("HOME");
        if (!h || !*h) {
            struct passwd *pw = getpwuid (getuid ());
            h = pw && pw->pw_dir ? pw->pw_dir : "/";
        }
        path = raw[1] ? s_join (h, raw + 2) : strdup (h);
    }
    else if (raw[0] == '/')
        path = strdup (raw);
    else
        path = s_join (home, raw);
    assert (path);
    free (raw);
    free (*out);
    *out = path;
    return 0;
}

#define S_KNOWN_KEYS                                                                               \
    "bind, endpoint, heartbeat_ms, chunk_size, window, connect, tunnel_machines, "                 \
    "tunnel_prefix, tunnel_port, requeue_after_ms"

jm_config_t *
jm_config_load (const char *home, char *err, size_t errlen)
{
    assert (home);
    jm_config_t *self = calloc (1, sizeof (*self));
    assert (self);
    self->home = jm_home_resolve (home);
    self->heartbeat_ms = JM_DEFAULT_HEARTBEAT_MS;
    self->chunk_size = JM_DEFAULT_CHUNK_SIZE;
    self->window = JM_DEFAULT_WINDOW;

    char *file = s_join (self->home, "config.yml");
    struct stat st;
    if (stat (file, &st) != 0) {
        if (errno != ENOENT) {
            jm_err (err, errlen, "cannot read '%s': %s", file, strerror (errno));
            goto fail;
        }
    }
    else {
        jm_ynode_t *root = jm_yaml_load_file (file, err, errlen);
        if (!root)
            goto fail;
        int rc = 0;
        if (!jm_ynode_is_null (root) && root->type != JM_Y_MAP) {
            rc = jm_err (err, errlen, "%s:%d: expected a map of settings (" S_KNOWN_KEYS ")", file,
                         root->line);
        }
        for (size_t i = 0; rc == 0 && root->type == JM_Y_MAP && i < root->n; i++) {
            const char *k = root->keys[i];
            const jm_ynode_t *v = root->items[i];
            if (jm_ynode_is_null (v))
                continue; /* "key:" with no value keeps the default */
            if (strcmp (k, "bind") == 0)
                rc = s_get_endpoint (v, file, k, &self->bind, err, errlen);
            else if (strcmp (k, "endpoint") == 0)
                rc = s_get_endpoint (v, file, k, &self->endpoint, err, errlen);
            else if (strcmp (k, "heartbeat_ms") == 0)
                rc = s_get_u64 (v, file, k, 10, 3600000, &self->heartbeat_ms, err, errlen);
            else if (strcmp (k, "chunk_size") == 0)
                rc = s_get_u64 (v, file, k, 1, JM_MAX_CHUNK_SIZE, &self->chunk_size, err, errlen);
            else if (strcmp (k, "window") == 0)
                rc = s_get_u64 (v, file, k, 1, 1024, &self->window, err, errlen);
            else if (strcmp (k, "connect") == 0)
                rc = s_get_connect (v, file, self, err, errlen);
            else if (strcmp (k, "tunnel_machines") == 0)
                rc = s_get_path (v, file, k, self->home, &self->tunnel_machines, err, errlen);
            else if (strcmp (k, "tunnel_prefix") == 0)
                rc = s_get_string (v, file, k, "a machine entry name prefix", &self->tunnel_prefix,
                                   err, errlen);
            else if (strcmp (k, "tunnel_port") == 0) {
                uint64_t port = 0;
                rc = s_get_u64 (v, file, k, 0, 65535, &port, err, errlen);
                self->tunnel_port = (unsigned)port;
            }
            else if (strcmp (k, "requeue_after_ms") == 0)
                rc = s_get_u64 (v, file, k, 0, 86400000, &self->requeue_after_ms, err, errlen);
            else
                rc = jm_err (err, errlen, "%s:%d: unknown key '%s' (known: " S_KNOWN_KEYS ")", file,
                             root->key_lines[i], k);
        }
        jm_ynode_destroy (&root);
        if (rc)
            goto fail;
    }
    if (self->tunnel_prefix && !self->tunnel_machines) {
        jm_err (err, errlen, "%s: 'tunnel_prefix' is set but 'tunnel_machines' is not", file);
        goto fail;
    }
    if (self->requeue_after_ms == 0)
        self->requeue_after_ms = 10 * self->heartbeat_ms;
    if (!self->bind)
        self->bind = strdup (JM_DEFAULT_BIND);
    if (!self->endpoint)
        self->endpoint = jm_endpoint_for_connect (self->bind);
    free (file);
    return self;
fail:
    free (file);
    jm_config_destroy (&self);
    return NULL;
}

static int
s_mkdirs (const char *path, char *err, size_t errlen)
{
    char *p = strdup (path);
    assert (p);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir (p, 0700) != 0 && errno != EEXIST) {
                jm_err (err, errlen, "cannot create directory '%s': %s", p, strerror (errno));
                free (p);
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free (p);
    return 0;
}

int
jm_config_write_default (const char *home, const char *bind, char *err, size_t errlen)
{
    assert (home);
    if (!bind)
        bind = JM_DEFAULT_BIND;
    if (!s_endpoint_ok (bind))
        return jm_err (err, errlen, "bind '%s' is not a ZeroMQ endpoint such as %s", bind,
                       JM_DEFAULT_BIND);
    char *dir = jm_home_resolve (home);
    if (s_mkdirs (dir, err, errlen)) {
        free (dir);
        return -1;
    }
    char *file = s_join (dir, "config.yml");
    free (dir);
    char *endpoint = jm_endpoint_for_connect (bind);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream (&text, &len);
    assert (mem);
    fprintf (mem,
             "# jobman coordinator configuration\n"
             "\n"
             "# Where jobman-coord listens (a ZeroMQ endpoint).  Agents on a cluster\n"
             "# usually reach it through an ssh tunnel, so loopback is the default.\n"
             "bind: '%s'\n"
             "\n"
             "# Where local clients (jobman-submit) connect; derived from bind if unset.\n"
             "endpoint: '%s'\n"
             "\n"
             "# Heartbeat interval towards agents, in milliseconds.\n"
             "heartbeat_ms: %d\n"
             "\n"
             "# File transfer chunk size in bytes (at most 1048576).\n"
             "chunk_size: %d\n"
             "\n"
             "# File transfer chunks in flight per peer.\n"
             "window: %d\n"
             "\n"
             "# Agents started with 'jobman-agent run --bind ENDPOINT' that this\n"
             "# coordinator dials (for a login node it can reach, or through ssh -L):\n"
             "# connect: [tcp://login1.example.org:7200]\n"
             "\n"
             "# Keep one reverse ssh tunnel ('ssh -N -R', honouring ~/.ssh/config) to\n"
             "# each entry of this machine file that has remote_profile.hostname, so\n"
             "# agents there dial tcp://127.0.0.1:<tunnel_port> on their login node.\n"
             "# tunnel_machines: ~/work/MACHINE.yml\n"
             "# tunnel_prefix: dft        # only the entries whose name starts with it\n"
             "# tunnel_port: 7100         # default: the port bound above\n"
             "\n"
             "# A site silent for this long loses its unstarted work to the other\n"
             "# sites (0 = 10 x heartbeat_ms).\n"
             "requeue_after_ms: 0\n",
             bind, endpoint, JM_DEFAULT_HEARTBEAT_MS, JM_DEFAULT_CHUNK_SIZE, JM_DEFAULT_WINDOW);
    fclose (mem);
    free (endpoint);

    int rc = 0;
    int fd = open (file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            rc = jm_err (err, errlen, "'%s' already exists; not overwriting it", file);
        else
            rc = jm_err (err, errlen, "cannot create '%s': %s", file, strerror (errno));
    }
    else {
        size_t off = 0;
        while (off < len) {
            ssize_t n = write (fd, text + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = jm_err (err, errlen, "cannot write '%s': %s", file, strerror (errno));
                break;
            }
            off += (size_t)n;
        }
        if (close (fd) != 0 && rc == 0)
            rc = jm_err (err, errlen, "cannot write '%s': %s", file, strerror (errno));
        if (rc)
            unlink (file);
    }
    free (text);
    free (file);
    return rc;
}
