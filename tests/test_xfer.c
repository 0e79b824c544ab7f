/*  test_xfer.c - chunked transfer between two stores: content, window,
    dedup, verification failures, NOFILE, lost peers (late answers, new
    sessions), answers to nothing asked, cancelled wants.

    The "network" is a FIFO of FETCHes: every message goes through the
    real codec (encode + strict decode) on its way, the sender answers
    with jm_xfer_serve, and the replies are fed back in order. */
#define _GNU_SOURCE
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "jm_testutil.h"
#include "jm_xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define WINDOW 3

typedef struct {
    char peer[32];
    jm_msg_t *msg;
} wire_t;

typedef struct {
    char hash[JM_HASH_HEX];
    int ok;
    char reason[1024];
    void *cookie;
    bool losing; /* jm_xfer_peer_losing during the callback */
} done_t;

typedef struct {
    jm_store_t *sender;
    jm_store_t *receiver;
    jm_xfer_t *xfer;
    zlistx_t *wire; /* wire_t *: FETCHes not yet served */
    size_t outstanding, max_outstanding, fetches;
    uint64_t fetched_bytes;
    done_t done[64];
    size_t ndone;
    /* optional tampering with a reply before it is fed back */
    void (*tamper) (jm_msg_t *reply, size_t nth);
    size_t replies;
    /* optional: want a failed object once more from its done callback */
    int retries;
    uint64_t retry_size;
    /* optional: forget this cookie from the first done callback */
    void *forget_in_done;
} ctx_t;

/* encode + decode: what the other side would see */
static jm_msg_t *
s_roundtrip (jm_msg_t *msg)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    char err[512];
    assert_int_equal (jm_msg_encode (msg, &buf, &size, err, sizeof err), 0);
    jm_msg_t *back = NULL;
    int rc = jm_msg_decode (buf, size, &back, NULL, err, sizeof err);
    if (rc != 0)
        print_error ("decode: %s\n", err);
    assert_int_equal (rc, 0);
    free (buf);
    return back;
}

static int
s_send (void *arg, const char *peer, jm_msg_t **msg_p)
{
    ctx_t *c = arg;
    jm_msg_t *msg = *msg_p;
    *msg_p = NULL;
    assert_int_equal (msg->id, JM_MSG_FETCH);
    assert_true (msg->size > 0 && msg->size <= MIB);
    c->outstanding++;
    if (c->outstanding > c->max_outstanding)
        c->max_outstanding = c->outstanding;
    c->fetches++;
    c->fetched_bytes += msg->size;
    wire_t *w = calloc (1, sizeof *w);
    snprintf (w->peer, sizeof w->peer, "%s", peer);
    w->msg = s_roundtrip (msg);
    jm_msg_destroy (&msg);
    zlistx_add_end (c->wire, w);
    return 0;
}

static void
s_done (void *arg, const char *peer, const char *hash, int ok, const char *reason, void *cookie)
{
    ctx_t *c = arg;
    assert_true (c->ndone < 64);
    done_t *d = &c->done[c->ndone++];
    snprintf (d->hash, sizeof d->hash, "%s", hash);
    d->ok = ok;
    snprintf (d->reason, sizeof d->reason, "%s", reason ? reason : "");
    d->cookie = cookie;
    d->losing = jm_xfer_peer_losing (c->xfer, peer);
    if (ok == 0)
        assert_null (reason);
    else
        assert_non_null (reason);
    if (c->forget_in_done) {
        jm_xfer_forget (c->xfer, c->forget_in_done);
        c->forget_in_done = NULL;
    }
    if (ok != 0 && c->retries > 0) {
        c->retries--;
        assert_int_equal (jm_xfer_want (c->xfer, peer, hash, c->retry_size, 1, cookie), 1);
    }
}

/* Serve every FETCH on the wire (and those they cause) until none is left. */
static void
s_run (ctx_t *c)
{
    wire_t *w;
    while ((w = zlistx_first (c->wire))) {
        zlistx_delete (c->wire, zlistx_cursor (c->wire));
        size_t bytes = 0;
        jm_msg_t *reply = jm_xfer_serve (c->sender, w->msg, &bytes);
        assert_non_null (reply);
        if (c->tamper)
            c->tamper (reply, c->replies);
        c->replies++;
        jm_msg_t *seen = s_roundtrip (reply);
        jm_msg_destroy (&reply);
        c->outstanding--;
        assert_int_equal (jm_xfer_on_message (c->xfer, w->peer, seen), 0);
        jm_msg_destroy (&seen);
        jm_msg_destroy (&w->msg);
        free (w);
    }
}

