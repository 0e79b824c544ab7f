/*  jm_resources.c - dpdispatcher's Resources: parse (YAML tree or wire
    JSON), validate, serialise to canonical JSON, fill the header template,
    quote envs values for the job script.

    One parser serves both sides: the submission file (file mode: messages
    "FILE:LINE: resources.FIELD: ...", the header template is a file name)
    and the wire (JSON read by libyaml, which reads JSON; messages "WHAT:
    resources.FIELD: ...", the template travels as text).  The JSON emitter
    writes only what libyaml reads back unchanged: every character YAML
    calls non-printable is written as a \u escape. */
#define _GNU_SOURCE
#include "jm_resources.h"
#include "jm_text.h"
#include "jm_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_COUNT 1000000  /* nodes, CPUs, GPUs, tasks per job */
#define S_MAX_WAIT 86400     /* wait_time, seconds */
#define S_MAX_NAME 128       /* queue_name, pe_name, job_name */
#define S_MAX_ENV_KEY 255    /* libyaml reads keys up to 1024 chars */
#define S_MAX_TEMPLATE 65536 /* header template, bytes */
#define S_MAX_JSON 262144    /* the protocol's limit on 'resources' */

/* The text of a builder; this file has no error path for running out of
   memory (it never had). */
static char *
s_take (jm_text_t *b)
{
    char *s = jm_text_take (b);
    assert (s);
    return s;
}

/* ------------------------------------------------------------------ */
/* Life cycle. */

static void
s_strs_free (jm_rstrs_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free (l->v[i]);
    free (l->v);
    l->v = NULL;
    l->n = 0;
}

static void
s_strs_push (jm_rstrs_t *l, const char *s)
{
    l->v = realloc (l->v, (l->n + 1) * sizeof *l->v);
    assert (l->v);
    l->v[l->n] = strdup (s);
    assert (l->v[l->n]);
    l->n++;
}

static void
s_set (char **field, const char *value)
{
    free (*field);
    *field = value ? strdup (value) : NULL;
    assert (!value || *field);
}

jm_resources_t *
jm_resources_new (void)
{
    jm_resources_t *self = calloc (1, sizeof *self);
    assert (self);
    self->number_node = 1;
    self->cpu_per_node = 1;
    self->group_size = 1;
    self->para_deg = 1;
    s_set (&self->queue_name, "");
    s_set (&self->custom_gpu_line, "");
    s_set (&self->pe_name, "smp");
    s_set (&self->job_name, "");
    self->job_array = true;
    return self;
}

void
jm_resources_destroy (jm_resources_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jm_resources_t *self = *self_p;
    free (self->queue_name);
    s_strs_free (&self->custom_flags);
    s_strs_free (&self->source_list);
    s_strs_free (&self->module_unload_list);
    s_strs_free (&self->module_list);
    for (size_t i = 0; i < self->n_envs; i++) {
        free (self->envs[i].key);
        free (self->envs[i].value);
    }
    free (self->envs);
    s_strs_free (&self->prepend_script);
    s_strs_free (&self->append_script);
    free (self->header_template);
    free (self->custom_gpu_line);
    free (self->pe_name);
    free (self->job_name);
    free (self);
    *self_p = NULL;
}

static void
s_strs_copy (jm_rstrs_t *dst, const jm_rstrs_t *src)
{
    dst->v = NULL;
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++)
        s_strs_push (dst, src->v[i]);
}

static void
s_env_push (jm_resources_t *self, const char *key, const char *value)
{
    self->envs = realloc (self->envs, (self->n_envs + 1) * sizeof *self->envs);
    assert (self->envs);
    self->envs[self->n_envs].key = strdup (key);
    self->envs[self->n_envs].value = strdup (value);
    assert (self->envs[self->n_envs].key && self->envs[self->n_envs].value);
    self->n_envs++;
}

