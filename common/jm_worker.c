/*  jm_worker.c - the file worker actor.

    Pipe layout (in-process only, never on the network):
      request  "I" | "P", id (uint64), base, then per item
               I: dir, rel            P: dir, rel, hash, mode (uint32)
      reply    "R", id, then per item: s_wire_t, error (empty if none)
    The actor reads every message already waiting before each request and
    between files, so a "$TERM" behind a long queue is seen after the file
    in progress, not after the whole queue. */
#define _GNU_SOURCE
#include "jm_worker.h"
#include "jm_path.h"
#include "jm_store.h"
#include "jm_util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct _jm_worker_t {
    zactor_t *actor;
    uint64_t next_id;
    bool alive;
};

/* One result on the pipe (both ends are this file, same process). */
typedef struct {
    int32_t status;
    uint32_t mode;
    uint64_t size;
    char hash[JM_HASH_HEX];
} s_wire_t;

/* ------------------------------------------------------------------ */
/* Actor side */

typedef struct {
    zsock_t *pipe;
    jm_store_t *store;
    zlist_t *queue; /* zmsg_t *: requests read ahead */
    bool term;
} s_actor_t;

static bool
s_is_term (zmsg_t *msg)
{
    zframe_t *f = zmsg_first (msg);
    return f && zframe_streq (f, "$TERM");
}

