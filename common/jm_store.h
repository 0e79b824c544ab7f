/*  jm_store.h - content-addressed file store (SHA-256).

    Layout: <dir>/objects/<hash[0..1]>/<hash>  (read-only once written),
            <dir>/tmp/                         (incoming, same filesystem).
    An object exists only after its content was verified against its hash.
    The empty file (JM_HASH_EMPTY) is always "present" and never stored.
    Used by the coordinator ($JOBMAN_HOME/store), the client (writes into
    the coordinator's store) and the agent (<agent home>/store).          */
#ifndef JM_STORE_H
#define JM_STORE_H

#include "jm_sha256.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct _jm_store_t jm_store_t;
typedef struct _jm_store_writer_t jm_store_writer_t;

/* Opens (creating if needed, mode 0700) a store rooted at dir. NULL + err. */
jm_store_t *jm_store_new (const char *dir, char *err, size_t errlen);
void jm_store_destroy (jm_store_t **self_p);
const char *jm_store_dir (jm_store_t *self);

/* True if the object is present (always true for JM_HASH_EMPTY). */
bool jm_store_has (jm_store_t *self, const char *hash);
/* Path of the object into buf; returns buf. */
char *jm_store_path (jm_store_t *self, const char *hash, char *buf, size_t buflen);

/* Copy a file into the store while hashing it (one read pass).  If the
   object already exists the copy is dropped.  0, or -1 + err naming path. */
int jm_store_import (jm_store_t *self, const char *path, char hash[JM_HASH_HEX], uint64_t *size_p,
                     char *err, size_t errlen);
/* Same, from an open fd (read from its current offset to EOF). */
int jm_store_import_fd (jm_store_t *self, int fd, const char *name_for_errors,
                        char hash[JM_HASH_HEX], uint64_t *size_p, char *err, size_t errlen);

/* Read up to len bytes of an object at offset.  Returns bytes read (0 at or
   past EOF), or -1 + err if the object is missing or unreadable. */
ssize_t jm_store_read (jm_store_t *self, const char *hash, uint64_t offset, void *buf, size_t len,
                       char *err, size_t errlen);
/* Size of an object, or -1 if missing. */
int64_t jm_store_size (jm_store_t *self, const char *hash);

/*  Incoming object: bytes must arrive in order (offset == bytes so far).
    commit checks size and hash, then renames into place (a concurrent
    identical commit is fine). abort removes the temp file. */
jm_store_writer_t *jm_store_writer_new (jm_store_t *self, const char *hash, uint64_t size,
                                        char *err, size_t errlen);
int jm_store_writer_write (jm_store_writer_t *self, uint64_t offset, const void *data, size_t len,
                           char *err, size_t errlen);
uint64_t jm_store_writer_received (jm_store_writer_t *self);
int jm_store_writer_commit (jm_store_writer_t **self_p, char *err, size_t errlen);
void jm_store_writer_abort (jm_store_writer_t **self_p);

/*  Materialise an object as file 'rel' beneath directory fd dirfd
    (created parents, confined with jm_path), atomically: written to a
    temp file in the same directory, chmod'ed to mode, renamed over rel.
    0, or -1 + err naming rel. */
int jm_store_copy_out (jm_store_t *self, const char *hash, int dirfd, const char *rel,
                       uint32_t mode, char *err, size_t errlen);

/*  Size limit and least-recently-used eviction.  An object's mtime is its
    last-use time (objects are read-only, so nothing else changes it):
    import or commit of an object already present, jm_store_copy_out and
    jm_store_touch set it to now.  These functions (and everything above)
    may be called from several threads of one process at once. */

/* Marks the object as used now (its place in LRU order).  No-op for the
   empty hash or a missing object. */
void jm_store_touch (jm_store_t *self, const char *hash);
/* Bytes held by the store's objects (counted once when first asked, by a
   scan of objects/, then kept up to date by this process's imports/commits/
   evictions). */
uint64_t jm_store_bytes (jm_store_t *self);
/* Evicts least-recently-used objects until the store holds at most
   max_bytes, skipping every object for which keep (arg, hash) returns true
   (keep may be NULL; it is called without any store lock held).  Returns
   bytes freed; *evicted_p (may be NULL) gets the number of objects removed.
   Never removes a file in tmp/. */
uint64_t jm_store_evict (jm_store_t *self, uint64_t max_bytes,
                         bool (*keep) (void *arg, const char *hash), void *arg, size_t *evicted_p);

#endif
