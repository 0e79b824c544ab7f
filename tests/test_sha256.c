/*  test_sha256.c - SHA-256 against published vectors and sha256sum(1). */
#define _GNU_SOURCE
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "jm_sha256.h"
#include "jm_testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_empty (void **state)
{
    (void)state;
    char hex[JM_HASH_HEX];
    jm_sha256_buf ("", 0, hex);
    assert_string_equal (hex, JM_HASH_EMPTY);
    assert_string_equal (hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    const char *path = jm_test_path (jm_test_dir, "empty");
    jm_test_write (path, "");
    uint64_t size = 99;
    assert_int_equal (jm_sha256_file (path, hex, &size), 0);
    assert_string_equal (hex, JM_HASH_EMPTY);
    assert_int_equal (size, 0);
}

static void
test_abc (void **state)
{
    (void)state;
    char hex[JM_HASH_HEX];
    jm_sha256_buf ("abc", 3, hex);
    assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    /* incremental, then reset and reuse */
    jm_sha256_t *h = jm_sha256_new ();
    jm_sha256_update (h, "a", 1);
    jm_sha256_update (h, "", 0);
    jm_sha256_update (h, "bc", 2);
    jm_sha256_final (h, hex);
    assert_string_equal (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    jm_sha256_reset (h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    jm_sha256_update (h, two, strlen (two));
    jm_sha256_final (h, hex);
    assert_string_equal (hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    jm_sha256_destroy (&h);
    assert_null (h);
}

static void
test_million_a (void **state)
{
    (void)state;
    const char *path = jm_test_path (jm_test_dir, "million");
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    for (int i = 0; i < 1000000; i++)
        fputc ('a', f);
    fclose (f);
    char hex[JM_HASH_HEX];
    uint64_t size = 0;
    assert_int_equal (jm_sha256_file (path, hex, &size), 0);
    assert_string_equal (hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    assert_int_equal (size, 1000000);
}

static void
test_3mib_file (void **state)
{
    (void)state;
    /* 3 MiB + 17 bytes: crosses the 1 MiB read buffer three times */
    size_t n = 3 * 1024 * 1024 + 17;
    const char *path = jm_test_path (jm_test_dir, "big");
    unsigned char *buf = malloc (n);
    assert_non_null (buf);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        buf[i] = (unsigned char)(x >> 16);
    }
    jm_test_write_bytes (path, buf, n);

    char hex[JM_HASH_HEX], hex2[JM_HASH_HEX];
    uint64_t size = 0;
    assert_int_equal (jm_sha256_file (path, hex, &size), 0);
    assert_int_equal (size, n);
    jm_sha256_buf (buf, n, hex2);
    assert_string_equal (hex, hex2);
    free (buf);

    /* an independent implementation agrees */
    char cmd[PATH_MAX + 32];
    snprintf (cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    char line[256] = "";
    assert_non_null (fgets (line, sizeof line, p));
    pclose (p);
    assert_memory_equal (line, hex, 64);

    assert_int_equal (jm_sha256_file ("/nonexistent/jm/file", hex, NULL), -1);
    assert_int_equal (errno, ENOENT);
}

static void
test_hash_valid (void **state)
{
    (void)state;
    assert_true (jm_hash_valid (JM_HASH_EMPTY));
    assert_false (jm_hash_valid (NULL));
    assert_false (jm_hash_valid (""));
    assert_false (jm_hash_valid ("abc"));
    char s[80];
    strcpy (s, JM_HASH_EMPTY);
    s[3] = 'A'; /* uppercase is not our spelling */
    assert_false (jm_hash_valid (s));
    strcpy (s, JM_HASH_EMPTY);
    strcat (s, "0"); /* 65 digits */
    assert_false (jm_hash_valid (s));
    strcpy (s, JM_HASH_EMPTY);
    s[63] = 'g';
    assert_false (jm_hash_valid (s));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_empty),      cmocka_unit_test (test_abc),
        cmocka_unit_test (test_million_a),  cmocka_unit_test (test_3mib_file),
        cmocka_unit_test (test_hash_valid),
    };
    return cmocka_run_group_tests (tests, jm_test_dir_setup, jm_test_dir_teardown);
}
