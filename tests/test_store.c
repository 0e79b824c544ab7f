/*  test_store.c - the content-addressed store: import, read, verified
    incoming objects, atomic confined copy-out, byte count and
    least-recently-used eviction. */
#define _GNU_SOURCE
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "jm_store.h"
#include "jm_testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_sdir[600], s_work[600], s_out[600];
static jm_store_t *s_store;

static int
setup (void **state)
{
    if (jm_test_dir_setup (state) != 0)
        return -1;
    snprintf (s_sdir, sizeof s_sdir, "%s/store/x", jm_test_dir);
    snprintf (s_work, sizeof s_work, "%s/work", jm_test_dir);
    snprintf (s_out, sizeof s_out, "%s/outside", jm_test_dir);
    mkdir (s_work, 0755);
    mkdir (s_out, 0755);
    char err[512];
    s_store = jm_store_new (s_sdir, err, sizeof err);
    return s_store ? 0 : -1;
}

static int
teardown (void **state)
{
    jm_store_destroy (&s_store);
    return jm_test_dir_teardown (state);
}

static size_t
s_tmp_entries (void)
{
    return jm_test_count_entries (jm_test_path (s_sdir, "tmp"));
}

static void
test_import_read (void **state)
{
    (void)state;
    char err[512], src[700], hash[JM_HASH_HEX], expect[JM_HASH_HEX];
    const char *text = "hello, store\n";
    snprintf (src, sizeof src, "%s/in.txt", jm_test_dir);
    jm_test_write (src, text);
    jm_sha256_buf (text, strlen (text), expect);
    assert_false (jm_store_has (s_store, expect));
    assert_int_equal (jm_store_size (s_store, expect), -1);

    uint64_t size = 0;
    assert_int_equal (jm_store_import (s_store, src, hash, &size, err, sizeof err), 0);
    assert_string_equal (hash, expect);
    assert_int_equal (size, strlen (text));
    assert_true (jm_store_has (s_store, hash));
    assert_int_equal (jm_store_size (s_store, hash), (int64_t)strlen (text));

    char path[700];
    jm_store_path (s_store, hash, path, sizeof path);
    char want_path[800];
    snprintf (want_path, sizeof want_path, "%s/objects/%.2s/%s", s_sdir, hash, hash);
    assert_string_equal (path, want_path);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0444);

    char buf[64];
    assert_int_equal (jm_store_read (s_store, hash, 0, buf, sizeof buf, err, sizeof err),
                      (ssize_t)strlen (text));
    assert_memory_equal (buf, text, strlen (text));
    assert_int_equal (jm_store_read (s_store, hash, 7, buf, 5, err, sizeof err), 5);
    assert_memory_equal (buf, "store", 5);
    assert_int_equal (jm_store_read (s_store, hash, 1000, buf, 5, err, sizeof err), 0);

    /* importing the same content again keeps one object and no temp file */
    assert_int_equal (jm_store_import (s_store, src, hash, &size, err, sizeof err), 0);
    assert_string_equal (hash, expect);
    assert_int_equal (s_tmp_entries (), 0);

    /* empty file: always present, never stored */
    snprintf (src, sizeof src, "%s/empty", jm_test_dir);
    jm_test_write (src, "");
    assert_int_equal (jm_store_import (s_store, src, hash, &size, err, sizeof err), 0);
    assert_string_equal (hash, JM_HASH_EMPTY);
    assert_int_equal (size, 0);
    assert_true (jm_store_has (s_store, JM_HASH_EMPTY));
    assert_int_equal (jm_store_size (s_store, JM_HASH_EMPTY), 0);
    jm_store_path (s_store, JM_HASH_EMPTY, path, sizeof path);
    assert_int_equal (access (path, F_OK), -1);

    /* a missing object and a missing source name themselves */
    char missing[JM_HASH_HEX];
    jm_sha256_buf ("not stored", 10, missing);
    assert_int_equal (jm_store_read (s_store, missing, 0, buf, 5, err, sizeof err), -1);
    assert_non_null (strstr (err, missing));
    assert_int_equal (jm_store_import (s_store, "/nonexistent/jm", hash, &size, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, "/nonexistent/jm"));
    assert_false (jm_store_has (s_store, "not-a-hash"));

    /* import from an fd at its current offset */
    snprintf (src, sizeof src, "%s/in.txt", jm_test_dir);
    int fd = open (src, O_RDONLY);
    assert_int_equal (lseek (fd, 7, SEEK_SET), 7);
    assert_int_equal (jm_store_import_fd (s_store, fd, src, hash, &size, err, sizeof err), 0);
    close (fd);
    jm_sha256_buf (text + 7, strlen (text) - 7, expect);
    assert_string_equal (hash, expect);
    assert_int_equal (size, strlen (text) - 7);
}

