/*  test_text.c - the growable string builder (common/jm_text.c): text
    comes out exactly as added, across many reallocations, and running
    out of memory is reported once, by jm_text_take, not as half a text. */
#define _GNU_SOURCE
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "jm_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_empty_is_empty_string (void **state)
{
    (void)state;
    jm_text_t t = JM_TEXT_INIT;
    char *s = jm_text_take (&t);
    assert_non_null (s);
    assert_string_equal (s, "");
    free (s);
    assert_null (t.buf);
    assert_int_equal (t.len, 0);
}

static void
test_add_put_puts (void **state)
{
    (void)state;
    jm_text_t t = JM_TEXT_INIT;
    jm_text_add (&t, "#SBATCH --nodes=%llu\n", 2ULL);
    jm_text_puts (&t, "line two\n");
    jm_text_put (&t, "abcdef", 3);
    jm_text_add (&t, "%s", "");
    jm_text_add (&t, "%%|%c|%5.2f", 'x', 1.5);
    assert_int_equal (t.len, strlen (t.buf));
    char *s = jm_text_take (&t);
    assert_string_equal (s, "#SBATCH --nodes=2\nline two\nabc%|x| 1.50");
    free (s);
    /* reusable after take */
    jm_text_puts (&t, "again");
    s = jm_text_take (&t);
    assert_string_equal (s, "again");
    free (s);
}

static void
test_grows (void **state)
{
    (void)state;
    jm_text_t t = JM_TEXT_INIT;
    char want[100000];
    size_t k = 0;
    for (int i = 0; i < 10000; i++) {
        jm_text_add (&t, "%d,", i);
        k += (size_t)snprintf (want + k, sizeof want - k, "%d,", i);
    }
    /* one piece larger than the whole buffer so far */
    char big[70000];
    memset (big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    jm_text_puts (&t, big);
    assert_int_equal (t.len, k + sizeof big - 1);
    assert_true (t.cap > t.len);
    assert_memory_equal (t.buf, want, k);
    assert_memory_equal (t.buf + k, big, sizeof big - 1);
    assert_int_equal (t.buf[t.len], '\0');
    jm_text_reset (&t);
    assert_null (t.buf);
    assert_int_equal (t.len, 0);
    assert_int_equal (t.cap, 0);
}

static void
test_out_of_memory_is_sticky (void **state)
{
    (void)state;
    jm_text_t t = JM_TEXT_INIT;
    jm_text_puts (&t, "start ");
    /* a piece that cannot fit in memory */
    jm_text_put (&t, "x", SIZE_MAX);
    assert_true (t.oom);
    jm_text_add (&t, "after %d", 1); /* ignored */
    assert_int_equal (t.len, strlen ("start "));
    assert_null (jm_text_take (&t));
    /* reset by take: usable again */
    assert_false (t.oom);
    jm_text_add (&t, "ok");
    char *s = jm_text_take (&t);
    assert_string_equal (s, "ok");
    free (s);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_empty_is_empty_string),
        cmocka_unit_test (test_add_put_puts),
        cmocka_unit_test (test_grows),
        cmocka_unit_test (test_out_of_memory_is_sticky),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
