/*  jm_xfer.h - chunked, credit-based file transfer (receiver pulls).

    The receiver side keeps, per peer, a FIFO of wanted objects and at most
    'window' FETCH requests outstanding; each CHUNK that arrives is written
    into the store (jm_store_writer, hashed on arrival) and opens the next
    request.  When an object is complete and verified, or fails (NOFILE,
    hash mismatch, peer lost), the done callback runs once for every want()
    of that hash.  A hash wanted twice (by two jobs or tasks) is fetched once.

    The sender side is stateless: jm_xfer_serve turns a FETCH into a CHUNK
    or NOFILE from the store.                                             */
#ifndef JM_XFER_H
#define JM_XFER_H

#include "../proto/jm_proto.h"
#include "jm_store.h"

typedef struct _jm_xfer_t jm_xfer_t;

/* Sends msg to peer (takes ownership, destroys *msg_p). 0 or -1. */
typedef int (jm_xfer_send_fn) (void *arg, const char *peer, jm_msg_t **msg_p);
/* Object finished: ok 0 = present in store, -1 = failed (reason says why).
   cookie is the value given to jm_xfer_want. */
typedef void (jm_xfer_done_fn) (void *arg, const char *peer, const char *hash, int ok,
                                const char *reason, void *cookie);

#define JM_XFER_CHUNK (1024 * 1024)
#define JM_XFER_WINDOW 8

jm_xfer_t *jm_xfer_new (jm_store_t *store, size_t chunk_size, size_t window, jm_xfer_send_fn *send,
                        jm_xfer_done_fn *done, void *arg);
void jm_xfer_destroy (jm_xfer_t **self_p);

/*  Want object hash (size bytes) from peer.  If it is already in the store,
    done() is called before this returns and 0 is returned.  Otherwise the
    want is queued (or joined to an identical one in flight) and FETCHes are
    sent as the window allows; returns 1.  job_id goes into every FETCH.
    -1 if hash is invalid. */
int jm_xfer_want (jm_xfer_t *self, const char *peer, const char *hash, uint64_t size,
                  uint64_t job_id, void *cookie);

/* Feed a CHUNK or NOFILE received from peer (msg stays the caller's).
   Unexpected chunks are ignored (logged).  Returns 0. */
int jm_xfer_on_message (jm_xfer_t *self, const char *peer, const jm_msg_t *msg);

/* The peer went away: every want from it fails with reason. */
void jm_xfer_peer_lost (jm_xfer_t *self, const char *peer, const char *reason);

/* Drop all wants carrying this cookie without calling done (e.g. the task
   was cancelled).  In-flight objects wanted by others carry on. */
void jm_xfer_forget (jm_xfer_t *self, void *cookie);

/* Objects waiting or in flight (all peers). */
size_t jm_xfer_pending (jm_xfer_t *self);
/* Payload bytes received so far (all peers). */
uint64_t jm_xfer_bytes_received (jm_xfer_t *self);

/*  Sender side: answer a FETCH from the store: a CHUNK (data of
    min(size, chunk cap) bytes at offset; empty at EOF) or NOFILE.  Never
    NULL. *bytes_p (may be NULL) receives the payload size. */
jm_msg_t *jm_xfer_serve (jm_store_t *store, const jm_msg_t *fetch, size_t *bytes_p);

#endif
