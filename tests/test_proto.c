/*  test_proto.c - the message codec: round trips of every message type,
    every class of malformed input with its distinct error code, real
    ZeroMQ sockets, and PROTOCOL.md against the table.

    Run with "--write-corpus DIR" to write one valid encoding per message
    type into DIR (the fuzz seed corpus in tests/fuzz_corpus/).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_proto.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *HASH_A = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *HASH_B = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* Field metadata of the table, for generic tests. */
static const char *s_ftype[] = {
#define X(name, type, max) #type,
    JM_FIELDS (X)
#undef X
};
static const char *s_fname[] = {
#define X(name, type, max) #name,
    JM_FIELDS (X)
#undef X
};
static const size_t s_fmax[] = {
#define X(name, type, max) max,
    JM_FIELDS (X)
#undef X
};
static const size_t s_foff[] = {
#define X(name, type, max) offsetof (jm_msg_t, name),
    JM_FIELDS (X)
#undef X
};

static char *
repeat (char c, size_t n)
{
    char *s = malloc (n + 1);
    assert_non_null (s);
    memset (s, c, n);
    s[n] = 0;
    return s;
}

/* ---------------------------------------------------------------------- */
/* Filling messages: every field of the message type gets a value. */

static void
fill_str (char **p, const char *name, size_t max, int big)
{
    if (big) {
        free (*p);
        *p = repeat ('m', max);
        return;
    }
    char buf[128];
    snprintf (buf, sizeof buf, "%s: \xc3\xa4 'q' \"dq\" value", name);
    if (strlen (buf) > max)
        buf[max] = 0;
    jm_str_set (p, buf);
}

static void
fill_hash (char (*h)[65], const char *name, size_t max, int big)
{
    (void)name;
    (void)max;
    (void)big;
    snprintf (*h, sizeof *h, "%s", HASH_A);
}

static void
fill_files (jm_wfiles_t *l, int big)
{
    jm_wfiles_push (l, "a/b.txt", HASH_A, 0, 0644);
    jm_wfiles_push (l, "dir/with space/\xc3\xbc", "", UINT64_MAX, 07777);
    jm_wfiles_push (l, big ? "x/y/z" : "x", HASH_B, 12345, 0);
}

static void
fill_strs (jm_strs_t *l, int big)
{
    jm_strs_push (l, "*.dat");
    jm_strs_push (l, "");
    if (big) {
        char *s = repeat ('p', 4096);
        jm_strs_push (l, s);
        free (s);
    }
    else
        jm_strs_push (l, "out/**");
}

static void
fill_u64s (jm_u64s_t *l, size_t max, int big)
{
    size_t n = big && max <= 32 ? max : 3;
    for (size_t i = 0; i < n; i++)
        jm_u64s_push (l, i == 0 ? 0 : i == 1 ? UINT64_MAX : i * 1000003);
}

static void
fill_tasks (jm_wtasks_t *l, int big)
{
    jm_wtask_t *t = jm_wtasks_push (l);
    t->id = 7;
    jm_str_set (&t->path, "runs/t000");
    jm_str_set (&t->command, "echo hi > out.dat");
    jm_str_set (&t->outlog, "stdout.log");
    jm_str_set (&t->errlog, "stderr.log");
    fill_files (&t->forward, big);
    fill_strs (&t->backward, big);
    /* empty arrays and empty strings */
    t = jm_wtasks_push (l);
    t->id = UINT64_MAX;
    jm_str_set (&t->path, "");
    jm_str_set (&t->command, "");
    jm_str_set (&t->outlog, NULL);
    jm_str_set (&t->errlog, NULL);
    t = jm_wtasks_push (l);
    t->id = 0;
    jm_str_set (&t->path, "runs/t002");
    if (big) {
        t->command = repeat ('c', 65536);
        t->outlog = repeat ('o', 4096);
    }
    else {
        jm_str_set (&t->command, "true");
        jm_str_set (&t->outlog, "o");
    }
    jm_str_set (&t->errlog, "e");
    jm_wfiles_push (&t->forward, "only", HASH_B, 1, 0600);
}

static void
fill_subs (jm_wsubs_t *l, int big)
{
    jm_wsub_t *s = jm_wsubs_push (l);
    jm_str_set (&s->id, "s-0001");
    jm_str_set (&s->state, "RUNNING");
    jm_str_set (&s->work_base, "/home/u/work");
    s->total = 100;
    fill_u64s (&s->counts, 32, big);
    s->created = 1700000000000ull;
    s->bytes = UINT64_MAX;
    s = jm_wsubs_push (l);
    jm_str_set (&s->id, "");
    jm_str_set (&s->state, "");
    jm_str_set (&s->work_base, "");
}

static void
fill_tstats (jm_wtstats_t *l)
{
    jm_wtstat_t *t = jm_wtstats_push (l);
    t->id = 3;
    jm_str_set (&t->path, "runs/t003");
    jm_str_set (&t->state, "FAILED");
    t->exit_code = INT64_MIN;
    jm_str_set (&t->site, "cluster-a");
    jm_str_set (&t->reason, "exit 1");
    t = jm_wtstats_push (l);
    t->id = 4;
    t->exit_code = INT64_MAX;
    jm_str_set (&t->path, "p");
    jm_str_set (&t->state, "DONE");
    jm_str_set (&t->site, "");
    jm_str_set (&t->reason, "");
}

static void
fill_machines (jm_wmachines_t *l, int big)
{
    jm_wmachine_t *m = jm_wmachines_push (l);
    jm_str_set (&m->name, "dft_1");
    jm_str_set (&m->site, "cluster-a");
    jm_str_set (&m->host, "login.example.org");
    jm_str_set (&m->command, "mpirun -np 4 vasp_std");
    jm_str_set (&m->root, "/scratch/u/jobs");
    jm_str_set (&m->resources, big ? "{\"queue_name\":\"long\"}" : "");
    m->submit_size = 10;
    m->ratio = 333333;
    m = jm_wmachines_push (l);
    m->submit_size = UINT64_MAX;
}

static void
fill_sites (jm_wsites_t *l)
{
    jm_wsite_t *s = jm_wsites_push (l);
    jm_str_set (&s->name, "cluster-a");
    jm_str_set (&s->state, "up");
    s->drained = true;
    jm_str_set (&s->scheduler, "slurm");
    jm_str_set (&s->host, "login1");
    s->slots = 4;
    s->max_jobs = 100;
    s->cores = 64;
    s->gpus = 8;
    s->running = 3;
    s->queued = 7;
    s->free_slots = 1;
    s->done_1m = 120;
    s->wait_ms = 30000;
    s->jobs = 10;
    s->last_seen = 1700000000123ull;
    jm_str_set (&s->tunnel, "up (pid 42)");
    s = jm_wsites_push (l);
    s->last_seen = UINT64_MAX;
}

#define FILL_U64(m, f, max) m->f = UINT64_C (0x0123456789abcdef) * (JM_FLD_##f + 1)
#define FILL_I64(m, f, max) m->f = -42 - JM_FLD_##f
#define FILL_BOOL(m, f, max) m->f = true
#define FILL_STR(m, f, max)                                                                        \
    _Generic(&(m->f), char ** : fill_str, char (*)[65] : fill_hash) (&(m->f), #f, max, big)
#define FILL_BIN(m, f, max)                                                                        \
    do {                                                                                           \
        size_t n = big ? (max) : 300;                                                              \
        uint8_t *d = malloc (n);                                                                   \
        for (size_t i = 0; i < n; i++)                                                             \
            d[i] = i % 5 == 0 ? 0 : (uint8_t)(i * 31);                                             \
        jm_msg_set_data (m, d, n);                                                                 \
        free (d);                                                                                  \
    } while (0)
#define FILL_STRS(m, f, max) fill_strs (&m->f, big)
#define FILL_U64S(m, f, max) fill_u64s (&m->f, max, big)
#define FILL_FILES(m, f, max) fill_files (&m->f, big)
#define FILL_TASKS(m, f, max) fill_tasks (&m->f, big)
#define FILL_SUBS(m, f, max) fill_subs (&m->f, big)
#define FILL_TSTATS(m, f, max) fill_tstats (&m->f)
#define FILL_MACHINES(m, f, max) fill_machines (&m->f, big)
#define FILL_SITES(m, f, max) fill_sites (&m->f)

/* A message of type id with every field filled; big puts strings, data and
   small arrays at their maximum sizes. */
static jm_msg_t *
fill_msg (jm_msg_id_t id, int big)
{
    jm_msg_t *m = jm_msg_new (id);
    uint64_t mask = jm_msg_fields (id);
#define X(name, type, max)                                                                         \
    if (mask & JM_FB (name))                                                                       \
        FILL_##type (m, name, max);
    JM_FIELDS (X)
#undef X
    return m;
}

/* ---------------------------------------------------------------------- */
/* Comparing messages field by field. */

static void
cmp_str_p (char *const *a, char *const *b)
{
    /* the codec stores NULL as "" */
    assert_string_equal (*a ? *a : "", *b ? *b : "");
}

static void
cmp_hash (const char (*a)[65], const char (*b)[65])
{
    assert_string_equal (*a, *b);
}

static void
cmp_files (const jm_wfiles_t *a, const jm_wfiles_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal (a->v[i].path, b->v[i].path);
        assert_string_equal (a->v[i].hash, b->v[i].hash);
        assert_true (a->v[i].size == b->v[i].size);
        assert_int_equal (a->v[i].mode, b->v[i].mode);
    }
}

