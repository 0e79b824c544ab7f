/*  jm_xfer.c - chunked, credit-based file transfer (receiver pulls).

    Receiver state: one object per wanted hash (global table, so a hash
    wanted twice is fetched once), kept in the FIFO of the peer it is
    fetched from.  Each peer has a list of outstanding FETCH requests in
    the order sent, never longer than the window; a CHUNK (same hash and
    offset) or NOFILE (same hash, oldest) that matches one frees it.  The
    peer answers in order, so the requests before the matched one will
    never be answered: they are dropped and their objects fail.  Requests
    outlive their object (an object may fail while chunks are still on the
    way): their answers still free credit and are then dropped.

    jm_xfer_peer_lost moves the outstanding requests to the peer's stale
    record (bounded): their answers may still come and are dropped, so they
    are never taken for answers to the same FETCHes asked again.
    jm_xfer_peer_reset forgets the record.  Memory is bounded by the
    window: chunks go straight to disk through jm_store_writer. */
#define _GNU_SOURCE
#include "jm_xfer.h"
#include "jm_log.h"
#include "jm_util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct _peer_t peer_t;

typedef struct _obj_t {
    char hash[JM_HASH_HEX];
    uint64_t size;
    uint64_t job_id;
    uint64_t next_offset; /* next byte to request */
    bool started;         /* at least one FETCH sent */
    uint64_t gen;         /* tells this object from an earlier one of the same hash */
    peer_t *peer;
    void *handle; /* in peer->queue */
    jm_store_writer_t *writer;
    void **cookies;
    size_t ncookies, cookies_cap;
    struct _obj_t *fin_next; /* next object whose waiters are being told */
} obj_t;

typedef struct {
    char hash[JM_HASH_HEX];
    uint64_t offset;
    size_t len;
    uint64_t gen; /* of the object it was sent for */
} req_t;

/* stale requests kept per peer at most (the oldest are forgotten) */
#define S_STALE_MAX 4096

struct _peer_t {
    char *name;
    zlistx_t *queue; /* obj_t *, FIFO; not owned */
    req_t *reqs;     /* outstanding FETCHes, oldest first, at most window */
    size_t nreqs;
    req_t *stale; /* sent before the peer was lost, oldest first */
    size_t nstale, stale_cap;
};

struct _jm_xfer_t {
    jm_store_t *store;
    size_t chunk;
    size_t window;
    jm_xfer_send_fn *send;
    jm_xfer_done_fn *done;
    void *arg;
    zhashx_t *objects; /* hash -> obj_t * (owned, freed by hand) */
    zhashx_t *peers;   /* name -> peer_t * (owned) */
    uint64_t bytes_received;
    uint64_t next_gen;
    obj_t *finishing; /* objects being reported (done callbacks running) */
    char *losing;     /* peer whose wants jm_xfer_peer_lost is failing */
};

static void
s_obj_free (obj_t *o)
{
    if (o->writer)
        jm_store_writer_abort (&o->writer);
    free (o->cookies);
    free (o);
}

static void
s_peer_destructor (void **item)
{
    peer_t *p = (peer_t *)*item;
    if (p) {
        zlistx_destroy (&p->queue);
        free (p->reqs);
        free (p->stale);
        free (p->name);
        free (p);
        *item = NULL;
    }
}

jm_xfer_t *
jm_xfer_new (jm_store_t *store, size_t chunk_size, size_t window, jm_xfer_send_fn *send,
             jm_xfer_done_fn *done, void *arg)
{
    assert (store && send && done);
    jm_xfer_t *self = calloc (1, sizeof *self);
    assert (self);
    self->store = store;
    self->chunk = chunk_size ? chunk_size : JM_XFER_CHUNK;
    if (self->chunk > JM_XFER_CHUNK)
        self->chunk = JM_XFER_CHUNK; /* what a sender will serve at most */
    self->window = window ? window : JM_XFER_WINDOW;
    self->send = send;
    self->done = done;
    self->arg = arg;
    self->objects = zhashx_new ();
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_peer_destructor);
    return self;
}

void
jm_xfer_destroy (jm_xfer_t **self_p)
{
    assert (self_p);
    jm_xfer_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->peers);
        for (obj_t *o = (obj_t *)zhashx_first (self->objects); o;
             o = (obj_t *)zhashx_next (self->objects))
            s_obj_free (o);
        zhashx_destroy (&self->objects);
        free (self->losing);
        free (self);
        *self_p = NULL;
    }
}

