/*  jm_proto.c - the jobman message codec (msgpack), driven by jm_msgs.h.

    Encoding walks the message's field mask in table order and packs one map
    { "v": 1, "t": NAME, field: value ... }.  Decoding is strict: the bytes
    are first pre-scanned (structure complete, every array/map count no
    larger than the bytes that remain, bounded nesting) so that msgpack-c's
    unpacker, which allocates per declared count, cannot be made to allocate
    more than a small multiple of the frame size; then the unpacked object
    is checked key by key against the table and copied into a jm_msg_t that
    owns all of its memory.  On any failure the partial message is freed.
*/
#include "jm_proto.h"
#include "jm_log.h"
#include "jm_util.h"

#include <assert.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Default cap of a string inside a record or a STRS array. */
#define JM_STR_CAP 4096
/* Deepest legal message: map > tasks > task > forward > file > value. */
#define JM_MAX_DEPTH 16

typedef enum {
    K_U64,
    K_I64,
    K_BOOL,
    K_STR,
    K_BIN,
    K_STRS,
    K_U64S,
    K_FILES,
    K_TASKS,
    K_SUBS,
    K_TSTATS,
    K_MACHINES,
    K_SITES,
    K_HASH,     /* char[65], 64 lowercase hex digits */
    K_HASH_OPT, /* char[65], "" or 64 lowercase hex digits */
    K_MODE      /* uint32_t, <= 07777 */
} kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t max;
    size_t off;
} fdesc_t;

typedef struct {
    const char *what;
    const fdesc_t *f;
    size_t n;
    size_t size;
} rdesc_t;

/* ---------------------------------------------------------------------- */
/* Tables */

static const fdesc_t s_fields[] = {
#define JM_X_FDESC(name, type, max) {#name, K_##type, max, offsetof (jm_msg_t, name)},
    JM_FIELDS (JM_X_FDESC)
#undef JM_X_FDESC
};

static const char *s_msg_names[] = {
#define JM_X_NAME(name, dir, fields) #name,
#define JM_X_F(f) 0
    JM_MESSAGES (JM_X_NAME, JM_X_F)
#undef JM_X_NAME
#undef JM_X_F
};

static const char *s_msg_dirs[] = {
#define JM_X_DIR(name, dir, fields) dir,
#define JM_X_F(f) 0
    JM_MESSAGES (JM_X_DIR, JM_X_F)
#undef JM_X_DIR
#undef JM_X_F
};

static const uint64_t s_msg_masks[] = {
#define JM_X_MASK(name, dir, fields) (uint64_t) (fields),
#define F(f) JM_FB (f)
    JM_MESSAGES (JM_X_MASK, F)
#undef JM_X_MASK
#undef F
};

static const fdesc_t s_file_f[] = {
    {"path", K_STR, JM_STR_CAP, offsetof (jm_wfile_t, path)},
    {"hash", K_HASH_OPT, 64, offsetof (jm_wfile_t, hash)},
    {"size", K_U64, 0, offsetof (jm_wfile_t, size)},
    {"mode", K_MODE, 0, offsetof (jm_wfile_t, mode)},
};
static const fdesc_t s_task_f[] = {
    {"id", K_U64, 0, offsetof (jm_wtask_t, id)},
    {"path", K_STR, JM_STR_CAP, offsetof (jm_wtask_t, path)},
    {"command", K_STR, 65536, offsetof (jm_wtask_t, command)},
    {"outlog", K_STR, JM_STR_CAP, offsetof (jm_wtask_t, outlog)},
    {"errlog", K_STR, JM_STR_CAP, offsetof (jm_wtask_t, errlog)},
    {"forward", K_FILES, 100000, offsetof (jm_wtask_t, forward)},
    {"backward", K_STRS, 10000, offsetof (jm_wtask_t, backward)},
};
static const fdesc_t s_sub_f[] = {
    {"id", K_STR, 64, offsetof (jm_wsub_t, id)},
    {"state", K_STR, 32, offsetof (jm_wsub_t, state)},
    {"work_base", K_STR, JM_STR_CAP, offsetof (jm_wsub_t, work_base)},
    {"total", K_U64, 0, offsetof (jm_wsub_t, total)},
    {"counts", K_U64S, 32, offsetof (jm_wsub_t, counts)},
    {"created", K_U64, 0, offsetof (jm_wsub_t, created)},
    {"bytes", K_U64, 0, offsetof (jm_wsub_t, bytes)},
};
static const fdesc_t s_tstat_f[] = {
    {"id", K_U64, 0, offsetof (jm_wtstat_t, id)},
    {"path", K_STR, JM_STR_CAP, offsetof (jm_wtstat_t, path)},
    {"state", K_STR, 32, offsetof (jm_wtstat_t, state)},
    {"exit_code", K_I64, 0, offsetof (jm_wtstat_t, exit_code)},
    {"site", K_STR, 128, offsetof (jm_wtstat_t, site)},
    {"reason", K_STR, 8192, offsetof (jm_wtstat_t, reason)},
};