static ctx_t *
s_ctx (const char *name)
{
    ctx_t *c = calloc (1, sizeof *c);
    char path[600], err[512];
    snprintf (path, sizeof path, "%s/%s/sender", jm_test_dir, name);
    c->sender = jm_store_new (path, err, sizeof err);
    snprintf (path, sizeof path, "%s/%s/receiver", jm_test_dir, name);
    c->receiver = jm_store_new (path, err, sizeof err);
    assert_non_null (c->sender);
    assert_non_null (c->receiver);
    c->xfer = jm_xfer_new (c->receiver, MIB, WINDOW, s_send, s_done, c);
    c->wire = zlistx_new ();
    return c;
}

static size_t
s_tmp_entries (jm_store_t *store)
{
    return jm_test_count_entries (jm_test_path (jm_store_dir (store), "tmp"));
}

static void
s_ctx_destroy (ctx_t **c_p)
{
    ctx_t *c = *c_p;
    wire_t *w;
    while ((w = zlistx_first (c->wire))) {
        zlistx_delete (c->wire, zlistx_cursor (c->wire));
        jm_msg_destroy (&w->msg);
        free (w);
    }
    zlistx_destroy (&c->wire);
    jm_xfer_destroy (&c->xfer);
    assert_int_equal (s_tmp_entries (c->receiver), 0);
    jm_store_destroy (&c->sender);
    jm_store_destroy (&c->receiver);
    free (c);
    *c_p = NULL;
}

/* Put size pseudo-random bytes (seeded) into the sender store. */
static unsigned char *
s_put (ctx_t *c, size_t size, uint32_t seed, char hash[JM_HASH_HEX])
{
    unsigned char *data = malloc (size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        seed = seed * 1103515245 + 12345;
        data[i] = (unsigned char)(seed >> 16);
    }
    char path[600], err[512];
    snprintf (path, sizeof path, "%s/src-%u", jm_test_dir, seed);
    jm_test_write_bytes (path, data, size);
    uint64_t got = 0;
    assert_int_equal (jm_store_import (c->sender, path, hash, &got, err, sizeof err), 0);
    assert_int_equal (got, size);
    unlink (path);
    return data;
}

static void
s_assert_received (ctx_t *c, const char *hash, const unsigned char *data, size_t size)
{
    assert_true (jm_store_has (c->receiver, hash));
    assert_int_equal (jm_store_size (c->receiver, hash), (int64_t)size);
    unsigned char *buf = malloc (size + 1);
    char err[512];
    assert_int_equal (jm_store_read (c->receiver, hash, 0, buf, size + 1, err, sizeof err),
                      (ssize_t)size);
    assert_memory_equal (buf, data, size);
    free (buf);
}

static void
test_sizes (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("sizes");
    const size_t sizes[] = {0, 1, MIB - 1, MIB, MIB + 1, 5 * MIB};
    const size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *data[6];
    char hash[6][JM_HASH_HEX];
    size_t expect_fetches = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        data[i] = s_put (c, sizes[i], (uint32_t)i + 1, hash[i]);
        expect_fetches += (sizes[i] + MIB - 1) / MIB;
        total += sizes[i];
    }
    assert_string_equal (hash[0], JM_HASH_EMPTY);
    /* the big one first, so the small ones share the window with it */
    int rc = jm_xfer_want (c->xfer, "agent-1", hash[5], sizes[5], 42, (void *)5);
    assert_int_equal (rc, 1);
    for (size_t i = 0; i < 5; i++) {
        rc = jm_xfer_want (c->xfer, "agent-1", hash[i], sizes[i], 42, (void *)i);
        assert_int_equal (rc, i == 0 ? 0 : 1); /* the empty file is done at once */
    }
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->outstanding, WINDOW);
    assert_int_equal (jm_xfer_pending (c->xfer), 5);
    s_run (c);

    assert_int_equal (c->ndone, n);
    for (size_t i = 0; i < c->ndone; i++) {
        assert_int_equal (c->done[i].ok, 0);
        size_t k = (size_t)c->done[i].cookie;
        assert_string_equal (c->done[i].hash, hash[k]);
    }
    for (size_t i = 0; i < n; i++) {
        s_assert_received (c, hash[i], data[i], sizes[i]);
        free (data[i]);
    }
    assert_int_equal (c->fetches, expect_fetches);
    assert_int_equal (c->fetched_bytes, total);
    assert_int_equal (c->max_outstanding, WINDOW);
    assert_int_equal (c->outstanding, 0);
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    assert_int_equal (jm_xfer_bytes_received (c->xfer), total);
    s_ctx_destroy (&c);
}

