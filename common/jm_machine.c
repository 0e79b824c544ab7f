/*  jm_machine.c - thkit / dpdispatcher / dpgen machine files -> entries.

    One pass over the jm_yaml tree: the shape is decided first (see the
    header), then every entry is parsed with the same function, which
    knows only the entry's map node, its name and its path in the file
    (for messages).  Resources are handed to jm_resources_from_ynode; its
    messages and notices say "resources.X", so the entry's path is put in
    front of that to tell the entries apart. */
#define _GNU_SOURCE
#include "jm_machine.h"
#include "jm_text.h"
#include "jm_util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_MAX_ENTRIES 1024
#define S_MAX_SITE 128
#define S_MAX_FIELD 4096

struct _jm_machines_t {
    char *file;
    jm_machine_t **v;
    size_t n;
};

typedef struct {
    const char *file;
    char *base_dir;
    const char *path; /* "dft_1." / "fp[1]." / "" */
    jm_text_t notices;
    bool ssh_noticed;
    char *err;
    size_t errlen;
} s_ctx_t;

static const char *const s_batch_types[] = {"shell",   "slurm",  "slurmjobarray", "sge", "pbs",
                                            "openpbs", "torque", "lsf",           NULL};
static const char *const s_entry_keys[] = {"machine",         "resources", "command", "submit_size",
                                           "work_load_ratio", "site",      NULL};
static const char *const s_dpgen_steps[] = {"train", "model_devi", "fp", NULL};
static const char *const s_dpgen_ignored[] = {"api_version", "deepmd_version", NULL};

static bool
s_in (const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp (s, list[i]) == 0)
            return true;
    return false;
}

static void
s_join (jm_text_t *t, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        jm_text_add (t, "%s%s", i ? ", " : "", list[i]);
}

/* At most 60 bytes of s, control characters as '?', for messages. */
static const char *
s_show (const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 4 < len && i < 60; i++)
        buf[i] = iscntrl ((unsigned char)s[i]) ? '?' : s[i];
    if (s[i] && i + 4 <= len)
        memcpy (buf + i, "...", 3), i += 3;
    buf[i] = 0;
    return buf;
}

static const char *
s_kind (const jm_ynode_t *v)
{
    return v->type == JM_Y_MAP ? "a map" : v->type == JM_Y_SEQ ? "a list" : "a string";
}

static int s_fail (s_ctx_t *ctx, int line, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* "a map", "a list", "a string 'x'" (quoted) or "'x'" (plain), for
   "must be ..., not %s". */
static const char *
s_what (const jm_ynode_t *v, char *buf, size_t len)
{
    char show[80];
    if (v->type != JM_Y_SCALAR)
        return s_kind (v);
    snprintf (buf, len, "%s'%s'", v->quoted ? "a string " : "",
              s_show (v->value, show, sizeof show));
    return buf;
}

static int
s_fail (s_ctx_t *ctx, int line, const char *field, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (what, sizeof what, fmt, ap);
    va_end (ap);
    /* path "dft_1." + field "machine" -> "dft_1.machine"; a whole entry
       (field "") -> "dft_1" */
    size_t plen = strlen (ctx->path);
    if (!*field && plen)
        plen--;
    return jm_err (ctx->err, ctx->errlen, "%s:%d: %.*s%s: %s", ctx->file, line, (int)plen,
                   ctx->path, field, what);
}

/* A scalar string; absent or null keeps *out NULL.  one_line refuses CR
   and LF. */
static int
s_str (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, bool one_line, char **out)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_SCALAR)
        return s_fail (ctx, v->line, field, "must be a string, not %s", s_kind (v));
    if (strlen (v->value) > S_MAX_FIELD)
        return s_fail (ctx, v->line, field, "longer than %d bytes", S_MAX_FIELD);
    if (one_line && strpbrk (v->value, "\r\n"))
        return s_fail (ctx, v->line, field, "must be one line (no CR or LF)");
    *out = strdup (v->value);
    assert (*out);
    return 0;
}

/* An unquoted decimal integer in [min, max]; absent or null keeps *out. */
static int
s_uint (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, uint64_t min, uint64_t max,
        uint64_t *out)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    char show[80];
    bool ok = v->type == JM_Y_SCALAR && !v->quoted && *v->value && strlen (v->value) <= 18;
    uint64_t n = 0;
    for (const char *p = ok ? v->value : ""; ok && *p; p++) {
        if (*p < '0' || *p > '9')
            ok = false;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || n < min || n > max)
        return s_fail (ctx, v->line, field, "must be an integer from %llu to %llu, not %s",
                       (unsigned long long)min, (unsigned long long)max,
                       s_what (v, show, sizeof show));
    *out = n;
    return 0;
}