static const fdesc_t s_machine_f[] = {
    {"name", K_STR, 128, offsetof (jm_wmachine_t, name)},
    {"site", K_STR, 128, offsetof (jm_wmachine_t, site)},
    {"host", K_STR, 256, offsetof (jm_wmachine_t, host)},
    {"command", K_STR, 65536, offsetof (jm_wmachine_t, command)},
    {"root", K_STR, JM_STR_CAP, offsetof (jm_wmachine_t, root)},
    {"resources", K_STR, 262144, offsetof (jm_wmachine_t, resources)},
    {"submit_size", K_U64, 0, offsetof (jm_wmachine_t, submit_size)},
    {"ratio", K_U64, 0, offsetof (jm_wmachine_t, ratio)},
};
static const fdesc_t s_site_f[] = {
    {"name", K_STR, 128, offsetof (jm_wsite_t, name)},
    {"state", K_STR, 32, offsetof (jm_wsite_t, state)},
    {"drained", K_BOOL, 0, offsetof (jm_wsite_t, drained)},
    {"scheduler", K_STR, 32, offsetof (jm_wsite_t, scheduler)},
    {"host", K_STR, 256, offsetof (jm_wsite_t, host)},
    {"slots", K_U64, 0, offsetof (jm_wsite_t, slots)},
    {"max_jobs", K_U64, 0, offsetof (jm_wsite_t, max_jobs)},
    {"cores", K_U64, 0, offsetof (jm_wsite_t, cores)},
    {"gpus", K_U64, 0, offsetof (jm_wsite_t, gpus)},
    {"running", K_U64, 0, offsetof (jm_wsite_t, running)},
    {"queued", K_U64, 0, offsetof (jm_wsite_t, queued)},
    {"free_slots", K_U64, 0, offsetof (jm_wsite_t, free_slots)},
    {"done_1m", K_U64, 0, offsetof (jm_wsite_t, done_1m)},
    {"wait_ms", K_U64, 0, offsetof (jm_wsite_t, wait_ms)},
    {"jobs", K_U64, 0, offsetof (jm_wsite_t, jobs)},
    {"last_seen", K_U64, 0, offsetof (jm_wsite_t, last_seen)},
    {"tunnel", K_STR, 256, offsetof (jm_wsite_t, tunnel)},
};

#define NELEM(a) (sizeof (a) / sizeof ((a)[0]))
static const rdesc_t s_file_r = {"file", s_file_f, NELEM (s_file_f), sizeof (jm_wfile_t)};
static const rdesc_t s_task_r = {"task", s_task_f, NELEM (s_task_f), sizeof (jm_wtask_t)};
static const rdesc_t s_sub_r = {"sub", s_sub_f, NELEM (s_sub_f), sizeof (jm_wsub_t)};
static const rdesc_t s_tstat_r = {"tstat", s_tstat_f, NELEM (s_tstat_f), sizeof (jm_wtstat_t)};
static const rdesc_t s_machine_r = {"machine", s_machine_f, NELEM (s_machine_f),
                                    sizeof (jm_wmachine_t)};
static const rdesc_t s_site_r = {"site", s_site_f, NELEM (s_site_f), sizeof (jm_wsite_t)};

static kind_t
field_kind (int fid)
{
    /* The table types hash as STR; on the wire it must be a real digest. */
    return fid == JM_FLD_hash ? K_HASH : s_fields[fid].kind;
}

static const rdesc_t *
record_of (kind_t k)
{
    switch (k) {
    case K_FILES:
        return &s_file_r;
    case K_TASKS:
        return &s_task_r;
    case K_SUBS:
        return &s_sub_r;
    case K_TSTATS:
        return &s_tstat_r;
    case K_MACHINES:
        return &s_machine_r;
    case K_SITES:
        return &s_site_r;
    default:
        return NULL;
    }
}

/* Record lists share the shape { T *v; size_t n; }; access them by kind. */
static void *
list_get (kind_t k, const void *p, size_t *n_p)
{
    switch (k) {
    case K_FILES:
        *n_p = ((const jm_wfiles_t *)p)->n;
        return ((const jm_wfiles_t *)p)->v;
    case K_TASKS:
        *n_p = ((const jm_wtasks_t *)p)->n;
        return ((const jm_wtasks_t *)p)->v;
    case K_SUBS:
        *n_p = ((const jm_wsubs_t *)p)->n;
        return ((const jm_wsubs_t *)p)->v;
    case K_TSTATS:
        *n_p = ((const jm_wtstats_t *)p)->n;
        return ((const jm_wtstats_t *)p)->v;
    case K_MACHINES:
        *n_p = ((const jm_wmachines_t *)p)->n;
        return ((const jm_wmachines_t *)p)->v;
    case K_SITES:
        *n_p = ((const jm_wsites_t *)p)->n;
        return ((const jm_wsites_t *)p)->v;
    default:
        assert (false);
        return NULL;
    }
}

static void
list_set (kind_t k, void *p, void *v, size_t n)
{
    switch (k) {
    case K_FILES:
        ((jm_wfiles_t *)p)->v = v;
        ((jm_wfiles_t *)p)->n = n;
        break;
    case K_TASKS:
        ((jm_wtasks_t *)p)->v = v;
        ((jm_wtasks_t *)p)->n = n;
        break;
    case K_SUBS:
        ((jm_wsubs_t *)p)->v = v;
        ((jm_wsubs_t *)p)->n = n;
        break;
    case K_TSTATS:
        ((jm_wtstats_t *)p)->v = v;
        ((jm_wtstats_t *)p)->n = n;
        break;
    case K_MACHINES:
        ((jm_wmachines_t *)p)->v = v;
        ((jm_wmachines_t *)p)->n = n;
        break;
    case K_SITES:
        ((jm_wsites_t *)p)->v = v;
        ((jm_wsites_t *)p)->n = n;
        break;
    default:
        assert (false);
    }
}

/* ---------------------------------------------------------------------- */
/* Names */

const char *
jm_msg_name (jm_msg_id_t id)
{
    if ((int)id < 0 || id >= JM_MSG_COUNT)
        return NULL;
    return s_msg_names[id];
}

const char *
jm_msg_direction (jm_msg_id_t id)
{
    if ((int)id < 0 || id >= JM_MSG_COUNT)
        return NULL;
    return s_msg_dirs[id];
}

