/*  test_path.c - nothing outside a directory is opened because of a name. */
#define _GNU_SOURCE
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "jm_path.h"
#include "jm_testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[256]; /* the confined tree */
static char s_out[256]; /* a directory outside it */
static int s_dirfd = -1;

static void
s_write (const char *rel, const char *content)
{
    jm_test_write (jm_test_path (s_dir, rel), content);
}

static void
s_symlink (const char *target, const char *rel)
{
    assert_int_equal (symlink (target, jm_test_path (s_dir, rel)), 0);
}

static int
setup (void **state)
{
    (void)state;
    if (!jm_test_tmpdir (s_dir, sizeof s_dir, "path") ||
        !jm_test_tmpdir (s_out, sizeof s_out, "path_out"))
        return -1;
    s_dirfd = open (s_dir, O_RDONLY | O_DIRECTORY);
    if (s_dirfd < 0)
        return -1;
    mkdir (jm_test_path (s_dir, "sub"), 0755);
    mkdir (jm_test_path (s_dir, "dir.log"), 0755);
    s_write ("a.log", "A");
    s_write ("b.log", "B");
    s_write ("c.txt", "C");
    s_write ("sub/x.dat", "X");
    s_write ("sub/y.dat", "Y");
    s_write ("sub/z.txt", "Z");
    s_symlink ("/etc", "etc");
    s_symlink ("/etc/passwd", "evil.log");
    s_symlink ("a.log", "good.log");
    s_symlink ("sub/x.dat", "lnk");
    s_symlink (s_out, "out");
    return 0;
}

static int
teardown (void **state)
{
    (void)state;
    close (s_dirfd);
    jm_test_rmrf (s_out);
    return jm_test_rmrf (s_dir);
}

static void
test_check_rel (void **state)
{
    (void)state;
    char err[256];
    assert_int_equal (jm_path_check_rel ("a/b.txt", "f", err, sizeof err), 0);
    assert_int_equal (jm_path_check_rel ("./a", "f", err, sizeof err), 0);
    assert_int_equal (jm_path_check_rel ("a..b/..c", "f", err, sizeof err), 0);

    assert_int_equal (
        jm_path_check_rel ("/etc/passwd", "task_list[3].forward_files[0]", err, sizeof err), -1);
    assert_string_equal (err, "task_list[3].forward_files[0]: '/etc/passwd' is an absolute path");
    assert_int_equal (jm_path_check_rel ("../x", "w", err, sizeof err), -1);
    assert_string_equal (err, "w: '../x' leaves its directory ('..')");
    assert_int_equal (jm_path_check_rel ("a/../../b", "w", err, sizeof err), -1);
    assert_non_null (strstr (err, "'a/../../b' leaves"));
    assert_int_equal (jm_path_check_rel ("a/..", "w", err, sizeof err), -1);
    assert_int_equal (jm_path_check_rel ("..", "w", err, sizeof err), -1);
    assert_int_equal (jm_path_check_rel ("", "outlog of task 7", err, sizeof err), -1);
    assert_non_null (strstr (err, "outlog of task 7"));
    assert_non_null (strstr (err, "empty"));
    assert_int_equal (jm_path_check_rel (NULL, "w", err, sizeof err), -1);
    assert_int_equal (jm_path_check_rel ("a\nb", "w", err, sizeof err), -1);
    assert_non_null (strstr (err, "newline"));

    /* long paths: 4096 bytes is the limit */
    char *p = malloc (5001);
    memset (p, 'a', 5000);
    p[5000] = 0;
    for (int i = 100; i < 5000; i += 100)
        p[i] = '/';
    assert_int_equal (jm_path_check_rel (p, "w", err, sizeof err), -1);
    assert_non_null (strstr (err, "5000 bytes exceeds 4096"));
    p[4096] = 0;
    assert_int_equal (jm_path_check_rel (p, "w", err, sizeof err), 0);
    p[4097 - 1] = 0;
    free (p);
}

