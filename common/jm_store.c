/*  jm_store.c - content-addressed file store.

    Objects are files <dir>/objects/<h[0:2]>/<hash>, mode 0444: nothing may
    change an object once it has been verified.  Incoming data goes to
    mkstemp files in <dir>/tmp (same filesystem, so rename is atomic) and
    is hashed while it is written; only a verified file is renamed into
    objects/.  Two writers committing the same object race harmlessly: the
    content is identical and rename(2) is atomic.

    Least-recently-used eviction: an object's mtime is its last-use time
    (objects never change, so only we set it; atime is useless on relatime
    and noatime mounts).  The byte counter is counted once by a scan of
    objects/ and then kept up to date under self->lock, which is also held
    around every install (rename), touch (utimensat) and, during eviction,
    around each "is it still as old as when we scanned? then unlink" step,
    so a use in another thread either lands before the check (the object
    survives) or after the unlink (the touch finds nothing and an import
    stores the object again). */
#define _GNU_SOURCE
#include "jm_store.h"
#include "jm_path.h"
#include "jm_util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JM_STORE_BUF (1024 * 1024)
#define JM_STORE_OBJECT_MODE 0444

struct _jm_store_t {
    char *dir;
    char *tmp_dir;
    char *objects_dir;
    pthread_mutex_t lock;       /* bytes, bytes_known; installs, touches, evictions' unlinks */
    pthread_mutex_t evict_lock; /* one eviction at a time */
    bool bytes_known;
    uint64_t bytes; /* sum of the objects' sizes, valid if bytes_known */
};

/* One object seen by a scan of objects/. */
typedef struct {
    struct timespec mtime;
    uint64_t size;
    char hash[JM_HASH_HEX];
} s_entry_t;

struct _jm_store_writer_t {
    jm_store_t *store;
    char hash[JM_HASH_HEX];
    uint64_t size;
    uint64_t received;
    int fd;
    char *tmp_path;
    jm_sha256_t *sha;
};

static int
s_write_all (int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write (fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

jm_store_t *
jm_store_new (const char *dir, char *err, size_t errlen)
{
    assert (dir);
    size_t n = strlen (dir) + 16;
    char *objects = malloc (n), *tmp = malloc (n);
    assert (objects && tmp);
    snprintf (objects, n, "%s/objects", dir);
    snprintf (tmp, n, "%s/tmp", dir);
    if (jm_mkdirs (dir, 0700, err, errlen) || jm_mkdirs (objects, 0700, err, errlen) ||
        jm_mkdirs (tmp, 0700, err, errlen)) {
        free (objects);
        free (tmp);
        return NULL;
    }
    jm_store_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dir = strdup (dir);
    self->tmp_dir = tmp;
    self->objects_dir = objects;
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->evict_lock, NULL);
    return self;
}

void
jm_store_destroy (jm_store_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->dir);
        free ((*self_p)->tmp_dir);
        free ((*self_p)->objects_dir);
        pthread_mutex_destroy (&(*self_p)->lock);
        pthread_mutex_destroy (&(*self_p)->evict_lock);
        free (*self_p);
        *self_p = NULL;
    }
}

const char *
jm_store_dir (jm_store_t *self)
{
    assert (self);
    return self->dir;
}

char *
jm_store_path (jm_store_t *self, const char *hash, char *buf, size_t buflen)
{
    assert (self && hash && buf);
    snprintf (buf, buflen, "%s/objects/%.2s/%s", self->dir, hash, hash);
    return buf;
}

static bool
s_is_empty (const char *hash)
{
    return strcmp (hash, JM_HASH_EMPTY) == 0;
}

static const struct timespec s_now[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_NOW}};

/* Sets the object's mtime to now if it is present; true if it is present
   (the object cannot be evicted between the check and the touch). */