static void
cmp_strs (const jm_strs_t *a, const jm_strs_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_string_equal (a->v[i], b->v[i]);
}

static void
cmp_u64s (const jm_u64s_t *a, const jm_u64s_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_true (a->v[i] == b->v[i]);
}

static void
cmp_tasks (const jm_wtasks_t *a, const jm_wtasks_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_true (a->v[i].id == b->v[i].id);
        cmp_str_p (&a->v[i].path, &b->v[i].path);
        cmp_str_p (&a->v[i].command, &b->v[i].command);
        cmp_str_p (&a->v[i].outlog, &b->v[i].outlog);
        cmp_str_p (&a->v[i].errlog, &b->v[i].errlog);
        cmp_files (&a->v[i].forward, &b->v[i].forward);
        cmp_strs (&a->v[i].backward, &b->v[i].backward);
    }
}

static void
cmp_subs (const jm_wsubs_t *a, const jm_wsubs_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cmp_str_p (&a->v[i].id, &b->v[i].id);
        cmp_str_p (&a->v[i].state, &b->v[i].state);
        cmp_str_p (&a->v[i].work_base, &b->v[i].work_base);
        assert_true (a->v[i].total == b->v[i].total);
        cmp_u64s (&a->v[i].counts, &b->v[i].counts);
        assert_true (a->v[i].created == b->v[i].created);
        assert_true (a->v[i].bytes == b->v[i].bytes);
    }
}

static void
cmp_tstats (const jm_wtstats_t *a, const jm_wtstats_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_true (a->v[i].id == b->v[i].id);
        cmp_str_p (&a->v[i].path, &b->v[i].path);
        cmp_str_p (&a->v[i].state, &b->v[i].state);
        assert_true (a->v[i].exit_code == b->v[i].exit_code);
        cmp_str_p (&a->v[i].site, &b->v[i].site);
        cmp_str_p (&a->v[i].reason, &b->v[i].reason);
    }
}

static void
cmp_machines (const jm_wmachines_t *a, const jm_wmachines_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cmp_str_p (&a->v[i].name, &b->v[i].name);
        cmp_str_p (&a->v[i].site, &b->v[i].site);
        cmp_str_p (&a->v[i].host, &b->v[i].host);
        cmp_str_p (&a->v[i].command, &b->v[i].command);
        cmp_str_p (&a->v[i].root, &b->v[i].root);
        cmp_str_p (&a->v[i].resources, &b->v[i].resources);
        assert_true (a->v[i].submit_size == b->v[i].submit_size);
        assert_true (a->v[i].ratio == b->v[i].ratio);
    }
}

static void
cmp_sites (const jm_wsites_t *a, const jm_wsites_t *b)
{
    assert_int_equal (a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const jm_wsite_t *x = &a->v[i], *y = &b->v[i];
        cmp_str_p (&x->name, &y->name);
        cmp_str_p (&x->state, &y->state);
        assert_int_equal (x->drained, y->drained);
        cmp_str_p (&x->scheduler, &y->scheduler);
        cmp_str_p (&x->host, &y->host);
        assert_true (x->slots == y->slots && x->max_jobs == y->max_jobs);
        assert_true (x->cores == y->cores && x->gpus == y->gpus);
        assert_true (x->running == y->running && x->queued == y->queued);
        assert_true (x->free_slots == y->free_slots && x->done_1m == y->done_1m);
        assert_true (x->wait_ms == y->wait_ms && x->jobs == y->jobs);
        assert_true (x->last_seen == y->last_seen);
        cmp_str_p (&x->tunnel, &y->tunnel);
    }
}

#define CMP_U64(a, b, f) assert_true (a->f == b->f)
#define CMP_I64(a, b, f) assert_true (a->f == b->f)
#define CMP_BOOL(a, b, f) assert_int_equal (a->f, b->f)
#define CMP_STR(a, b, f)                                                                           \
    _Generic(&(a->f), char *const * : cmp_str_p, const char (*)[65] : cmp_hash) (&(a->f), &(b->f))