static void
s_fill (unsigned char *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245 + 12345;
        buf[i] = (unsigned char)(seed >> 16);
    }
}

static void
test_writer (void **state)
{
    (void)state;
    size_t n = 3 * 1024 * 1024 + 5;
    unsigned char *data = malloc (n);
    s_fill (data, n, 7);
    char hash[JM_HASH_HEX], err[512];
    jm_sha256_buf (data, n, hash);

    /* in order, in pieces */
    jm_store_writer_t *w = jm_store_writer_new (s_store, hash, n, err, sizeof err);
    assert_non_null (w);
    size_t piece = 1024 * 1024;
    for (size_t off = 0; off < n; off += piece) {
        size_t len = n - off < piece ? n - off : piece;
        assert_false (jm_store_has (s_store, hash));
        assert_int_equal (jm_store_writer_write (w, off, data + off, len, err, sizeof err), 0);
    }
    assert_int_equal (jm_store_writer_received (w), n);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), 0);
    assert_null (w);
    assert_true (jm_store_has (s_store, hash));
    char path[700];
    size_t got = 0;
    char *back = jm_test_read (jm_store_path (s_store, hash, path, sizeof path), &got);
    assert_int_equal (got, n);
    assert_memory_equal (back, data, n);
    free (back);
    assert_int_equal (s_tmp_entries (), 0);

    /* out of order is refused */
    s_fill (data, 100, 8);
    jm_sha256_buf (data, 100, hash);
    w = jm_store_writer_new (s_store, hash, 100, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w, 50, data + 50, 50, err, sizeof err), -1);
    assert_string_equal (err, "chunk at offset 50, expected 0");
    assert_int_equal (jm_store_writer_write (w, 0, data, 50, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_write (w, 0, data, 50, err, sizeof err), -1);
    assert_string_equal (err, "chunk at offset 0, expected 50");
    /* more than the declared size is refused */
    assert_int_equal (jm_store_writer_write (w, 50, data, 51, err, sizeof err), -1);
    jm_store_writer_abort (&w);
    assert_null (w);
    assert_false (jm_store_has (s_store, hash));
    assert_int_equal (s_tmp_entries (), 0);

    /* wrong content: error names both hashes, nothing is stored */
    w = jm_store_writer_new (s_store, hash, 100, err, sizeof err);
    data[10] ^= 1;
    char actual[JM_HASH_HEX];
    jm_sha256_buf (data, 100, actual);
    assert_int_equal (jm_store_writer_write (w, 0, data, 100, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), -1);
    assert_null (w);
    assert_non_null (strstr (err, hash));
    assert_non_null (strstr (err, actual));
    assert_false (jm_store_has (s_store, hash));
    assert_false (jm_store_has (s_store, actual));
    assert_int_equal (s_tmp_entries (), 0);
    data[10] ^= 1;

    /* too short */
    w = jm_store_writer_new (s_store, hash, 100, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w, 0, data, 60, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), -1);
    assert_non_null (strstr (err, "60"));
    assert_false (jm_store_has (s_store, hash));

    /* right content, wrong declared size */
    w = jm_store_writer_new (s_store, hash, 99, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w, 0, data, 99, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), -1);
    assert_false (jm_store_has (s_store, hash));
    assert_int_equal (s_tmp_entries (), 0);

    /* two writers of the same object both succeed */
    jm_store_writer_t *w1 = jm_store_writer_new (s_store, hash, 100, err, sizeof err);
    jm_store_writer_t *w2 = jm_store_writer_new (s_store, hash, 100, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w1, 0, data, 30, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_write (w2, 0, data, 100, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_write (w1, 30, data + 30, 70, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w2, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w1, err, sizeof err), 0);
    assert_true (jm_store_has (s_store, hash));
    assert_int_equal (jm_store_size (s_store, hash), 100);
    assert_int_equal (s_tmp_entries (), 0);

    assert_null (jm_store_writer_new (s_store, "../../etc/passwd", 1, err, sizeof err));
    free (data);
}