uint64_t
jm_msg_fields (jm_msg_id_t id)
{
    if ((int)id < 0 || id >= JM_MSG_COUNT)
        return 0;
    return s_msg_masks[id];
}

const char *
jm_proto_strerror (int code)
{
    switch (code) {
    case JM_PROTO_OK:
        return "ok";
    case JM_PROTO_EMALFORMED:
        return "malformed message";
    case JM_PROTO_EVERSION:
        return "unsupported protocol version";
    case JM_PROTO_ETYPE:
        return "unknown message type";
    case JM_PROTO_EMISSING:
        return "missing field";
    case JM_PROTO_EFIELDTYPE:
        return "field has wrong type";
    case JM_PROTO_ETOOBIG:
        return "field too big";
    case JM_PROTO_EUNKNOWN:
        return "unknown field";
    case JM_PROTO_EDUP:
        return "duplicate field";
    case JM_PROTO_EVALUE:
        return "field value out of range";
    default:
        return "unknown error";
    }
}

/* ---------------------------------------------------------------------- */
/* Freeing */

static void free_value (kind_t k, void *p);

static void
free_record (const rdesc_t *r, void *obj)
{
    for (size_t i = 0; i < r->n; i++)
        free_value (r->f[i].kind, (char *)obj + r->f[i].off);
}

static void
free_value (kind_t k, void *p)
{
    switch (k) {
    case K_STR: {
        char **s = p;
        free (*s);
        *s = NULL;
        break;
    }
    case K_STRS: {
        jm_strs_t *l = p;
        for (size_t i = 0; i < l->n; i++)
            free (l->v[i]);
        free (l->v);
        l->v = NULL;
        l->n = 0;
        break;
    }
    case K_U64S: {
        jm_u64s_t *l = p;
        free (l->v);
        l->v = NULL;
        l->n = 0;
        break;
    }
    case K_FILES:
    case K_TASKS:
    case K_SUBS:
    case K_TSTATS:
    case K_MACHINES:
    case K_SITES: {
        const rdesc_t *r = record_of (k);
        size_t n;
        char *v = list_get (k, p, &n);
        for (size_t i = 0; i < n; i++)
            free_record (r, v + i * r->size);
        free (v);
        list_set (k, p, NULL, 0);
        break;
    }
    default:
        break;
    }
}

jm_msg_t *
jm_msg_new (jm_msg_id_t id)
{
    assert ((int)id >= 0 && id < JM_MSG_COUNT);
    jm_msg_t *self = calloc (1, sizeof (jm_msg_t));
    assert (self);
    self->id = id;
    self->version = JM_PROTO_VERSION;
    return self;
}