static void
test_dedup_and_present (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("dedup");
    char hash[JM_HASH_HEX];
    unsigned char *data = s_put (c, 2 * MIB + 3, 77, hash);
    int a, b;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 2 * MIB + 3, 1, &a), 1);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-2", hash, 2 * MIB + 3, 2, &b), 1);
    assert_int_equal (jm_xfer_pending (c->xfer), 1);
    s_run (c);
    assert_int_equal (c->fetches, 3); /* fetched once */
    assert_int_equal (c->ndone, 2);
    assert_int_equal (c->done[0].ok, 0);
    assert_int_equal (c->done[1].ok, 0);
    assert_true ((c->done[0].cookie == &a && c->done[1].cookie == &b) ||
                 (c->done[0].cookie == &b && c->done[1].cookie == &a));
    s_assert_received (c, hash, data, 2 * MIB + 3);

    /* now present in the receiver's store: zero FETCHes, done at once */
    c->fetches = 0;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-3", hash, 2 * MIB + 3, 3, &a), 0);
    assert_int_equal (c->ndone, 3);
    assert_int_equal (c->done[2].ok, 0);
    assert_ptr_equal (c->done[2].cookie, &a);
    assert_int_equal (c->fetches, 0);
    assert_int_equal (zlistx_size (c->wire), 0);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-3", "not-a-hash", 5, 3, &a), -1);
    free (data);
    s_ctx_destroy (&c);
}

static void
s_flip_first (jm_msg_t *reply, size_t nth)
{
    if (nth == 0 && reply->data_size > 0)
        reply->data[reply->data_size / 2] ^= 0x20;
}

/* the third reply is the big file's last chunk (100 bytes): make it
   longer than asked for and than the declared size */
static void
s_grow_last (jm_msg_t *reply, size_t nth)
{
    if (nth == 2) {
        uint8_t *more = calloc (1, reply->data_size + 10);
        memcpy (more, reply->data, reply->data_size);
        jm_msg_set_data (reply, more, reply->data_size + 10);
        free (more);
    }
}

static void
s_shift_first (jm_msg_t *reply, size_t nth)
{
    if (nth == 0)
        reply->offset += 1;
}

static void
s_shift_second (jm_msg_t *reply, size_t nth)
{
    if (nth == 1)
        reply->offset += 1;
}

static void
test_corruption (void **state)
{
    (void)state;
    void (*tampers[]) (jm_msg_t *, size_t) = {s_flip_first, s_grow_last, s_shift_second};
    for (size_t t = 0; t < 3; t++) {
        char name[32];
        snprintf (name, sizeof name, "corrupt%zu", t);
        ctx_t *c = s_ctx (name);
        char hash[JM_HASH_HEX], small[JM_HASH_HEX];
        unsigned char *data = s_put (c, 2 * MIB + 100, 5, hash);
        unsigned char *sdata = s_put (c, 1000, 6, small);
        c->tamper = tampers[t];
        int cookie;
        assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 2 * MIB + 100, 1, &cookie), 1);
        assert_int_equal (jm_xfer_want (c->xfer, "agent-1", small, 1000, 1, &cookie), 1);
        s_run (c);
        assert_int_equal (c->ndone, 2);
        /* the damaged file fails, naming the file and the peer ... */
        done_t *bad = strcmp (c->done[0].hash, hash) == 0 ? &c->done[0] : &c->done[1];
        done_t *good = bad == &c->done[0] ? &c->done[1] : &c->done[0];
        assert_int_equal (bad->ok, -1);
        assert_non_null (strstr (bad->reason, "failed verification"));
        assert_non_null (strstr (bad->reason, hash));
        assert_non_null (strstr (bad->reason, "agent-1"));
        assert_false (jm_store_has (c->receiver, hash));
        /* ... the other one in the same window arrives intact */
        assert_int_equal (good->ok, 0);
        s_assert_received (c, small, sdata, 1000);
        assert_int_equal (c->outstanding, 0);
        assert_int_equal (jm_xfer_pending (c->xfer), 0);
        /* no credit was lost: the whole window is available again */
        char more[JM_HASH_HEX];
        unsigned char *mdata = s_put (c, 3 * MIB, 12, more);
        c->tamper = NULL;
        assert_int_equal (jm_xfer_want (c->xfer, "agent-1", more, 3 * MIB, 1, &cookie), 1);
        assert_int_equal (c->outstanding, WINDOW);
        s_run (c);
        s_assert_received (c, more, mdata, 3 * MIB);
        free (mdata);
        free (data);
        free (sdata);
        s_ctx_destroy (&c);
    }
}