/* Moves every waiting message into the queue; notes $TERM. */
static void
s_read_ahead (s_actor_t *a)
{
    while (!a->term && (zsock_events (a->pipe) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (a->pipe);
        if (!msg)
            break;
        if (s_is_term (msg)) {
            a->term = true;
            zmsg_destroy (&msg);
        }
        else
            zlist_append (a->queue, msg);
    }
}

static char *
s_frame_str (zmsg_t *msg)
{
    zframe_t *f = zmsg_next (msg);
    return f ? zframe_strdup (f) : NULL;
}

static void
s_add_result (zmsg_t *reply, const s_wire_t *w, const char *error)
{
    zmsg_addmem (reply, w, sizeof *w);
    zmsg_addstr (reply, error ? error : "");
}

static void s_fail (zmsg_t *reply, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
s_fail (zmsg_t *reply, const char *fmt, ...)
{
    char buf[PATH_MAX + 2048];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    s_wire_t w = {.status = JM_WORKER_FAILED};
    s_add_result (reply, &w, buf);
}

static void
s_import_one (s_actor_t *a, int dfd, const char *rel, zmsg_t *reply)
{
    char err[PATH_MAX + 1024];
    /* O_NONBLOCK: a FIFO named like a result must not hang us; no effect
       on regular files. */
    int fd = jm_path_open_beneath (dfd, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0, err, sizeof err);
    if (fd < 0) {
        if (errno == ENOENT) {
            s_wire_t w = {.status = JM_WORKER_MISSING};
            s_add_result (reply, &w, NULL);
        }
        else
            s_fail (reply, "cannot read '%s': %s", rel, err);
        return;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        s_fail (reply, "'%s' is not a regular file", rel);
        return;
    }
    s_wire_t w = {.status = JM_WORKER_OK, .mode = st.st_mode & 0777};
    int rc = jm_store_import_fd (a->store, fd, rel, w.hash, &w.size, err, sizeof err);
    close (fd);
    if (rc != 0)
        s_fail (reply, "cannot store '%s': %s", rel, err);
    else
        s_add_result (reply, &w, NULL);
}

static void
s_place_one (s_actor_t *a, int dfd, const char *rel, const char *hash, uint32_t mode, zmsg_t *reply)
{
    char err[PATH_MAX + 1024];
    if (jm_store_copy_out (a->store, hash ? hash : "", dfd, rel, mode, err, sizeof err) != 0)
        s_fail (reply, "%s", err);
    else {
        s_wire_t w = {.status = JM_WORKER_OK, .mode = mode};
        s_add_result (reply, &w, NULL);
    }
}

/* Works through one request; sends its reply unless $TERM came first. */
static void
s_handle (s_actor_t *a, zmsg_t *msg)
{
    zframe_t *op = zmsg_first (msg);
    zframe_t *idf = zmsg_next (msg);
    if (!op || !idf || zframe_size (idf) != sizeof (uint64_t))
        return; /* not from jm_worker_*: nobody waits for an answer */
    bool place = zframe_streq (op, "P");
    if (!place && !zframe_streq (op, "I"))
        return;
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "R");
    zmsg_addmem (reply, zframe_data (idf), sizeof (uint64_t));
    char *base = s_frame_str (msg);
    char err[PATH_MAX + 1024];
    int basefd = base ? open (base, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int base_errno = errno;
    char *dir_name = NULL; /* the directory dfd is open on */
    int dfd = -1;
    char dfd_err[PATH_MAX + 1024] = "";
    while (!a->term) {
        char *dir = s_frame_str (msg);
        if (!dir)
            break;
        char *rel = s_frame_str (msg);
        char *hash = place ? s_frame_str (msg) : NULL;
        uint32_t mode = 0;
        if (place) {
            zframe_t *mf = zmsg_next (msg);
            if (mf && zframe_size (mf) == sizeof mode)
                memcpy (&mode, zframe_data (mf), sizeof mode);
        }
        if (!rel)
            s_fail (reply, "bad request to the file worker");
        else if (basefd < 0)
            s_fail (reply, "cannot use '%s' for '%s': cannot open '%s': %s", base ? base : "", rel,
                    base ? base : "", strerror (base_errno));
        else {
            if (!dir_name || strcmp (dir_name, dir) != 0) {
                if (dfd >= 0 && dfd != basefd)
                    close (dfd);
                free (dir_name);
                dir_name = strdup (dir);
                dfd_err[0] = 0;
                dfd = *dir ? jm_path_open_beneath (basefd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                                                   0, err, sizeof err)
                           : basefd;
                if (dfd < 0)
                    snprintf (dfd_err, sizeof dfd_err, "%s", err);
            }
            if (dfd < 0)
                s_fail (reply, "cannot %s '%s': cannot open the directory '%s': %s",
                        place ? "write" : "read", rel, dir, dfd_err);
            else if (place)
                s_place_one (a, dfd, rel, hash, mode, reply);
            else
                s_import_one (a, dfd, rel, reply);
        }
        free (dir);
        free (rel);
        free (hash);
        s_read_ahead (a);
    }
    if (dfd >= 0 && dfd != basefd)
        close (dfd);
    if (basefd >= 0)
        close (basefd);
    free (dir_name);
    free (base);
    if (a->term)
        zmsg_destroy (&reply);
    else
        zmsg_send (&reply, a->pipe);
}

static void
s_actor (zsock_t *pipe, void *args)
{
    s_actor_t a = {.pipe = pipe, .store = args, .queue = zlist_new ()};
    zsock_signal (pipe, 0);
    while (!a.term) {
        s_read_ahead (&a);
        if (a.term)
            break;
        zmsg_t *msg = zlist_pop (a.queue);
        if (!msg) {
            msg = zmsg_recv (pipe);
            if (!msg) {
                if (zmq_errno () == EINTR)
                    continue;
                break; /* context terminated */
            }
            if (s_is_term (msg)) {
                zmsg_destroy (&msg);
                break;
            }
        }
        s_handle (&a, msg);
        zmsg_destroy (&msg);
    }
    zmsg_t *msg;
    while ((msg = zlist_pop (a.queue)))
        zmsg_destroy (&msg);
    zlist_destroy (&a.queue);
    jm_store_destroy (&a.store);
}

/* ------------------------------------------------------------------ */
/* Owner side */

jm_worker_t *
jm_worker_new (const char *store_dir, char *err, size_t errlen)
{
    assert (store_dir);
    jm_store_t *store = jm_store_new (store_dir, err, errlen);
    if (!store)
        return NULL;
    jm_worker_t *self = calloc (1, sizeof *self);
    assert (self);
    self->actor = zactor_new (s_actor, store);
    if (!self->actor) {
        jm_store_destroy (&store);
        free (self);
        jm_err (err, errlen, "cannot start the file worker thread for store '%s'", store_dir);
        return NULL;
    }
    self->alive = true;
    return self;
}

void
jm_worker_destroy (jm_worker_t **self_p)
{
    assert (self_p);
    jm_worker_t *self = *self_p;
    if (!self)
        return;
    /* zactor_destroy sends $TERM and waits for the thread's last signal; if
       we have already read that signal, a bounded wait keeps a $TERM that
       slipped in before the pipe closed from blocking us for ever. */
    if (!self->alive)
        zsock_set_rcvtimeo (zactor_sock (self->actor), 200);
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

zsock_t *
jm_worker_sock (jm_worker_t *self)
{
    assert (self);
    return zactor_sock (self->actor);
}

bool
jm_worker_alive (jm_worker_t *self)
{
    assert (self);
    return self->alive;
}

static uint64_t
s_submit (jm_worker_t *self, const char *op, const char *base, const jm_worker_item_t *items,
          size_t n)
{
    assert (self && base && (items || n == 0));
    if (!self->alive)
        return 0;
    uint64_t id = ++self->next_id;
    bool place = *op == 'P';
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, op);
    zmsg_addmem (msg, &id, sizeof id);
    zmsg_addstr (msg, base);
    for (size_t i = 0; i < n; i++) {
        zmsg_addstr (msg, items[i].dir ? items[i].dir : "");
        zmsg_addstr (msg, items[i].rel ? items[i].rel : "");
        if (place) {
            zmsg_addstr (msg, items[i].hash ? items[i].hash : "");
            zmsg_addmem (msg, &items[i].mode, sizeof items[i].mode);
        }
    }
    if (zmsg_send (&msg, zactor_sock (self->actor)) != 0) {
        zmsg_destroy (&msg);
        self->alive = false;
        return 0;
    }
    return id;
}

uint64_t
jm_worker_import (jm_worker_t *self, const char *base, const jm_worker_item_t *items, size_t n)
{
    return s_submit (self, "I", base, items, n);
}

uint64_t
jm_worker_place (jm_worker_t *self, const char *base, const jm_worker_item_t *items, size_t n)
{
    return s_submit (self, "P", base, items, n);
}

jm_worker_reply_t *
jm_worker_recv (jm_worker_t *self)
{
    assert (self);
    zmsg_t *msg = zmsg_recv (zactor_sock (self->actor));
    if (!msg)
        return NULL;
    if (zmsg_signal (msg) >= 0) { /* the actor's thread has ended */
        self->alive = false;
        zmsg_destroy (&msg);
        return NULL;
    }
    zframe_t *tag = zmsg_first (msg);
    zframe_t *idf = zmsg_next (msg);
    if (!tag || !zframe_streq (tag, "R") || !idf || zframe_size (idf) != sizeof (uint64_t) ||
        (zmsg_size (msg) - 2) % 2 != 0) {
        zmsg_destroy (&msg);
        return NULL;
    }
    jm_worker_reply_t *reply = calloc (1, sizeof *reply);
    assert (reply);
    memcpy (&reply->id, zframe_data (idf), sizeof reply->id);
    reply->n = (zmsg_size (msg) - 2) / 2;
    reply->v = calloc (reply->n ? reply->n : 1, sizeof *reply->v);
    assert (reply->v);
    for (size_t i = 0; i < reply->n; i++) {
        zframe_t *wf = zmsg_next (msg);
        zframe_t *ef = zmsg_next (msg);
        jm_worker_result_t *r = &reply->v[i];
        if (zframe_size (wf) != sizeof (s_wire_t)) {
            r->status = JM_WORKER_FAILED;
            r->error = strdup ("bad reply from the file worker");
            continue;
        }
        s_wire_t w;
        memcpy (&w, zframe_data (wf), sizeof w);
        r->status = w.status;
        r->mode = w.mode;
        r->size = w.size;
        memcpy (r->hash, w.hash, JM_HASH_HEX);
        r->hash[JM_HASH_HEX - 1] = 0;
        if (zframe_size (ef) > 0)
            r->error = zframe_strdup (ef);
    }
    zmsg_destroy (&msg);
    return reply;
}

void
jm_worker_reply_destroy (jm_worker_reply_t **reply_p)
{
    assert (reply_p);
    jm_worker_reply_t *reply = *reply_p;
    if (!reply)
        return;
    for (size_t i = 0; i < reply->n; i++)
        free (reply->v[i].error);
    free (reply->v);
    free (reply);
    *reply_p = NULL;
}
