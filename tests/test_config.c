/*  test_config.c - jobman home resolution and config.yml. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_config.h"
#include "jm_testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
s_write_config (const char *text)
{
    jm_test_write (jm_test_path (jm_test_dir, "config.yml"), text);
}

static void
test_home_resolve (void **state)
{
    (void)state;
    char *saved_jh = getenv ("JOBMAN_HOME") ? strdup (getenv ("JOBMAN_HOME")) : NULL;
    char *saved_home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;

    setenv ("JOBMAN_HOME", "/from/env", 1);
    setenv ("HOME", "/home/someone", 1);
    char *h = jm_home_resolve ("/from/flag/");
    assert_string_equal (h, "/from/flag");
    free (h);
    h = jm_home_resolve (NULL);
    assert_string_equal (h, "/from/env");
    free (h);
    unsetenv ("JOBMAN_HOME");
    h = jm_home_resolve (NULL);
    assert_string_equal (h, "/home/someone/.jobman");
    free (h);

    /* a relative home is made absolute against the current directory */
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    assert_non_null (getcwd (cwd, sizeof (cwd)));
    snprintf (want, sizeof (want), "%s/rel/home", cwd);
    h = jm_home_resolve ("./rel/home");
    assert_string_equal (h, want);
    free (h);
    setenv ("JOBMAN_HOME", "relenv", 1);
    snprintf (want, sizeof (want), "%s/relenv", cwd);
    h = jm_home_resolve (NULL);
    assert_string_equal (h, want);
    free (h);

    if (saved_jh)
        setenv ("JOBMAN_HOME", saved_jh, 1);
    else
        unsetenv ("JOBMAN_HOME");
    if (saved_home)
        setenv ("HOME", saved_home, 1);
    free (saved_jh);
    free (saved_home);
}

static void
test_defaults (void **state)
{
    (void)state;
    char err[512] = "";
    jm_config_t *c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_string_equal (c->home, jm_test_dir);
    assert_string_equal (c->bind, "tcp://127.0.0.1:7100");
    assert_string_equal (c->endpoint, "tcp://127.0.0.1:7100");
    assert_int_equal (c->heartbeat_ms, 1000);
    assert_int_equal (c->chunk_size, 1024 * 1024);
    assert_int_equal (c->window, 8);
    /* no agents to dial, no tunnels; requeue after 10 heartbeats */
    assert_null (c->connect);
    assert_int_equal (c->nconnect, 0);
    assert_null (c->tunnel_machines);
    assert_null (c->tunnel_prefix);
    assert_int_equal (c->tunnel_port, 0);
    assert_int_equal (c->requeue_after_ms, 10000);
    jm_config_destroy (&c);
    assert_null (c);

    /* a file with only comments is the defaults too */
    s_write_config ("# nothing here\n");
    c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_int_equal (c->window, 8);
    jm_config_destroy (&c);
}

static void
test_overrides (void **state)
{
    (void)state;
    char err[512] = "";
    s_write_config ("bind: tcp://*:7200\n"
                    "heartbeat_ms: 250\n"
                    "chunk_size: 65536\n"
                    "window: 3\n");
    jm_config_t *c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_string_equal (c->bind, "tcp://*:7200");
    /* endpoint derived from the wildcard bind */
    assert_string_equal (c->endpoint, "tcp://127.0.0.1:7200");
    assert_int_equal (c->heartbeat_ms, 250);
    assert_int_equal (c->chunk_size, 65536);
    assert_int_equal (c->window, 3);
    jm_config_destroy (&c);

    s_write_config ("bind: tcp://0.0.0.0:7300\nendpoint: tcp://10.0.0.1:7300\n");
    c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_string_equal (c->endpoint, "tcp://10.0.0.1:7300");
    jm_config_destroy (&c);
}