#define CMP_BIN(a, b, f)                                                                           \
    do {                                                                                           \
        assert_int_equal (a->f##_size, b->f##_size);                                               \
        if (a->f##_size)                                                                           \
            assert_memory_equal (a->f, b->f, a->f##_size);                                         \
    } while (0)
#define CMP_STRS(a, b, f) cmp_strs (&a->f, &b->f)
#define CMP_U64S(a, b, f) cmp_u64s (&a->f, &b->f)
#define CMP_FILES(a, b, f) cmp_files (&a->f, &b->f)
#define CMP_TASKS(a, b, f) cmp_tasks (&a->f, &b->f)
#define CMP_SUBS(a, b, f) cmp_subs (&a->f, &b->f)
#define CMP_TSTATS(a, b, f) cmp_tstats (&a->f, &b->f)
#define CMP_MACHINES(a, b, f) cmp_machines (&a->f, &b->f)
#define CMP_SITES(a, b, f) cmp_sites (&a->f, &b->f)

/* Fields the type does not list must stay zero after decoding. */
static void
assert_zero_outside (const jm_msg_t *m)
{
    uint64_t mask = jm_msg_fields (m->id);
    for (int f = 0; f < JM_FLD_COUNT; f++) {
        if (mask & (UINT64_C (1) << f))
            continue;
        const char *p = (const char *)m + s_foff[f];
        size_t sz = f + 1 < JM_FLD_COUNT ? s_foff[f + 1] - s_foff[f] : 1;
        if (strcmp (s_ftype[f], "BIN") == 0)
            sz = sizeof (uint8_t *) + sizeof (size_t);
        for (size_t i = 0; i < sz && i < 16; i++)
            if (p[i]) {
                print_error ("%s: field %s not zero\n", jm_msg_name (m->id), s_fname[f]);
                fail ();
            }
    }
}

static void
cmp_msg (const jm_msg_t *a, const jm_msg_t *b)
{
    assert_int_equal (a->id, b->id);
    uint64_t mask = jm_msg_fields (a->id);
#define X(name, type, max)                                                                         \
    if (mask & JM_FB (name))                                                                       \
        CMP_##type (a, b, name);
    JM_FIELDS (X)
#undef X
    assert_zero_outside (b);
}

/* ---------------------------------------------------------------------- */
/* Helpers for raw msgpack */

static uint8_t *
encode (const jm_msg_t *m, size_t *size)
{
    uint8_t *buf = NULL;
    char err[256] = "";
    int rc = jm_msg_encode (m, &buf, size, err, sizeof err);
    if (rc)
        print_error ("encode: %s\n", err);
    assert_int_equal (rc, 0);
    return buf;
}

static jm_msg_t *
decode_ok (const uint8_t *buf, size_t size)
{
    jm_msg_t *m = NULL;
    char err[512] = "";
    uint64_t pv = 0;
    int rc = jm_msg_decode (buf, size, &m, &pv, err, sizeof err);
    if (rc)
        print_error ("decode: %d %s\n", rc, err);
    assert_int_equal (rc, 0);
    assert_non_null (m);
    assert_int_equal (pv, JM_PROTO_VERSION);
    return m;
}

/* Decodes and checks the code and (if non-NULL) that err contains want_text. */
static void
expect_rc (const uint8_t *buf, size_t size, int want, const char *want_text)
{
    jm_msg_t *m = (jm_msg_t *)&m; /* must be reset to NULL */
    char err[512] = "";
    uint64_t pv = 77;
    int rc = jm_msg_decode (buf, size, &m, &pv, err, sizeof err);
    if (rc != want || (want_text && !strstr (err, want_text)))
        print_error ("decode: got %d (%s) want %d (%s), text '%s'\n", rc, jm_proto_strerror (rc),
                     want, want_text ? want_text : "", err);
    assert_int_equal (rc, want);
    assert_null (m);
    assert_true (strlen (err) > 0);
    if (want_text)
        assert_non_null (strstr (err, want_text));
}

typedef enum { MUT_REPLACE, MUT_REMOVE, MUT_DUP, MUT_ADD } mut_t;

static void
pack_key (msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, s, len);
}

/* Re-packs o, applying op at path ("tasks.1.path"; numbers index arrays;
   with MUT_ADD the last component is the new key). */
static void
repack (msgpack_packer *pk, const msgpack_object *o, const char *path, mut_t op,
        const msgpack_object *repl)
{
    if (!path) {
        msgpack_pack_object (pk, *o);
        return;
    }
    const char *dot = strchr (path, '.');
    size_t clen = dot ? (size_t)(dot - path) : strlen (path);
    const char *rest = dot ? dot + 1 : NULL;
    if (o->type == MSGPACK_OBJECT_MAP) {
        uint32_t n = o->via.map.size;
        if (!rest && op == MUT_REMOVE)
            n--;
        if (!rest && (op == MUT_DUP || op == MUT_ADD))
            n++;
        msgpack_pack_map (pk, n);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            const msgpack_object *v = &o->via.map.ptr[i].val;
            bool match = k->type == MSGPACK_OBJECT_STR && k->via.str.size == clen &&
                         memcmp (k->via.str.ptr, path, clen) == 0;
            if (match && !rest && op != MUT_ADD) {
                if (op == MUT_REMOVE)
                    continue;
                msgpack_pack_object (pk, *k);
                msgpack_pack_object (pk, op == MUT_REPLACE ? *repl : *v);
                if (op == MUT_DUP) {
                    msgpack_pack_object (pk, *k);
                    msgpack_pack_object (pk, repl ? *repl : *v);
                }
            }
            else if (match && rest) {
                msgpack_pack_object (pk, *k);
                repack (pk, v, rest, op, repl);
            }
            else {
                msgpack_pack_object (pk, *k);
                msgpack_pack_object (pk, *v);
            }
        }
        if (!rest && op == MUT_ADD) {
            pack_key (pk, path, clen);
            msgpack_pack_object (pk, *repl);
        }
    }
    else if (o->type == MSGPACK_OBJECT_ARRAY) {
        size_t idx = strtoul (path, NULL, 10);
        msgpack_pack_array (pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i == idx && !rest && op == MUT_REPLACE)
                msgpack_pack_object (pk, *repl);
            else if (i == idx)
                repack (pk, &o->via.array.ptr[i], rest, op, repl);
            else
                msgpack_pack_object (pk, o->via.array.ptr[i]);
        }
    }
    else
        fail_msg ("path component '%s' does not name a map or array", path);
}

/* Encoding of m with op applied at path. */
static uint8_t *
mutate (const jm_msg_t *m, const char *path, mut_t op, const msgpack_object *repl, size_t *size)
{
    size_t n;
    uint8_t *buf = encode (m, &n);
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    size_t off = 0;
    assert_int_equal (msgpack_unpack_next (&up, (const char *)buf, n, &off),
                      MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    repack (&pk, &up.data, path, op, repl);
    msgpack_unpacked_destroy (&up);
    free (buf);
    *size = sb.size;
    return (uint8_t *)msgpack_sbuffer_release (&sb);
}

/* Applies the mutation to a filled message of type id and expects code. */
static void
expect_mut (jm_msg_id_t id, const char *path, mut_t op, const msgpack_object *repl, int want,
            const char *want_text)
{
    jm_msg_t *m = fill_msg (id, 0);
    size_t n;
    uint8_t *buf = mutate (m, path, op, repl, &n);
    if (want == 0) {
        jm_msg_t *d = decode_ok (buf, n);
        jm_msg_destroy (&d);
    }
    else
        expect_rc (buf, n, want, want_text);
    free (buf);
    jm_msg_destroy (&m);
}

static msgpack_object
o_str (const char *s, size_t len)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)len;
    return o;
}

static msgpack_object
o_uint (uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

static msgpack_object
o_int (int64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};
    o.via.i64 = v;
    return o;
}

static msgpack_object
o_nil (void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    return o;
}

static msgpack_object
o_bin (const char *p, size_t len)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = p;
    o.via.bin.size = (uint32_t)len;
    return o;
}

/* Array of n copies of elem; free o.via.array.ptr. */
static msgpack_object
o_array (size_t n, msgpack_object elem)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
    o.via.array.ptr = malloc ((n ? n : 1) * sizeof (msgpack_object));
    assert_non_null (o.via.array.ptr);
    for (size_t i = 0; i < n; i++)
        o.via.array.ptr[i] = elem;
    o.via.array.size = (uint32_t)n;
    return o;
}

static jm_msg_id_t
msg_with_field (int f)
{
    for (int id = 0; id < JM_MSG_COUNT; id++)
        if (jm_msg_fields (id) & (UINT64_C (1) << f))
            return id;
    return JM_MSG_COUNT;
}

/* ---------------------------------------------------------------------- */
/* Tests */

static void
test_table (void **state)
{
    (void)state;
    assert_string_equal (jm_msg_name (JM_MSG_HELLO), "HELLO");
    assert_string_equal (jm_msg_name (JM_MSG_CANCELLED), "CANCELLED");
    assert_null (jm_msg_name (JM_MSG_COUNT));
    assert_string_equal (jm_msg_direction (JM_MSG_JOB), "K -> A");
    assert_true (jm_msg_fields (JM_MSG_FETCH) ==
                 (JM_FB (job_id) | JM_FB (hash) | JM_FB (offset) | JM_FB (size)));
    assert_true (jm_msg_fields (JM_MSG_HEARTBEAT) == 0);
    for (int a = JM_PROTO_EVALUE; a <= 0; a++)
        for (int b = a + 1; b <= 0; b++)
            assert_string_not_equal (jm_proto_strerror (a), jm_proto_strerror (b));
}

static void
roundtrip (jm_msg_id_t id, int big)
{
    jm_msg_t *m = fill_msg (id, big);
    size_t n;
    uint8_t *buf = encode (m, &n);
    jm_msg_t *d = decode_ok (buf, n);
    cmp_msg (m, d);
    /* the encoding is deterministic */
    size_t n2;
    uint8_t *buf2 = encode (d, &n2);
    assert_int_equal (n, n2);
    assert_memory_equal (buf, buf2, n);
    free (buf);
    free (buf2);
    jm_msg_destroy (&m);
    jm_msg_destroy (&d);
    assert_null (d);
}

static void
test_roundtrip_every_type (void **state)
{
    (void)state;
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        roundtrip (id, 0);
        roundtrip (id, 1);
    }
}

static void
test_roundtrip_empty (void **state)
{
    (void)state;
    /* Fresh messages: empty strings, empty arrays, zero numbers. Hash
       fields need a valid digest. */
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        jm_msg_t *m = jm_msg_new (id);
        snprintf (m->hash, sizeof m->hash, "%s", HASH_B);
        size_t n;
        uint8_t *buf = encode (m, &n);
        jm_msg_t *d = decode_ok (buf, n);
        cmp_msg (m, d);
        free (buf);
        jm_msg_destroy (&m);
        jm_msg_destroy (&d);
    }
}