static void
test_copy_out (void **state)
{
    (void)state;
    char err[1024], src[700], hash[JM_HASH_HEX], path[800];
    snprintf (src, sizeof src, "%s/new.txt", jm_test_dir);
    jm_test_write (src, "new content");
    assert_int_equal (jm_store_import (s_store, src, hash, NULL, err, sizeof err), 0);

    int dfd = open (s_work, O_RDONLY | O_DIRECTORY);
    assert_true (dfd >= 0);

    /* creates parents, sets the mode exactly (umask does not apply) */
    assert_int_equal (jm_store_copy_out (s_store, hash, dfd, "a/b/run.sh", 0750, err, sizeof err),
                      0);
    snprintf (path, sizeof path, "%s/a/b/run.sh", s_work);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 07777, 0750);
    size_t n;
    char *back = jm_test_read (path, &n);
    assert_int_equal (n, 11);
    assert_memory_equal (back, "new content", 11);
    free (back);

    /* replacing an existing file is atomic: a reader holding the old file
       keeps seeing the old content, and no temp file is left behind */
    snprintf (path, sizeof path, "%s/a/old.txt", s_work);
    jm_test_write (path, "old");
    int old = open (path, O_RDONLY);
    assert_int_equal (jm_store_copy_out (s_store, hash, dfd, "a/old.txt", 0644, err, sizeof err),
                      0);
    char buf[32] = "";
    assert_int_equal (pread (old, buf, sizeof buf, 0), 3);
    assert_memory_equal (buf, "old", 3);
    close (old);
    back = jm_test_read (path, &n);
    assert_int_equal (n, 11);
    free (back);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 07777, 0644);
    snprintf (path, sizeof path, "%s/a", s_work);
    assert_int_equal (jm_test_count_entries (path), 2); /* b/ and old.txt */

    /* the empty file needs no object */
    assert_int_equal (
        jm_store_copy_out (s_store, JM_HASH_EMPTY, dfd, "empty.dat", 0600, err, sizeof err), 0);
    snprintf (path, sizeof path, "%s/empty.dat", s_work);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_size, 0);
    assert_true (S_ISREG (st.st_mode));

    /* a missing object names the object and the destination */
    char missing[JM_HASH_HEX];
    jm_sha256_buf ("nope", 4, missing);
    assert_int_equal (jm_store_copy_out (s_store, missing, dfd, "m.txt", 0644, err, sizeof err),
                      -1);
    assert_non_null (strstr (err, missing));
    assert_non_null (strstr (err, "m.txt"));
    snprintf (path, sizeof path, "%s/m.txt", s_work);
    assert_int_equal (access (path, F_OK), -1);

    close (dfd);
}

static void
test_copy_out_escapes (void **state)
{
    (void)state;
    char err[1024], src[700], hash[JM_HASH_HEX], path[800];
    snprintf (src, sizeof src, "%s/evil.txt", jm_test_dir);
    jm_test_write (src, "evil");
    assert_int_equal (jm_store_import (s_store, src, hash, NULL, err, sizeof err), 0);
    int dfd = open (s_work, O_RDONLY | O_DIRECTORY);

    snprintf (path, sizeof path, "%s/esc", s_work);
    assert_int_equal (symlink (s_out, path), 0); /* esc -> a directory outside */
    snprintf (path, sizeof path, "%s/victim", s_out);
    jm_test_write (path, "precious");
    snprintf (path, sizeof path, "%s/plink", s_work);
    char victim[800];
    snprintf (victim, sizeof victim, "%s/victim", s_out);
    assert_int_equal (symlink (victim, path), 0); /* plink -> a file outside */

    const char *bad[] = {"../outside/victim",      "/etc/evil", "esc/victim", "esc/new/x",
                         "a/../../outside/victim", "."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal (jm_store_copy_out (s_store, hash, dfd, bad[i], 0644, err, sizeof err),
                          -1);
        assert_non_null (strstr (err, bad[i]));
    }
    /* a symlink as the final name is replaced, never followed */
    assert_int_equal (jm_store_copy_out (s_store, hash, dfd, "plink", 0644, err, sizeof err), 0);
    struct stat st;
    snprintf (path, sizeof path, "%s/plink", s_work);
    assert_int_equal (lstat (path, &st), 0);
    assert_true (S_ISREG (st.st_mode));

    size_t n;
    char *back = jm_test_read (victim, &n);
    assert_int_equal (n, 8);
    assert_memory_equal (back, "precious", 8);
    free (back);
    assert_int_equal (jm_test_count_entries (s_out), 1);
    close (dfd);
}

