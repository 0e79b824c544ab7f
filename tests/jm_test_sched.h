/*  jm_test_sched.h - what the scheduler dialect tests (test_sched_*.c)
    share: default resources, a recorder of the jm_batch_seen_t reports a
    parser makes, and argv checks.

    Header-only (every tests/test_*.c is its own executable): the helpers
    are static and marked unused.  Include it after <cmocka.h>. */
#ifndef JM_TEST_SCHED_H_INCLUDED
#define JM_TEST_SCHED_H_INCLUDED

#include "jm_batch.h"
#include "jm_resources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JM_TEST_SCHED_UNUSED __attribute__ ((unused))

/* jm_resources_new()'s defaults as a value whose strings are literals, so
   that a test may point any field at a literal or a local array and has
   nothing to free. */
static JM_TEST_SCHED_UNUSED jm_resources_t
jm_test_res (void)
{
    jm_resources_t *d = jm_resources_new ();
    assert_non_null (d);
    /* the defaults hold no lists, no envs and no template */
    assert_int_equal (d->custom_flags.n + d->source_list.n + d->module_unload_list.n +
                          d->module_list.n + d->n_envs + d->prepend_script.n + d->append_script.n,
                      0);
    assert_null (d->header_template);
    jm_resources_t r = *d;
    assert_string_equal (d->queue_name, "");
    r.queue_name = "";
    assert_string_equal (d->custom_gpu_line, "");
    r.custom_gpu_line = "";
    assert_string_equal (d->pe_name, "smp");
    r.pe_name = "smp";
    assert_string_equal (d->job_name, "");
    r.job_name = "";
    memset (&r.custom_flags, 0, sizeof r.custom_flags);
    memset (&r.source_list, 0, sizeof r.source_list);
    memset (&r.module_unload_list, 0, sizeof r.module_unload_list);
    memset (&r.module_list, 0, sizeof r.module_list);
    memset (&r.prepend_script, 0, sizeof r.prepend_script);
    memset (&r.append_script, 0, sizeof r.append_script);
    r.envs = NULL;
    jm_resources_destroy (&d);
    return r;
}

/* ------------------------------------------------------------------ */
/* What a parser reported                                              */

typedef struct {
    char sid[64];
    jm_bstate_t state;
    jm_verdict_t verdict;
    char detail[512];
} jm_test_seen_t;

#define JM_TEST_SEEN_MAX 512

typedef struct {
    size_t n;                           /* reports so far */
    jm_test_seen_t v[JM_TEST_SEEN_MAX]; /* in the order made */
    char log[8192];                     /* "sid=S/VERDICT(detail) ..." with S one
                                           of Q R D E */
} jm_test_seens_t;

static JM_TEST_SCHED_UNUSED const char *
jm_test_state_letter (jm_bstate_t s)
{
    return s == JM_BST_QUEUED ? "Q" : s == JM_BST_RUNNING ? "R" : s == JM_BST_DONE ? "D" : "E";
}

/* A jm_batch_seen_fn: arg is a jm_test_seens_t. */
static JM_TEST_SCHED_UNUSED void
jm_test_on_seen (void *arg, const jm_batch_seen_t *seen)
{
    jm_test_seens_t *l = arg;
    assert_true (l->n < JM_TEST_SEEN_MAX);
    const char *detail = seen->detail ? seen->detail : "";
    jm_test_seen_t *s = &l->v[l->n];
    snprintf (s->sid, sizeof s->sid, "%s", seen->sid);
    s->state = seen->state;
    s->verdict = seen->verdict;
    snprintf (s->detail, sizeof s->detail, "%s", detail);
    char item[700];
    snprintf (item, sizeof item, "%s%s=%s/%s(%s)", l->n ? " " : "", seen->sid,
              jm_test_state_letter (seen->state), jm_verdict_name (seen->verdict), detail);
    strncat (l->log, item, sizeof l->log - strlen (l->log) - 1);
    l->n++;
}

/* The report of sid, NULL if there is none; fails if sid was reported
   more than once. */
static JM_TEST_SCHED_UNUSED const jm_test_seen_t *
jm_test_seen_find (const jm_test_seens_t *l, const char *sid)
{
    const jm_test_seen_t *found = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp (l->v[i].sid, sid) == 0) {
            if (found)
                fail_msg ("%s reported more than once", sid);
            found = &l->v[i];
        }
    return found;
}

/* The report of sid; fails if there is none (or more than one). */
static JM_TEST_SCHED_UNUSED const jm_test_seen_t *
jm_test_seen_get (const jm_test_seens_t *l, const char *sid)
{
    const jm_test_seen_t *found = jm_test_seen_find (l, sid);
    if (!found)
        fail_msg ("%s not reported", sid);
    return found;
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */

/* argv is exactly want (NULL-terminated), and NULL-terminated itself. */
static JM_TEST_SCHED_UNUSED void
jm_test_argv_check (const jm_argv_t *a, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    assert_int_equal (a->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal (a->v[i], want[i]);
    assert_null (a->v[n]);
}

/* argv's words joined with single spaces (malloc'ed). */
static JM_TEST_SCHED_UNUSED char *
jm_test_argv_join (const jm_argv_t *a)
{
    size_t len = 1;
    for (size_t i = 0; i < a->n; i++)
        len += strlen (a->v[i]) + 1;
    char *s = calloc (1, len);
    assert_non_null (s);
    for (size_t i = 0; i < a->n; i++) {
        if (i)
            strcat (s, " ");
        strcat (s, a->v[i]);
    }
    return s;
}

#endif