static void
test_roundtrip_extremes (void **state)
{
    (void)state;
    jm_msg_t *m = jm_msg_new (JM_MSG_TASK_END);
    m->task_id = UINT64_MAX;
    m->exit_code = -1;
    jm_str_set (&m->reason, "");
    jm_wfiles_push (&m->files, "f", "", 0, 07777);
    size_t n;
    uint8_t *buf = encode (m, &n);
    jm_msg_t *d = decode_ok (buf, n);
    assert_true (d->task_id == UINT64_MAX);
    assert_true (d->exit_code == -1);
    assert_string_equal (d->files.v[0].hash, "");
    assert_int_equal (d->files.v[0].mode, 07777);
    free (buf);
    jm_msg_destroy (&d);
    m->exit_code = INT64_MIN;
    buf = encode (m, &n);
    d = decode_ok (buf, n);
    assert_true (d->exit_code == INT64_MIN);
    free (buf);
    jm_msg_destroy (&d);
    jm_msg_destroy (&m);
}

static void
test_random_bytes (void **state)
{
    (void)state;
    srand (12345);
    uint8_t buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + (size_t)rand () % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand ();
        /* half of them start like a map to get past the first byte */
        if (iter % 2)
            buf[0] = 0x80 | (buf[0] & 0x0f);
        jm_msg_t *m = (jm_msg_t *)buf;
        char err[256] = "";
        int rc = jm_msg_decode (buf, n, &m, NULL, err, sizeof err);
        assert_true (rc < 0 && rc >= JM_PROTO_EVALUE);
        assert_null (m);
        assert_true (strlen (err) > 0);
    }
    expect_rc (NULL, 0, JM_PROTO_EMALFORMED, "empty");
    expect_rc ((const uint8_t *)"", 0, JM_PROTO_EMALFORMED, NULL);
    expect_rc ((const uint8_t *)"\xc1", 1, JM_PROTO_EMALFORMED, NULL);
}

static void
test_truncated (void **state)
{
    (void)state;
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        jm_msg_t *m = fill_msg (id, 0);
        size_t n;
        uint8_t *buf = encode (m, &n);
        for (size_t len = 0; len < n; len++) {
            /* a copy of exactly len bytes so ASan sees any over-read */
            uint8_t *cut = malloc (len ? len : 1);
            memcpy (cut, buf, len);
            expect_rc (cut, len, JM_PROTO_EMALFORMED, NULL);
            free (cut);
        }
        free (buf);
        jm_msg_destroy (&m);
    }
}

static void
test_version (void **state)
{
    (void)state;
    msgpack_object two = o_uint (JM_PROTO_VERSION + 1);
    jm_msg_t *m = fill_msg (JM_MSG_HELLO, 0);
    size_t n;
    uint8_t *buf = mutate (m, "v", MUT_REPLACE, &two, &n);
    jm_msg_t *d = NULL;
    uint64_t pv = 0;
    char err[256];
    int rc = jm_msg_decode (buf, n, &d, &pv, err, sizeof err);
    assert_int_equal (rc, JM_PROTO_EVERSION);
    assert_null (d);
    assert_int_equal (pv, JM_PROTO_VERSION + 1);
    assert_non_null (strstr (err, "protocol version 3 not supported (this side speaks 2)"));
    free (buf);

    buf = mutate (m, "v", MUT_REMOVE, NULL, &n);
    pv = 99;
    rc = jm_msg_decode (buf, n, &d, &pv, err, sizeof err);
    assert_int_equal (rc, JM_PROTO_EVERSION);
    assert_int_equal (pv, 0);
    free (buf);

    msgpack_object s1 = o_str ("1", 1);
    buf = mutate (m, "v", MUT_REPLACE, &s1, &n);
    expect_rc (buf, n, JM_PROTO_EVERSION, NULL);
    free (buf);
    msgpack_object neg = o_int (-1);
    buf = mutate (m, "v", MUT_REPLACE, &neg, &n);
    expect_rc (buf, n, JM_PROTO_EVERSION, NULL);
    free (buf);
    jm_msg_destroy (&m);

    /* A future peer's message: only v and an unknown type. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    pack_key (&pk, "t", 1);
    pack_key (&pk, "HELLO2", 6);
    pack_key (&pk, "v", 1);
    msgpack_pack_uint64 (&pk, 7);
    pack_key (&pk, "x", 1);
    msgpack_pack_nil (&pk);
    pv = 0;
    rc = jm_msg_decode ((uint8_t *)sb.data, sb.size, &d, &pv, err, sizeof err);
    assert_int_equal (rc, JM_PROTO_EVERSION);
    assert_int_equal (pv, 7);
    assert_non_null (strstr (err, "protocol version 7 not supported (this side speaks 2)"));
    msgpack_sbuffer_destroy (&sb);
}

static void
test_type (void **state)
{
    (void)state;
    msgpack_object bogus = o_str ("NOPE", 4);
    expect_mut (JM_MSG_CREDIT, "t", MUT_REPLACE, &bogus, JM_PROTO_ETYPE,
                "unknown message type 'NOPE'");
    expect_mut (JM_MSG_CREDIT, "t", MUT_REMOVE, NULL, JM_PROTO_ETYPE, NULL);
    msgpack_object five = o_uint (5);
    expect_mut (JM_MSG_CREDIT, "t", MUT_REPLACE, &five, JM_PROTO_ETYPE, NULL);
    /* prefix of a real name */
    msgpack_object hel = o_str ("HEL", 3);
    expect_mut (JM_MSG_CREDIT, "t", MUT_REPLACE, &hel, JM_PROTO_ETYPE, NULL);
    /* type text with control bytes is rendered safely */
    msgpack_object ctl = o_str ("\x1b[31mX\n", 7);
    expect_mut (JM_MSG_CREDIT, "t", MUT_REPLACE, &ctl, JM_PROTO_ETYPE, "'?[31mX?'");
}

static void
test_missing_each_field (void **state)
{
    (void)state;
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        uint64_t mask = jm_msg_fields (id);
        for (int f = 0; f < JM_FLD_COUNT; f++) {
            if (!(mask & (UINT64_C (1) << f)))
                continue;
            char want[128];
            snprintf (want, sizeof want, "%s: missing field '%s'", jm_msg_name (id), s_fname[f]);
            expect_mut (id, s_fname[f], MUT_REMOVE, NULL, JM_PROTO_EMISSING, want);
        }
    }
    /* record keys */
    const char *rpaths[] = {"tasks.0.id",       "tasks.0.path",           "tasks.0.command",
                            "tasks.0.outlog",   "tasks.0.errlog",         "tasks.0.forward",
                            "tasks.0.backward", "tasks.0.forward.1.hash", "common.2.path",
                            "common.0.size",    "common.0.mode"};
    for (size_t i = 0; i < sizeof rpaths / sizeof rpaths[0]; i++)
        expect_mut (JM_MSG_JOB, rpaths[i], MUT_REMOVE, NULL, JM_PROTO_EMISSING, NULL);
    expect_mut (JM_MSG_JOB, "tasks.0.forward.1.hash", MUT_REMOVE, NULL, JM_PROTO_EMISSING,
                "JOB: field 'tasks[0].forward[1]': file record has no key 'hash'");
    const char *spaths[] = {"subs.0.id",      "subs.0.state",       "subs.0.work_base",
                            "subs.0.total",   "subs.0.counts",      "subs.0.created",
                            "subs.0.bytes",   "tstats.1.id",        "tstats.1.path",
                            "tstats.1.state", "tstats.1.exit_code", "tstats.1.site",
                            "tstats.1.reason"};
    for (size_t i = 0; i < sizeof spaths / sizeof spaths[0]; i++)
        expect_mut (JM_MSG_STATUS_REPLY, spaths[i], MUT_REMOVE, NULL, JM_PROTO_EMISSING, NULL);
}