/* ---- size limit and LRU eviction ---- */

/* A fresh store of its own under the test dir. */
static jm_store_t *
s_lru_store (const char *name, char *dir, size_t dirlen)
{
    char err[512];
    snprintf (dir, dirlen, "%s/%s", jm_test_dir, name);
    jm_store_t *store = jm_store_new (dir, err, sizeof err);
    assert_non_null (store);
    return store;
}

/* Imports size bytes generated from seed; hash into hash. */
static void
s_put (jm_store_t *store, uint32_t seed, size_t size, char hash[JM_HASH_HEX])
{
    unsigned char *data = malloc (size ? size : 1);
    s_fill (data, size, seed);
    char src[700], err[512];
    snprintf (src, sizeof src, "%s/put.bin", jm_test_dir);
    jm_test_write_bytes (src, data, size);
    uint64_t got = 0;
    assert_int_equal (jm_store_import (store, src, hash, &got, err, sizeof err), 0);
    assert_int_equal (got, size);
    free (data);
}

/* Sets an object's last-use time (mtime) to sec seconds after the epoch. */
static void
s_set_used (jm_store_t *store, const char *hash, time_t sec)
{
    char path[800];
    struct timespec ts[2] = {{.tv_sec = sec}, {.tv_sec = sec}};
    assert_int_equal (utimensat (AT_FDCWD, jm_store_path (store, hash, path, sizeof path), ts, 0),
                      0);
}

static time_t
s_used (jm_store_t *store, const char *hash)
{
    char path[800];
    struct stat st;
    assert_int_equal (stat (jm_store_path (store, hash, path, sizeof path), &st), 0);
    return st.st_mtime;
}

static void
test_bytes (void **state)
{
    (void)state;
    char dir[700], err[512], a[JM_HASH_HEX], b[JM_HASH_HEX], c[JM_HASH_HEX], e[JM_HASH_HEX];
    jm_store_t *store = s_lru_store ("bytes", dir, sizeof dir);
    assert_int_equal (jm_store_bytes (store), 0);
    s_put (store, 1, 400, a);
    s_put (store, 2, 2 * 1024 * 1024 + 3, b); /* larger than one read buffer */
    s_put (store, 3, 0, e);                   /* the empty file is never stored or counted */
    assert_string_equal (e, JM_HASH_EMPTY);
    assert_int_equal (jm_store_bytes (store), 400 + 2 * 1024 * 1024 + 3);
    /* the same content again, small and large: counted once */
    s_put (store, 1, 400, a);
    s_put (store, 2, 2 * 1024 * 1024 + 3, b);
    assert_int_equal (jm_store_bytes (store), 400 + 2 * 1024 * 1024 + 3);

    /* a committed incoming object counts, a second commit of it does not,
       an aborted one or one in progress (tmp/) does not */
    unsigned char data[1000];
    s_fill (data, sizeof data, 4);
    jm_sha256_buf (data, sizeof data, c);
    for (int i = 0; i < 2; i++) {
        jm_store_writer_t *w = jm_store_writer_new (store, c, sizeof data, err, sizeof err);
        assert_int_equal (jm_store_writer_write (w, 0, data, sizeof data, err, sizeof err), 0);
        assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), 0);
    }
    uint64_t total = 400 + 2 * 1024 * 1024 + 3 + 1000;
    assert_int_equal (jm_store_bytes (store), total);
    char other[JM_HASH_HEX];
    jm_sha256_buf ("other", 5, other);
    jm_store_writer_t *pending = jm_store_writer_new (store, other, 5, err, sizeof err);
    assert_int_equal (jm_store_writer_write (pending, 0, "oth", 3, err, sizeof err), 0);
    jm_store_writer_t *aborted = jm_store_writer_new (store, other, 5, err, sizeof err);
    assert_int_equal (jm_store_writer_write (aborted, 0, "other", 5, err, sizeof err), 0);
    jm_store_writer_abort (&aborted);
    assert_int_equal (jm_store_bytes (store), total);

    /* re-opened: counted by a scan, same figure; tmp/ is not counted */
    jm_store_t *again = jm_store_new (dir, err, sizeof err);
    assert_non_null (again);
    assert_int_equal (jm_store_bytes (again), total);
    /* objects added before the first jm_store_bytes are counted once */
    jm_store_t *third = jm_store_new (dir, err, sizeof err);
    char d[JM_HASH_HEX];
    s_put (third, 5, 50, d);
    assert_int_equal (jm_store_bytes (third), total + 50);
    s_put (third, 6, 60, d);
    assert_int_equal (jm_store_bytes (third), total + 110);
    jm_store_destroy (&third);
    jm_store_destroy (&again);

    jm_store_writer_abort (&pending);
    jm_store_destroy (&store);
}