/* A host or user name for ssh's command line. */
static int
s_ssh_word (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, char **out)
{
    if (s_str (ctx, v, field, true, out))
        return -1;
    if (!*out)
        return 0;
    const char *s = *out;
    bool ok = *s && *s != '-' && strlen (s) <= 255;
    for (const char *p = s; ok && *p; p++)
        if (isspace ((unsigned char)*p) || iscntrl ((unsigned char)*p))
            ok = false;
    if (!ok) {
        char show[80];
        return s_fail (ctx, v->line, field,
                       "'%s' is not a plain name (1..255 bytes, no blanks or control "
                       "characters, not starting with '-')",
                       s_show (s, show, sizeof show));
    }
    return 0;
}

/* Puts ctx->path in front of "resources" in a message of
   jm_resources_from_ynode ("FILE:LINE: resources.X: ..."). */
static void
s_add_path (s_ctx_t *ctx, jm_text_t *out, const char *line, size_t len)
{
    const char *at = memmem (line, len, ": resources", 11);
    if (!at || !*ctx->path) {
        jm_text_put (out, line, len);
        return;
    }
    jm_text_put (out, line, (size_t)(at - line) + 2);
    jm_text_puts (out, ctx->path);
    jm_text_put (out, at + 2, len - (size_t)(at - line) - 2);
}

static void
s_ssh_notice (s_ctx_t *ctx, int line, const char *context_type)
{
    if (ctx->ssh_noticed)
        return;
    ctx->ssh_noticed = true;
    char show[80];
    jm_text_add (&ctx->notices,
                 "%s:%d: %smachine.context_type: '%s' accepted, but jobman does not use SSH to "
                 "run jobs: start jobman-agent on the cluster (remote_profile only names the "
                 "host and feeds the optional tunnel)\n",
                 ctx->file, line, ctx->path, s_show (context_type, show, sizeof show));
}

static void
s_machine_destroy (jm_machine_t **self_p)
{
    jm_machine_t *self = *self_p;
    if (!self)
        return;
    free (self->name);
    free (self->batch_type);
    free (self->context_type);
    free (self->remote_root);
    free (self->remote_profile.hostname);
    free (self->remote_profile.username);
    free (self->remote_profile.port);
    free (self->remote_profile.key_filename);
    free (self->remote_profile.proxy_command);
    free (self->site);
    free (self->command);
    jm_resources_destroy (&self->resources);
    free (self);
    *self_p = NULL;
}

static int
s_parse_machine (s_ctx_t *ctx, const jm_ynode_t *mnode, int entry_line, jm_machine_t *m)
{
    if (!mnode || jm_ynode_is_null (mnode))
        return s_fail (ctx, entry_line, "machine",
                       "missing (a map with batch_type, context_type, remote_root, ...)");
    if (mnode->type != JM_Y_MAP)
        return s_fail (ctx, mnode->line, "machine", "must be a map, not %s", s_kind (mnode));
    const jm_ynode_t *bt = jm_ynode_get (mnode, "batch_type");
    char *batch = NULL;
    if (s_str (ctx, bt, "machine.batch_type", true, &batch))
        return -1;
    jm_text_t known = JM_TEXT_INIT;
    s_join (&known, s_batch_types);
    int rc = 0;
    if (!batch)
        rc = s_fail (ctx, mnode->line, "machine.batch_type", "missing (one of: %s)",
                     known.buf ? known.buf : "");
    else {
        for (char *p = batch; *p; p++)
            *p = (char)tolower ((unsigned char)*p);
        if (!s_in (batch, s_batch_types)) {
            char show[80];
            rc = s_fail (ctx, bt->line, "machine.batch_type",
                         "'%s' is not supported (one of: %s, any case)",
                         s_show (bt->value, show, sizeof show), known.buf ? known.buf : "");
            free (batch);
            batch = NULL;
        }
    }
    jm_text_reset (&known);
    m->batch_type = batch;
    if (rc)
        return -1;

    const jm_ynode_t *ct = jm_ynode_get (mnode, "context_type");
    if (s_str (ctx, ct, "machine.context_type", true, &m->context_type) ||
        s_str (ctx, jm_ynode_get (mnode, "remote_root"), "machine.remote_root", true,
               &m->remote_root) ||
        s_uint (ctx, jm_ynode_get (mnode, "retry_count"), "machine.retry_count", 0, 1000,
                &m->retry_count))
        return -1;
    if (m->context_type && strcasestr (m->context_type, "ssh"))
        s_ssh_notice (ctx, ct->line, m->context_type);

    const jm_ynode_t *rp = jm_ynode_get (mnode, "remote_profile");
    if (!rp || jm_ynode_is_null (rp))
        return 0;
    if (rp->type != JM_Y_MAP)
        return s_fail (ctx, rp->line, "machine.remote_profile", "must be a map, not %s",
                       s_kind (rp));
    if (s_ssh_word (ctx, jm_ynode_get (rp, "hostname"), "machine.remote_profile.hostname",
                    &m->remote_profile.hostname) ||
        s_ssh_word (ctx, jm_ynode_get (rp, "username"), "machine.remote_profile.username",
                    &m->remote_profile.username) ||
        s_str (ctx, jm_ynode_get (rp, "key_filename"), "machine.remote_profile.key_filename", true,
               &m->remote_profile.key_filename) ||
        s_str (ctx, jm_ynode_get (rp, "proxy_command"), "machine.remote_profile.proxy_command",
               true, &m->remote_profile.proxy_command))
        return -1;
    uint64_t port = 0;
    if (s_uint (ctx, jm_ynode_get (rp, "port"), "machine.remote_profile.port", 1, 65535, &port))
        return -1;
    if (port) {
        char buf[8];
        snprintf (buf, sizeof buf, "%u", (unsigned)port);
        m->remote_profile.port = strdup (buf);
        assert (m->remote_profile.port);
    }
    return 0;
}

