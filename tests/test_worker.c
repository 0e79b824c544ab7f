/*  test_worker.c - the file worker: imports and placements happen on its
    thread while the caller's zloop keeps ticking; per-file errors; stop
    and destroy never hang. */
#define _GNU_SOURCE
#include "jm_sha256.h"
#include "jm_store.h"
#include "jm_util.h"
#include "jm_worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include <czmq.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIG_SIZE (50u * 1024 * 1024)

typedef struct {
    char tmp[256];
    char store[300];
    char work[300];
} s_fix_t;

static void
s_write (const char *path, const void *data, size_t len)
{
    char err[512];
    assert_int_equal (jm_write_file_atomic (path, data, len, 0644, err, sizeof err), 0);
}

/* A file of size bytes of varying content (not all one object). */
static void
s_write_big (const char *path, size_t size)
{
    FILE *fp = fopen (path, "w");
    assert_non_null (fp);
    size_t chunk = 1024 * 1024;
    uint32_t *buf = malloc (chunk);
    uint32_t x = 2463534242u;
    for (size_t done = 0; done < size; done += chunk) {
        for (size_t i = 0; i < chunk / 4; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = x;
        }
        assert_int_equal (fwrite (buf, 1, chunk, fp), chunk);
    }
    free (buf);
    assert_int_equal (fclose (fp), 0);
}

static int
s_setup (void **state)
{
    s_fix_t *f = calloc (1, sizeof *f);
    snprintf (f->tmp, sizeof f->tmp, "/tmp/jm_test_worker.XXXXXX");
    assert_non_null (mkdtemp (f->tmp));
    snprintf (f->store, sizeof f->store, "%s/store", f->tmp);
    snprintf (f->work, sizeof f->work, "%s/work", f->tmp);
    assert_int_equal (mkdir (f->work, 0755), 0);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fix_t *f = *state;
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->tmp);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

/* The owner's loop: a 10 ms timer notes the largest gap between ticks; the
   worker's reply ends the loop. */
typedef struct {
    jm_worker_t *w;
    int64_t last_tick, max_gap;
    size_t ticks;
    jm_worker_reply_t *reply;
} s_loop_t;

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_loop_t *l = arg;
    int64_t now = jm_now_ms ();
    if (now - l->last_tick > l->max_gap)
        l->max_gap = now - l->last_tick;
    l->last_tick = now;
    l->ticks++;
    return 0;
}

static int
s_on_reply (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    (void)sock;
    s_loop_t *l = arg;
    l->reply = jm_worker_recv (l->w);
    return l->reply ? -1 : 0;
}

static int
s_on_timeout (zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    (void)arg;
    return -1;
}

/* Runs a loop until the reply comes (or 60 s). */
static jm_worker_reply_t *
s_run_loop (s_loop_t *l)
{
    zloop_t *loop = zloop_new ();
    l->last_tick = jm_now_ms ();
    zloop_timer (loop, 10, 0, s_on_tick, l);
    zloop_timer (loop, 60000, 1, s_on_timeout, l);
    zloop_reader (loop, jm_worker_sock (l->w), s_on_reply, l);
    zloop_start (loop);
    zloop_destroy (&loop);
    return l->reply;
}