static void
test_evict_lru (void **state)
{
    (void)state;
    char dir[700], h[6][JM_HASH_HEX];
    jm_store_t *store = s_lru_store ("lru", dir, sizeof dir);
    /* six objects of 100 bytes, last used in the order 0, 1, ..., 5 */
    for (int i = 0; i < 6; i++) {
        s_put (store, 100 + (uint32_t)i, 100, h[i]);
        s_set_used (store, h[i], 1000000000 + i * 10);
    }
    assert_int_equal (jm_store_bytes (store), 600);

    /* under the limit: nothing to do */
    size_t n = 99;
    assert_int_equal (jm_store_evict (store, 600, NULL, NULL, &n), 0);
    assert_int_equal (n, 0);

    /* touching the oldest makes it the newest: 1 and 2 go, 0 stays */
    jm_store_touch (store, h[0]);
    assert_true (s_used (store, h[0]) > 1000000000 + 100);
    assert_int_equal (jm_store_evict (store, 400, NULL, NULL, &n), 200);
    assert_int_equal (n, 2);
    assert_true (jm_store_has (store, h[0]));
    assert_false (jm_store_has (store, h[1]));
    assert_false (jm_store_has (store, h[2]));
    for (int i = 3; i < 6; i++)
        assert_true (jm_store_has (store, h[i]));
    assert_int_equal (jm_store_bytes (store), 400);

    /* importing an object already present is a use: 3 survives, 4 goes */
    s_put (store, 103, 100, h[3]);
    assert_int_equal (jm_store_evict (store, 300, NULL, NULL, &n), 100);
    assert_int_equal (n, 1);
    assert_true (jm_store_has (store, h[3]));
    assert_false (jm_store_has (store, h[4]));

    /* so is committing it again, and copying it out: 0 was used last, but
       3 and 5 are used after it */
    char err[512];
    s_set_used (store, h[3], 1000000001);
    s_set_used (store, h[5], 1000000002);
    s_set_used (store, h[0], 1000000003);
    unsigned char data[100];
    s_fill (data, sizeof data, 105);
    jm_store_writer_t *w = jm_store_writer_new (store, h[5], sizeof data, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w, 0, data, sizeof data, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), 0);
    int dfd = open (s_work, O_RDONLY | O_DIRECTORY);
    assert_int_equal (jm_store_copy_out (store, h[3], dfd, "lru3.bin", 0644, err, sizeof err), 0);
    close (dfd);
    assert_int_equal (jm_store_evict (store, 200, NULL, NULL, &n), 100);
    assert_false (jm_store_has (store, h[0]));
    assert_true (jm_store_has (store, h[3]));
    assert_true (jm_store_has (store, h[5]));

    /* equal last-use times: the smaller hash goes first (objects in
       different subdirectories; see test_evict_ties for the same one) */
    s_set_used (store, h[3], 1000000000);
    s_set_used (store, h[5], 1000000000);
    int first = strcmp (h[3], h[5]) < 0 ? 3 : 5;
    assert_int_equal (jm_store_evict (store, 150, NULL, NULL, &n), 100);
    assert_false (jm_store_has (store, h[first]));
    assert_true (jm_store_has (store, h[first == 3 ? 5 : 3]));
    assert_int_equal (jm_store_bytes (store), 100);

    /* touching the empty hash or a missing object is harmless */
    jm_store_touch (store, JM_HASH_EMPTY);
    jm_store_touch (store, h[1]);
    jm_store_touch (store, "not-a-hash");
    assert_false (jm_store_has (store, h[1]));
    assert_int_equal (jm_store_bytes (store), 100);

    /* an evicted object can be stored again, and counts again */
    s_put (store, 101, 100, h[1]);
    assert_true (jm_store_has (store, h[1]));
    assert_int_equal (jm_store_bytes (store), 200);
    jm_store_destroy (&store);
}

/* Two objects in the same objects/ subdirectory with the same last-use
   time: the smaller hash goes first, whichever was stored first. */