/* A retry issued while chunks of the failed attempt are still on the way
   must not be confused by them. */
static void
test_retry_after_failure (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("retry");
    char hash[JM_HASH_HEX];
    unsigned char *data = s_put (c, 3 * MIB, 11, hash);
    c->tamper = s_shift_first; /* fails the first attempt at its first chunk */
    c->retries = 1;
    c->retry_size = 3 * MIB;
    int cookie;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 3 * MIB, 1, &cookie), 1);
    s_run (c);
    assert_int_equal (c->ndone, 2);
    assert_int_equal (c->done[0].ok, -1);
    assert_int_equal (c->done[1].ok, 0);
    assert_ptr_equal (c->done[1].cookie, &cookie);
    s_assert_received (c, hash, data, 3 * MIB);
    assert_int_equal (c->fetches, 6);
    assert_true (c->max_outstanding <= WINDOW);
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    free (data);
    s_ctx_destroy (&c);
}

static void
test_wrong_size (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("wrongsize");
    char hash[JM_HASH_HEX];
    unsigned char *data = s_put (c, 1000, 9, hash);
    /* declared larger than the real file: the sender's chunk comes up short */
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 3 * MIB, 1, NULL), 1);
    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->done[0].ok, -1);
    assert_non_null (strstr (c->done[0].reason, hash));
    assert_false (jm_store_has (c->receiver, hash));
    /* declared smaller: the hash does not match */
    c->ndone = 0;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 999, 1, NULL), 1);
    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->done[0].ok, -1);
    assert_non_null (strstr (c->done[0].reason, "failed verification"));
    assert_false (jm_store_has (c->receiver, hash));
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    free (data);
    s_ctx_destroy (&c);
}

static void
test_nofile (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("nofile");
    char missing[JM_HASH_HEX];
    jm_sha256_buf ("never stored", 12, missing);
    int cookie;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", missing, 4 * MIB, 1, &cookie), 1);
    assert_int_equal (c->outstanding, WINDOW);
    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->done[0].ok, -1);
    assert_ptr_equal (c->done[0].cookie, &cookie);
    assert_non_null (strstr (c->done[0].reason, "no such file"));
    assert_non_null (strstr (c->done[0].reason, missing));
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    assert_int_equal (c->outstanding, 0);

    /* serving: the chunk size is capped, EOF gives an empty chunk */
    char hash[JM_HASH_HEX];
    unsigned char *data = s_put (c, 3 * MIB, 3, hash);
    jm_msg_t *fetch = jm_msg_new (JM_MSG_FETCH);
    memcpy (fetch->hash, hash, JM_HASH_HEX);
    fetch->offset = 10;
    fetch->size = 100 * MIB;
    size_t bytes = 0;
    jm_msg_t *reply = jm_xfer_serve (c->sender, fetch, &bytes);
    assert_int_equal (reply->id, JM_MSG_CHUNK);
    assert_int_equal (bytes, MIB);
    assert_int_equal (reply->data_size, MIB);
    assert_int_equal (reply->offset, 10);
    assert_memory_equal (reply->data, data + 10, MIB);
    jm_msg_destroy (&reply);
    fetch->offset = 3 * MIB;
    reply = jm_xfer_serve (c->sender, fetch, &bytes);
    assert_int_equal (reply->id, JM_MSG_CHUNK);
    assert_int_equal (reply->data_size, 0);
    assert_int_equal (bytes, 0);
    jm_msg_destroy (&reply);
    jm_msg_destroy (&fetch);
    free (data);
    s_ctx_destroy (&c);
}

