/*  test_store.c - the content-addressed store: import, read, verified
    incoming objects, atomic confined copy-out. */
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

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_import_read),
        cmocka_unit_test (test_writer),
        cmocka_unit_test (test_copy_out),
        cmocka_unit_test (test_copy_out_escapes),
    };
    return cmocka_run_group_tests (tests, setup, teardown);
}