static void
test_evict_ties (void **state)
{
    (void)state;
    /* find two 64-byte contents whose hashes share the first two digits */
    unsigned char data[64][64];
    char h[64][JM_HASH_HEX];
    int x = -1, y = -1;
    for (int i = 0; i < 64 && x < 0; i++) {
        s_fill (data[i], 64, 300 + (uint32_t)i);
        jm_sha256_buf (data[i], 64, h[i]);
        for (int j = 0; j < i && x < 0; j++)
            if (memcmp (h[i], h[j], 2) == 0) {
                x = j;
                y = i;
            }
    }
    assert_true (x >= 0); /* ~1 - e^-8 likely with 64 tries; the seeds are fixed */
    int small = strcmp (h[x], h[y]) < 0 ? x : y, large = small == x ? y : x;
    for (int round = 0; round < 2; round++) {
        char dir[700], err[512], name[32];
        snprintf (name, sizeof name, "ties%d", round);
        jm_store_t *store = s_lru_store (name, dir, sizeof dir);
        int order[2] = {round ? large : small, round ? small : large};
        for (int k = 0; k < 2; k++) {
            char hash[JM_HASH_HEX], src[700];
            snprintf (src, sizeof src, "%s/tie.bin", jm_test_dir);
            jm_test_write_bytes (src, data[order[k]], 64);
            assert_int_equal (jm_store_import (store, src, hash, NULL, err, sizeof err), 0);
            s_set_used (store, hash, 1000000000);
        }
        size_t n = 0;
        assert_int_equal (jm_store_evict (store, 64, NULL, NULL, &n), 64);
        assert_int_equal (n, 1);
        assert_false (jm_store_has (store, h[small]));
        assert_true (jm_store_has (store, h[large]));
        jm_store_destroy (&store);
    }
}

typedef struct {
    char (*hashes)[JM_HASH_HEX];
    size_t count;
    size_t calls;
} s_keep_t;

static bool
s_keep_listed (void *arg, const char *hash)
{
    s_keep_t *k = arg;
    k->calls++;
    for (size_t i = 0; i < k->count; i++)
        if (strcmp (k->hashes[i], hash) == 0)
            return true;
    return false;
}

static bool
s_keep_all (void *arg, const char *hash)
{
    (void)arg;
    (void)hash;
    return true;
}

/* Another thread uses the object just as eviction reaches it (simulated
   from keep, which runs right before the removal): it is kept. */
static bool
s_keep_none_but_touch (void *arg, const char *hash)
{
    jm_store_touch (arg, hash);
    return false;
}

static void
test_evict_keep (void **state)
{
    (void)state;
    char dir[700], err[512], h[5][JM_HASH_HEX];
    jm_store_t *store = s_lru_store ("keep", dir, sizeof dir);
    for (int i = 0; i < 5; i++) {
        s_put (store, 200 + (uint32_t)i, 1000 + (size_t)i, h[i]);
        s_set_used (store, h[i], 1000000000 + i);
    }
    uint64_t total = 5 * 1000 + 0 + 1 + 2 + 3 + 4;

    /* a file being received (in tmp/) and a stray file in tmp/ */
    char other[JM_HASH_HEX];
    jm_sha256_buf ("incoming", 8, other);
    jm_store_writer_t *w = jm_store_writer_new (store, other, 8, err, sizeof err);
    assert_int_equal (jm_store_writer_write (w, 0, "inco", 4, err, sizeof err), 0);
    char stray[800];
    snprintf (stray, sizeof stray, "%s/tmp/stray", dir);
    jm_test_write (stray, "stray");
    size_t tmp_before = jm_test_count_entries (jm_test_path (dir, "tmp"));
    assert_int_equal (tmp_before, 2);

    /* limit 0, keep-all: nothing removed */
    size_t n = 99;
    assert_int_equal (jm_store_evict (store, 0, s_keep_all, NULL, &n), 0);
    assert_int_equal (n, 0);
    for (int i = 0; i < 5; i++)
        assert_true (jm_store_has (store, h[i]));
    assert_int_equal (jm_store_bytes (store), total);

    /* keep protects the two oldest; the rest goes */
    s_keep_t k = {.hashes = h, .count = 2};
    assert_int_equal (jm_store_evict (store, 0, s_keep_listed, &k, &n), 1002 + 1003 + 1004);
    assert_int_equal (n, 3);
    assert_true (k.calls >= 5);
    assert_true (jm_store_has (store, h[0]));
    assert_true (jm_store_has (store, h[1]));
    for (int i = 2; i < 5; i++)
        assert_false (jm_store_has (store, h[i]));
    assert_int_equal (jm_store_bytes (store), 2001);

    /* objects used while eviction runs are not removed */
    assert_int_equal (jm_store_evict (store, 0, s_keep_none_but_touch, store, &n), 0);
    assert_int_equal (n, 0);
    assert_int_equal (jm_store_bytes (store), 2001);

    /* keep NULL, limit 0: the store is emptied, tmp/ is untouched */
    assert_int_equal (jm_store_evict (store, 0, NULL, NULL, NULL), 2001);
    assert_int_equal (jm_store_bytes (store), 0);
    assert_false (jm_store_has (store, h[0]));
    assert_true (jm_store_has (store, JM_HASH_EMPTY));
    assert_int_equal (jm_test_count_entries (jm_test_path (dir, "tmp")), tmp_before);
    size_t len = 0;
    char *back = jm_test_read (stray, &len);
    assert_int_equal (len, 5);
    free (back);
    /* the incoming object still completes and counts */
    assert_int_equal (jm_store_writer_write (w, 4, "ming", 4, err, sizeof err), 0);
    assert_int_equal (jm_store_writer_commit (&w, err, sizeof err), 0);
    assert_true (jm_store_has (store, other));
    assert_int_equal (jm_store_bytes (store), 8);

    /* objects removed behind the store's back are recounted by evict */
    char path[800];
    unlink (jm_store_path (store, other, path, sizeof path));
    assert_int_equal (jm_store_evict (store, 0, NULL, NULL, &n), 0);
    assert_int_equal (n, 0);
    assert_int_equal (jm_store_bytes (store), 0);
    jm_store_destroy (&store);
}