static void
test_mistyped_each_field (void **state)
{
    (void)state;
    msgpack_object five = o_uint (5);
    msgpack_object sfive = o_str ("5", 1);
    msgpack_object one = o_uint (1);
    msgpack_object sx = o_str ("x", 1);
    msgpack_object nil = o_nil ();
    msgpack_object bin = o_bin ("ab", 2);
    msgpack_object flt = {.type = MSGPACK_OBJECT_FLOAT64};
    flt.via.f64 = 1.0;
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        uint64_t mask = jm_msg_fields (id);
        for (int f = 0; f < JM_FLD_COUNT; f++) {
            if (!(mask & (UINT64_C (1) << f)))
                continue;
            const char *t = s_ftype[f];
            const msgpack_object *wrong;
            if (!strcmp (t, "STR") || !strcmp (t, "BIN"))
                wrong = &five;
            else if (!strcmp (t, "U64") || !strcmp (t, "I64"))
                wrong = &sfive;
            else if (!strcmp (t, "BOOL"))
                wrong = &one;
            else
                wrong = &sx;
            char want[128];
            snprintf (want, sizeof want, "%s: field '%s': expected", jm_msg_name (id), s_fname[f]);
            expect_mut (id, s_fname[f], MUT_REPLACE, wrong, JM_PROTO_EFIELDTYPE, want);
            expect_mut (id, s_fname[f], MUT_REPLACE, &nil, JM_PROTO_EFIELDTYPE, want);
            if (!strcmp (t, "U64") || !strcmp (t, "I64"))
                expect_mut (id, s_fname[f], MUT_REPLACE, &flt, JM_PROTO_EFIELDTYPE, want);
            if (!strcmp (t, "STR"))
                expect_mut (id, s_fname[f], MUT_REPLACE, &bin, JM_PROTO_EFIELDTYPE, want);
            if (!strcmp (t, "BIN"))
                expect_mut (id, s_fname[f], MUT_REPLACE, &sx, JM_PROTO_EFIELDTYPE, want);
        }
    }
    /* inside records */
    expect_mut (JM_MSG_JOB, "tasks.1.id", MUT_REPLACE, &sfive, JM_PROTO_EFIELDTYPE,
                "JOB: field 'tasks[1].id': expected unsigned integer, got string");
    expect_mut (JM_MSG_JOB, "tasks.1", MUT_REPLACE, &five, JM_PROTO_EFIELDTYPE,
                "JOB: field 'tasks[1]': expected task record (map), got integer");
    expect_mut (JM_MSG_JOB, "tasks.0.backward.1", MUT_REPLACE, &five, JM_PROTO_EFIELDTYPE,
                "'tasks[0].backward[1]'");
    expect_mut (JM_MSG_JOB, "common.0.mode", MUT_REPLACE, &sx, JM_PROTO_EFIELDTYPE, NULL);
    expect_mut (JM_MSG_TASK_STARTED, "ids.2", MUT_REPLACE, &sx, JM_PROTO_EFIELDTYPE, "'ids[2]'");
    expect_mut (JM_MSG_STATUS_REPLY, "tstats.0.exit_code", MUT_REPLACE, &sx, JM_PROTO_EFIELDTYPE,
                NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "subs.0.counts", MUT_REPLACE, &five, JM_PROTO_EFIELDTYPE,
                NULL);
}

/* For each sized field of the table: exactly at the limit decodes, one over
   is ETOOBIG (and refused by the encoder). */
static void
test_limits_each_field (void **state)
{
    (void)state;
    for (int f = 0; f < JM_FLD_COUNT; f++) {
        const char *t = s_ftype[f];
        size_t max = s_fmax[f];
        jm_msg_id_t id = msg_with_field (f);
        if (id == JM_MSG_COUNT || f == JM_FLD_hash)
            continue;
        char want[160];
        snprintf (want, sizeof want, "%s: field '%s': ", jm_msg_name (id), s_fname[f]);
        if (!strcmp (t, "STR")) {
            char *s = repeat ('s', max + 1);
            msgpack_object at = o_str (s, max), over = o_str (s, max + 1);
            expect_mut (id, s_fname[f], MUT_REPLACE, &at, 0, NULL);
            char w2[200];
            snprintf (w2, sizeof w2, "%sstring of %zu bytes exceeds %zu", want, max + 1, max);
            expect_mut (id, s_fname[f], MUT_REPLACE, &over, JM_PROTO_ETOOBIG, w2);
            /* the encoder refuses too, naming the field */
            jm_msg_t *m = fill_msg (id, 0);
            char **p = (char **)((char *)m + s_foff[f]);
            jm_str_set (p, s);
            uint8_t *buf = (uint8_t *)"x";
            size_t n;
            char err[256] = "";
            assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
            assert_null (buf);
            assert_non_null (strstr (err, w2));
            s[max] = 0;
            jm_str_set (p, s);
            buf = encode (m, &n);
            jm_msg_t *d = decode_ok (buf, n);
            assert_string_equal (*(char **)((char *)d + s_foff[f]), s);
            jm_msg_destroy (&d);
            free (buf);
            jm_msg_destroy (&m);
            free (s);
        }
        else if (!strcmp (t, "BIN")) {
            char *s = calloc (1, max + 1);
            msgpack_object at = o_bin (s, max), over = o_bin (s, max + 1);
            expect_mut (id, s_fname[f], MUT_REPLACE, &at, 0, NULL);
            expect_mut (id, s_fname[f], MUT_REPLACE, &over, JM_PROTO_ETOOBIG, want);
            jm_msg_t *m = fill_msg (id, 0);
            jm_msg_set_data (m, s, max + 1);
            uint8_t *buf;
            size_t n;
            char err[256] = "";
            assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
            assert_non_null (strstr (err, want));
            jm_msg_destroy (&m);
            free (s);
        }
        else if (!strcmp (t, "STRS") || !strcmp (t, "U64S")) {
            msgpack_object elem = !strcmp (t, "STRS") ? o_str ("a", 1) : o_uint (9);
            msgpack_object at = o_array (max, elem);
            msgpack_object over = o_array (max + 1, elem);
            expect_mut (id, s_fname[f], MUT_REPLACE, &at, 0, NULL);
            char w2[200];
            snprintf (w2, sizeof w2, "%sarray of %zu entries exceeds %zu", want, max + 1, max);
            expect_mut (id, s_fname[f], MUT_REPLACE, &over, JM_PROTO_ETOOBIG, w2);
            free (at.via.array.ptr);
            free (over.via.array.ptr);
        }
        else if (!strcmp (t, "FILES") || !strcmp (t, "TASKS") || !strcmp (t, "SUBS") ||
                 !strcmp (t, "TSTATS") || !strcmp (t, "MACHINES") || !strcmp (t, "SITES")) {
            /* nil entries: at the limit the count passes and entry [0] is
               refused as a non-record; one over, the count is refused
               before any entry is looked at */
            msgpack_object at = o_array (max, o_nil ());
            msgpack_object over = o_array (max + 1, o_nil ());
            char w0[200];
            snprintf (w0, sizeof w0, "%s: field '%s[0]': expected", jm_msg_name (id), s_fname[f]);
            expect_mut (id, s_fname[f], MUT_REPLACE, &at, JM_PROTO_EFIELDTYPE, w0);
            expect_mut (id, s_fname[f], MUT_REPLACE, &over, JM_PROTO_ETOOBIG, want);
            free (at.via.array.ptr);
            free (over.via.array.ptr);
        }
    }
}