static peer_t *
s_peer (jm_xfer_t *self, const char *name, bool create)
{
    peer_t *p = (peer_t *)zhashx_lookup (self->peers, name);
    if (!p && create) {
        p = calloc (1, sizeof *p);
        assert (p);
        p->name = strdup (name);
        p->queue = zlistx_new ();
        p->reqs = calloc (self->window, sizeof *p->reqs);
        assert (p->name && p->queue && p->reqs);
        zhashx_insert (self->peers, name, p);
    }
    return p;
}

/*  Detach object o from every table (it stays allocated) and tell every
    waiter.  The callbacks may re-enter jm_xfer. */
static void
s_finish (jm_xfer_t *self, obj_t *o, int ok, const char *reason)
{
    zhashx_delete (self->objects, o->hash);
    if (o->handle) {
        zlistx_delete (o->peer->queue, o->handle);
        o->handle = NULL;
    }
    char *peer = strdup (o->peer->name);
    assert (peer);
    if (ok != 0)
        jm_warn ("%s", reason);
    /* A callback may forget() a cookie still waiting here: take waiters
       one at a time so a forgotten one is never called. */
    o->fin_next = self->finishing;
    self->finishing = o;
    while (o->ncookies > 0) {
        void *cookie = o->cookies[0];
        memmove (o->cookies, o->cookies + 1, (o->ncookies - 1) * sizeof *o->cookies);
        o->ncookies--;
        self->done (self->arg, peer, o->hash, ok, ok == 0 ? NULL : reason, cookie);
    }
    obj_t **pp = &self->finishing;
    while (*pp != o)
        pp = &(*pp)->fin_next;
    *pp = o->fin_next;
    free (peer);
    s_obj_free (o);
}

static void
s_fail (jm_xfer_t *self, obj_t *o, const char *fmt, const char *detail)
{
    char reason[1024];
    snprintf (reason, sizeof reason, fmt, o->hash, o->peer->name, detail);
    s_finish (self, o, -1, reason);
}

/*  Index of the oldest request in reqs[0..n) matching hash (and offset,
    unless any_offset), or n if there is none. */
static size_t
s_find_req (const req_t *reqs, size_t n, const char *hash, uint64_t offset, bool any_offset)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp (reqs[i].hash, hash) == 0 && (any_offset || reqs[i].offset == offset))
            break;
    return i;
}

/* Remove reqs[i] of *n_p. */
static void
s_drop_req (req_t *reqs, size_t *n_p, size_t i)
{
    assert (i < *n_p);
    memmove (&reqs[i], &reqs[i + 1], (*n_p - i - 1) * sizeof *reqs);
    (*n_p)--;
}

/*  Send FETCHes to peer while the window allows.  Objects whose chunks
    are all requested sit at the front of the queue (at most window of
    them), so each step looks at a handful of entries. */
static void
s_pump (jm_xfer_t *self, const char *peer_name)
{
    for (;;) {
        peer_t *p = s_peer (self, peer_name, false);
        if (!p || p->nreqs >= self->window)
            return;
        obj_t *o = (obj_t *)zlistx_first (p->queue);
        while (o && o->next_offset >= o->size)
            o = (obj_t *)zlistx_next (p->queue);
        if (!o)
            return;
        if (!o->started) {
            char err[512];
            o->writer = jm_store_writer_new (self->store, o->hash, o->size, err, sizeof err);
            if (!o->writer) {
                s_fail (self, o, "file %s from %s: %s", err);
                continue;
            }
            o->started = true;
        }
        uint64_t left = o->size - o->next_offset;
        size_t len = left < self->chunk ? (size_t)left : self->chunk;
        jm_msg_t *msg = jm_msg_new (JM_MSG_FETCH);
        assert (msg);
        msg->job_id = o->job_id;
        memcpy (msg->hash, o->hash, JM_HASH_HEX);
        msg->offset = o->next_offset;
        msg->size = len;
        req_t *r = &p->reqs[p->nreqs++];
        memcpy (r->hash, o->hash, JM_HASH_HEX);
        r->offset = o->next_offset;
        r->len = len;
        r->gen = o->gen;
        o->next_offset += len;
        char hash[JM_HASH_HEX];
        memcpy (hash, o->hash, JM_HASH_HEX);
        uint64_t offset = r->offset;
        if (self->send (self->arg, peer_name, &msg) != 0) {
            if (msg)
                jm_msg_destroy (&msg);
            /* nothing is on the way: give the credit back */
            p = s_peer (self, peer_name, false);
            size_t i = p ? s_find_req (p->reqs, p->nreqs, hash, offset, false) : 0;
            if (p && i < p->nreqs)
                s_drop_req (p->reqs, &p->nreqs, i);
            o = (obj_t *)zhashx_lookup (self->objects, hash);
            if (o)
                s_fail (self, o, "file %s from %s: %s", "cannot send FETCH to the peer");
            return;
        }
    }
}

