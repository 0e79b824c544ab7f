/*  jm_testutil.h - small file-system helpers shared by the cmocka tests:
    a private temp directory, removing it, writing and reading small
    files, counting directory entries, building paths under a directory,
    and group fixtures that give a test program its own temp directory.

    Header-only (every tests/test_*.c is its own executable): all helpers
    are static and marked unused, so a test pays only for what it calls.
    Include it after <cmocka.h> (the helpers assert with cmocka), and
    define _GNU_SOURCE before the first system header (for nftw and
    program_invocation_short_name). */
#ifndef JM_TESTUTIL_H_INCLUDED
#define JM_TESTUTIL_H_INCLUDED

#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before the first #include to use jm_testutil.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define JM_TEST_UNUSED __attribute__ ((unused))

/* Creates a fresh private directory "$TMPDIR/jm_test_<name>.XXXXXX"
   ($TMPDIR unset or empty: /tmp) and writes its path into buf. Returns
   buf, or NULL if the path does not fit or mkdtemp fails. */
JM_TEST_UNUSED static char *
jm_test_tmpdir (char *buf, size_t len, const char *name)
{
    const char *tmp = getenv ("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int n = snprintf (buf, len, "%s/jm_test_%s.XXXXXX", tmp, name);
    if (n < 0 || (size_t)n >= len)
        return NULL;
    return mkdtemp (buf);
}

JM_TEST_UNUSED static int
jm_test_rm_entry_ (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove (path);
}

/* Removes dir and everything below it, never following symlinks.
   Returns 0, or -1 after saying on stderr what could not be removed. */
JM_TEST_UNUSED static int
jm_test_rmrf (const char *dir)
{
    if (nftw (dir, jm_test_rm_entry_, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        fprintf (stderr, "cannot remove %s: %s\n", dir, strerror (errno));
        return -1;
    }
    return 0;
}

/* Writes len bytes of data to path (created or truncated). */
JM_TEST_UNUSED static void
jm_test_write_bytes (const char *path, const void *data, size_t len)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    assert_int_equal (fwrite (data, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
}

/* Writes the string text to path (created or truncated). */
JM_TEST_UNUSED static void
jm_test_write (const char *path, const char *text)
{
    jm_test_write_bytes (path, text, strlen (text));
}

/* Reads the whole of path. Returns a malloc'ed buffer with a NUL after
   the data (the caller frees it) and its length in *len_p (may be NULL),
   or NULL if path cannot be opened (*len_p is then 0). */
JM_TEST_UNUSED static char *
jm_test_read (const char *path, size_t *len_p)
{
    if (len_p)
        *len_p = 0;
    FILE *f = fopen (path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap);
    assert_non_null (buf);
    size_t n;
    /* read to EOF: /proc files and pipes report no size */
    while ((n = fread (buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc (buf, cap);
            assert_non_null (buf);
        }
    }
    assert_false (ferror (f));
    fclose (f);
    buf[len] = 0;
    if (len_p)
        *len_p = len;
    return buf;
}

/* Entries in dir other than "." and "..", not recursing; dir must exist. */
JM_TEST_UNUSED static size_t
jm_test_count_entries (const char *dir)
{
    DIR *d = opendir (dir);
    assert_non_null (d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir (d)))
        if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
            n++;
    closedir (d);
    return n;
}

/* "dir/rel" in one of 8 static buffers used in turn, so up to 8 results
   can be alive at once (e.g. several arguments of one call). */
JM_TEST_UNUSED static char *
jm_test_path (const char *dir, const char *rel)
{
    static char buf[8][PATH_MAX];
    static unsigned i;
    char *p = buf[i++ % 8];
    int n = snprintf (p, PATH_MAX, "%s/%s", dir, rel);
    assert_in_range (n, 1, PATH_MAX - 1); /* not cut short */
    return p;
}

/* A loopback TCP port free at the time of the call, for a test that must
   name a port before something else binds it. The kernel picks it (bind to
   port 0), and only ports below 49152 are taken: CZMQ's "tcp://...:*"
   binds scan upward from 49152, so a port found that way and closed is
   soon reused by another test binding in parallel (ctest -j). */
JM_TEST_UNUSED static int
jm_test_free_port (void)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        assert_true (fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        int port = -1;
        if (bind (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname (fd, (struct sockaddr *)&a, &len) == 0)
            port = ntohs (a.sin_port);
        close (fd);
        if (port > 0 && port < 49152)
            return port;
    }
    fail_msg ("no free loopback port below 49152 in 200 tries");
    return -1;
}

/* The test program's own temp directory, for cmocka group fixtures:
   cmocka_run_group_tests (tests, jm_test_dir_setup, jm_test_dir_teardown),
   or call them from a fixture that does more. Named after the program
   ("test_db" -> $TMPDIR/jm_test_db.XXXXXX). */
static char jm_test_dir[256] JM_TEST_UNUSED;

JM_TEST_UNUSED static int
jm_test_dir_setup (void **state)
{
    (void)state;
    const char *name = program_invocation_short_name;
    if (strncmp (name, "test_", 5) == 0)
        name += 5;
    return jm_test_tmpdir (jm_test_dir, sizeof jm_test_dir, name) ? 0 : -1;
}

JM_TEST_UNUSED static int
jm_test_dir_teardown (void **state)
{
    (void)state;
    return jm_test_rmrf (jm_test_dir);
}

#endif