void
jm_msg_destroy (jm_msg_t **self_p)
{
    assert (self_p);
    jm_msg_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < JM_FLD_COUNT; i++)
        if (s_fields[i].kind != K_BIN)
            free_value (field_kind (i), (char *)self + s_fields[i].off);
    free (self->data);
    free (self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------------- */
/* Errors */

typedef struct {
    const char *mname; /* message type name, or "message" before it is known */
    char *err;
    size_t errlen;
} ctx_t;

/* Formats "<MSG>: field '<path>': <text>" (or "<MSG>: <text>" if path is
   NULL) into the context's err buffer; returns code. */
static int fail (ctx_t *c, int code, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
fail (ctx_t *c, int code, const char *path, const char *fmt, ...)
{
    if (!c->err || c->errlen == 0)
        return code;
    int n;
    if (path)
        n = snprintf (c->err, c->errlen, "%s: field '%s': ", c->mname, path);
    else
        n = snprintf (c->err, c->errlen, "%s: ", c->mname);
    if (n < 0 || (size_t)n >= c->errlen)
        return code;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (c->err + n, c->errlen - n, fmt, ap);
    va_end (ap);
    return code;
}

/* Printable rendering of untrusted key/type text for error messages. */
static const char *
safe_text (const char *s, size_t len, char *buf, size_t buflen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < buflen; i++)
        buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (len > 0 && n < len && n + 4 <= buflen) {
        memcpy (buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static const char *
type_name (msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "string";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    case MSGPACK_OBJECT_EXT:
        return "extension";
    default:
        return "unknown type";
    }
}

/* Field paths for error texts: "tasks[3].path".  Legal paths are far
   shorter than the buffers; a hostile one is merely cut short. */
static void
path_key (char *buf, size_t len, const char *path, const char *key)
{
    if (snprintf (buf, len, "%s.%s", path, key) >= (int)len)
        buf[len - 1] = 0;
}

static void
path_idx (char *buf, size_t len, const char *path, size_t i)
{
    if (snprintf (buf, len, "%s[%zu]", path, i) >= (int)len)
        buf[len - 1] = 0;
}

static bool
is_hex64 (const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ---------------------------------------------------------------------- */
/* Encoding */

typedef struct {
    ctx_t c;
    msgpack_packer pk;
    int perr; /* nonzero once a pack call failed (out of memory) */
} enc_t;

static void
enc_str (enc_t *e, const char *s, size_t len)
{
    e->perr |= msgpack_pack_str (&e->pk, len);
    e->perr |= msgpack_pack_str_body (&e->pk, s, len);
}

static int enc_value (enc_t *e, kind_t k, size_t max, const void *p, const char *path);

static int
enc_record (enc_t *e, const rdesc_t *r, const void *obj, const char *path)
{
    e->perr |= msgpack_pack_map (&e->pk, r->n);
    for (size_t i = 0; i < r->n; i++) {
        char sub[160];
        path_key (sub, sizeof sub, path, r->f[i].name);
        enc_str (e, r->f[i].name, strlen (r->f[i].name));
        if (enc_value (e, r->f[i].kind, r->f[i].max, (const char *)obj + r->f[i].off, sub))
            return -1;
    }
    return 0;
}

static int
enc_value (enc_t *e, kind_t k, size_t max, const void *p, const char *path)
{
    switch (k) {
    case K_U64:
        e->perr |= msgpack_pack_uint64 (&e->pk, *(const uint64_t *)p);
        return 0;
    case K_MODE: {
        uint32_t mode = *(const uint32_t *)p;
        if (mode > 07777)
            return fail (&e->c, -1, path, "mode 0%" PRIo32 " exceeds 07777", mode);
        e->perr |= msgpack_pack_uint64 (&e->pk, mode);
        return 0;
    }
    case K_I64:
        e->perr |= msgpack_pack_int64 (&e->pk, *(const int64_t *)p);
        return 0;
    case K_BOOL:
        e->perr |= *(const bool *)p ? msgpack_pack_true (&e->pk) : msgpack_pack_false (&e->pk);
        return 0;
    case K_STR: {
        const char *s = *(char *const *)p;
        if (!s)
            s = "";
        size_t len = strlen (s);
        if (len > max)
            return fail (&e->c, -1, path, "string of %zu bytes exceeds %zu", len, max);
        enc_str (e, s, len);
        return 0;
    }
    case K_HASH:
    case K_HASH_OPT: {
        const char *s = p;
        size_t len = strnlen (s, 65);
        if (!(is_hex64 (s, len) || (k == K_HASH_OPT && len == 0)))
            return fail (&e->c, -1, path, "hash '%.64s' is not 64 lowercase hex digits", s);
        enc_str (e, s, len);
        return 0;
    }
    case K_STRS: {
        const jm_strs_t *l = p;
        if (l->n > max)
            return fail (&e->c, -1, path, "array of %zu entries exceeds %zu", l->n, max);
        e->perr |= msgpack_pack_array (&e->pk, l->n);
        for (size_t i = 0; i < l->n; i++) {
            char sub[160];
            path_idx (sub, sizeof sub, path, i);
            if (enc_value (e, K_STR, JM_STR_CAP, &l->v[i], sub))
                return -1;
        }
        return 0;
    }
    case K_U64S: {
        const jm_u64s_t *l = p;
        if (l->n > max)
            return fail (&e->c, -1, path, "array of %zu entries exceeds %zu", l->n, max);
        e->perr |= msgpack_pack_array (&e->pk, l->n);
        for (size_t i = 0; i < l->n; i++)
            e->perr |= msgpack_pack_uint64 (&e->pk, l->v[i]);
        return 0;
    }
    case K_FILES:
    case K_TASKS:
    case K_SUBS:
    case K_TSTATS:
    case K_MACHINES:
    case K_SITES: {
        const rdesc_t *r = record_of (k);
        size_t n;
        const char *v = list_get (k, p, &n);
        if (n > max)
            return fail (&e->c, -1, path, "array of %zu entries exceeds %zu", n, max);
        e->perr |= msgpack_pack_array (&e->pk, n);
        for (size_t i = 0; i < n; i++) {
            char sub[160];
            path_idx (sub, sizeof sub, path, i);
            if (enc_record (e, r, v + i * r->size, sub))
                return -1;
        }
        return 0;
    }
    case K_BIN:
        break; /* handled by the caller: the size lives in data_size */
    }
    assert (false);
    return -1;
}

int
jm_msg_encode (const jm_msg_t *self, uint8_t **buf_p, size_t *size_p, char *err, size_t errlen)
{
    assert (self);
    assert (buf_p && size_p);
    *buf_p = NULL;
    *size_p = 0;
    if ((int)self->id < 0 || self->id >= JM_MSG_COUNT)
        return jm_err (err, errlen, "message: cannot encode unknown message id %d", (int)self->id);
    const char *name = s_msg_names[self->id];
    uint64_t mask = s_msg_masks[self->id];

    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    enc_t e = {{name, err, errlen}, {0}, 0};
    msgpack_packer_init (&e.pk, &sb, msgpack_sbuffer_write);

    e.perr |= msgpack_pack_map (&e.pk, 2 + (size_t)__builtin_popcountll (mask));
    enc_str (&e, "v", 1);
    e.perr |= msgpack_pack_uint64 (&e.pk, JM_PROTO_VERSION);
    enc_str (&e, "t", 1);
    enc_str (&e, name, strlen (name));
    for (int i = 0; i < JM_FLD_COUNT; i++) {
        if (!(mask & (UINT64_C (1) << i)))
            continue;
        const fdesc_t *f = &s_fields[i];
        enc_str (&e, f->name, strlen (f->name));
        if (f->kind == K_BIN) {
            if (self->data_size > f->max) {
                fail (&e.c, -1, f->name, "binary of %zu bytes exceeds %zu", self->data_size,
                      f->max);
                msgpack_sbuffer_destroy (&sb);
                return -1;
            }
            e.perr |= msgpack_pack_bin (&e.pk, self->data_size);
            e.perr |= msgpack_pack_bin_body (&e.pk, self->data, self->data_size);
        }
        else if (enc_value (&e, field_kind (i), f->max, (const char *)self + f->off, f->name)) {
            msgpack_sbuffer_destroy (&sb);
            return -1;
        }
    }
    if (e.perr || !sb.data) {
        msgpack_sbuffer_destroy (&sb);
        return fail (&e.c, -1, NULL, "out of memory while encoding");
    }
    *size_p = sb.size;
    *buf_p = (uint8_t *)msgpack_sbuffer_release (&sb);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Pre-scan: walks one msgpack object without allocating.  Fails if the
   object is incomplete, uses the reserved byte 0xc1, nests deeper than
   JM_MAX_DEPTH, or declares more array/map entries than there are bytes
   left (every entry takes at least one byte). */

static uint32_t
rd_be (const uint8_t *p, int k)
{
    uint32_t v = 0;
    for (int i = 0; i < k; i++)
        v = (v << 8) | p[i];
    return v;
}

static int
scan (const uint8_t *p, size_t n, size_t *pos, int depth)
{
    if (depth > JM_MAX_DEPTH || *pos >= n)
        return -1;
    uint8_t b = p[(*pos)++];
    size_t len = 0;    /* payload bytes to skip */
    size_t count = 0;  /* entries for arrays/maps */
    int container = 0; /* 1 array, 2 map */
    int hdr = 0;       /* length bytes following b */
    size_t extra = 0;  /* ext type byte */

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if ((b & 0xf0) == 0x80) {
        count = b & 0x0f;
        container = 2;
    }
    else if ((b & 0xf0) == 0x90) {
        count = b & 0x0f;
        container = 1;
    }
    else if ((b & 0xe0) == 0xa0)
        len = b & 0x1f;
    else {
        switch (b) {
        case 0xc4: /* bin 8/16/32 */
        case 0xd9: /* str 8/16/32 */
            hdr = 1;
            break;
        case 0xc5:
        case 0xda:
            hdr = 2;
            break;
        case 0xc6:
        case 0xdb:
            hdr = 4;
            break;
        case 0xc7: /* ext 8/16/32: length, type byte, data */
            hdr = 1;
            extra = 1;
            break;
        case 0xc8:
            hdr = 2;
            extra = 1;
            break;
        case 0xc9:
            hdr = 4;
            extra = 1;
            break;
        case 0xca:
            len = 4;
            break;
        case 0xcb:
            len = 8;
            break;
        case 0xcc:
        case 0xd0:
            len = 1;
            break;
        case 0xcd:
        case 0xd1:
            len = 2;
            break;
        case 0xce:
        case 0xd2:
            len = 4;
            break;
        case 0xcf:
        case 0xd3:
            len = 8;
            break;
        case 0xd4: /* fixext 1/2/4/8/16 (+ type byte) */
            len = 2;
            break;
        case 0xd5:
            len = 3;
            break;
        case 0xd6:
            len = 5;
            break;
        case 0xd7:
            len = 9;
            break;
        case 0xd8:
            len = 17;
            break;
        case 0xdc:
            hdr = 2;
            container = 1;
            break;
        case 0xdd:
            hdr = 4;
            container = 1;
            break;
        case 0xde:
            hdr = 2;
            container = 2;
            break;
        case 0xdf:
            hdr = 4;
            container = 2;
            break;
        default: /* 0xc1: never used */
            return -1;
        }
        if (hdr) {
            if (n - *pos < (size_t)hdr)
                return -1;
            uint32_t v = rd_be (p + *pos, hdr);
            *pos += hdr;
            if (container)
                count = v;
            else
                len = (size_t)v + extra;
        }
    }
    if (container) {
        size_t left = n - *pos;
        if (container == 2 ? count > left / 2 : count > left)
            return -1;
        size_t items = container == 2 ? count * 2 : count;
        for (size_t i = 0; i < items; i++)
            if (scan (p, n, pos, depth + 1))
                return -1;
        return 0;
    }
    if (n - *pos < len)
        return -1;
    *pos += len;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding */

static bool
key_is (const msgpack_object *k, const char *name)
{
    size_t len = strlen (name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
           memcmp (k->via.str.ptr, name, len) == 0;
}

static int
dec_str (ctx_t *c, const msgpack_object *o, size_t max, char **out, const char *path)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return fail (c, JM_PROTO_EFIELDTYPE, path, "expected string, got %s", type_name (o->type));
    size_t len = o->via.str.size;
    if (len > max)
        return fail (c, JM_PROTO_ETOOBIG, path, "string of %zu bytes exceeds %zu", len, max);
    if (len && memchr (o->via.str.ptr, 0, len))
        return fail (c, JM_PROTO_EVALUE, path, "string contains a NUL byte");
    char *s = malloc (len + 1);
    if (!s)
        return fail (c, JM_PROTO_EMALFORMED, path, "out of memory");
    if (len)
        memcpy (s, o->via.str.ptr, len);
    s[len] = 0;
    free (*out);
    *out = s;
    return 0;
}

static int
dec_u64 (ctx_t *c, const msgpack_object *o, uint64_t *out, const char *path)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return fail (c, JM_PROTO_EVALUE, path,
                     "negative integer %" PRId64 " where unsigned expected", o->via.i64);
    return fail (c, JM_PROTO_EFIELDTYPE, path, "expected unsigned integer, got %s",
                 type_name (o->type));
}

static int
array_check (ctx_t *c, const msgpack_object *o, size_t max, const char *path)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail (c, JM_PROTO_EFIELDTYPE, path, "expected array, got %s", type_name (o->type));
    if (o->via.array.size > max)
        return fail (c, JM_PROTO_ETOOBIG, path, "array of %" PRIu32 " entries exceeds %zu",
                     o->via.array.size, max);
    return 0;
}

static int dec_value (ctx_t *c, const msgpack_object *o, kind_t k, size_t max, void *p,
                      const char *path);

static int
dec_record (ctx_t *c, const msgpack_object *o, const rdesc_t *r, void *obj, const char *path)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail (c, JM_PROTO_EFIELDTYPE, path, "expected %s record (map), got %s", r->what,
                     type_name (o->type));
    uint32_t seen = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        char kbuf[80];
        if (k->type != MSGPACK_OBJECT_STR)
            return fail (c, JM_PROTO_EUNKNOWN, path, "%s record has a %s key", r->what,
                         type_name (k->type));
        size_t j;
        for (j = 0; j < r->n; j++)
            if (key_is (k, r->f[j].name))
                break;
        if (j == r->n)
            return fail (c, JM_PROTO_EUNKNOWN, path, "unknown key '%s' in %s record",
                         safe_text (k->via.str.ptr, k->via.str.size, kbuf, sizeof kbuf), r->what);
        if (seen & (1u << j))
            return fail (c, JM_PROTO_EDUP, path, "duplicate key '%s' in %s record", r->f[j].name,
                         r->what);
        seen |= 1u << j;
        char sub[160];
        path_key (sub, sizeof sub, path, r->f[j].name);
        int rc = dec_value (c, &o->via.map.ptr[i].val, r->f[j].kind, r->f[j].max,
                            (char *)obj + r->f[j].off, sub);
        if (rc)
            return rc;
    }
    for (size_t j = 0; j < r->n; j++)
        if (!(seen & (1u << j)))
            return fail (c, JM_PROTO_EMISSING, path, "%s record has no key '%s'", r->what,
                         r->f[j].name);
    return 0;
}

static int
dec_value (ctx_t *c, const msgpack_object *o, kind_t k, size_t max, void *p, const char *path)
{
    int rc;
    switch (k) {
    case K_U64:
        return dec_u64 (c, o, p, path);
    case K_MODE: {
        uint64_t v;
        if ((rc = dec_u64 (c, o, &v, path)))
            return rc;
        if (v > 07777)
            return fail (c, JM_PROTO_EVALUE, path, "mode 0%" PRIo64 " exceeds 07777", v);
        *(uint32_t *)p = (uint32_t)v;
        return 0;
    }
    case K_I64:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *(int64_t *)p = o->via.i64;
            return 0;
        }
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (o->via.u64 > INT64_MAX)
                return fail (c, JM_PROTO_EVALUE, path, "integer %" PRIu64 " exceeds int64 range",
                             o->via.u64);
            *(int64_t *)p = (int64_t)o->via.u64;
            return 0;
        }
        return fail (c, JM_PROTO_EFIELDTYPE, path, "expected integer, got %s", type_name (o->type));
    case K_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return fail (c, JM_PROTO_EFIELDTYPE, path, "expected boolean, got %s",
                         type_name (o->type));
        *(bool *)p = o->via.boolean;
        return 0;
    case K_STR:
        return dec_str (c, o, max, p, path);
    case K_HASH:
    case K_HASH_OPT: {
        if (o->type != MSGPACK_OBJECT_STR)
            return fail (c, JM_PROTO_EFIELDTYPE, path, "expected string, got %s",
                         type_name (o->type));
        size_t len = o->via.str.size;
        if (len > 64)
            return fail (c, JM_PROTO_ETOOBIG, path, "string of %zu bytes exceeds 64", len);
        if (!(is_hex64 (o->via.str.ptr, len) || (k == K_HASH_OPT && len == 0))) {
            char buf[80];
            return fail (c, JM_PROTO_EVALUE, path, "hash '%s' is not 64 lowercase hex digits",
                         safe_text (o->via.str.ptr, len, buf, sizeof buf));
        }
        char *h = p;
        memcpy (h, o->via.str.ptr, len);
        h[len] = 0;
        return 0;
    }
    case K_STRS: {
        if ((rc = array_check (c, o, max, path)))
            return rc;
        jm_strs_t *l = p;
        size_t n = o->via.array.size;
        if (n) {
            l->v = calloc (n, sizeof (char *));
            if (!l->v)
                return fail (c, JM_PROTO_EMALFORMED, path, "out of memory");
            l->n = n;
        }
        for (size_t i = 0; i < n; i++) {
            char sub[160];
            path_idx (sub, sizeof sub, path, i);
            if ((rc = dec_str (c, &o->via.array.ptr[i], JM_STR_CAP, &l->v[i], sub)))
                return rc;
        }
        return 0;
    }
    case K_U64S: {
        if ((rc = array_check (c, o, max, path)))
            return rc;
        jm_u64s_t *l = p;
        size_t n = o->via.array.size;
        if (n) {
            l->v = calloc (n, sizeof (uint64_t));
            if (!l->v)
                return fail (c, JM_PROTO_EMALFORMED, path, "out of memory");
            l->n = n;
        }
        for (size_t i = 0; i < n; i++) {
            char sub[160];
            path_idx (sub, sizeof sub, path, i);
            if ((rc = dec_u64 (c, &o->via.array.ptr[i], &l->v[i], sub)))
                return rc;
        }
        return 0;
    }
    case K_FILES:
    case K_TASKS:
    case K_SUBS:
    case K_TSTATS:
    case K_MACHINES:
    case K_SITES: {
        if ((rc = array_check (c, o, max, path)))
            return rc;
        const rdesc_t *r = record_of (k);
        size_t n = o->via.array.size;
        char *v = NULL;
        if (n) {
            v = calloc (n, r->size);
            if (!v)
                return fail (c, JM_PROTO_EMALFORMED, path, "out of memory");
            /* Set now so that the message's destroy frees a partial list. */
            list_set (k, p, v, n);
        }
        for (size_t i = 0; i < n; i++) {
            char sub[160];
            path_idx (sub, sizeof sub, path, i);
            if ((rc = dec_record (c, &o->via.array.ptr[i], r, v + i * r->size, sub)))
                return rc;
        }
        return 0;
    }
    case K_BIN:
        break;
    }
    assert (false);
    return JM_PROTO_EMALFORMED;
}