static void
s_add_cookie (obj_t *o, void *cookie)
{
    if (o->ncookies == o->cookies_cap) {
        o->cookies_cap = o->cookies_cap ? 2 * o->cookies_cap : 2;
        o->cookies = realloc (o->cookies, o->cookies_cap * sizeof *o->cookies);
        assert (o->cookies);
    }
    o->cookies[o->ncookies++] = cookie;
}

int
jm_xfer_want (jm_xfer_t *self, const char *peer, const char *hash, uint64_t size, uint64_t job_id,
              void *cookie)
{
    assert (self && peer);
    if (!jm_hash_valid (hash))
        return -1;
    if (jm_store_has (self->store, hash)) {
        self->done (self->arg, peer, hash, 0, NULL, cookie);
        return 0;
    }
    if (size == 0) {
        char reason[256];
        snprintf (reason, sizeof reason, "file %s from %s: size 0 but not the empty file's hash",
                  hash, peer);
        self->done (self->arg, peer, hash, -1, reason, cookie);
        return 0;
    }
    obj_t *o = (obj_t *)zhashx_lookup (self->objects, hash);
    if (o) {
        s_add_cookie (o, cookie);
        return 1;
    }
    o = calloc (1, sizeof *o);
    assert (o);
    memcpy (o->hash, hash, JM_HASH_HEX);
    o->size = size;
    o->job_id = job_id;
    o->gen = ++self->next_gen;
    s_add_cookie (o, cookie);
    peer_t *p = s_peer (self, peer, true);
    o->peer = p;
    o->handle = zlistx_add_end (p->queue, o);
    zhashx_insert (self->objects, hash, o);
    s_pump (self, peer);
    return 1;
}

static void
s_on_chunk (jm_xfer_t *self, obj_t *o, const req_t *req, const jm_msg_t *msg)
{
    char err[512];
    assert (msg->offset == req->offset);
    if (msg->data_size != req->len) {
        snprintf (err, sizeof err, "chunk at offset %" PRIu64 " has %zu bytes, asked for %zu",
                  msg->offset, msg->data_size, req->len);
        s_fail (self, o, "file %s from %s failed verification: %s", err);
        return;
    }
    if (jm_store_writer_write (o->writer, msg->offset, msg->data, msg->data_size, err,
                               sizeof err) != 0) {
        s_fail (self, o, "file %s from %s failed verification: %s", err);
        return;
    }
    self->bytes_received += msg->data_size;
    if (jm_store_writer_received (o->writer) < o->size)
        return;
    int rc = jm_store_writer_commit (&o->writer, err, sizeof err);
    if (rc != 0)
        s_fail (self, o, "file %s from %s failed verification: %s", err);
    else
        s_finish (self, o, 0, NULL);
}

/*  The peer answered a request after req (answers come in order): req
    will never be answered.  Fail its object if it is still the same. */
static void
s_skipped (jm_xfer_t *self, const char *peer, const req_t *req)
{
    obj_t *o = (obj_t *)zhashx_lookup (self->objects, req->hash);
    peer_t *p = s_peer (self, peer, false);
    if (!o || o->peer != p || o->gen != req->gen)
        return;
    char detail[256];
    snprintf (detail, sizeof detail,
              "no answer to the FETCH at offset %" PRIu64 " (a later one was answered first)",
              req->offset);
    s_fail (self, o, "file %s from %s failed verification: %s", detail);
}