static void
test_fleet_keys (void **state)
{
    (void)state;
    char err[512] = "", want[PATH_MAX + 64];
    s_write_config ("connect:\n"
                    "  - tcp://10.0.0.2:7200\n"
                    "  - 'tcp://login2:7201'\n"
                    "tunnel_machines: machines/MACHINE.yml\n"
                    "tunnel_prefix: dft\n"
                    "tunnel_port: 7300\n"
                    "requeue_after_ms: 4500\n"
                    "heartbeat_ms: 200\n");
    jm_config_t *c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_int_equal (c->nconnect, 2);
    assert_string_equal (c->connect[0], "tcp://10.0.0.2:7200");
    assert_string_equal (c->connect[1], "tcp://login2:7201");
    /* a relative machine file is below the home, where config.yml is */
    snprintf (want, sizeof (want), "%s/machines/MACHINE.yml", jm_test_dir);
    assert_string_equal (c->tunnel_machines, want);
    assert_string_equal (c->tunnel_prefix, "dft");
    assert_int_equal (c->tunnel_port, 7300);
    assert_int_equal (c->requeue_after_ms, 4500);
    jm_config_destroy (&c);

    /* requeue_after_ms 0 = 10 heartbeats, whatever the order of the keys;
       one endpoint on its own is a list of one; ~/ is the user's home */
    char *saved_home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;
    setenv ("HOME", "/home/someone", 1);
    s_write_config ("requeue_after_ms: 0\n"
                    "heartbeat_ms: 300\n"
                    "connect: tcp://127.0.0.1:7201\n"
                    "tunnel_machines: ~/m.yml\n"
                    "tunnel_port: 0\n");
    c = jm_config_load (jm_test_dir, err, sizeof (err));
    if (saved_home)
        setenv ("HOME", saved_home, 1);
    free (saved_home);
    assert_non_null (c);
    assert_int_equal (c->requeue_after_ms, 3000);
    assert_int_equal (c->nconnect, 1);
    assert_string_equal (c->connect[0], "tcp://127.0.0.1:7201");
    assert_string_equal (c->tunnel_machines, "/home/someone/m.yml");
    assert_int_equal (c->tunnel_port, 0);
    jm_config_destroy (&c);

    s_write_config ("tunnel_machines: /abs/machine.json\nconnect: []\n");
    c = jm_config_load (jm_test_dir, err, sizeof (err));
    assert_non_null (c);
    assert_string_equal (c->tunnel_machines, "/abs/machine.json");
    assert_int_equal (c->nconnect, 0);
    jm_config_destroy (&c);

    /* errors name the file, the line and the key */
    struct {
        const char *text, *want;
    } bad[] = {
        {"connect: {a: tcp://x:1}\n", "config.yml:1: 'connect' must be a list"},
        {"connect:\n  - tcp://h:1\n  - h:2\n", "config.yml:3: 'connect' item 2 must be"},
        {"connect: [tcp://*:7200]\n", "'connect' item 1 must be an agent's endpoint"},
        {"connect: [inproc://x]\n", "'connect' item 1"},
        {"connect: [tcp://h:1, tcp://h:1]\n", "'connect' lists 'tcp://h:1' twice"},
        {"connect: [[tcp://h:1]]\n", "'connect' item 1"},
        {"tunnel_port: 65536\n", "config.yml:1: 'tunnel_port' must be an integer from 0 to 65535"},
        {"tunnel_port: http\n", "'tunnel_port' must be an integer"},
        {"requeue_after_ms: -1\n", "'requeue_after_ms' must be an integer"},
        {"tunnel_machines: [a, b]\n", "config.yml:1: 'tunnel_machines' must be a file path"},
        {"tunnel_machines: \"a\\nb\"\n", "'tunnel_machines' must be a file path on one line"},
        {"tunnel_prefix: {x: 1}\n", "'tunnel_prefix' must be"},
        {"tunnel_prefix: dft\n", "'tunnel_prefix' is set but 'tunnel_machines' is not"},
        {"tunnels: x\n", "unknown key 'tunnels' (known: bind, endpoint, heartbeat_ms, "
                         "chunk_size, window, connect, tunnel_machines, tunnel_prefix, "
                         "tunnel_port, requeue_after_ms)"},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        s_write_config (bad[i].text);
        err[0] = 0;
        c = jm_config_load (jm_test_dir, err, sizeof (err));
        if (c || !strstr (err, bad[i].want) || !strstr (err, jm_test_dir))
            fail_msg ("config '%s': got '%s', want '%s'", bad[i].text, err, bad[i].want);
    }
}