static int
dec_message (ctx_t *c, const msgpack_object *o, jm_msg_t **msg_p, uint64_t *peer_version_p)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail (c, JM_PROTO_EMALFORMED, NULL, "not a msgpack map (got %s)",
                     type_name (o->type));
    const msgpack_object_map *m = &o->via.map;

    /* Version first: a peer speaking another version may use other types. */
    const msgpack_object *vo = NULL, *to = NULL;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (key_is (k, "v")) {
            if (vo)
                return fail (c, JM_PROTO_EDUP, NULL, "duplicate key 'v'");
            vo = &m->ptr[i].val;
        }
        else if (key_is (k, "t")) {
            if (to)
                return fail (c, JM_PROTO_EDUP, NULL, "duplicate key 't'");
            to = &m->ptr[i].val;
        }
    }
    if (!vo)
        return fail (c, JM_PROTO_EVERSION, NULL,
                     "no protocol version 'v' in message (this side speaks %d)", JM_PROTO_VERSION);
    if (vo->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail (c, JM_PROTO_EVERSION, NULL,
                     "protocol version is a %s, not a number (this side speaks %d)",
                     type_name (vo->type), JM_PROTO_VERSION);
    if (vo->via.u64 != JM_PROTO_VERSION) {
        if (peer_version_p)
            *peer_version_p = vo->via.u64;
        return fail (c, JM_PROTO_EVERSION, NULL,
                     "protocol version %" PRIu64 " not supported (this side speaks %d)",
                     vo->via.u64, JM_PROTO_VERSION);
    }
    if (peer_version_p)
        *peer_version_p = vo->via.u64;
    if (!to)
        return fail (c, JM_PROTO_ETYPE, NULL, "no message type 't'");
    if (to->type != MSGPACK_OBJECT_STR)
        return fail (c, JM_PROTO_ETYPE, NULL, "message type 't' is a %s, not a string",
                     type_name (to->type));
    int id;
    for (id = 0; id < JM_MSG_COUNT; id++)
        if (key_is (to, s_msg_names[id]))
            break;
    if (id == JM_MSG_COUNT) {
        char buf[80];
        return fail (c, JM_PROTO_ETYPE, NULL, "unknown message type '%s'",
                     safe_text (to->via.str.ptr, to->via.str.size, buf, sizeof buf));
    }
    c->mname = s_msg_names[id];
    uint64_t mask = s_msg_masks[id];

    jm_msg_t *msg = calloc (1, sizeof (jm_msg_t));
    if (!msg)
        return fail (c, JM_PROTO_EMALFORMED, NULL, "out of memory");
    msg->id = (jm_msg_id_t)id;
    uint64_t seen = 0;
    int rc = 0;
    for (uint32_t i = 0; i < m->size && rc == 0; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        const msgpack_object *val = &m->ptr[i].val;
        if (key_is (k, "v") || key_is (k, "t"))
            continue;
        if (k->type != MSGPACK_OBJECT_STR) {
            rc = fail (c, JM_PROTO_EUNKNOWN, NULL, "message has a %s key", type_name (k->type));
            break;
        }
        int f;
        for (f = 0; f < JM_FLD_COUNT; f++)
            if (key_is (k, s_fields[f].name))
                break;
        if (f == JM_FLD_COUNT || !(mask & (UINT64_C (1) << f))) {
            char buf[80];
            rc = fail (c, JM_PROTO_EUNKNOWN, NULL, "unknown field '%s'",
                       safe_text (k->via.str.ptr, k->via.str.size, buf, sizeof buf));
            break;
        }
        if (seen & (UINT64_C (1) << f)) {
            rc = fail (c, JM_PROTO_EDUP, NULL, "duplicate field '%s'", s_fields[f].name);
            break;
        }
        seen |= UINT64_C (1) << f;
        const fdesc_t *fd = &s_fields[f];
        if (fd->kind == K_BIN) {
            if (val->type != MSGPACK_OBJECT_BIN)
                rc = fail (c, JM_PROTO_EFIELDTYPE, fd->name, "expected binary, got %s",
                           type_name (val->type));
            else if (val->via.bin.size > fd->max)
                rc = fail (c, JM_PROTO_ETOOBIG, fd->name, "binary of %" PRIu32 " bytes exceeds %zu",
                           val->via.bin.size, fd->max);
            else if (val->via.bin.size) {
                msg->data = malloc (val->via.bin.size);
                if (!msg->data)
                    rc = fail (c, JM_PROTO_EMALFORMED, fd->name, "out of memory");
                else {
                    memcpy (msg->data, val->via.bin.ptr, val->via.bin.size);
                    msg->data_size = val->via.bin.size;
                }
            }
        }
        else
            rc = dec_value (c, val, field_kind (f), fd->max, (char *)msg + fd->off, fd->name);
    }
    if (rc == 0 && seen != mask) {
        for (int f = 0; f < JM_FLD_COUNT; f++)
            if ((mask & ~seen) & (UINT64_C (1) << f)) {
                rc = fail (c, JM_PROTO_EMISSING, NULL, "missing field '%s'", s_fields[f].name);
                break;
            }
    }
    if (rc) {
        jm_msg_destroy (&msg);
        return rc;
    }
    *msg_p = msg;
    return 0;
}