/* Several threads import (the same 50 objects, so installs of one object
   race) and touch while another evicts; afterwards the counter equals a
   fresh scan and no temp file is left. */
typedef struct {
    jm_store_t *store;
    uint32_t seed;
    int failures;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *wk = arg;
    char src[700], err[512], hash[JM_HASH_HEX];
    snprintf (src, sizeof src, "%s/worker-%u.bin", jm_test_dir, wk->seed);
    unsigned char data[3000];
    for (uint32_t i = 0; i < 300; i++) {
        size_t size = 1 + ((i % 50) * 37) % sizeof data;
        s_fill (data, size, i % 50);
        jm_test_write_bytes (src, data, size);
        if (jm_store_import (wk->store, src, hash, NULL, err, sizeof err) != 0)
            wk->failures++;
        jm_store_touch (wk->store, hash);
        (void)jm_store_bytes (wk->store);
    }
    return NULL;
}

static void *
s_evictor (void *arg)
{
    s_worker_t *wk = arg;
    for (int i = 0; i < 40; i++)
        jm_store_evict (wk->store, 20000, NULL, NULL, NULL);
    return NULL;
}

static void
test_evict_threads (void **state)
{
    (void)state;
    char dir[700], err[512];
    jm_store_t *store = s_lru_store ("threads", dir, sizeof dir);
    s_worker_t wk[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (s_worker_t){.store = store, .seed = (uint32_t)i + 1};
        assert_int_equal (pthread_create (&th[i], NULL, i == 3 ? s_evictor : s_worker, &wk[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join (th[i], NULL);
        assert_int_equal (wk[i].failures, 0);
    }
    uint64_t counted = jm_store_bytes (store);
    jm_store_t *fresh = jm_store_new (dir, err, sizeof err);
    assert_int_equal (jm_store_bytes (fresh), counted);
    jm_store_destroy (&fresh);
    jm_store_evict (store, 20000, NULL, NULL, NULL);
    assert_true (jm_store_bytes (store) <= 20000);
    assert_int_equal (jm_test_count_entries (jm_test_path (dir, "tmp")), 0);
    jm_store_destroy (&store);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_import_read),   cmocka_unit_test (test_writer),
        cmocka_unit_test (test_copy_out),      cmocka_unit_test (test_copy_out_escapes),
        cmocka_unit_test (test_bytes),         cmocka_unit_test (test_evict_lru),
        cmocka_unit_test (test_evict_ties),    cmocka_unit_test (test_evict_keep),
        cmocka_unit_test (test_evict_threads),
    };
    return cmocka_run_group_tests (tests, setup, teardown);
}
