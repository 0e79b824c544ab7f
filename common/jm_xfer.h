/*  jm_xfer.h - chunked, credit-based file transfer (receiver pulls).

    The receiver side keeps, per peer, a FIFO of wanted objects and at most
    'window' FETCH requests outstanding; each CHUNK that arrives is written
    into the store (jm_store_writer, hashed on arrival) and opens the next
    request.  When an object is complete and verified, or fails (NOFILE,
    hash mismatch, peer lost), the done callback runs once for every want()
    of that hash.  A hash wanted twice (by two jobs or tasks) is fetched once.

    Every CHUNK or NOFILE is matched to the exact FETCH it answers (CHUNK:
    same hash and offset; NOFILE: the oldest one for its hash).  An answer
    that matches no outstanding FETCH (never asked, or asked before the peer
    was lost) is ignored: it fails nothing and takes no credit.  A peer
    answers FETCHes in the order sent, so when it answers one, those sent to
    it before and still unanswered never will be: their objects fail.

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
   Answers to no outstanding FETCH are ignored (logged at debug); a CHUNK
   whose data does not fit its FETCH or the file fails the file ("failed
   verification").  Returns 0. */
int jm_xfer_on_message (jm_xfer_t *self, const char *peer, const jm_msg_t *msg);

/*  The peer went away: every want from it fails with reason (done with
    ok -1; jm_xfer_peer_losing is true meanwhile).  The FETCHes still
    unanswered are kept as stale (the newest 4096, or window if larger):
    their answers may yet come on the old connection and are dropped, so
    the same files can be wanted again from this peer at once. */
void jm_xfer_peer_lost (jm_xfer_t *self, const char *peer, const char *reason);

/*  True while jm_xfer_peer_lost(peer) runs the done callbacks: the object
    failed only because the connection went; a done callback may keep the
    want aside and want the object again when the peer is back. */
bool jm_xfer_peer_losing (jm_xfer_t *self, const char *peer);

/*  The peer starts a brand-new connection or session, on which no answer
    to a FETCH sent before jm_xfer_peer_lost can arrive: forget its stale
    FETCHes.  FETCHes sent since the loss stay outstanding. */
void jm_xfer_peer_reset (jm_xfer_t *self, const char *peer);

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