int
jm_msg_decode (const uint8_t *data, size_t size, jm_msg_t **msg_p, uint64_t *peer_version_p,
               char *err, size_t errlen)
{
    assert (msg_p);
    *msg_p = NULL;
    if (peer_version_p)
        *peer_version_p = 0;
    if (err && errlen)
        err[0] = 0;
    ctx_t c = {"message", err, errlen};
    if (!data || size == 0)
        return fail (&c, JM_PROTO_EMALFORMED, NULL, "empty frame");
    size_t end = 0;
    if (scan (data, size, &end, 0))
        return fail (&c, JM_PROTO_EMALFORMED, NULL,
                     "not valid msgpack (truncated, reserved byte or nested too deep)");
    if (end != size)
        return fail (&c, JM_PROTO_EMALFORMED, NULL, "%zu trailing bytes after the msgpack map",
                     size - end);

    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next (&up, (const char *)data, size, &off);
    int rc;
    if (ur != MSGPACK_UNPACK_SUCCESS || off != size)
        rc = fail (&c, JM_PROTO_EMALFORMED, NULL, "not valid msgpack (unpacker said %d)", (int)ur);
    else
        rc = dec_message (&c, &up.data, msg_p, peer_version_p);
    msgpack_unpacked_destroy (&up);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Sockets */

int
jm_msg_send (jm_msg_t **self_p, zsock_t *sock, zframe_t *routing_id)
{
    assert (self_p);
    assert (sock);
    jm_msg_t *self = *self_p;
    if (!self)
        return -1;
    char err[512];
    uint8_t *buf = NULL;
    size_t size = 0;
    const char *name = jm_msg_name (self->id);
    int rc = jm_msg_encode (self, &buf, &size, err, sizeof err);
    jm_msg_destroy (self_p);
    if (rc) {
        jm_error ("cannot send %s: %s", name ? name : "message", err);
        return -1;
    }
    if (routing_id) {
        if (zframe_send (&routing_id, sock, ZFRAME_MORE | ZFRAME_REUSE)) {
            free (buf);
            return -1;
        }
    }
    zframe_t *body = zframe_new (buf, size);
    free (buf);
    if (!body)
        return -1;
    if (zframe_send (&body, sock, 0)) {
        zframe_destroy (&body);
        return -1;
    }
    return 0;
}

jm_msg_t *
jm_msg_recv (zsock_t *sock, zframe_t **routing_id_p, int *errcode_p, uint64_t *peer_version_p,
             char *err, size_t errlen)
{
    assert (sock);
    int dummy;
    if (!errcode_p)
        errcode_p = &dummy;
    *errcode_p = 0;
    if (routing_id_p)
        *routing_id_p = NULL;
    if (peer_version_p)
        *peer_version_p = 0;
    if (err && errlen)
        err[0] = 0;

    zmsg_t *zmsg = zmsg_recv (sock);
    if (!zmsg) {
        *errcode_p = JM_PROTO_EMALFORMED;
        jm_err (err, errlen, "message: nothing received (interrupted)");
        return NULL;
    }
    if (routing_id_p)
        *routing_id_p = zmsg_pop (zmsg);
    jm_msg_t *msg = NULL;
    if (zmsg_size (zmsg) != 1) {
        *errcode_p = JM_PROTO_EMALFORMED;
        jm_err (err, errlen, "message: %zu body frames, expected 1", zmsg_size (zmsg));
    }
    else {
        zframe_t *body = zmsg_first (zmsg);
        *errcode_p = jm_msg_decode (zframe_data (body), zframe_size (body), &msg, peer_version_p,
                                    err, errlen);
    }
    zmsg_destroy (&zmsg);
    return msg;
}

/* ---------------------------------------------------------------------- */
/* Builders */

static void *
grow (void *v, size_t n, size_t size)
{
    void *nv = realloc (v, (n + 1) * size);
    assert (nv);
    memset ((char *)nv + n * size, 0, size);
    return nv;
}

static char *
dup_str (const char *s)
{
    char *d = strdup (s ? s : "");
    assert (d);
    return d;
}

jm_wfile_t *
jm_wfiles_push (jm_wfiles_t *list, const char *path, const char *hash, uint64_t size, uint32_t mode)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wfile_t));
    jm_wfile_t *f = &list->v[list->n++];
    f->path = dup_str (path);
    if (hash)
        snprintf (f->hash, sizeof f->hash, "%s", hash);
    f->size = size;
    f->mode = mode;
    return f;
}