int
jm_xfer_on_message (jm_xfer_t *self, const char *peer, const jm_msg_t *msg)
{
    assert (self && peer && msg);
    if (msg->id != JM_MSG_CHUNK && msg->id != JM_MSG_NOFILE)
        return 0;
    bool chunk = msg->id == JM_MSG_CHUNK;
    const char *what = chunk ? "CHUNK" : "NOFILE";
    peer_t *p = s_peer (self, peer, false);
    if (!p) {
        jm_debug ("%s for file %.64s offset %" PRIu64 " from %s: nothing asked; ignored", what,
                  msg->hash, msg->offset, peer);
        return 0;
    }
    /* answers to FETCHes sent before the peer was lost come first */
    size_t i = s_find_req (p->stale, p->nstale, msg->hash, msg->offset, !chunk);
    if (i < p->nstale) {
        s_drop_req (p->stale, &p->nstale, i);
        jm_debug ("%s for file %.64s offset %" PRIu64
                  " from %s answers a FETCH sent before the peer was lost; dropped",
                  what, msg->hash, msg->offset, peer);
        return 0;
    }
    i = s_find_req (p->reqs, p->nreqs, msg->hash, msg->offset, !chunk);
    if (i == p->nreqs) {
        /* not asked, or no longer: no credit is involved */
        jm_debug ("%s for file %.64s offset %" PRIu64 " from %s answers no FETCH; ignored", what,
                  msg->hash, msg->offset, peer);
        return 0;
    }
    req_t req = p->reqs[i];
    size_t nskipped = i;
    req_t *skipped = NULL;
    if (nskipped > 0) {
        skipped = malloc (nskipped * sizeof *skipped);
        assert (skipped);
        memcpy (skipped, p->reqs, nskipped * sizeof *skipped);
    }
    memmove (p->reqs, p->reqs + i + 1, (p->nreqs - i - 1) * sizeof *p->reqs);
    p->nreqs -= i + 1;
    /* callbacks may re-enter: objects are looked up again each time */
    for (size_t k = 0; k < nskipped; k++)
        s_skipped (self, peer, &skipped[k]);
    free (skipped);
    p = s_peer (self, peer, false);
    obj_t *o = (obj_t *)zhashx_lookup (self->objects, msg->hash);
    if (p && o && o->peer == p && o->writer && o->gen == req.gen) {
        if (chunk)
            s_on_chunk (self, o, &req, msg);
        else
            s_fail (self, o, "file %s from %s: %s",
                    msg->reason && *msg->reason ? msg->reason : "the peer does not have it");
    }
    /* else: the answer to a request of an object that already failed */
    s_pump (self, peer);
    return 0;
}

/* Delete the peer if nothing refers to it any more. */
static void
s_peer_gc (jm_xfer_t *self, const char *peer)
{
    peer_t *p = s_peer (self, peer, false);
    if (p && zlistx_size (p->queue) == 0 && p->nreqs == 0 && p->nstale == 0)
        zhashx_delete (self->peers, peer);
}

void
jm_xfer_peer_lost (jm_xfer_t *self, const char *peer, const char *reason)
{
    assert (self && peer);
    peer_t *p = s_peer (self, peer, false);
    if (!p)
        return;
    /* the outstanding requests become stale: the newest max are kept */
    size_t max = S_STALE_MAX < self->window ? self->window : S_STALE_MAX;
    size_t keep = p->nstale + p->nreqs > max ? max - p->nreqs : p->nstale;
    if (keep < p->nstale) {
        memmove (p->stale, p->stale + (p->nstale - keep), keep * sizeof *p->stale);
        p->nstale = keep;
    }
    if (p->nstale + p->nreqs > p->stale_cap) {
        p->stale_cap = p->nstale + p->nreqs + 4 * self->window;
        if (p->stale_cap > max)
            p->stale_cap = max;
        p->stale = realloc (p->stale, p->stale_cap * sizeof *p->stale);
        assert (p->stale);
    }
    if (p->nreqs) /* p->stale may still be NULL when there is nothing to keep */
        memcpy (p->stale + p->nstale, p->reqs, p->nreqs * sizeof *p->reqs);
    p->nstale += p->nreqs;
    p->nreqs = 0;
    char *outer = self->losing;
    self->losing = strdup (peer);
    assert (self->losing);
    obj_t *o;
    /* s_finish unlinks o from the queue; callbacks may add new wants for
       this peer (they go to the end and fail too unless the peer is back,
       so take a snapshot count). */
    size_t n = zlistx_size (p->queue);
    while (n-- > 0 && (p = s_peer (self, peer, false)) && (o = (obj_t *)zlistx_first (p->queue)))
        s_finish (self, o, -1, reason && *reason ? reason : "the peer went away");
    free (self->losing);
    self->losing = outer;
    s_peer_gc (self, peer);
}