static void
test_peer_lost (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("lost");
    char h1[JM_HASH_HEX], h2[JM_HASH_HEX], h3[JM_HASH_HEX], h4[JM_HASH_HEX];
    unsigned char *d1 = s_put (c, 2 * MIB, 1, h1);
    unsigned char *d2 = s_put (c, 10, 2, h2);
    unsigned char *d3 = s_put (c, 20, 3, h3);
    unsigned char *d4 = s_put (c, 30, 4, h4);
    int k1, k2, k3, k4;
    jm_xfer_want (c->xfer, "agent-1", h1, 2 * MIB, 1, &k1);
    jm_xfer_want (c->xfer, "agent-1", h2, 10, 1, &k2);
    jm_xfer_want (c->xfer, "agent-1", h3, 20, 1, &k3); /* queued: window full */
    jm_xfer_want (c->xfer, "agent-2", h4, 30, 1, &k4);
    assert_int_equal (c->outstanding, WINDOW + 1);
    jm_xfer_peer_lost (c->xfer, "agent-1", "agent 'agent-1' disconnected");
    assert_int_equal (c->ndone, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal (c->done[i].ok, -1);
        assert_non_null (strstr (c->done[i].reason, "agent-1"));
        assert_true (c->done[i].cookie != &k4);
    }
    assert_int_equal (jm_xfer_pending (c->xfer), 1);
    /* late replies from the lost peer are ignored; agent-2 carries on */
    s_run (c);
    assert_int_equal (c->ndone, 4);
    assert_int_equal (c->done[3].ok, 0);
    assert_ptr_equal (c->done[3].cookie, &k4);
    assert_false (jm_store_has (c->receiver, h1));
    assert_false (jm_store_has (c->receiver, h3));
    s_assert_received (c, h4, d4, 30);
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    free (d1), free (d2), free (d3), free (d4);
    s_ctx_destroy (&c);
}

/* Pop the FETCHes on the wire (not answered yet), oldest first. */
static size_t
s_take_wire (ctx_t *c, jm_msg_t **fetches, size_t max)
{
    size_t n = 0;
    wire_t *w;
    while (n < max && (w = zlistx_first (c->wire))) {
        zlistx_delete (c->wire, zlistx_cursor (c->wire));
        fetches[n++] = w->msg;
        free (w);
        c->outstanding--;
    }
    return n;
}

/* Feed msg (through the codec) to the receiver as from peer. */
static void
s_feed (ctx_t *c, const char *peer, jm_msg_t *msg)
{
    jm_msg_t *seen = s_roundtrip (msg);
    jm_msg_destroy (&msg);
    assert_int_equal (jm_xfer_on_message (c->xfer, peer, seen), 0);
    jm_msg_destroy (&seen);
}

static jm_msg_t *
s_nofile (const char *hash)
{
    jm_msg_t *m = jm_msg_new (JM_MSG_NOFILE);
    memcpy (m->hash, hash, JM_HASH_HEX);
    jm_str_set (&m->reason, "not in the store any more");
    return m;
}

/*  The peer is lost while FETCHes are out; the same files are wanted again
    from it at once (it was only slow); then the answers to the old FETCHes
    arrive, out of order and one of them a NOFILE: all are dropped, the
    files wanted again arrive intact and no credit is lost. */