jm_resources_t *
jm_resources_dup (const jm_resources_t *self)
{
    if (!self)
        return NULL;
    jm_resources_t *copy = calloc (1, sizeof *copy);
    assert (copy);
    *copy = *self; /* the numbers and booleans */
    copy->queue_name = NULL;
    copy->header_template = NULL;
    copy->custom_gpu_line = NULL;
    copy->pe_name = NULL;
    copy->job_name = NULL;
    copy->envs = NULL;
    copy->n_envs = 0;
    s_set (&copy->queue_name, self->queue_name ? self->queue_name : "");
    s_set (&copy->header_template, self->header_template);
    s_set (&copy->custom_gpu_line, self->custom_gpu_line ? self->custom_gpu_line : "");
    s_set (&copy->pe_name, self->pe_name ? self->pe_name : "smp");
    s_set (&copy->job_name, self->job_name ? self->job_name : "");
    s_strs_copy (&copy->custom_flags, &self->custom_flags);
    s_strs_copy (&copy->source_list, &self->source_list);
    s_strs_copy (&copy->module_unload_list, &self->module_unload_list);
    s_strs_copy (&copy->module_list, &self->module_list);
    s_strs_copy (&copy->prepend_script, &self->prepend_script);
    s_strs_copy (&copy->append_script, &self->append_script);
    for (size_t i = 0; i < self->n_envs; i++)
        s_env_push (copy, self->envs[i].key, self->envs[i].value);
    return copy;
}

/* ------------------------------------------------------------------ */
/* Parsing. */

typedef struct {
    const char *file; /* file mode: the submission file; wire: the sender */
    bool wire;
    const char *base_dir;
    jm_text_t *notices; /* NULL: notices are dropped */
    char *err;
    size_t errlen;
} s_ctx_t;

/* A value for a message: at most 100 bytes, control characters as '?'. */
static const char *
s_show (const char *value, char *buf, size_t buflen)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 4 < buflen && n < 100; p++)
        buf[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    if (strlen (value) > n) {
        memcpy (buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static int s_fail (s_ctx_t *ctx, int line, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static int
s_fail (s_ctx_t *ctx, int line, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    if (ctx->wire)
        return jm_err (ctx->err, ctx->errlen, "%s: resources%s%s: %s", ctx->file, *field ? "." : "",
                       field, msg);
    return jm_err (ctx->err, ctx->errlen, "%s:%d: resources%s%s: %s", ctx->file, line,
                   *field ? "." : "", field, msg);
}

static void
s_notice (s_ctx_t *ctx, int line, const char *field)
{
    if (!ctx->notices)
        return;
    if (ctx->wire)
        jm_text_add (ctx->notices, "%s: ", ctx->file);
    else
        jm_text_add (ctx->notices, "%s:%d: ", ctx->file, line);
    jm_text_add (ctx->notices,
                 "resources.%s: accepted but ignored (jobman does not implement it)\n", field);
}

static const char *
s_kind (const jm_ynode_t *v)
{
    return v->type == JM_Y_MAP ? "a map" : v->type == JM_Y_SEQ ? "a list" : "a string";
}

/* An integer in [min, max]; null keeps the default.  Only an unquoted
   decimal number counts (in JSON: a number, not a string). */
static int
s_uint (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, uint64_t min, uint64_t max,
        uint64_t *out)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    char show[128];
    if (v->type != JM_Y_SCALAR || v->quoted)
        return s_fail (ctx, v->line, field,
                       "must be an integer from %" PRIu64 " to %" PRIu64 ", not %s%s%s%s", min, max,
                       s_kind (v), v->type == JM_Y_SCALAR ? " '" : "",
                       v->type == JM_Y_SCALAR ? s_show (v->value, show, sizeof show) : "",
                       v->type == JM_Y_SCALAR ? "'" : "");
    const char *s = v->value;
    bool ok = *s && strlen (s) <= 18;
    uint64_t n = 0;
    for (const char *p = s; ok && *p; p++) {
        if (*p < '0' || *p > '9')
            ok = false;
        else
            n = n * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || n < min || n > max)
        return s_fail (ctx, v->line, field,
                       "must be an integer from %" PRIu64 " to %" PRIu64 ", not '%s'", min, max,
                       s_show (s, show, sizeof show));
    *out = n;
    return 0;
}

static int
s_bool (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, bool *out)
{
    if (!v || jm_ynode_is_null (v) || jm_ynode_bool (v, out) == 0)
        return 0;
    char show[128];
    return s_fail (ctx, v->line, field, "must be true or false, not %s%s%s%s", s_kind (v),
                   v->type == JM_Y_SCALAR ? " '" : "",
                   v->type == JM_Y_SCALAR ? s_show (v->value, show, sizeof show) : "",
                   v->type == JM_Y_SCALAR ? "'" : "");
}

/* A scalar's text; null keeps *out. */
static int
s_str (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, char **out)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_SCALAR)
        return s_fail (ctx, v->line, field, "must be a string, not %s", s_kind (v));
    s_set (out, v->value);
    return 0;
}

static bool
s_name_ok (const char *s)
{
    size_t n = strlen (s);
    if (n < 1 || n > S_MAX_NAME)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr ("_.+:@%-", *p)))
            return false;
    return true;
}