bool
jm_xfer_peer_losing (jm_xfer_t *self, const char *peer)
{
    assert (self && peer);
    return self->losing && strcmp (self->losing, peer) == 0;
}

void
jm_xfer_peer_reset (jm_xfer_t *self, const char *peer)
{
    assert (self && peer);
    peer_t *p = s_peer (self, peer, false);
    if (!p)
        return;
    if (p->nstale)
        jm_debug ("%s: a new session; forgetting %zu FETCH(es) sent before it was lost", peer,
                  p->nstale);
    free (p->stale);
    p->stale = NULL;
    p->nstale = p->stale_cap = 0;
    s_peer_gc (self, peer);
}

void
jm_xfer_forget (jm_xfer_t *self, void *cookie)
{
    assert (self);
    for (obj_t *o = self->finishing; o; o = o->fin_next) {
        size_t j = 0;
        for (size_t i = 0; i < o->ncookies; i++)
            if (o->cookies[i] != cookie)
                o->cookies[j++] = o->cookies[i];
        o->ncookies = j;
    }
    zlistx_t *drop = zlistx_new ();
    for (obj_t *o = (obj_t *)zhashx_first (self->objects); o;
         o = (obj_t *)zhashx_next (self->objects)) {
        size_t j = 0;
        for (size_t i = 0; i < o->ncookies; i++)
            if (o->cookies[i] != cookie)
                o->cookies[j++] = o->cookies[i];
        o->ncookies = j;
        if (j == 0 && !o->started)
            zlistx_add_end (drop, o);
    }
    for (obj_t *o = (obj_t *)zlistx_first (drop); o; o = (obj_t *)zlistx_next (drop)) {
        zlistx_delete (o->peer->queue, o->handle);
        zhashx_delete (self->objects, o->hash);
        s_obj_free (o);
    }
    zlistx_destroy (&drop);
}

size_t
jm_xfer_pending (jm_xfer_t *self)
{
    assert (self);
    return zhashx_size (self->objects);
}

uint64_t
jm_xfer_bytes_received (jm_xfer_t *self)
{
    assert (self);
    return self->bytes_received;
}

jm_msg_t *
jm_xfer_serve (jm_store_t *store, const jm_msg_t *fetch, size_t *bytes_p)
{
    assert (store && fetch);
    if (bytes_p)
        *bytes_p = 0;
    char err[512];
    if (!jm_hash_valid (fetch->hash) || !jm_store_has (store, fetch->hash)) {
        jm_msg_t *nofile = jm_msg_new (JM_MSG_NOFILE);
        assert (nofile);
        memcpy (nofile->hash, fetch->hash, sizeof nofile->hash);
        nofile->hash[64] = 0;
        snprintf (err, sizeof err, "no such file %.64s", fetch->hash);
        jm_str_set (&nofile->reason, err);
        return nofile;
    }
    size_t len = fetch->size < JM_XFER_CHUNK ? (size_t)fetch->size : JM_XFER_CHUNK;
    uint8_t *buf = len ? malloc (len) : NULL;
    assert (buf || !len);
    ssize_t n =
        len ? jm_store_read (store, fetch->hash, fetch->offset, buf, len, err, sizeof err) : 0;
    if (n < 0) {
        free (buf);
        jm_msg_t *nofile = jm_msg_new (JM_MSG_NOFILE);
        assert (nofile);
        memcpy (nofile->hash, fetch->hash, JM_HASH_HEX);
        jm_str_set (&nofile->reason, err);
        return nofile;
    }
    jm_msg_t *chunk = jm_msg_new (JM_MSG_CHUNK);
    assert (chunk);
    memcpy (chunk->hash, fetch->hash, JM_HASH_HEX);
    chunk->offset = fetch->offset;
    jm_msg_set_data (chunk, buf, (size_t)n);
    free (buf);
    if (bytes_p)
        *bytes_p = (size_t)n;
    return chunk;
}