static void
s_expect_open_refused (const char *rel, int flags)
{
    char err[512] = "";
    int fd = jm_path_open_beneath (s_dirfd, rel, flags, 0644, err, sizeof err);
    if (fd >= 0)
        close (fd);
    assert_int_equal (fd, -1);
    if (!strstr (err, rel))
        print_message ("error for %s: %s\n", rel, err);
    assert_non_null (strstr (err, rel));
}

static void
s_read_is (int fd, const char *expect)
{
    char buf[64] = "";
    assert_true (fd >= 0);
    ssize_t n = read (fd, buf, sizeof buf - 1);
    close (fd);
    assert_true (n >= 0);
    buf[n] = 0;
    assert_string_equal (buf, expect);
}

static void
test_open_beneath (void **state)
{
    (void)state;
    char err[512] = "";
    s_read_is (jm_path_open_beneath (s_dirfd, "sub/x.dat", O_RDONLY, 0, err, sizeof err), "X");
    /* a symlink that stays inside is fine */
    s_read_is (jm_path_open_beneath (s_dirfd, "lnk", O_RDONLY, 0, err, sizeof err), "X");
    s_read_is (jm_path_open_beneath (s_dirfd, "good.log", O_RDONLY, 0, err, sizeof err), "A");

    /* symlinks out of the tree, absolute paths and '..' are refused */
    s_expect_open_refused ("etc/passwd", O_RDONLY);
    char err2[512];
    int fd = jm_path_open_beneath (s_dirfd, "etc/passwd", O_RDONLY, 0, err2, sizeof err2);
    assert_int_equal (fd, -1);
    assert_non_null (strstr (err2, "leads outside"));
    assert_non_null (strstr (err2, s_dir));
    s_expect_open_refused ("evil.log", O_RDONLY);
    s_expect_open_refused ("/etc/passwd", O_RDONLY);
    s_expect_open_refused ("../etc/passwd", O_RDONLY);
    s_expect_open_refused ("sub/../../x", O_RDONLY);
    s_expect_open_refused ("missing.txt", O_RDONLY);

    /* creating through a symlink to another directory writes nothing there */
    s_expect_open_refused ("out/new.txt", O_WRONLY | O_CREAT);
    s_expect_open_refused ("out/deep/new.txt", O_WRONLY | O_CREAT);
    char path[512];
    snprintf (path, sizeof path, "%s/new.txt", s_out);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/deep", s_out);
    assert_int_equal (access (path, F_OK), -1);
}

static void
test_open_creates_parents (void **state)
{
    (void)state;
    char err[512] = "";
    int fd = jm_path_open_beneath (s_dirfd, "new1/new2/f.txt", O_WRONLY | O_CREAT | O_TRUNC, 0640,
                                   err, sizeof err);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, "hello", 5), 5);
    close (fd);
    char path[512];
    snprintf (path, sizeof path, "%s/new1/new2/f.txt", s_dir);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_size, 5);
    snprintf (path, sizeof path, "%s/new1/new2", s_dir);
    assert_int_equal (stat (path, &st), 0);
    assert_true (S_ISDIR (st.st_mode));

    int dfd = jm_path_mkdirs_beneath (s_dirfd, "m1/./m2//m3", err, sizeof err);
    assert_true (dfd >= 0);
    fd = openat (dfd, "g", O_WRONLY | O_CREAT, 0644);
    assert_true (fd >= 0);
    close (fd);
    close (dfd);
    snprintf (path, sizeof path, "%s/m1/m2/m3/g", s_dir);
    assert_int_equal (access (path, F_OK), 0);
    assert_int_equal (jm_path_mkdirs_beneath (s_dirfd, "etc/x", err, sizeof err), -1);
    assert_int_equal (jm_path_mkdirs_beneath (s_dirfd, "../x", err, sizeof err), -1);
}