static void
test_late_answers_after_peer_lost (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("late");
    char big[JM_HASH_HEX], small[JM_HASH_HEX];
    unsigned char *bdata = s_put (c, 2 * MIB + 5, 21, big);
    unsigned char *sdata = s_put (c, 100, 22, small);
    int kb, ks;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", big, 2 * MIB + 5, 1, &kb), 1);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", small, 100, 1, &ks), 1);
    jm_msg_t *old[WINDOW];
    assert_int_equal (s_take_wire (c, old, WINDOW), WINDOW); /* big@0, big@1M, big@2M */
    assert_string_equal (old[0]->hash, big);

    jm_xfer_peer_lost (c->xfer, "agent-1", "agent-1 fell silent");
    assert_int_equal (c->ndone, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal (c->done[i].ok, -1);
        assert_true (c->done[i].losing); /* failed only by the loss */
        assert_non_null (strstr (c->done[i].reason, "agent-1 fell silent"));
    }
    assert_false (jm_xfer_peer_losing (c->xfer, "agent-1"));
    assert_int_equal (jm_xfer_pending (c->xfer), 0);

    /* wanted again: the same FETCHes (hash, offset) go out again */
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", big, 2 * MIB + 5, 1, &kb), 1);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", small, 100, 1, &ks), 1);
    assert_int_equal (c->outstanding, WINDOW);

    /* the late answers come first: the last one first, the first one a
       NOFILE (the peer lacked it then); then one for small, never asked
       before the loss */
    for (size_t i = WINDOW; i-- > 1;)
        s_feed (c, "agent-1", jm_xfer_serve (c->sender, old[i], NULL));
    s_feed (c, "agent-1", s_nofile (big));
    assert_int_equal (c->ndone, 2);
    assert_int_equal (jm_xfer_pending (c->xfer), 2);
    for (size_t i = 0; i < WINDOW; i++)
        jm_msg_destroy (&old[i]);

    s_run (c);
    assert_int_equal (c->ndone, 4);
    assert_int_equal (c->done[2].ok, 0);
    assert_int_equal (c->done[3].ok, 0);
    assert_false (c->done[2].losing);
    s_assert_received (c, big, bdata, 2 * MIB + 5);
    s_assert_received (c, small, sdata, 100);
    assert_int_equal (c->outstanding, 0);
    assert_int_equal (jm_xfer_pending (c->xfer), 0);

    /* the whole window is there for the next file */
    char more[JM_HASH_HEX];
    unsigned char *mdata = s_put (c, 3 * MIB, 23, more);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", more, 3 * MIB, 1, &kb), 1);
    assert_int_equal (c->outstanding, WINDOW);
    s_run (c);
    assert_int_equal (c->ndone, 5);
    assert_int_equal (c->done[4].ok, 0);
    s_assert_received (c, more, mdata, 3 * MIB);
    free (bdata), free (sdata), free (mdata);
    s_ctx_destroy (&c);
}

/*  After jm_xfer_peer_reset (a new session: no old answer can come) the
    record of old FETCHes is gone: the new session's NOFILE for a file
    asked again fails it, instead of being taken for a late answer. */
static void
test_peer_reset (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("reset");
    char missing[JM_HASH_HEX];
    jm_sha256_buf ("gone for good", 13, missing);
    int k;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", missing, 10, 1, &k), 1);
    jm_msg_t *old[1];
    assert_int_equal (s_take_wire (c, old, 1), 1);
    jm_msg_destroy (&old[0]);
    jm_xfer_peer_lost (c->xfer, "agent-1", "agent-1 reconnected");
    jm_xfer_peer_reset (c->xfer, "agent-1");
    jm_xfer_peer_reset (c->xfer, "agent-9"); /* unknown: nothing happens */
    assert_int_equal (c->ndone, 1);
    assert_true (c->done[0].losing);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", missing, 10, 1, &k), 1);
    s_run (c);
    assert_int_equal (c->ndone, 2);
    assert_int_equal (c->done[1].ok, -1);
    assert_false (c->done[1].losing);
    assert_non_null (strstr (c->done[1].reason, "no such file"));
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    s_ctx_destroy (&c);
}

/*  Answers to nothing asked -- a CHUNK at an offset never asked (with
    garbage), a CHUNK or NOFILE for a file not wanted, one from a peer never
    asked, a repeated CHUNK after the file is complete -- are ignored: the
    file is not failed and no credit leaks. */