/* A name that goes into directive lines; "" allowed when allow_empty. */
static int
s_name (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, bool allow_empty, char **out)
{
    if (s_str (ctx, v, field, out))
        return -1;
    if (allow_empty && !**out)
        return 0;
    if (!s_name_ok (*out)) {
        char show[128];
        return s_fail (ctx, v ? v->line : 0, field,
                       "'%s' must be 1 to %d characters from A-Z a-z 0-9 _ . + : @ %% -",
                       s_show (*out, show, sizeof show), S_MAX_NAME);
    }
    return 0;
}

static bool
s_has_eol (const char *s)
{
    return strchr (s, '\n') || strchr (s, '\r');
}

typedef enum { S_ANY, S_ONE_LINE, S_NONEMPTY_LINE } s_strs_rule_t;

/* A list of strings; null keeps it empty. */
static int
s_strs (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, s_strs_rule_t rule, jm_rstrs_t *out)
{
    s_strs_free (out);
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_SEQ)
        return s_fail (ctx, v->line, field, "must be a list of strings, not %s", s_kind (v));
    for (size_t i = 0; i < v->n; i++) {
        const jm_ynode_t *item = v->items[i];
        char ifield[160];
        snprintf (ifield, sizeof ifield, "%s[%zu]", field, i);
        if (item->type != JM_Y_SCALAR)
            return s_fail (ctx, item->line, ifield, "must be a string, not %s", s_kind (item));
        if (jm_ynode_is_null (item))
            return s_fail (ctx, item->line, ifield, "must be a string, not null");
        if (rule != S_ANY && s_has_eol (item->value))
            return s_fail (ctx, item->line, ifield, "must be one line (no CR or LF)");
        if (rule == S_NONEMPTY_LINE && !*item->value)
            return s_fail (ctx, item->line, ifield, "must not be empty");
        s_strs_push (out, item->value);
    }
    return 0;
}

static bool
s_ident_ok (const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return strlen (s) <= S_MAX_ENV_KEY;
}

static int
s_envs (s_ctx_t *ctx, const jm_ynode_t *v, jm_resources_t *self)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_MAP)
        return s_fail (ctx, v->line, "envs", "must be a map of NAME: value, not %s", s_kind (v));
    for (size_t i = 0; i < v->n; i++) {
        char field[S_MAX_ENV_KEY + 64], show[128];
        snprintf (field, sizeof field, "envs.%s", s_show (v->keys[i], show, sizeof show));
        if (!s_ident_ok (v->keys[i]))
            return s_fail (ctx, v->key_lines[i], field,
                           "'%s' is not a shell variable name (letters, digits and _, not "
                           "starting with a digit, at most %d)",
                           show, S_MAX_ENV_KEY);
        const jm_ynode_t *val = v->items[i];
        if (val->type != JM_Y_SCALAR)
            return s_fail (ctx, val->line, field, "must be a string or a number, not %s",
                           s_kind (val));
        s_env_push (self, v->keys[i], jm_ynode_is_null (val) ? "" : val->value);
    }
    return 0;
}