static void
test_limits_in_records (void **state)
{
    (void)state;
    struct {
        jm_msg_id_t id;
        const char *path;
        const char *errpath;
        size_t max;
    } cases[] = {
        {JM_MSG_JOB, "tasks.1.path", "tasks[1].path", 4096},
        {JM_MSG_JOB, "tasks.2.command", "tasks[2].command", 65536},
        {JM_MSG_JOB, "tasks.0.outlog", "tasks[0].outlog", 4096},
        {JM_MSG_JOB, "tasks.0.errlog", "tasks[0].errlog", 4096},
        {JM_MSG_JOB, "tasks.0.forward.2.path", "tasks[0].forward[2].path", 4096},
        {JM_MSG_JOB, "tasks.0.backward.0", "tasks[0].backward[0]", 4096},
        {JM_MSG_JOB, "common.1.path", "common[1].path", 4096},
        {JM_MSG_SUBMIT, "backward_common.2", "backward_common[2]", 4096},
        {JM_MSG_STATUS_REPLY, "subs.0.id", "subs[0].id", 64},
        {JM_MSG_STATUS_REPLY, "subs.0.state", "subs[0].state", 32},
        {JM_MSG_STATUS_REPLY, "subs.1.work_base", "subs[1].work_base", 4096},
        {JM_MSG_STATUS_REPLY, "tstats.0.path", "tstats[0].path", 4096},
        {JM_MSG_STATUS_REPLY, "tstats.0.state", "tstats[0].state", 32},
        {JM_MSG_STATUS_REPLY, "tstats.1.site", "tstats[1].site", 128},
        {JM_MSG_STATUS_REPLY, "tstats.1.reason", "tstats[1].reason", 8192},
    };
    char *s = repeat ('r', 70000);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object at = o_str (s, cases[i].max), over = o_str (s, cases[i].max + 1);
        expect_mut (cases[i].id, cases[i].path, MUT_REPLACE, &at, 0, NULL);
        char want[256];
        snprintf (want, sizeof want, "%s: field '%s': string of %zu bytes exceeds %zu",
                  jm_msg_name (cases[i].id), cases[i].errpath, cases[i].max + 1, cases[i].max);
        expect_mut (cases[i].id, cases[i].path, MUT_REPLACE, &over, JM_PROTO_ETOOBIG, want);
    }
    free (s);

    /* arrays inside records */
    msgpack_object at = o_array (32, o_uint (1)), over = o_array (33, o_uint (1));
    expect_mut (JM_MSG_STATUS_REPLY, "subs.0.counts", MUT_REPLACE, &at, 0, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "subs.0.counts", MUT_REPLACE, &over, JM_PROTO_ETOOBIG,
                "'subs[0].counts': array of 33 entries exceeds 32");
    free (at.via.array.ptr);
    free (over.via.array.ptr);
    at = o_array (10000, o_str ("b", 1));
    over = o_array (10001, o_str ("b", 1));
    expect_mut (JM_MSG_JOB, "tasks.1.backward", MUT_REPLACE, &at, 0, NULL);
    expect_mut (JM_MSG_JOB, "tasks.1.backward", MUT_REPLACE, &over, JM_PROTO_ETOOBIG,
                "'tasks[1].backward': array of 10001 entries exceeds 10000");
    free (at.via.array.ptr);
    free (over.via.array.ptr);
    at = o_array (100000, o_nil ());
    over = o_array (100001, o_nil ());
    expect_mut (JM_MSG_JOB, "tasks.1.forward", MUT_REPLACE, &at, JM_PROTO_EFIELDTYPE,
                "'tasks[1].forward[0]'");
    expect_mut (JM_MSG_JOB, "tasks.1.forward", MUT_REPLACE, &over, JM_PROTO_ETOOBIG,
                "'tasks[1].forward': array of 100001 entries exceeds 100000");
    free (at.via.array.ptr);
    free (over.via.array.ptr);

    /* the encoder refuses over-long record strings and arrays */
    jm_msg_t *m = fill_msg (JM_MSG_JOB, 0);
    free (m->tasks.v[1].path);
    m->tasks.v[1].path = repeat ('x', 5000);
    uint8_t *buf;
    size_t n;
    char err[256];
    assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
    assert_string_equal (err, "JOB: field 'tasks[1].path': string of 5000 bytes exceeds 4096");
    jm_msg_destroy (&m);
    m = fill_msg (JM_MSG_PROGRESS, 0);
    for (int i = 0; i < 30; i++)
        jm_u64s_push (&m->counts, i);
    assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
    assert_non_null (strstr (err, "PROGRESS: field 'counts': array of 33 entries exceeds 32"));
    jm_msg_destroy (&m);
}

static void
test_unknown_key (void **state)
{
    (void)state;
    msgpack_object one = o_uint (1);
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        char want[128];
        snprintf (want, sizeof want, "%s: unknown field 'bogus'", jm_msg_name (id));
        expect_mut (id, "bogus", MUT_ADD, &one, JM_PROTO_EUNKNOWN, want);
    }
    /* a field of the table that this message does not carry */
    expect_mut (JM_MSG_HEARTBEAT, "credit", MUT_ADD, &one, JM_PROTO_EUNKNOWN,
                "HEARTBEAT: unknown field 'credit'");
    expect_mut (JM_MSG_CREDIT, "job_id", MUT_ADD, &one, JM_PROTO_EUNKNOWN, NULL);
    /* keys are case sensitive */
    expect_mut (JM_MSG_CREDIT, "Credit", MUT_ADD, &one, JM_PROTO_EUNKNOWN, NULL);
    /* record keys */
    expect_mut (JM_MSG_JOB, "tasks.0.extra", MUT_ADD, &one, JM_PROTO_EUNKNOWN,
                "JOB: field 'tasks[0]': unknown key 'extra' in task record");
    expect_mut (JM_MSG_JOB, "common.1.hash2", MUT_ADD, &one, JM_PROTO_EUNKNOWN, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "subs.0.v", MUT_ADD, &one, JM_PROTO_EUNKNOWN, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "tstats.0.t", MUT_ADD, &one, JM_PROTO_EUNKNOWN, NULL);

    /* a non-string key */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    pack_key (&pk, "v", 1);
    msgpack_pack_uint64 (&pk, JM_PROTO_VERSION);
    pack_key (&pk, "t", 1);
    pack_key (&pk, "CREDIT", 6);
    pack_key (&pk, "credit", 6);
    msgpack_pack_uint64 (&pk, 1);
    msgpack_pack_uint64 (&pk, 5);
    msgpack_pack_uint64 (&pk, 5);
    expect_rc ((uint8_t *)sb.data, sb.size, JM_PROTO_EUNKNOWN, NULL);
    msgpack_sbuffer_destroy (&sb);
}

static void
test_duplicate_key (void **state)
{
    (void)state;
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        uint64_t mask = jm_msg_fields (id);
        for (int f = 0; f < JM_FLD_COUNT; f++) {
            if (!(mask & (UINT64_C (1) << f)))
                continue;
            char want[128];
            snprintf (want, sizeof want, "%s: duplicate field '%s'", jm_msg_name (id), s_fname[f]);
            expect_mut (id, s_fname[f], MUT_DUP, NULL, JM_PROTO_EDUP, want);
        }
        expect_mut (id, "v", MUT_DUP, NULL, JM_PROTO_EDUP, "duplicate key 'v'");
        expect_mut (id, "t", MUT_DUP, NULL, JM_PROTO_EDUP, "duplicate key 't'");
    }
    expect_mut (JM_MSG_JOB, "tasks.0.path", MUT_DUP, NULL, JM_PROTO_EDUP,
                "JOB: field 'tasks[0]': duplicate key 'path' in task record");
    expect_mut (JM_MSG_JOB, "tasks.0.forward.0.mode", MUT_DUP, NULL, JM_PROTO_EDUP, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "subs.1.counts", MUT_DUP, NULL, JM_PROTO_EDUP, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "tstats.1.exit_code", MUT_DUP, NULL, JM_PROTO_EDUP, NULL);
}