static void
test_unasked_answers_ignored (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("unasked");
    char hash[JM_HASH_HEX], other[JM_HASH_HEX];
    unsigned char *data = s_put (c, 3 * MIB, 31, hash);
    unsigned char *odata = s_put (c, 50, 32, other);
    int k;
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", hash, 3 * MIB, 1, &k), 1);
    assert_int_equal (c->outstanding, WINDOW);

    jm_msg_t *m = jm_msg_new (JM_MSG_CHUNK);
    memcpy (m->hash, hash, JM_HASH_HEX);
    m->offset = 5;
    jm_msg_set_data (m, (const uint8_t *)"garbage", 7);
    s_feed (c, "agent-1", m);
    m = jm_msg_new (JM_MSG_CHUNK);
    memcpy (m->hash, hash, JM_HASH_HEX);
    m->offset = 3 * MIB; /* past the end */
    jm_msg_set_data (m, (const uint8_t *)"x", 1);
    s_feed (c, "agent-1", m);
    m = jm_msg_new (JM_MSG_CHUNK);
    memcpy (m->hash, other, JM_HASH_HEX);
    jm_msg_set_data (m, odata, 50);
    s_feed (c, "agent-1", m);
    s_feed (c, "agent-1", s_nofile (other));
    s_feed (c, "agent-7", s_nofile (hash));
    assert_int_equal (c->ndone, 0);
    assert_int_equal (jm_xfer_pending (c->xfer), 1);
    assert_false (jm_store_has (c->receiver, other));

    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->done[0].ok, 0);
    s_assert_received (c, hash, data, 3 * MIB);
    assert_int_equal (c->fetches, 3);

    /* a repeated answer once the file is complete changes nothing */
    m = jm_msg_new (JM_MSG_CHUNK);
    memcpy (m->hash, hash, JM_HASH_HEX);
    jm_msg_set_data (m, data, MIB);
    s_feed (c, "agent-1", m);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (jm_xfer_bytes_received (c->xfer), 3 * MIB);

    /* the whole window is still there */
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", other, 50, 1, &k), 1);
    char more[JM_HASH_HEX];
    unsigned char *mdata = s_put (c, 2 * MIB, 33, more);
    assert_int_equal (jm_xfer_want (c->xfer, "agent-1", more, 2 * MIB, 1, &k), 1);
    assert_int_equal (c->outstanding, WINDOW);
    s_run (c);
    assert_int_equal (c->ndone, 3);
    assert_int_equal (c->done[1].ok, 0);
    assert_int_equal (c->done[2].ok, 0);
    s_assert_received (c, other, odata, 50);
    s_assert_received (c, more, mdata, 2 * MIB);
    assert_int_equal (c->outstanding, 0);
    assert_int_equal (jm_xfer_pending (c->xfer), 0);
    free (data), free (odata), free (mdata);
    s_ctx_destroy (&c);
}

static void
test_forget (void **state)
{
    (void)state;
    ctx_t *c = s_ctx ("forget");
    char h1[JM_HASH_HEX], h2[JM_HASH_HEX];
    unsigned char *d1 = s_put (c, 4 * MIB, 1, h1);
    unsigned char *d2 = s_put (c, 10, 2, h2);
    int task_a, task_b;
    jm_xfer_want (c->xfer, "agent-1", h1, 4 * MIB, 1, &task_a);
    jm_xfer_want (c->xfer, "agent-1", h1, 4 * MIB, 1, &task_b);
    jm_xfer_want (c->xfer, "agent-1", h2, 10, 1, &task_a); /* not started yet */
    assert_int_equal (jm_xfer_pending (c->xfer), 2);
    jm_xfer_forget (c->xfer, &task_a);
    assert_int_equal (jm_xfer_pending (c->xfer), 1);
    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_int_equal (c->done[0].ok, 0);
    assert_ptr_equal (c->done[0].cookie, &task_b);
    assert_int_equal (c->fetches, 4); /* h2 was never asked for */
    s_assert_received (c, h1, d1, 4 * MIB);
    assert_false (jm_store_has (c->receiver, h2));

    /* a done callback that forgets the other waiter (say, its job was
       cancelled because of this failure): the other is not called */
    char missing[JM_HASH_HEX];
    jm_sha256_buf ("absent", 6, missing);
    c->ndone = 0;
    jm_xfer_want (c->xfer, "agent-1", missing, 10, 1, &task_a);
    jm_xfer_want (c->xfer, "agent-1", missing, 10, 1, &task_b);
    c->forget_in_done = &task_b;
    s_run (c);
    assert_int_equal (c->ndone, 1);
    assert_ptr_equal (c->done[0].cookie, &task_a);
    assert_int_equal (c->done[0].ok, -1);
    free (d1), free (d2);
    s_ctx_destroy (&c);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_sizes),
        cmocka_unit_test (test_dedup_and_present),
        cmocka_unit_test (test_corruption),
        cmocka_unit_test (test_wrong_size),
        cmocka_unit_test (test_retry_after_failure),
        cmocka_unit_test (test_nofile),
        cmocka_unit_test (test_peer_lost),
        cmocka_unit_test (test_late_answers_after_peer_lost),
        cmocka_unit_test (test_peer_reset),
        cmocka_unit_test (test_unasked_answers_ignored),
        cmocka_unit_test (test_forget),
    };
    return cmocka_run_group_tests (tests, jm_test_dir_setup, jm_test_dir_teardown);
}