/* The fallback walk (no openat2): refuses every symlink. */
static void
test_walk_fallback (void **state)
{
    (void)state;
    setenv ("JM_PATH_NO_OPENAT2", "1", 1);
    char err[512] = "";
    s_read_is (jm_path_open_beneath (s_dirfd, "sub/y.dat", O_RDONLY, 0, err, sizeof err), "Y");
    s_expect_open_refused ("etc/passwd", O_RDONLY);
    s_expect_open_refused ("evil.log", O_RDONLY);
    s_expect_open_refused ("lnk", O_RDONLY);
    s_expect_open_refused ("out/new.txt", O_WRONLY | O_CREAT);
    int fd =
        jm_path_open_beneath (s_dirfd, "w1/w2/f.txt", O_WRONLY | O_CREAT, 0644, err, sizeof err);
    assert_true (fd >= 0);
    close (fd);
    char path[512];
    snprintf (path, sizeof path, "%s/w1/w2/f.txt", s_dir);
    assert_int_equal (access (path, F_OK), 0);
    unsetenv ("JM_PATH_NO_OPENAT2");
}

static void
s_expect_list (zlist_t *l, const char **expect, size_t n)
{
    assert_int_equal (zlist_size (l), n);
    zlist_sort (l, NULL);
    size_t i = 0;
    for (char *s = zlist_first (l); s; s = zlist_next (l))
        assert_string_equal (s, expect[i++]);
}

static void
test_glob (void **state)
{
    (void)state;
    char err[1024];
    zlist_t *m = zlist_new ();
    zlist_autofree (m);
    int n = jm_path_glob_beneath (s_dir, "*.log", m, err, sizeof err);
    assert_int_equal (n, 3);
    const char *logs[] = {"a.log", "b.log", "good.log"};
    s_expect_list (m, logs, 3);
    /* the symlink to /etc/passwd is skipped with a warning */
    assert_non_null (strstr (err, "evil.log"));
    zlist_destroy (&m);

    m = zlist_new ();
    zlist_autofree (m);
    n = jm_path_glob_beneath (s_dir, "sub/*.dat", m, err, sizeof err);
    assert_int_equal (n, 2);
    const char *dats[] = {"sub/x.dat", "sub/y.dat"};
    s_expect_list (m, dats, 2);
    assert_string_equal (err, "");

    /* appends */
    n = jm_path_glob_beneath (s_dir, "c.txt", m, err, sizeof err);
    assert_int_equal (n, 1);
    assert_int_equal (zlist_size (m), 3);
    zlist_destroy (&m);

    m = zlist_new ();
    zlist_autofree (m);
    assert_int_equal (jm_path_glob_beneath (s_dir, "nothing*", m, err, sizeof err), 0);
    assert_int_equal (jm_path_glob_beneath (s_dir, "etc/passw?", m, err, sizeof err), 0);
    assert_non_null (strstr (err, "etc/passwd"));
    assert_int_equal (jm_path_glob_beneath (s_dir, "../*", m, err, sizeof err), -1);
    assert_non_null (strstr (err, "'../*'"));
    assert_int_equal (jm_path_glob_beneath (s_dir, "/etc/*", m, err, sizeof err), -1);
    assert_int_equal (jm_path_glob_beneath (s_dir, "sub/../../*", m, err, sizeof err), -1);
    assert_int_equal (zlist_size (m), 0);
    zlist_destroy (&m);
}

static void
test_mkdirs (void **state)
{
    (void)state;
    char err[512], path[512];
    snprintf (path, sizeof path, "%s/p/q/r", s_dir);
    assert_int_equal (jm_mkdirs (path, 0700, err, sizeof err), 0);
    assert_int_equal (jm_mkdirs (path, 0700, err, sizeof err), 0);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_true (S_ISDIR (st.st_mode));
    snprintf (path, sizeof path, "%s/c.txt/x", s_dir);
    assert_int_equal (jm_mkdirs (path, 0700, err, sizeof err), -1);
    assert_non_null (strstr (err, "c.txt"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_check_rel),
        cmocka_unit_test (test_open_beneath),
        cmocka_unit_test (test_open_creates_parents),
        cmocka_unit_test (test_walk_fallback),
        cmocka_unit_test (test_glob),
        cmocka_unit_test (test_mkdirs),
    };
    return cmocka_run_group_tests (tests, setup, teardown);
}
