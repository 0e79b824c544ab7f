/*  jm_worker.h - a file worker: an actor (zactor, its own thread and its
    own jm_store_t on the same store directory) that does the file work
    which may block for seconds -- hashing result files into the store,
    copying objects out to work directories -- so that the owner's zloop
    keeps answering heartbeats meanwhile.

    The owner submits a request (a batch of files) and gets a request id at
    once; the actor works through requests in order and sends one reply per
    request with one result per file, in the order given.  The owner reads
    replies when jm_worker_sock is readable (zloop_reader or zpoller), with
    jm_worker_recv.  Nothing is shared between the threads: requests and
    replies are copied over the actor's inproc pipe.

    Paths: base is an absolute directory the caller trusts (e.g. the
    agent's work root).  Each file names dir, a directory relative to base
    (NULL or "" = base itself), and rel, a file relative to dir; both are
    resolved with jm_path_open_beneath, so nothing outside dir (and dir not
    outside base) is ever read or written, whatever symlinks a task left. */
#ifndef JM_WORKER_H
#define JM_WORKER_H

#include "jm_sha256.h"
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _jm_worker_t jm_worker_t;

/* One file of a request.  Strings stay the caller's (copied at submit). */
typedef struct {
    const char *dir;  /* relative to base; NULL or "" = base */
    const char *rel;  /* relative to dir */
    const char *hash; /* jm_worker_place only: the object to copy out */
    uint32_t mode;    /* jm_worker_place only: permission bits of the copy */
} jm_worker_item_t;

#define JM_WORKER_OK 0
#define JM_WORKER_MISSING 1 /* import: the file does not exist (ENOENT) */
#define JM_WORKER_FAILED -1

/* The result for one file, in the order of the request's items. */
typedef struct {
    int status;             /* JM_WORKER_OK / _MISSING / _FAILED */
    char hash[JM_HASH_HEX]; /* import, OK: the content's hash */
    uint64_t size;          /* import, OK: bytes */
    uint32_t mode;          /* import, OK: st_mode & 0777 */
    char *error;            /* FAILED: a sentence naming rel, e.g.
                               "cannot read 'out.dat': ...", else NULL */
} jm_worker_result_t;

typedef struct {
    uint64_t id; /* as returned by the submit call */
    size_t n;
    jm_worker_result_t *v; /* n results */
} jm_worker_reply_t;

/* Starts the worker thread with its own store on store_dir (created like
   jm_store_new).  NULL + err naming the directory. */
jm_worker_t *jm_worker_new (const char *store_dir, char *err, size_t errlen);

/* Stops the worker: a request being worked on is abandoned after its
   current file, queued requests are dropped without replies.  Does not
   wait for more than the file in progress.  Sets *self_p to NULL. */
void jm_worker_destroy (jm_worker_t **self_p);

/* The socket replies arrive on: register it with zloop_reader (or a
   zpoller) and call jm_worker_recv when it is readable.  Owned by the
   worker; do not read it directly. */
zsock_t *jm_worker_sock (jm_worker_t *self);

/* Import: each file (which must be a regular file) is hashed and copied
   into the store.  Results: OK with hash/size/mode, MISSING, or FAILED
   with error.  Returns the request id (> 0), or 0 if the worker has
   stopped (no reply will come). */
uint64_t jm_worker_import (jm_worker_t *self, const char *base, const jm_worker_item_t *items,
                           size_t n);

/* Place: each item's object (hash, which must be in the store) is copied
   out to rel beneath dir (see jm_store_copy_out: parents of rel created,
   atomic, chmod mode & 07777); dir must exist.  Results: OK or FAILED.
   Returns the request id (> 0), or 0 if the worker has stopped. */
uint64_t jm_worker_place (jm_worker_t *self, const char *base, const jm_worker_item_t *items,
                          size_t n);

/* Reads one message from the worker (call when jm_worker_sock is
   readable).  Returns a reply (the caller destroys it), or NULL when the
   worker has stopped (jm_worker_alive is then false: requests without a
   reply so far will never get one) or on an unexpected message. */
jm_worker_reply_t *jm_worker_recv (jm_worker_t *self);
void jm_worker_reply_destroy (jm_worker_reply_t **reply_p);

/* False once the worker thread has ended (seen by jm_worker_recv) or a
   request could not be handed to it. */
bool jm_worker_alive (jm_worker_t *self);

#endif