static void
test_bad_hash (void **state)
{
    (void)state;
    char upper[65], h63[64], h65[66];
    snprintf (upper, sizeof upper, "%s", HASH_A);
    upper[10] = 'C';
    memcpy (h63, HASH_A, 63);
    h63[63] = 0;
    snprintf (h65, sizeof h65, "%s0", HASH_A);
    msgpack_object empty = o_str ("", 0), up = o_str (upper, 64), short_ = o_str (h63, 63),
                   long_ = o_str (h65, 65), nonhex = o_str ("g", 1), ok = o_str (HASH_B, 64);
    jm_msg_id_t ids[] = {JM_MSG_FETCH, JM_MSG_CHUNK, JM_MSG_NOFILE};
    for (size_t i = 0; i < 3; i++) {
        expect_mut (ids[i], "hash", MUT_REPLACE, &empty, JM_PROTO_EVALUE, "field 'hash': hash ''");
        expect_mut (ids[i], "hash", MUT_REPLACE, &up, JM_PROTO_EVALUE, NULL);
        expect_mut (ids[i], "hash", MUT_REPLACE, &short_, JM_PROTO_EVALUE, NULL);
        expect_mut (ids[i], "hash", MUT_REPLACE, &nonhex, JM_PROTO_EVALUE, NULL);
        expect_mut (ids[i], "hash", MUT_REPLACE, &long_, JM_PROTO_ETOOBIG, NULL);
        expect_mut (ids[i], "hash", MUT_REPLACE, &ok, 0, NULL);
    }
    /* file records: "" allowed, anything else must be a digest */
    expect_mut (JM_MSG_TASK_END, "files.0.hash", MUT_REPLACE, &empty, 0, NULL);
    expect_mut (JM_MSG_TASK_END, "files.0.hash", MUT_REPLACE, &up, JM_PROTO_EVALUE,
                "TASK_END: field 'files[0].hash': hash '");
    expect_mut (JM_MSG_JOB, "common.0.hash", MUT_REPLACE, &short_, JM_PROTO_EVALUE, NULL);
    expect_mut (JM_MSG_JOB, "tasks.0.forward.0.hash", MUT_REPLACE, &long_, JM_PROTO_ETOOBIG, NULL);

    /* the encoder refuses a bad hash */
    jm_msg_t *m = fill_msg (JM_MSG_FETCH, 0);
    m->hash[0] = 0;
    uint8_t *buf;
    size_t n;
    char err[256];
    assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
    assert_non_null (strstr (err, "FETCH: field 'hash'"));
    jm_msg_destroy (&m);
}

static void
test_bad_values (void **state)
{
    (void)state;
    /* NUL inside strings */
    msgpack_object nul = o_str ("ab\0cd", 5);
    expect_mut (JM_MSG_HELLO, "name", MUT_REPLACE, &nul, JM_PROTO_EVALUE,
                "HELLO: field 'name': string contains a NUL byte");
    expect_mut (JM_MSG_JOB, "tasks.0.path", MUT_REPLACE, &nul, JM_PROTO_EVALUE, "'tasks[0].path'");
    expect_mut (JM_MSG_SUBMIT, "backward_common.0", MUT_REPLACE, &nul, JM_PROTO_EVALUE, NULL);
    msgpack_object nul1 = o_str ("\0", 1);
    expect_mut (JM_MSG_ERROR, "reason", MUT_REPLACE, &nul1, JM_PROTO_EVALUE, NULL);
    /* binary data may hold NULs */
    msgpack_object zeros = o_bin ("\0\0\0", 3);
    expect_mut (JM_MSG_CHUNK, "data", MUT_REPLACE, &zeros, 0, NULL);

    /* negative where unsigned expected */
    msgpack_object neg = o_int (-1), negbig = o_int (INT64_MIN);
    expect_mut (JM_MSG_CREDIT, "credit", MUT_REPLACE, &neg, JM_PROTO_EVALUE,
                "CREDIT: field 'credit': negative integer -1");
    expect_mut (JM_MSG_FETCH, "offset", MUT_REPLACE, &negbig, JM_PROTO_EVALUE, NULL);
    expect_mut (JM_MSG_TASK_STARTED, "ids.1", MUT_REPLACE, &neg, JM_PROTO_EVALUE, NULL);
    expect_mut (JM_MSG_JOB, "tasks.0.id", MUT_REPLACE, &neg, JM_PROTO_EVALUE, NULL);
    expect_mut (JM_MSG_JOB, "common.0.size", MUT_REPLACE, &neg, JM_PROTO_EVALUE, NULL);
    /* I64 takes negatives, but not unsigned values above INT64_MAX */
    expect_mut (JM_MSG_TASK_END, "exit_code", MUT_REPLACE, &negbig, 0, NULL);
    msgpack_object huge = o_uint (UINT64_MAX), i64max = o_uint (INT64_MAX);
    expect_mut (JM_MSG_TASK_END, "exit_code", MUT_REPLACE, &huge, JM_PROTO_EVALUE, NULL);
    expect_mut (JM_MSG_TASK_END, "exit_code", MUT_REPLACE, &i64max, 0, NULL);
    expect_mut (JM_MSG_STATUS_REPLY, "tstats.0.exit_code", MUT_REPLACE, &huge, JM_PROTO_EVALUE,
                NULL);

    /* mode */
    msgpack_object m7777 = o_uint (07777), m10000 = o_uint (010000), mbig = o_uint (UINT64_MAX);
    expect_mut (JM_MSG_JOB, "common.0.mode", MUT_REPLACE, &m7777, 0, NULL);
    expect_mut (JM_MSG_JOB, "common.0.mode", MUT_REPLACE, &m10000, JM_PROTO_EVALUE,
                "JOB: field 'common[0].mode': mode 010000 exceeds 07777");
    expect_mut (JM_MSG_TASK_END, "files.2.mode", MUT_REPLACE, &mbig, JM_PROTO_EVALUE, NULL);
    jm_msg_t *m = fill_msg (JM_MSG_TASK_END, 0);
    m->files.v[1].mode = 010000;
    uint8_t *buf;
    size_t n;
    char err[256];
    assert_int_equal (jm_msg_encode (m, &buf, &n, err, sizeof err), -1);
    assert_non_null (strstr (err, "files[1].mode"));
    jm_msg_destroy (&m);
}

static void
test_not_a_map_and_trailing (void **state)
{
    (void)state;
    /* [1, 2], "HELLO", 5, nil */
    expect_rc ((const uint8_t *)"\x92\x01\x02", 3, JM_PROTO_EMALFORMED, "not a msgpack map");
    expect_rc ((const uint8_t *)"\xa5HELLO", 6, JM_PROTO_EMALFORMED, NULL);
    expect_rc ((const uint8_t *)"\x05", 1, JM_PROTO_EMALFORMED, NULL);
    expect_rc ((const uint8_t *)"\xc0", 1, JM_PROTO_EMALFORMED, NULL);

    jm_msg_t *m = fill_msg (JM_MSG_WELCOME, 0);
    size_t n;
    uint8_t *buf = encode (m, &n);
    uint8_t *two = malloc (2 * n);
    memcpy (two, buf, n);
    memcpy (two + n, buf, n);
    expect_rc (two, n + 1, JM_PROTO_EMALFORMED, "1 trailing bytes");
    expect_rc (two, 2 * n, JM_PROTO_EMALFORMED, "trailing");
    two[n] = 0;
    expect_rc (two, n + 1, JM_PROTO_EMALFORMED, "trailing");
    free (two);
    free (buf);
    jm_msg_destroy (&m);
}