void
jm_strs_push (jm_strs_t *list, const char *s)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (char *));
    list->v[list->n++] = dup_str (s);
}

void
jm_u64s_push (jm_u64s_t *list, uint64_t v)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (uint64_t));
    list->v[list->n++] = v;
}

jm_wtask_t *
jm_wtasks_push (jm_wtasks_t *list)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wtask_t));
    return &list->v[list->n++];
}

jm_wsub_t *
jm_wsubs_push (jm_wsubs_t *list)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wsub_t));
    return &list->v[list->n++];
}

jm_wtstat_t *
jm_wtstats_push (jm_wtstats_t *list)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wtstat_t));
    return &list->v[list->n++];
}

jm_wmachine_t *
jm_wmachines_push (jm_wmachines_t *list)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wmachine_t));
    return &list->v[list->n++];
}

jm_wsite_t *
jm_wsites_push (jm_wsites_t *list)
{
    assert (list);
    list->v = grow (list->v, list->n, sizeof (jm_wsite_t));
    return &list->v[list->n++];
}

void
jm_str_set (char **dst, const char *s)
{
    assert (dst);
    char *d = dup_str (s);
    free (*dst);
    *dst = d;
}

void
jm_msg_set_data (jm_msg_t *self, const void *data, size_t size)
{
    assert (self);
    free (self->data);
    self->data = NULL;
    self->data_size = 0;
    if (size) {
        self->data = malloc (size);
        assert (self->data);
        memcpy (self->data, data, size);
        self->data_size = size;
    }
}