/* Is the text valid UTF-8 (no overlong forms, no surrogates)? */
static bool
s_utf8_ok (const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        else if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07;
        else
            return false;
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Fills the template into out (or only checks it when out is NULL). */
static int s_fill (const jm_resources_t *self, const char *tmpl, const char *job_name,
                   jm_text_t *out, char *err, size_t errlen);

static int
s_check_template (s_ctx_t *ctx, int line, const char *field, const char *label,
                  jm_resources_t *self)
{
    char ferr[512];
    if (s_fill (self, self->header_template, "x", NULL, ferr, sizeof ferr))
        return s_fail (ctx, line, field, "%s%s", label, ferr);
    return 0;
}

/* Reads the header template file (relative to base_dir). */
static int
s_read_template (s_ctx_t *ctx, const jm_ynode_t *v, const char *field, jm_resources_t *self)
{
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_SCALAR)
        return s_fail (ctx, v->line, field, "must be a file name, not %s", s_kind (v));
    if (!*v->value)
        return 0;
    const char *name = v->value;
    char *path = NULL;
    if (name[0] == '/' || !ctx->base_dir || !*ctx->base_dir)
        path = strdup (name);
    else if (asprintf (&path, "%s/%s", ctx->base_dir, name) < 0)
        path = NULL;
    assert (path);
    char show[128];
    s_show (name, show, sizeof show);
    int fd = open (path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free (path);
        return s_fail (ctx, v->line, field, "cannot open '%s': %s", show, strerror (e));
    }
    free (path);
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        return s_fail (ctx, v->line, field, "'%s' is not a regular file", show);
    }
    if (st.st_size > S_MAX_TEMPLATE) {
        close (fd);
        return s_fail (ctx, v->line, field, "'%s' is larger than %d bytes", show, S_MAX_TEMPLATE);
    }
    char *text = malloc ((size_t)st.st_size + 1);
    assert (text);
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t n = read (fd, text + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close (fd);
            free (text);
            return s_fail (ctx, v->line, field, "cannot read '%s': %s", show, strerror (e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close (fd);
    text[len] = 0;
    if (memchr (text, 0, len) || !s_utf8_ok ((const unsigned char *)text, len)) {
        free (text);
        return s_fail (ctx, v->line, field, "'%s' is not UTF-8 text", show);
    }
    free (self->header_template);
    self->header_template = text;
    char label[160];
    snprintf (label, sizeof label, "'%s': ", show);
    return s_check_template (ctx, v->line, field, label, self);
}

static bool
s_in (const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp (key, *list) == 0)
            return true;
    return false;
}

/* Refuses keys of map that are neither known nor ignored; a notice for
   each ignored one.  prefix: "" or "strategy." etc. */
static int
s_check_keys (s_ctx_t *ctx, const jm_ynode_t *map, const char *prefix, const char *field,
              const char *const *known, const char *const *ignored)
{
    for (size_t i = 0; i < map->n; i++) {
        const char *key = map->keys[i];
        char kfield[200], show[128];
        snprintf (kfield, sizeof kfield, "%s%s", prefix, s_show (key, show, sizeof show));
        if (s_in (key, known))
            continue;
        if (ignored && s_in (key, ignored)) {
            s_notice (ctx, map->key_lines[i], kfield);
            continue;
        }
        jm_text_t list = {0};
        for (size_t k = 0; known[k]; k++) {
            jm_text_puts (&list, k ? ", " : "");
            jm_text_puts (&list, known[k]);
        }
        int rc = s_fail (ctx, map->key_lines[i], field, "unknown key '%s' (known: %s)", show,
                         list.buf ? list.buf : "");
        jm_text_reset (&list);
        return rc;
    }
    return 0;
}

static int
s_map_or_null (s_ctx_t *ctx, const jm_ynode_t *v, const char *field)
{
    if (!v || jm_ynode_is_null (v) || v->type == JM_Y_MAP)
        return 0;
    return s_fail (ctx, v->line, field, "must be a map, not %s", s_kind (v));
}

static jm_resources_t *
s_parse (s_ctx_t *ctx, const jm_ynode_t *node)
{
    static const char *const known[] = {
        "number_node",    "cpu_per_node",       "gpu_per_node", "queue_name",
        "group_size",     "para_deg",           "custom_flags", "source_list",
        "module_purge",   "module_unload_list", "module_list",  "envs",
        "prepend_script", "append_script",      "wait_time",    "strategy",
        "kwargs",         "job_array",          NULL,
    };
    static const char *const ignored_top[] = {"batch_type", NULL};
    static const char *const known_strategy_file[] = {"customized_script_header_template_file",
                                                      NULL};
    static const char *const known_strategy_wire[] = {"customized_script_header_template", NULL};
    static const char *const ignored_strategy[] = {"if_cuda_multi_devices", "ratio_unfinished",
                                                   NULL};
    static const char *const known_kwargs[] = {"custom_gpu_line", "pe_name", "job_name", NULL};
    static const char *const ignored_kwargs[] = {"gpu_usage", "gpu_new_syntax", "gpu_exclusive",
                                                 "slurm_job_size", NULL};

    jm_resources_t *self = jm_resources_new ();
    if (!node || jm_ynode_is_null (node))
        return self;
    if (node->type != JM_Y_MAP) {
        s_fail (ctx, node->line, "", "must be a map, not %s", s_kind (node));
        goto fail;
    }
    if (s_check_keys (ctx, node, "", "", known, ctx->wire ? NULL : ignored_top))
        goto fail;
#define G(key) jm_ynode_get (node, key)
    if (s_uint (ctx, G ("number_node"), "number_node", 1, S_MAX_COUNT, &self->number_node) ||
        s_uint (ctx, G ("cpu_per_node"), "cpu_per_node", 1, S_MAX_COUNT, &self->cpu_per_node) ||
        s_uint (ctx, G ("gpu_per_node"), "gpu_per_node", 0, S_MAX_COUNT, &self->gpu_per_node) ||
        s_name (ctx, G ("queue_name"), "queue_name", true, &self->queue_name) ||
        s_uint (ctx, G ("group_size"), "group_size", 1, S_MAX_COUNT, &self->group_size) ||
        s_uint (ctx, G ("para_deg"), "para_deg", 1, S_MAX_COUNT, &self->para_deg) ||
        s_strs (ctx, G ("custom_flags"), "custom_flags", S_ONE_LINE, &self->custom_flags) ||
        s_strs (ctx, G ("source_list"), "source_list", S_NONEMPTY_LINE, &self->source_list) ||
        s_bool (ctx, G ("module_purge"), "module_purge", &self->module_purge) ||
        s_strs (ctx, G ("module_unload_list"), "module_unload_list", S_NONEMPTY_LINE,
                &self->module_unload_list) ||
        s_strs (ctx, G ("module_list"), "module_list", S_NONEMPTY_LINE, &self->module_list) ||
        s_envs (ctx, G ("envs"), self) ||
        s_strs (ctx, G ("prepend_script"), "prepend_script", S_ANY, &self->prepend_script) ||
        s_strs (ctx, G ("append_script"), "append_script", S_ANY, &self->append_script) ||
        s_uint (ctx, G ("wait_time"), "wait_time", 0, S_MAX_WAIT, &self->wait_time) ||
        s_bool (ctx, G ("job_array"), "job_array", &self->job_array))
        goto fail;

    const jm_ynode_t *strategy = G ("strategy");
    if (s_map_or_null (ctx, strategy, "strategy"))
        goto fail;
    if (strategy && strategy->type == JM_Y_MAP) {
        if (s_check_keys (ctx, strategy, "strategy.", "strategy",
                          ctx->wire ? known_strategy_wire : known_strategy_file, ignored_strategy))
            goto fail;
        if (ctx->wire) {
            const char *field = "strategy.customized_script_header_template";
            const jm_ynode_t *t = jm_ynode_get (strategy, "customized_script_header_template");
            if (s_str (ctx, t, field, &self->header_template))
                goto fail;
            if (self->header_template) {
                if (strlen (self->header_template) > S_MAX_TEMPLATE) {
                    s_fail (ctx, t->line, field, "longer than %d bytes", S_MAX_TEMPLATE);
                    goto fail;
                }
                if (s_check_template (ctx, t->line, field, "", self))
                    goto fail;
            }
        }
        else if (s_read_template (ctx,
                                  jm_ynode_get (strategy, "customized_script_header_template_file"),
                                  "strategy.customized_script_header_template_file", self))
            goto fail;
    }

    const jm_ynode_t *kwargs = G ("kwargs");
    if (s_map_or_null (ctx, kwargs, "kwargs"))
        goto fail;
    if (kwargs && kwargs->type == JM_Y_MAP) {
        if (s_check_keys (ctx, kwargs, "kwargs.", "kwargs", known_kwargs,
                          ctx->wire ? NULL : ignored_kwargs))
            goto fail;
        const jm_ynode_t *gpu = jm_ynode_get (kwargs, "custom_gpu_line");
        if (s_str (ctx, gpu, "kwargs.custom_gpu_line", &self->custom_gpu_line))
            goto fail;
        if (s_has_eol (self->custom_gpu_line)) {
            s_fail (ctx, gpu->line, "kwargs.custom_gpu_line", "must be one line (no CR or LF)");
            goto fail;
        }
        if (s_name (ctx, jm_ynode_get (kwargs, "pe_name"), "kwargs.pe_name", false,
                    &self->pe_name) ||
            s_name (ctx, jm_ynode_get (kwargs, "job_name"), "kwargs.job_name", true,
                    &self->job_name))
            goto fail;
    }
#undef G
    return self;
fail:
    jm_resources_destroy (&self);
    return NULL;
}

jm_resources_t *
jm_resources_from_ynode (const jm_ynode_t *node, const char *file, const char *base_dir,
                         char **notices, char *err, size_t errlen)
{
    jm_text_t nbuf = {0};
    s_ctx_t ctx = {.file = file ? file : "<resources>",
                   .wire = false,
                   .base_dir = base_dir,
                   .notices = &nbuf,
                   .err = err,
                   .errlen = errlen};
    if (notices)
        *notices = NULL;
    jm_resources_t *self = s_parse (&ctx, node);
    if (self) {
        /* it must fit into SUBMIT and JOB */
        char *json = jm_resources_to_json (self);
        size_t len = strlen (json);
        free (json);
        if (len > S_MAX_JSON) {
            s_fail (&ctx, node ? node->line : 0, "",
                    "%zu bytes as JSON, more than the %d a submission may carry", len, S_MAX_JSON);
            jm_resources_destroy (&self);
        }
    }
    if (self && notices && nbuf.buf)
        *notices = s_take (&nbuf);
    jm_text_reset (&nbuf);
    return self;
}

jm_resources_t *
jm_resources_from_json (const char *text, const char *what, char *err, size_t errlen)
{
    assert (text);
    what = what ? what : "resources";
    size_t len = strlen (text);
    if (len > S_MAX_JSON) {
        jm_err (err, errlen, "%s: resources: %zu bytes, more than %d", what, len, S_MAX_JSON);
        return NULL;
    }
    char yerr[512];
    jm_ynode_t *root = jm_yaml_load_string (text, len, what, yerr, sizeof yerr);
    if (!root) {
        jm_err (err, errlen, "%s: resources are not valid JSON: %s", what, yerr);
        return NULL;
    }
    s_ctx_t ctx = {.file = what, .wire = true, .err = err, .errlen = errlen};
    jm_resources_t *self = s_parse (&ctx, root);
    jm_ynode_destroy (&root);
    return self;
}

/* ------------------------------------------------------------------ */
/* JSON. */

/* Does libyaml read code point cp, raw inside a double-quoted scalar, as
   itself?  (Its reader refuses non-printable characters; NEL, LS and PS
   are line breaks, folded into a space.) */
static bool
s_yaml_printable (uint32_t cp)
{
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
        return false;
    return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) ||
           (cp >= 0xe000 && cp <= 0xfffd && cp != 0xfeff) || (cp >= 0x10000 && cp <= 0x10ffff);
}