static void
test_allocation_guard (void **state)
{
    (void)state;
    /* Headers that declare billions of entries in a few bytes are refused
       before anything is allocated for them. */
    expect_rc ((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, JM_PROTO_EMALFORMED, NULL);
    expect_rc ((const uint8_t *)"\xdf\xff\xff\xff\xff", 5, JM_PROTO_EMALFORMED, NULL);
    expect_rc ((const uint8_t *)"\xdb\xff\xff\xff\xff", 5, JM_PROTO_EMALFORMED, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    pack_key (&pk, "v", 1);
    msgpack_pack_uint64 (&pk, 1);
    pack_key (&pk, "t", 1);
    pack_key (&pk, "TASK_STARTED", 12);
    pack_key (&pk, "ids", 3);
    msgpack_pack_array (&pk, 0xffffffffu);
    msgpack_pack_uint64 (&pk, 1);
    expect_rc ((uint8_t *)sb.data, sb.size, JM_PROTO_EMALFORMED, NULL);
    msgpack_sbuffer_destroy (&sb);

    /* deep nesting */
    uint8_t deep[200];
    memset (deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = 0x01;
    expect_rc (deep, sizeof deep, JM_PROTO_EMALFORMED, NULL);
    memset (deep, 0x81, sizeof deep);
    expect_rc (deep, sizeof deep, JM_PROTO_EMALFORMED, NULL);
}

/* ---------------------------------------------------------------------- */
/* Real sockets */

static void
send_raw (zsock_t *s, const void *data, size_t size)
{
    zframe_t *f = zframe_new (data, size);
    assert_int_equal (zframe_send (&f, s, 0), 0);
}

static void
test_zmq_sockets (void **state)
{
    (void)state;
    zsock_t *router = zsock_new_router ("@tcp://127.0.0.1:*");
    assert_non_null (router);
    const char *ep = zsock_endpoint (router);
    assert_non_null (ep);
    char conn[128];
    snprintf (conn, sizeof conn, ">%s", ep);
    zsock_t *dealer = zsock_new_dealer (conn);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (router, 5000);
    zsock_set_rcvtimeo (dealer, 5000);

    /* HELLO up, WELCOME down */
    jm_msg_t *m = fill_msg (JM_MSG_HELLO, 0);
    jm_msg_t *copy = fill_msg (JM_MSG_HELLO, 0);
    assert_int_equal (jm_msg_send (&m, dealer, NULL), 0);
    assert_null (m);
    zframe_t *rid = NULL;
    int code = 99;
    char err[512];
    uint64_t pv = 0;
    jm_msg_t *got = jm_msg_recv (router, &rid, &code, &pv, err, sizeof err);
    assert_non_null (got);
    assert_int_equal (code, 0);
    assert_int_equal (pv, JM_PROTO_VERSION);
    assert_non_null (rid);
    cmp_msg (copy, got);
    jm_msg_destroy (&got);
    jm_msg_destroy (&copy);

    m = jm_msg_new (JM_MSG_WELCOME);
    m->heartbeat_ms = 1500;
    assert_int_equal (jm_msg_send (&m, router, rid), 0);
    got = jm_msg_recv (dealer, NULL, &code, NULL, err, sizeof err);
    assert_non_null (got);
    assert_int_equal (got->id, JM_MSG_WELCOME);
    assert_int_equal (got->heartbeat_ms, 1500);
    jm_msg_destroy (&got);
    zframe_destroy (&rid);

    /* garbage: an error naming the problem, routing id for the answer */
    send_raw (dealer, "garbage", 7);
    got = jm_msg_recv (router, &rid, &code, NULL, err, sizeof err);
    assert_null (got);
    assert_int_equal (code, JM_PROTO_EMALFORMED);
    assert_non_null (rid);
    assert_true (strlen (err) > 0);
    m = jm_msg_new (JM_MSG_ERROR);
    m->code = 2;
    jm_str_set (&m->reason, err);
    assert_int_equal (jm_msg_send (&m, router, rid), 0);
    zframe_destroy (&rid);
    got = jm_msg_recv (dealer, NULL, &code, NULL, err, sizeof err);
    assert_non_null (got);
    assert_int_equal (got->id, JM_MSG_ERROR);
    assert_int_equal (got->code, 2);
    jm_msg_destroy (&got);

    /* two body frames */
    zstr_sendm (dealer, "a");
    zstr_send (dealer, "b");
    got = jm_msg_recv (router, &rid, &code, NULL, err, sizeof err);
    assert_null (got);
    assert_int_equal (code, JM_PROTO_EMALFORMED);
    assert_non_null (strstr (err, "2 body frames"));
    zframe_destroy (&rid);

    /* another version: peer version reported */
    m = fill_msg (JM_MSG_HELLO, 0);
    msgpack_object two = o_uint (JM_PROTO_VERSION + 1);
    size_t n;
    uint8_t *buf = mutate (m, "v", MUT_REPLACE, &two, &n);
    jm_msg_destroy (&m);
    send_raw (dealer, buf, n);
    free (buf);
    got = jm_msg_recv (router, &rid, &code, &pv, err, sizeof err);
    assert_null (got);
    assert_int_equal (code, JM_PROTO_EVERSION);
    assert_int_equal (pv, JM_PROTO_VERSION + 1);
    zframe_destroy (&rid);

    /* the socket keeps working */
    m = jm_msg_new (JM_MSG_CREDIT);
    m->credit = 4;
    assert_int_equal (jm_msg_send (&m, dealer, NULL), 0);
    got = jm_msg_recv (router, &rid, &code, NULL, err, sizeof err);
    assert_non_null (got);
    assert_int_equal (code, 0);
    assert_int_equal (got->id, JM_MSG_CREDIT);
    assert_int_equal (got->credit, 4);
    jm_msg_destroy (&got);

    /* a full-size CHUNK goes through */
    m = fill_msg (JM_MSG_CHUNK, 1);
    copy = fill_msg (JM_MSG_CHUNK, 1);
    assert_int_equal (jm_msg_send (&m, router, rid), 0);
    got = jm_msg_recv (dealer, NULL, &code, NULL, err, sizeof err);
    assert_non_null (got);
    cmp_msg (copy, got);
    jm_msg_destroy (&got);
    jm_msg_destroy (&copy);
    zframe_destroy (&rid);

    /* a message over its limits is not sent; the message is destroyed */
    m = jm_msg_new (JM_MSG_ERROR);
    m->reason = repeat ('r', 9000);
    assert_int_equal (jm_msg_send (&m, dealer, NULL), -1);
    assert_null (m);

    zsock_destroy (&dealer);
    zsock_destroy (&router);
}

/* PROTOCOL.md renders the table: every message and field has a row. */
static void
test_protocol_doc (void **state)
{
    (void)state;
    const char *src = getenv ("JM_SOURCE_DIR");
    if (!src) {
        skip ();
        return;
    }
    char path[4096];
    snprintf (path, sizeof path, "%s/proto/PROTOCOL.md", src);
    FILE *fp = fopen (path, "rb");
    if (!fp)
        fail_msg ("cannot open %s", path);
    fseek (fp, 0, SEEK_END);
    long len = ftell (fp);
    fseek (fp, 0, SEEK_SET);
    char *doc = calloc (1, (size_t)len + 1);
    assert_int_equal (fread (doc, 1, (size_t)len, fp), (size_t)len);
    fclose (fp);
    const char *marker = strstr (doc, "<!-- rendered from proto/jm_msgs.h -->");
    assert_non_null (marker);
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        char row[128];
        snprintf (row, sizeof row, "| %s |", jm_msg_name (id));
        if (!strstr (marker, row))
            fail_msg ("PROTOCOL.md has no row '%s' in its message table", row);
    }
    for (int f = 0; f < JM_FLD_COUNT; f++) {
        char row[128];
        snprintf (row, sizeof row, "| %s | %s |", s_fname[f], s_ftype[f]);
        if (!strstr (marker, row))
            fail_msg ("PROTOCOL.md has no row '%s' in its field table", row);
    }
    free (doc);
}

/* ---------------------------------------------------------------------- */

static int
write_corpus (const char *dir)
{
    for (int id = 0; id < JM_MSG_COUNT; id++) {
        jm_msg_t *m = fill_msg (id, 0);
        uint8_t *buf = NULL;
        size_t n = 0;
        char err[256];
        if (jm_msg_encode (m, &buf, &n, err, sizeof err)) {
            fprintf (stderr, "%s\n", err);
            return 1;
        }
        char path[4096];
        snprintf (path, sizeof path, "%s/%s.msgpack", dir, jm_msg_name (id));
        FILE *fp = fopen (path, "wb");
        if (!fp || fwrite (buf, 1, n, fp) != n || fclose (fp)) {
            perror (path);
            return 1;
        }
        free (buf);
        jm_msg_destroy (&m);
    }
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc == 3 && strcmp (argv[1], "--write-corpus") == 0)
        return write_corpus (argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_table),
        cmocka_unit_test (test_roundtrip_every_type),
        cmocka_unit_test (test_roundtrip_empty),
        cmocka_unit_test (test_roundtrip_extremes),
        cmocka_unit_test (test_random_bytes),
        cmocka_unit_test (test_truncated),
        cmocka_unit_test (test_version),
        cmocka_unit_test (test_type),
        cmocka_unit_test (test_missing_each_field),
        cmocka_unit_test (test_mistyped_each_field),
        cmocka_unit_test (test_limits_each_field),
        cmocka_unit_test (test_limits_in_records),
        cmocka_unit_test (test_unknown_key),
        cmocka_unit_test (test_duplicate_key),
        cmocka_unit_test (test_bad_hash),
        cmocka_unit_test (test_bad_values),
        cmocka_unit_test (test_not_a_map_and_trailing),
        cmocka_unit_test (test_allocation_guard),
        cmocka_unit_test (test_zmq_sockets),
        cmocka_unit_test (test_protocol_doc),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