static void
test_import_keeps_loop_running (void **state)
{
    s_fix_t *f = *state;
    char path[400], err[512];
    snprintf (path, sizeof path, "%s/a.txt", f->work);
    s_write (path, "hello\n", 6);
    snprintf (path, sizeof path, "%s/t1", f->work);
    assert_int_equal (mkdir (path, 0755), 0);
    snprintf (path, sizeof path, "%s/t1/run.sh", f->work);
    s_write (path, "#!/bin/sh\n", 10);
    assert_int_equal (chmod (path, 0750), 0);
    snprintf (path, sizeof path, "%s/t1/empty", f->work);
    s_write (path, "", 0);
    snprintf (path, sizeof path, "%s/t1/escape", f->work);
    assert_int_equal (symlink ("/etc/passwd", path), 0);
    snprintf (path, sizeof path, "%s/t1/fifo", f->work);
    assert_int_equal (mkfifo (path, 0644), 0);
    char big[400];
    snprintf (big, sizeof big, "%s/t1/big.bin", f->work);
    s_write_big (big, BIG_SIZE);

    jm_worker_t *w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    assert_true (jm_worker_alive (w));
    /* big.bin four times: each is read and hashed in full (the store
       drops the copies), so the import takes long enough to measure */
    jm_worker_item_t items[] = {
        {.dir = NULL, .rel = "a.txt"},    {.dir = "t1", .rel = "run.sh"},
        {.dir = "t1", .rel = "big.bin"},  {.dir = "t1", .rel = "missing"},
        {.dir = "t1", .rel = "escape"},   {.dir = "t1", .rel = "fifo"},
        {.dir = "", .rel = "t1"},         {.dir = "t1", .rel = "empty"},
        {.dir = "nodir", .rel = "x.txt"}, {.dir = "t1", .rel = "big.bin"},
        {.dir = "t1", .rel = "big.bin"},  {.dir = "t1", .rel = "big.bin"},
    };
    size_t n = sizeof items / sizeof items[0];
    s_loop_t l = {.w = w};
    int64_t t0 = jm_now_ms ();
    uint64_t id = jm_worker_import (w, f->work, items, n);
    assert_true (id > 0);
    jm_worker_reply_t *r = s_run_loop (&l);
    int64_t took = jm_now_ms () - t0;
    assert_non_null (r);
    assert_int_equal (r->id, id);
    assert_int_equal (r->n, n);
    fprintf (stderr,
             "import of 4 x %u MiB took %" PRId64 " ms; loop ticked %zu times, largest gap %" PRId64
             " ms\n",
             BIG_SIZE >> 20, took, l.ticks, l.max_gap);
    /* the loop kept ticking all along: its worst gap is a small part of the
       time the import took */
    assert_true (took >= 60);
    assert_true (l.max_gap * 3 < took);
    assert_true (l.ticks >= (size_t)(took / 10 / 3));

    char hash[JM_HASH_HEX];
    jm_sha256_buf ("hello\n", 6, hash);
    assert_int_equal (r->v[0].status, JM_WORKER_OK);
    assert_string_equal (r->v[0].hash, hash);
    assert_int_equal (r->v[0].size, 6);
    assert_int_equal (r->v[0].mode, 0644);
    assert_null (r->v[0].error);
    assert_int_equal (r->v[1].status, JM_WORKER_OK);
    assert_int_equal (r->v[1].mode, 0750);
    /* big.bin: in the store, same content */
    assert_int_equal (r->v[2].status, JM_WORKER_OK);
    assert_int_equal (r->v[2].size, BIG_SIZE);
    uint64_t size;
    assert_int_equal (jm_sha256_file (big, hash, &size), 0);
    assert_string_equal (r->v[2].hash, hash);
    jm_store_t *store = jm_store_new (f->store, err, sizeof err);
    assert_non_null (store);
    assert_true (jm_store_has (store, hash));
    assert_int_equal (jm_store_size (store, hash), BIG_SIZE);
    jm_store_destroy (&store);
    /* per-file errors, each naming the file */
    assert_int_equal (r->v[3].status, JM_WORKER_MISSING);
    assert_int_equal (r->v[4].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[4].error, "'escape'"));
    assert_int_equal (r->v[5].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[5].error, "'fifo' is not a regular file"));
    assert_int_equal (r->v[6].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[6].error, "'t1' is not a regular file"));
    assert_int_equal (r->v[7].status, JM_WORKER_OK);
    assert_string_equal (r->v[7].hash, JM_HASH_EMPTY);
    assert_int_equal (r->v[8].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[8].error, "'x.txt'"));
    assert_non_null (strstr (r->v[8].error, "nodir"));
    for (size_t i = 9; i < n; i++) {
        assert_int_equal (r->v[i].status, JM_WORKER_OK);
        assert_string_equal (r->v[i].hash, r->v[2].hash);
    }
    jm_worker_reply_destroy (&r);

    /* replies come in request order, one per request */
    jm_worker_item_t one = {.rel = "a.txt"};
    uint64_t id1 = jm_worker_import (w, f->work, &one, 1);
    uint64_t id2 = jm_worker_import (w, "/nonexistent/base", &one, 1);
    assert_true (id2 > id1);
    s_loop_t l2 = {.w = w};
    r = s_run_loop (&l2);
    assert_non_null (r);
    assert_int_equal (r->id, id1);
    assert_int_equal (r->v[0].status, JM_WORKER_OK);
    jm_worker_reply_destroy (&r);
    s_loop_t l3 = {.w = w};
    r = s_run_loop (&l3);
    assert_non_null (r);
    assert_int_equal (r->id, id2);
    assert_int_equal (r->v[0].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[0].error, "/nonexistent/base"));
    jm_worker_reply_destroy (&r);
    jm_worker_destroy (&w);
    assert_null (w);
}