static void
s_json_str (jm_text_t *b, const char *s)
{
    if (!s) {
        jm_text_puts (b, "null");
        return;
    }
    jm_text_puts (b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jm_text_put (b, e, 2);
            p++;
            continue;
        }
        if (c < 0x80) {
            if (c == '\n')
                jm_text_puts (b, "\\n");
            else if (c == '\t')
                jm_text_puts (b, "\\t");
            else if (c == '\r')
                jm_text_puts (b, "\\r");
            else if (!s_yaml_printable (c))
                jm_text_add (b, "\\u%04x", c);
            else
                jm_text_put (b, (const char *)p, 1);
            p++;
            continue;
        }
        /* a multi-byte sequence: raw when valid and printable */
        size_t n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
        size_t have = 0;
        while (have < n && p[1 + have] && (p[1 + have] & 0xc0) == 0x80)
            have++;
        if (n == 0 || have < n || !s_utf8_ok (p, n + 1)) {
            jm_text_puts (b, "\\ufffd"); /* not UTF-8: never comes from libyaml */
            p++;
            continue;
        }
        uint32_t cp = c & (n == 1 ? 0x1f : n == 2 ? 0x0f : 0x07);
        for (size_t k = 1; k <= n; k++)
            cp = (cp << 6) | (p[k] & 0x3f);
        if (s_yaml_printable (cp))
            jm_text_put (b, (const char *)p, n + 1);
        else
            jm_text_add (b, "\\u%04x", (unsigned)cp); /* all such cp are < 0x10000 */
        p += n + 1;
    }
    jm_text_puts (b, "\"");
}