static int
s_ratio (s_ctx_t *ctx, const jm_ynode_t *v, double *out)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    char show[80];
    if (v->type == JM_Y_SCALAR && !v->quoted && *v->value) {
        char *end;
        errno = 0;
        double d = strtod (v->value, &end);
        if (!*end && !errno && isfinite (d) && d > 0 && d <= 1e9) {
            *out = d;
            return 0;
        }
    }
    return s_fail (ctx, v->line, "work_load_ratio", "must be a number above 0, not %s",
                   s_what (v, show, sizeof show));
}

/* One entry: node is its map, line where its key is. */
static jm_machine_t *
s_parse_entry (s_ctx_t *ctx, const char *name, const jm_ynode_t *node, int line)
{
    if (node->type != JM_Y_MAP)
        return s_fail (ctx, node->line, "",
                       "must be a machine entry (a map with machine, resources, command), "
                       "not %s",
                       s_kind (node)),
               NULL;
    for (size_t i = 0; i < node->n; i++)
        if (!s_in (node->keys[i], s_entry_keys)) {
            jm_text_t known = JM_TEXT_INIT;
            s_join (&known, s_entry_keys);
            char show[80];
            s_fail (ctx, node->key_lines[i], s_show (node->keys[i], show, sizeof show),
                    "unknown key of a machine entry (known: %s)", known.buf ? known.buf : "");
            jm_text_reset (&known);
            return NULL;
        }
    jm_machine_t *m = calloc (1, sizeof *m);
    assert (m);
    m->name = strdup (name);
    assert (m->name);
    m->line = line;
    m->retry_count = 3;
    if (s_parse_machine (ctx, jm_ynode_get (node, "machine"), line, m) ||
        s_str (ctx, jm_ynode_get (node, "command"), "command", false, &m->command) ||
        s_uint (ctx, jm_ynode_get (node, "submit_size"), "submit_size", 1, 1000000000,
                &m->submit_size) ||
        s_ratio (ctx, jm_ynode_get (node, "work_load_ratio"), &m->work_load_ratio))
        goto fail;

    const jm_ynode_t *site = jm_ynode_get (node, "site");
    if (s_str (ctx, site, "site", true, &m->site))
        goto fail;
    if (m->site) {
        bool ok = *m->site && strlen (m->site) <= S_MAX_SITE;
        for (const char *p = m->site; ok && *p; p++)
            if (!(isalnum ((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
                ok = false;
        if (!ok) {
            char show[80];
            s_fail (ctx, site->line, "site",
                    "'%s' is not a site name ([A-Za-z0-9._-], 1..%d bytes, as jobman-agent "
                    "--site)",
                    s_show (m->site, show, sizeof show), S_MAX_SITE);
            goto fail;
        }
    }

    char rerr[1024] = "";
    char *rnotices = NULL;
    m->resources = jm_resources_from_ynode (jm_ynode_get (node, "resources"), ctx->file,
                                            ctx->base_dir, &rnotices, rerr, sizeof rerr);
    if (rnotices) {
        for (char *p = rnotices; *p;) {
            char *nl = strchr (p, '\n');
            size_t len = nl ? (size_t)(nl - p) + 1 : strlen (p);
            s_add_path (ctx, &ctx->notices, p, len);
            p += len;
        }
        free (rnotices);
    }
    if (!m->resources) {
        jm_text_t t = JM_TEXT_INIT;
        s_add_path (ctx, &t, rerr, strlen (rerr));
        jm_err (ctx->err, ctx->errlen, "%s", t.buf ? t.buf : rerr);
        jm_text_reset (&t);
        goto fail;
    }
    return m;
fail:
    s_machine_destroy (&m);
    return NULL;
}

static int
s_add (jm_machines_t *self, jm_machine_t *m)
{
    jm_machine_t **v = realloc (self->v, (self->n + 1) * sizeof *v);
    assert (v);
    self->v = v;
    self->v[self->n++] = m;
    return 0;
}

/* Parses node as entry name at path (without the dot), appends it. */
static int
s_entry (s_ctx_t *ctx, jm_machines_t *self, const char *name, const char *path,
         const jm_ynode_t *node, int line)
{
    if (self->n >= S_MAX_ENTRIES)
        return jm_err (ctx->err, ctx->errlen, "%s:%d: more than %d machine entries", ctx->file,
                       line, S_MAX_ENTRIES);
    char pbuf[512];
    snprintf (pbuf, sizeof pbuf, "%s%s", path, *path ? "." : "");
    ctx->path = pbuf;
    jm_machine_t *m = s_parse_entry (ctx, name, node, line);
    ctx->path = "";
    if (!m)
        return -1;
    return s_add (self, m);
}

static bool
s_is_dpgen (const jm_ynode_t *root)
{
    if (jm_ynode_get (root, "api_version") || jm_ynode_get (root, "deepmd_version"))
        return true;
    for (size_t i = 0; s_dpgen_steps[i]; i++) {
        const jm_ynode_t *v = jm_ynode_get (root, s_dpgen_steps[i]);
        if (v && v->type == JM_Y_SEQ)
            return true;
    }
    return false;
}

static int
s_load_dpgen (s_ctx_t *ctx, jm_machines_t *self, const jm_ynode_t *root)
{
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        const jm_ynode_t *v = root->items[i];
        if (s_in (key, s_dpgen_ignored))
            continue;
        if (!s_in (key, s_dpgen_steps)) {
            jm_text_t known = JM_TEXT_INIT;
            s_join (&known, s_dpgen_steps);
            jm_text_puts (&known, ", ");
            s_join (&known, s_dpgen_ignored);
            char show[80];
            jm_err (ctx->err, ctx->errlen,
                    "%s:%d: %s: unknown key in a dpgen machine file (known: %s)", ctx->file,
                    root->key_lines[i], s_show (key, show, sizeof show),
                    known.buf ? known.buf : "");
            jm_text_reset (&known);
            return -1;
        }
        char name[64], path[64];
        if (v->type == JM_Y_SEQ) {
            if (v->n == 0)
                return jm_err (ctx->err, ctx->errlen,
                               "%s:%d: %s: an empty list (give one entry "
                               "or more, or leave the step out)",
                               ctx->file, v->line, key);
            for (size_t k = 0; k < v->n; k++) {
                snprintf (name, sizeof name, "%s_%zu", key, k);
                snprintf (path, sizeof path, "%s[%zu]", key, k);
                if (s_entry (ctx, self, name, path, v->items[k], v->items[k]->line))
                    return -1;
            }
        }
        else {
            snprintf (name, sizeof name, "%s_0", key);
            if (s_entry (ctx, self, name, key, v, root->key_lines[i]))
                return -1;
        }
    }
    if (self->n == 0)
        return jm_err (ctx->err, ctx->errlen,
                       "%s: no machine entries (a dpgen machine file has train, model_devi "
                       "and/or fp)",
                       ctx->file);
    return 0;
}

/* Keeps the entries whose name starts with prefix. */
static int
s_select (s_ctx_t *ctx, jm_machines_t *self, const char *prefix)
{
    size_t plen = strlen (prefix), kept = 0;
    for (size_t i = 0; i < self->n; i++)
        if (strncmp (self->v[i]->name, prefix, plen) == 0)
            kept++;
    if (kept == 0) {
        jm_text_t names = JM_TEXT_INIT;
        for (size_t i = 0; i < self->n; i++)
            jm_text_add (&names, "%s%s", i ? ", " : "", self->v[i]->name);
        char show[80];
        jm_err (ctx->err, ctx->errlen,
                "%s: no machine entry starts with the prefix '%s' "
                "(entries: %s)",
                ctx->file, s_show (prefix, show, sizeof show), names.buf ? names.buf : "");
        jm_text_reset (&names);
        return -1;
    }
    size_t j = 0;
    for (size_t i = 0; i < self->n; i++) {
        if (strncmp (self->v[i]->name, prefix, plen) == 0)
            self->v[j++] = self->v[i];
        else
            s_machine_destroy (&self->v[i]);
    }
    self->n = j;
    return 0;
}

jm_machines_t *
jm_machines_load (const char *file, const char *prefix, char **notices, char *err, size_t errlen)
{
    assert (file);
    if (notices)
        *notices = NULL;
    jm_ynode_t *root = jm_yaml_load_file (file, err, errlen);
    if (!root)
        return NULL;
    char *fcopy = strdup (file);
    assert (fcopy);
    s_ctx_t ctx = {.file = file,
                   .base_dir = strdup (dirname (fcopy)),
                   .path = "",
                   .err = err,
                   .errlen = errlen};
    free (fcopy);
    assert (ctx.base_dir);
    jm_machines_t *self = calloc (1, sizeof *self);
    assert (self);
    self->file = strdup (file);
    assert (self->file);

    int rc = 0;
    if (root->type != JM_Y_MAP)
        rc = jm_err (err, errlen,
                     "%s:%d: a machine file must be a map (of machine entries, or "
                     "machine/resources), not %s",
                     file, root->line, jm_ynode_is_null (root) ? "empty" : s_kind (root));
    else if (root->n == 0)
        rc = jm_err (err, errlen, "%s:%d: no machine entries", file, root->line);
    else if (jm_ynode_get (root, "machine"))
        rc = s_entry (&ctx, self, "machine", "", root, root->line);
    else if (s_is_dpgen (root))
        rc = s_load_dpgen (&ctx, self, root);
    else
        for (size_t i = 0; i < root->n && rc == 0; i++)
            rc = s_entry (&ctx, self, root->keys[i], root->keys[i], root->items[i],
                          root->key_lines[i]);
    if (rc == 0 && prefix && *prefix)
        rc = s_select (&ctx, self, prefix);

    jm_ynode_destroy (&root);
    free (ctx.base_dir);
    char *text = jm_text_take (&ctx.notices);
    if (rc) {
        free (text);
        jm_machines_destroy (&self);
        return NULL;
    }
    if (notices && text && *text)
        *notices = text;
    else
        free (text);
    return self;
}

void
jm_machines_destroy (jm_machines_t **self_p)
{
    assert (self_p);
    jm_machines_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_machine_destroy (&self->v[i]);
    free (self->v);
    free (self->file);
    free (self);
    *self_p = NULL;
}

size_t
jm_machines_count (const jm_machines_t *self)
{
    assert (self);
    return self->n;
}

const jm_machine_t *
jm_machines_entry (const jm_machines_t *self, size_t index)
{
    assert (self);
    assert (index < self->n);
    return self->v[index];
}

const jm_machine_t *
jm_machines_find (const jm_machines_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; name && i < self->n; i++)
        if (strcmp (self->v[i]->name, name) == 0)
            return self->v[i];
    return NULL;
}

const char *
jm_machine_site_for (const jm_machine_t *m)
{
    assert (m);
    return m->site ? m->site : m->remote_profile.hostname;
}

char *
jm_machine_substitute_command (const char *task_command, const char *machine_command)
{
    assert (task_command);
    if (!machine_command) {
        char *copy = strdup (task_command);
        assert (copy);
        return copy;
    }
    jm_text_t out = JM_TEXT_INIT;
    const char *p = task_command, *hit;
    while ((hit = strstr (p, "{command}"))) {
        jm_text_put (&out, p, (size_t)(hit - p));
        jm_text_puts (&out, machine_command);
        p = hit + 9;
    }
    jm_text_puts (&out, p);
    char *s = jm_text_take (&out);
    assert (s);
    return s;
}