static void
test_place (void **state)
{
    s_fix_t *f = *state;
    char path[400], err[512];
    snprintf (path, sizeof path, "%s/src", f->tmp);
    s_write (path, "payload\n", 8);
    jm_store_t *store = jm_store_new (f->store, err, sizeof err);
    assert_non_null (store);
    char hash[JM_HASH_HEX];
    uint64_t size;
    assert_int_equal (jm_store_import (store, path, hash, &size, err, sizeof err), 0);
    jm_store_destroy (&store);
    snprintf (path, sizeof path, "%s/sub", f->work);
    assert_int_equal (mkdir (path, 0755), 0);

    jm_worker_t *w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    jm_worker_item_t items[] = {
        {.dir = "sub", .rel = "deep/x.txt", .hash = hash, .mode = 0640},
        {.dir = "", .rel = "top.txt", .hash = hash, .mode = 0755},
        {.dir = "sub",
         .rel = "gone.txt",
         .hash = "0000000000000000000000000000000000000000000000000000000000000001",
         .mode = 0644},
        {.dir = "sub", .rel = "../evil.txt", .hash = hash, .mode = 0644},
        {.dir = "nodir", .rel = "y.txt", .hash = hash, .mode = 0644},
    };
    uint64_t id = jm_worker_place (w, f->work, items, 5);
    assert_true (id > 0);
    s_loop_t l = {.w = w};
    jm_worker_reply_t *r = s_run_loop (&l);
    assert_non_null (r);
    assert_int_equal (r->id, id);
    assert_int_equal (r->n, 5);
    assert_int_equal (r->v[0].status, JM_WORKER_OK);
    assert_int_equal (r->v[1].status, JM_WORKER_OK);
    assert_int_equal (r->v[2].status, JM_WORKER_FAILED);
    assert_non_null (strstr (r->v[2].error, "gone.txt"));
    assert_non_null (strstr (r->v[2].error, "not in store"));
    assert_int_equal (r->v[3].status, JM_WORKER_FAILED);
    assert_int_equal (r->v[4].status, JM_WORKER_FAILED);
    jm_worker_reply_destroy (&r);
    jm_worker_destroy (&w);

    struct stat st;
    snprintf (path, sizeof path, "%s/sub/deep/x.txt", f->work);
    char *data = jm_read_file (path, NULL, err, sizeof err);
    assert_non_null (data);
    assert_string_equal (data, "payload\n");
    free (data);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0640);
    snprintf (path, sizeof path, "%s/top.txt", f->work);
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0755);
    snprintf (path, sizeof path, "%s/evil.txt", f->work);
    assert_int_not_equal (stat (path, &st), 0);
}

/* Destroy with several big imports queued returns after at most the file
   in progress, not after the whole queue. */
static void
test_destroy_in_flight (void **state)
{
    s_fix_t *f = *state;
    char path[400], err[512];
    snprintf (path, sizeof path, "%s/big.bin", f->work);
    s_write_big (path, BIG_SIZE);
    /* how long one import takes here */
    jm_worker_t *w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    jm_worker_item_t items[] = {{.rel = "big.bin"}};
    int64_t t0 = jm_now_ms ();
    assert_true (jm_worker_import (w, f->work, items, 1) > 0);
    s_loop_t l = {.w = w};
    jm_worker_reply_t *r = s_run_loop (&l);
    int64_t one = jm_now_ms () - t0;
    assert_non_null (r);
    jm_worker_reply_destroy (&r);
    jm_worker_destroy (&w);

    /* a fresh store, so each import really copies */
    snprintf (path, sizeof path, "rm -rf '%s'", f->store);
    assert_int_equal (system (path), 0);
    w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    jm_worker_item_t many[] = {{.rel = "big.bin"}, {.rel = "big.bin"}, {.rel = "big.bin"}};
    for (int i = 0; i < 8; i++)
        assert_true (jm_worker_import (w, f->work, many, 3) > 0);
    usleep (20 * 1000);
    t0 = jm_now_ms ();
    jm_worker_destroy (&w);
    int64_t took = jm_now_ms () - t0;
    fprintf (stderr, "one import: %" PRId64 " ms; destroy with 24 queued: %" PRId64 " ms\n", one,
             took);
    assert_null (w);
    assert_true (took < 2 * one + 500);
    /* no temp file left behind by the abandoned queue */
    snprintf (path, sizeof path, "%s/tmp", f->store);
    zdir_t *dir = zdir_new (path, NULL);
    assert_non_null (dir);
    assert_int_equal (zdir_count (dir), 0);
    zdir_destroy (&dir);

    /* destroy right after new, and with an unread reply, is fine too */
    w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    jm_worker_destroy (&w);
    w = jm_worker_new (f->store, err, sizeof err);
    jm_worker_item_t small[] = {{.rel = "nothing"}};
    assert_true (jm_worker_import (w, f->work, small, 1) > 0);
    usleep (50 * 1000);
    jm_worker_destroy (&w);
}

/* The worker thread ends: recv says so, submits fail at once, destroy
   returns. */
static void
test_worker_stopped (void **state)
{
    s_fix_t *f = *state;
    char err[512];
    jm_worker_t *w = jm_worker_new (f->store, err, sizeof err);
    assert_non_null (w);
    assert_int_equal (zstr_send (jm_worker_sock (w), "$TERM"), 0);
    zpoller_t *p = zpoller_new (jm_worker_sock (w), NULL);
    assert_non_null (zpoller_wait (p, 5000));
    zpoller_destroy (&p);
    assert_null (jm_worker_recv (w));
    assert_false (jm_worker_alive (w));
    jm_worker_item_t items[] = {{.rel = "x"}};
    assert_int_equal (jm_worker_import (w, f->work, items, 1), 0);
    assert_int_equal (jm_worker_place (w, f->work, items, 1), 0);
    int64_t t0 = jm_now_ms ();
    jm_worker_destroy (&w);
    assert_true (jm_now_ms () - t0 < 2000);

    /* a store that cannot be created: NULL and a message naming it */
    w = jm_worker_new ("/proc/jm-no-store", err, sizeof err);
    assert_null (w);
    assert_non_null (strstr (err, "/proc/jm-no-store"));
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_import_keeps_loop_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_place, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_worker_stopped, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