static void
s_json_strs (jm_text_t *b, const jm_rstrs_t *l)
{
    jm_text_puts (b, "[");
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            jm_text_puts (b, ",");
        s_json_str (b, l->v[i]);
    }
    jm_text_puts (b, "]");
}

char *
jm_resources_to_json (const jm_resources_t *self)
{
    assert (self);
    jm_text_t b = {0};
    jm_text_add (&b,
                 "{\"number_node\":%" PRIu64 ",\"cpu_per_node\":%" PRIu64
                 ",\"gpu_per_node\":%" PRIu64 ",\"queue_name\":",
                 self->number_node, self->cpu_per_node, self->gpu_per_node);
    s_json_str (&b, self->queue_name ? self->queue_name : "");
    jm_text_add (&b, ",\"group_size\":%" PRIu64 ",\"para_deg\":%" PRIu64 ",\"custom_flags\":",
                 self->group_size, self->para_deg);
    s_json_strs (&b, &self->custom_flags);
    jm_text_puts (&b, ",\"source_list\":");
    s_json_strs (&b, &self->source_list);
    jm_text_add (
        &b, ",\"module_purge\":%s,\"module_unload_list\":", self->module_purge ? "true" : "false");
    s_json_strs (&b, &self->module_unload_list);
    jm_text_puts (&b, ",\"module_list\":");
    s_json_strs (&b, &self->module_list);
    jm_text_puts (&b, ",\"envs\":{");
    for (size_t i = 0; i < self->n_envs; i++) {
        if (i)
            jm_text_puts (&b, ",");
        s_json_str (&b, self->envs[i].key);
        jm_text_puts (&b, ":");
        s_json_str (&b, self->envs[i].value);
    }
    jm_text_puts (&b, "},\"prepend_script\":");
    s_json_strs (&b, &self->prepend_script);
    jm_text_puts (&b, ",\"append_script\":");
    s_json_strs (&b, &self->append_script);
    jm_text_add (&b,
                 ",\"wait_time\":%" PRIu64 ",\"strategy\":{\"customized_script_header_template\":",
                 self->wait_time);
    s_json_str (&b, self->header_template);
    jm_text_puts (&b, "},\"kwargs\":{\"custom_gpu_line\":");
    s_json_str (&b, self->custom_gpu_line ? self->custom_gpu_line : "");
    jm_text_puts (&b, ",\"pe_name\":");
    s_json_str (&b, self->pe_name ? self->pe_name : "smp");
    jm_text_puts (&b, ",\"job_name\":");
    s_json_str (&b, self->job_name ? self->job_name : "");
    jm_text_add (&b, "},\"job_array\":%s}", self->job_array ? "true" : "false");
    return s_take (&b);
}