static void
test_errors (void **state)
{
    (void)state;
    char err[512] = "", want[PATH_MAX];
    s_write_config ("bind: tcp://127.0.0.1:7100\nbnid: tcp://*:1\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    snprintf (want, sizeof (want), "%s/config.yml:2: unknown key 'bnid'", jm_test_dir);
    assert_int_equal (strncmp (err, want, strlen (want)), 0);

    s_write_config ("window: lots\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "config.yml:1: 'window' must be an integer"));

    s_write_config ("chunk_size: 0\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "'chunk_size'"));

    s_write_config ("chunk_size: 2000000\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "'chunk_size'"));

    s_write_config ("heartbeat_ms: -5\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "'heartbeat_ms'"));

    s_write_config ("bind: localhost:7100\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "'bind' must be a ZeroMQ endpoint"));

    s_write_config ("- a\n- b\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "config.yml:1:"));

    s_write_config ("bind: [unclosed\n");
    assert_null (jm_config_load (jm_test_dir, err, sizeof (err)));
    assert_non_null (strstr (err, "config.yml:"));
}

static void
test_write_default (void **state)
{
    (void)state;
    char err[512] = "", home[PATH_MAX];
    snprintf (home, sizeof (home), "%s/newhome", jm_test_dir);
    assert_int_equal (jm_config_write_default (home, "tcp://*:7400", err, sizeof (err)), 0);
    jm_config_t *c = jm_config_load (home, err, sizeof (err));
    assert_non_null (c);
    assert_string_equal (c->bind, "tcp://*:7400");
    assert_string_equal (c->endpoint, "tcp://127.0.0.1:7400");
    assert_int_equal (c->heartbeat_ms, 1000);
    assert_int_equal (c->chunk_size, 1024 * 1024);
    assert_int_equal (c->window, 8);
    assert_int_equal (c->nconnect, 0);
    assert_null (c->tunnel_machines);
    assert_int_equal (c->requeue_after_ms, 10000);
    jm_config_destroy (&c);

    /* commented for humans, the fleet keys included */
    char *text = jm_test_read (jm_test_path (home, "config.yml"), NULL);
    assert_non_null (text);
    assert_int_equal (text[0], '#');
    assert_non_null (strstr (text, "# tunnel_machines:"));
    assert_non_null (strstr (text, "# connect:"));
    free (text);

    /* never overwritten */
    assert_int_equal (jm_config_write_default (home, NULL, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "already exists"));
    c = jm_config_load (home, err, sizeof (err));
    assert_string_equal (c->bind, "tcp://*:7400");
    jm_config_destroy (&c);

    snprintf (home, sizeof (home), "%s/other", jm_test_dir);
    assert_int_equal (jm_config_write_default (home, "bogus", err, sizeof (err)), -1);
}

static void
test_endpoint_for_connect (void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } cases[] = {
        {"tcp://*:7100", "tcp://127.0.0.1:7100"},
        {"tcp://0.0.0.0:7100", "tcp://127.0.0.1:7100"},
        {"tcp://127.0.0.1:7100", "tcp://127.0.0.1:7100"},
        {"tcp://192.168.1.2:9", "tcp://192.168.1.2:9"},
        {"ipc:///tmp/jobman.sock", "ipc:///tmp/jobman.sock"},
        {"inproc://coord", "inproc://coord"},
        {"ipc://*", "ipc://*"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char *e = jm_endpoint_for_connect (cases[i].in);
        assert_string_equal (e, cases[i].out);
        free (e);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_home_resolve),
        cmocka_unit_test_setup_teardown (test_defaults, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_overrides, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_fleet_keys, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_errors, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_write_default, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test (test_endpoint_for_connect),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