static bool
s_touch_existing (jm_store_t *self, const char *hash)
{
    char path[PATH_MAX];
    jm_store_path (self, hash, path, sizeof path);
    pthread_mutex_lock (&self->lock);
    int rc = utimensat (AT_FDCWD, path, s_now, 0);
    int e = errno;
    pthread_mutex_unlock (&self->lock);
    if (rc == 0)
        return true;
    if (e == ENOENT || e == ENOTDIR)
        return false;
    /* present but not ours to touch (EPERM, EROFS): still present */
    struct stat st;
    return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

void
jm_store_touch (jm_store_t *self, const char *hash)
{
    assert (self);
    if (!jm_hash_valid (hash) || s_is_empty (hash))
        return;
    s_touch_existing (self, hash);
}

bool
jm_store_has (jm_store_t *self, const char *hash)
{
    assert (self);
    if (!jm_hash_valid (hash))
        return false;
    if (s_is_empty (hash))
        return true;
    char path[PATH_MAX];
    struct stat st;
    return stat (jm_store_path (self, hash, path, sizeof path), &st) == 0 && S_ISREG (st.st_mode);
}

int64_t
jm_store_size (jm_store_t *self, const char *hash)
{
    assert (self);
    if (!jm_hash_valid (hash))
        return -1;
    if (s_is_empty (hash))
        return 0;
    char path[PATH_MAX];
    struct stat st;
    if (stat (jm_store_path (self, hash, path, sizeof path), &st) != 0 || !S_ISREG (st.st_mode))
        return -1;
    return (int64_t)st.st_size;
}

/* New temp file in tmp/; returns fd and sets *path_p (malloc'ed). */
static int
s_tmp_open (jm_store_t *self, char **path_p, char *err, size_t errlen)
{
    size_t n = strlen (self->tmp_dir) + 32;
    char *path = malloc (n);
    assert (path);
    snprintf (path, n, "%s/in-XXXXXX", self->tmp_dir);
    int fd = mkostemp (path, O_CLOEXEC);
    if (fd < 0) {
        jm_err (err, errlen, "cannot create a temporary file in store '%s': %s", self->tmp_dir,
                strerror (errno));
        free (path);
        return -1;
    }
    *path_p = path;
    return fd;
}

/* Move a verified temp file of size bytes into objects/ (fd is closed).
   If the object is already there the temp file is dropped and the object
   touched; otherwise its size is added to the byte counter. */
static int
s_install (jm_store_t *self, int fd, const char *tmp_path, const char *hash, uint64_t size,
           char *err, size_t errlen)
{
    char path[PATH_MAX], sub[PATH_MAX];
    fchmod (fd, JM_STORE_OBJECT_MODE);
    if (close (fd) != 0) {
        jm_err (err, errlen, "cannot write object %s to store '%s': %s", hash, self->dir,
                strerror (errno));
        unlink (tmp_path);
        return -1;
    }
    snprintf (sub, sizeof sub, "%s/objects/%.2s", self->dir, hash);
    if (mkdir (sub, 0700) != 0 && errno != EEXIST) {
        jm_err (err, errlen, "cannot create '%s': %s", sub, strerror (errno));
        unlink (tmp_path);
        return -1;
    }
    jm_store_path (self, hash, path, sizeof path);
    pthread_mutex_lock (&self->lock);
    /* Never replace: the byte counter must count each object once. */
    int rc = renameat2 (AT_FDCWD, tmp_path, AT_FDCWD, path, RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* a file system without RENAME_NOREPLACE: our own installs are
           serialised by the lock, another process's is identical content */
        struct stat st;
        if (lstat (path, &st) == 0) {
            rc = -1;
            errno = EEXIST;
        }
        else
            rc = rename (tmp_path, path);
    }
    int e = errno;
    if (rc == 0) {
        if (self->bytes_known)
            self->bytes += size;
    }
    else if (e == EEXIST) {
        utimensat (AT_FDCWD, path, s_now, 0);
        unlink (tmp_path);
        rc = 0;
    }
    pthread_mutex_unlock (&self->lock);
    if (rc != 0) {
        jm_err (err, errlen, "cannot move object %s into '%s': %s", hash, path, strerror (e));
        unlink (tmp_path);
        return -1;
    }
    return 0;
}

/* Read until buf is full or EOF; bytes read, or -1 (errno set). */
static ssize_t
s_read_full (int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read (fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int
jm_store_import_fd (jm_store_t *self, int fd, const char *name_for_errors, char hash[JM_HASH_HEX],
                    uint64_t *size_p, char *err, size_t errlen)
{
    assert (self);
    const char *name = name_for_errors ? name_for_errors : "input";
    char *buf = malloc (JM_STORE_BUF);
    assert (buf);
    jm_sha256_t *sha = jm_sha256_new ();
    char h[JM_HASH_HEX];
    char *tmp_path = NULL;
    int out = -1, rc = 0;
    uint64_t total = 0;
    bool hashed = false;
    /* The first buffer is read before anything is written: a file that fits
       in it and is empty or already stored costs no temp file (creating and
       unlinking one per result is what made small files slow). */
    ssize_t n = s_read_full (fd, buf, JM_STORE_BUF);
    if (n < 0) {
        rc = jm_err (err, errlen, "cannot read '%s': %s", name, strerror (errno));
        goto done;
    }
    total = (uint64_t)n;
    jm_sha256_update (sha, buf, (size_t)n);
    hashed = (size_t)n < JM_STORE_BUF; /* the whole file is in buf */
    if (hashed) {
        jm_sha256_final (sha, h);
        if (s_is_empty (h) || s_touch_existing (self, h))
            goto done;
    }
    out = s_tmp_open (self, &tmp_path, err, errlen);
    if (out < 0) {
        rc = -1;
        goto done;
    }
    while (n > 0) {
        if (s_write_all (out, buf, (size_t)n) != 0) {
            rc = jm_err (err, errlen, "cannot copy '%s' into store '%s': %s", name, self->dir,
                         strerror (errno));
            break;
        }
        if (hashed)
            break;
        n = s_read_full (fd, buf, JM_STORE_BUF);
        if (n < 0) {
            rc = jm_err (err, errlen, "cannot read '%s': %s", name, strerror (errno));
            break;
        }
        jm_sha256_update (sha, buf, (size_t)n);
        total += (uint64_t)n;
    }
    if (rc == 0 && !hashed)
        jm_sha256_final (sha, h);
    if (rc == 0 && s_install (self, out, tmp_path, h, total, err, errlen) != 0)
        rc = -1;
    else if (rc != 0) {
        close (out);
        unlink (tmp_path);
    }
done:
    free (buf);
    free (tmp_path);
    jm_sha256_destroy (&sha);
    if (rc == 0) {
        memcpy (hash, h, JM_HASH_HEX);
        if (size_p)
            *size_p = total;
    }
    return rc;
}

int
jm_store_import (jm_store_t *self, const char *path, char hash[JM_HASH_HEX], uint64_t *size_p,
                 char *err, size_t errlen)
{
    assert (self && path);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return jm_err (err, errlen, "cannot open '%s': %s", path, strerror (errno));
    struct stat st;
    if (fstat (fd, &st) == 0 && S_ISDIR (st.st_mode)) {
        close (fd);
        return jm_err (err, errlen, "cannot store '%s': it is a directory", path);
    }
    int rc = jm_store_import_fd (self, fd, path, hash, size_p, err, errlen);
    close (fd);
    return rc;
}

ssize_t
jm_store_read (jm_store_t *self, const char *hash, uint64_t offset, void *buf, size_t len,
               char *err, size_t errlen)
{
    assert (self);
    if (!jm_hash_valid (hash))
        return jm_err (err, errlen, "'%s' is not a SHA-256 hash", hash ? hash : "(null)");
    if (s_is_empty (hash))
        return 0;
    char path[PATH_MAX];
    int fd = open (jm_store_path (self, hash, path, sizeof path), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return jm_err (err, errlen, "no such file %s in store '%s'", hash, self->dir);
        return jm_err (err, errlen, "cannot open object %s in store '%s': %s", hash, self->dir,
                       strerror (errno));
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread (fd, (char *)buf + got, len - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close (fd);
            return jm_err (err, errlen, "cannot read object %s in store '%s': %s", hash, self->dir,
                           strerror (e));
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close (fd);
    return (ssize_t)got;
}

jm_store_writer_t *
jm_store_writer_new (jm_store_t *self, const char *hash, uint64_t size, char *err, size_t errlen)
{
    assert (self);
    if (!jm_hash_valid (hash)) {
        jm_err (err, errlen, "'%s' is not a SHA-256 hash", hash ? hash : "(null)");
        return NULL;
    }
    char *tmp_path = NULL;
    int fd = s_tmp_open (self, &tmp_path, err, errlen);
    if (fd < 0)
        return NULL;
    jm_store_writer_t *w = calloc (1, sizeof *w);
    assert (w);
    w->store = self;
    memcpy (w->hash, hash, JM_HASH_HEX);
    w->size = size;
    w->fd = fd;
    w->tmp_path = tmp_path;
    w->sha = jm_sha256_new ();
    return w;
}

int
jm_store_writer_write (jm_store_writer_t *self, uint64_t offset, const void *data, size_t len,
                       char *err, size_t errlen)
{
    assert (self);
    if (offset != self->received)
        return jm_err (err, errlen, "chunk at offset %" PRIu64 ", expected %" PRIu64, offset,
                       self->received);
    if (len > self->size - self->received)
        return jm_err (err, errlen,
                       "chunk of %zu bytes at offset %" PRIu64 " exceeds the size %" PRIu64, len,
                       offset, self->size);
    if (len == 0)
        return 0;
    if (s_write_all (self->fd, data, len) != 0)
        return jm_err (err, errlen, "cannot write object %s into store '%s': %s", self->hash,
                       self->store->dir, strerror (errno));
    jm_sha256_update (self->sha, data, len);
    self->received += len;
    return 0;
}

uint64_t
jm_store_writer_received (jm_store_writer_t *self)
{
    assert (self);
    return self->received;
}

static void
s_writer_free (jm_store_writer_t *self)
{
    jm_sha256_destroy (&self->sha);
    free (self->tmp_path);
    free (self);
}

void
jm_store_writer_abort (jm_store_writer_t **self_p)
{
    assert (self_p);
    jm_store_writer_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);
    unlink (self->tmp_path);
    s_writer_free (self);
    *self_p = NULL;
}

int
jm_store_writer_commit (jm_store_writer_t **self_p, char *err, size_t errlen)
{
    assert (self_p && *self_p);
    jm_store_writer_t *self = *self_p;
    if (self->received != self->size) {
        jm_err (err, errlen, "received %" PRIu64 " bytes of object %s, expected %" PRIu64,
                self->received, self->hash, self->size);
        jm_store_writer_abort (self_p);
        return -1;
    }
    char actual[JM_HASH_HEX];
    jm_sha256_final (self->sha, actual);
    if (strcmp (actual, self->hash) != 0) {
        jm_err (err, errlen, "content has SHA-256 %s, expected %s", actual, self->hash);
        jm_store_writer_abort (self_p);
        return -1;
    }
    int rc = 0;
    if (s_is_empty (actual)) {
        close (self->fd);
        unlink (self->tmp_path);
    }
    else
        rc = s_install (self->store, self->fd, self->tmp_path, actual, self->size, err, errlen);
    self->fd = -1;
    s_writer_free (self);
    *self_p = NULL;
    return rc;
}

/* Copy all of in to out, by copy_file_range where the kernel allows. */
static int
s_copy_fd (int in, int out)
{
    bool use_cfr = true;
    char *buf = NULL;
    for (;;) {
        if (use_cfr) {
            ssize_t n = copy_file_range (in, NULL, out, NULL, JM_STORE_BUF, 0);
            if (n > 0)
                continue;
            if (n == 0)
                break;
            if (errno == EINTR)
                continue;
            if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) {
                use_cfr = false;
                continue;
            }
            return -1;
        }
        if (!buf) {
            buf = malloc (JM_STORE_BUF);
            assert (buf);
        }
        ssize_t n = read (in, buf, JM_STORE_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free (buf);
            return -1;
        }
        if (n == 0)
            break;
        if (s_write_all (out, buf, (size_t)n) != 0) {
            free (buf);
            return -1;
        }
    }
    free (buf);
    return 0;
}

int
jm_store_copy_out (jm_store_t *self, const char *hash, int dirfd, const char *rel, uint32_t mode,
                   char *err, size_t errlen)
{
    static unsigned counter = 0;
    assert (self);
    if (jm_path_check_rel (rel, "destination", err, errlen))
        return -1;
    if (!jm_hash_valid (hash))
        return jm_err (err, errlen, "cannot write '%s': '%s' is not a SHA-256 hash", rel,
                       hash ? hash : "(null)");
    /* Split rel into its directory (created beneath dirfd) and name. */
    const char *slash = strrchr (rel, '/');
    const char *base = slash ? slash + 1 : rel;
    if (!*base || strcmp (base, ".") == 0)
        return jm_err (err, errlen, "cannot write '%s': it names a directory", rel);
    char suberr[PATH_MAX + 256];
    int pfd;
    if (slash) {
        char *parent = strndup (rel, (size_t)(slash - rel));
        assert (parent);
        pfd = *parent ? jm_path_mkdirs_beneath (dirfd, parent, suberr, sizeof suberr)
                      : jm_path_open_beneath (dirfd, ".", O_RDONLY | O_DIRECTORY, 0, suberr,
                                              sizeof suberr);
        free (parent);
    }
    else
        pfd = jm_path_open_beneath (dirfd, ".", O_RDONLY | O_DIRECTORY, 0, suberr, sizeof suberr);
    if (pfd < 0)
        return jm_err (err, errlen, "cannot write '%s' from object %s: %s", rel, hash, suberr);

    int in = -1;
    if (!s_is_empty (hash)) {
        char path[PATH_MAX];
        in = open (jm_store_path (self, hash, path, sizeof path), O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            int e = errno;
            close (pfd);
            if (e == ENOENT)
                return jm_err (err, errlen, "cannot write '%s': object %s is not in store '%s'",
                               rel, hash, self->dir);
            return jm_err (err, errlen, "cannot write '%s': cannot open object %s: %s", rel, hash,
                           strerror (e));
        }
        /* a copy-out is a use (LRU order) */
        pthread_mutex_lock (&self->lock);
        futimens (in, s_now);
        pthread_mutex_unlock (&self->lock);
    }
    char tmp[NAME_MAX + 1];
    snprintf (tmp, sizeof tmp, ".%.200s.jm-tmp-%d-%u", base, (int)getpid (),
              __atomic_fetch_add (&counter, 1, __ATOMIC_RELAXED));
    int out = openat (pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        if (in >= 0)
            close (in);
        close (pfd);
        return jm_err (err, errlen, "cannot write '%s' from object %s: %s", rel, hash,
                       strerror (e));
    }
    int rc = 0;
    if (in >= 0 && s_copy_fd (in, out) != 0)
        rc = jm_err (err, errlen, "cannot write '%s' from object %s: %s", rel, hash,
                     strerror (errno));
    if (rc == 0 && fchmod (out, (mode_t)(mode & 07777)) != 0)
        rc = jm_err (err, errlen, "cannot set mode %o on '%s': %s", mode & 07777, rel,
                     strerror (errno));
    if (close (out) != 0 && rc == 0)
        rc = jm_err (err, errlen, "cannot write '%s' from object %s: %s", rel, hash,
                     strerror (errno));
    if (rc == 0 && renameat (pfd, tmp, pfd, base) != 0)
        rc = jm_err (err, errlen, "cannot write '%s' from object %s: %s", rel, hash,
                     strerror (errno));
    if (rc != 0)
        unlinkat (pfd, tmp, 0);
    if (in >= 0)
        close (in);
    close (pfd);
    return rc;
}

/* Sums the sizes of all objects (and, if entries_p, lists them; *count_p
   gets their number).  Sets the byte counter.  Called with self->lock held.
   -1 if objects/ cannot be read at all. */
static int
s_scan_locked (jm_store_t *self, s_entry_t **entries_p, size_t *count_p)
{
    int ofd = open (self->objects_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ofd < 0)
        return -1;
    s_entry_t *entries = NULL;
    size_t count = 0, alloc = 0;
    uint64_t total = 0;
    for (int i = 0; i < 256; i++) {
        char sub[3];
        snprintf (sub, sizeof sub, "%02x", i);
        int sfd = openat (ofd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
            continue;
        DIR *d = fdopendir (sfd);
        if (!d) {
            close (sfd);
            continue;
        }
        struct dirent *de;
        while ((de = readdir (d))) {
            /* only real objects: never a stray temp file or the empty hash */
            if (!jm_hash_valid (de->d_name) || memcmp (de->d_name, sub, 2) != 0 ||
                s_is_empty (de->d_name))
                continue;
            if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                continue;
            struct stat st;
            if (fstatat (sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG (st.st_mode))
                continue;
            total += (uint64_t)st.st_size;
            if (!entries_p)
                continue;
            if (count == alloc) {
                alloc = alloc ? alloc * 2 : 1024;
                entries = realloc (entries, alloc * sizeof *entries);
                assert (entries);
            }
            s_entry_t *e = &entries[count++];
            e->mtime = st.st_mtim;
            e->size = (uint64_t)st.st_size;
            memcpy (e->hash, de->d_name, JM_HASH_HEX);
        }
        closedir (d);
    }
    close (ofd);
    self->bytes = total;
    self->bytes_known = true;
    if (entries_p) {
        *entries_p = entries;
        *count_p = count;
    }
    return 0;
}

uint64_t
jm_store_bytes (jm_store_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    if (!self->bytes_known)
        s_scan_locked (self, NULL, NULL);
    uint64_t bytes = self->bytes;
    pthread_mutex_unlock (&self->lock);
    return bytes;
}

static int
s_timespec_cmp (const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    if (a->tv_nsec != b->tv_nsec)
        return a->tv_nsec < b->tv_nsec ? -1 : 1;
    return 0;
}

/* Oldest use first; equal times by hash, so the order is reproducible. */
static int
s_entry_cmp (const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    int c = s_timespec_cmp (&x->mtime, &y->mtime);
    return c ? c : strcmp (x->hash, y->hash);
}

uint64_t
jm_store_evict (jm_store_t *self, uint64_t max_bytes, bool (*keep) (void *arg, const char *hash),
                void *arg, size_t *evicted_p)
{
    assert (self);
    uint64_t freed = 0;
    size_t evicted = 0;
    s_entry_t *entries = NULL;
    size_t count = 0;
    pthread_mutex_lock (&self->evict_lock);
    /* The scan also recounts the bytes, so objects added or removed by
       other processes are accounted for from here on. */
    pthread_mutex_lock (&self->lock);
    int rc = s_scan_locked (self, &entries, &count);
    bool over = self->bytes > max_bytes;
    pthread_mutex_unlock (&self->lock);
    if (rc == 0 && over && count > 0) {
        qsort (entries, count, sizeof *entries, s_entry_cmp);
        int ofd = open (self->objects_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (size_t i = 0; ofd >= 0 && i < count; i++) {
            s_entry_t *e = &entries[i];
            pthread_mutex_lock (&self->lock);
            over = self->bytes > max_bytes;
            pthread_mutex_unlock (&self->lock);
            if (!over)
                break;
            if (keep && keep (arg, e->hash))
                continue;
            char rel[JM_HASH_HEX + 3];
            snprintf (rel, sizeof rel, "%.2s/%s", e->hash, e->hash);
            pthread_mutex_lock (&self->lock);
            struct stat st;
            if (fstatat (ofd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                /* removed by another process since the scan counted it */
                if (errno == ENOENT)
                    self->bytes -= e->size < self->bytes ? e->size : self->bytes;
            }
            else if (S_ISREG (st.st_mode) && s_timespec_cmp (&st.st_mtim, &e->mtime) <= 0 &&
                     unlinkat (ofd, rel, 0) == 0) {
                /* (an object used since the scan is now the newest: kept) */
                uint64_t size = (uint64_t)st.st_size;
                self->bytes -= size < self->bytes ? size : self->bytes;
                freed += size;
                evicted++;
            }
            pthread_mutex_unlock (&self->lock);
        }
        if (ofd >= 0)
            close (ofd);
    }
    pthread_mutex_unlock (&self->evict_lock);
    free (entries);
    if (evicted_p)
        *evicted_p = evicted;
    return freed;
}