/* ------------------------------------------------------------------ */
/* Header template. */

static int
s_fill (const jm_resources_t *self, const char *tmpl, const char *job_name, jm_text_t *out,
        char *err, size_t errlen)
{
    static const char *known =
        "{number_node} {cpu_per_node} {gpu_per_node} {queue_name} {group_size} {para_deg} "
        "{job_name} {pe_name}";
    jm_text_t scratch = {0};
    jm_text_t *b = out ? out : &scratch;
    const char *p = tmpl;
    while (*p) {
        if (p[0] == '{' && p[1] == '{') {
            jm_text_puts (b, "{");
            p += 2;
            continue;
        }
        if (p[0] == '}' && p[1] == '}') {
            jm_text_puts (b, "}");
            p += 2;
            continue;
        }
        if (*p == '}') {
            jm_text_reset (&scratch);
            return jm_err (err, errlen,
                           "single '}' at byte %zu of the header template (write '}}' for a "
                           "literal brace)",
                           (size_t)(p - tmpl));
        }
        if (*p != '{') {
            const char *q = p;
            while (*q && *q != '{' && *q != '}')
                q++;
            jm_text_put (b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *end = strchr (p + 1, '}');
        const char *nested = strchr (p + 1, '{');
        if (!end || (nested && nested < end)) {
            jm_text_reset (&scratch);
            return jm_err (err, errlen,
                           "unbalanced '{' at byte %zu of the header template (write '{{' for a "
                           "literal brace)",
                           (size_t)(p - tmpl));
        }
        size_t n = (size_t)(end - p - 1);
        char name[32] = "";
        if (n < sizeof name) {
            memcpy (name, p + 1, n);
            name[n] = 0;
        }
        if (strcmp (name, "number_node") == 0)
            jm_text_add (b, "%" PRIu64, self->number_node);
        else if (strcmp (name, "cpu_per_node") == 0)
            jm_text_add (b, "%" PRIu64, self->cpu_per_node);
        else if (strcmp (name, "gpu_per_node") == 0)
            jm_text_add (b, "%" PRIu64, self->gpu_per_node);
        else if (strcmp (name, "group_size") == 0)
            jm_text_add (b, "%" PRIu64, self->group_size);
        else if (strcmp (name, "para_deg") == 0)
            jm_text_add (b, "%" PRIu64, self->para_deg);
        else if (strcmp (name, "queue_name") == 0)
            jm_text_puts (b, self->queue_name ? self->queue_name : "");
        else if (strcmp (name, "pe_name") == 0)
            jm_text_puts (b, self->pe_name ? self->pe_name : "smp");
        else if (strcmp (name, "job_name") == 0)
            jm_text_puts (b, job_name);
        else {
            char show[128], raw[128];
            size_t rn = n + 2 < sizeof raw - 1 ? n + 2 : sizeof raw - 1;
            memcpy (raw, p, rn);
            raw[rn] = 0;
            jm_text_reset (&scratch);
            return jm_err (err, errlen,
                           "unknown placeholder '%s' in the header template (known: %s)",
                           s_show (raw, show, sizeof show), known);
        }
        p = end + 1;
    }
    jm_text_reset (&scratch);
    return 0;
}

char *
jm_resources_fill_template (const jm_resources_t *self, const char *job_name, char *err,
                            size_t errlen)
{
    assert (self);
    if (!self->header_template) {
        jm_err (err, errlen, "no header template");
        return NULL;
    }
    if (!job_name)
        job_name = self->job_name ? self->job_name : "";
    jm_text_t b = {0};
    if (s_fill (self, self->header_template, job_name, &b, err, errlen)) {
        jm_text_reset (&b);
        return NULL;
    }
    return s_take (&b);
}

/* ------------------------------------------------------------------ */
/* envs quoting. */

static bool
s_ident_start (char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool
s_ident_char (char c)
{
    return s_ident_start (c) || (c >= '0' && c <= '9');
}

char *
jm_resources_env_quote (const char *value)
{
    assert (value);
    jm_text_t b = {0};
    jm_text_puts (&b, "\"");
    const char *p = value;
    while (*p) {
        if (p[0] == '$' && s_ident_start (p[1])) {
            const char *q = p + 1;
            while (s_ident_char (*q))
                q++;
            jm_text_put (&b, p, (size_t)(q - p)); /* $NAME */
            p = q;
            continue;
        }
        if (p[0] == '$' && p[1] == '{' && s_ident_start (p[2])) {
            const char *q = p + 2;
            while (s_ident_char (*q))
                q++;
            if (*q == '}') {
                jm_text_put (&b, p, (size_t)(q + 1 - p)); /* ${NAME} */
                p = q + 1;
                continue;
            }
        }
        if (*p == '$' || *p == '`' || *p == '"' || *p == '\\')
            jm_text_puts (&b, "\\");
        jm_text_put (&b, p, 1);
        p++;
    }
    jm_text_puts (&b, "\"");
    return s_take (&b);
}
