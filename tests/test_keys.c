/*  test_keys.c - CURVE key pairs and a real CURVE handshake on loopback. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_keys.h"
#include "jm_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *
s_file (const char *name)
{
    return jm_test_path (jm_test_dir, name);
}

static void
test_create_pair (void **state)
{
    (void)state;
    char err[1024] = "";
    assert_int_equal (jm_keys_create (jm_test_dir, "coord", err, sizeof (err)), 0);
    struct stat st;
    assert_int_equal (stat (s_file ("coord.cert_secret"), &st), 0);
    assert_int_equal (st.st_mode & 0777, 0600);
    assert_int_equal (stat (s_file ("coord.cert"), &st), 0);

    zcert_t *sec = jm_keys_load_secret (s_file ("coord.cert_secret"), err, sizeof (err));
    assert_non_null (sec);
    assert_string_equal (zcert_meta (sec, "name"), "coord");
    zcert_t *pub = jm_keys_load_public (s_file ("coord.cert"), err, sizeof (err));
    assert_non_null (pub);
    assert_string_equal (zcert_public_txt (pub), zcert_public_txt (sec));
    assert_string_equal (zcert_meta (pub, "name"), "coord");
    /* the public file carries no secret */
    assert_string_equal (zcert_secret_txt (pub), "0000000000000000000000000000000000000000");
    assert_string_not_equal (zcert_secret_txt (sec), zcert_secret_txt (pub));
    /* a secret file loaded as public: accepted, secret dropped */
    zcert_t *pub2 = jm_keys_load_public (s_file ("coord.cert_secret"), err, sizeof (err));
    assert_non_null (pub2);
    assert_string_equal (zcert_public_txt (pub2), zcert_public_txt (sec));
    assert_string_equal (zcert_secret_txt (pub2), "0000000000000000000000000000000000000000");
    /* the public file cannot be used as a secret one */
    chmod (s_file ("coord.cert"), 0600);
    assert_null (jm_keys_load_secret (s_file ("coord.cert"), err, sizeof (err)));
    assert_non_null (strstr (err, "no secret key"));

    /* two pairs differ */
    assert_int_equal (jm_keys_create (jm_test_dir, "client", err, sizeof (err)), 0);
    zcert_t *other = jm_keys_load_public (s_file ("client.cert"), err, sizeof (err));
    assert_non_null (other);
    assert_string_not_equal (zcert_public_txt (other), zcert_public_txt (pub));
    zcert_destroy (&sec);
    zcert_destroy (&pub);
    zcert_destroy (&pub2);
    zcert_destroy (&other);
}

static void
test_refuse_overwrite (void **state)
{
    (void)state;
    char err[1024] = "";
    assert_int_equal (jm_keys_create (jm_test_dir, "agent", err, sizeof (err)), 0);
    zcert_t *before = jm_keys_load_secret (s_file ("agent.cert_secret"), err, sizeof (err));
    assert_non_null (before);
    assert_int_equal (jm_keys_create (jm_test_dir, "agent", err, sizeof (err)), -1);
    assert_non_null (strstr (err, "already exists"));
    zcert_t *after = jm_keys_load_secret (s_file ("agent.cert_secret"), err, sizeof (err));
    assert_non_null (after);
    assert_true (zcert_eq (before, after));
    zcert_destroy (&before);
    zcert_destroy (&after);

    /* half a pair is not overwritten either */
    unlink (s_file ("agent.cert"));
    assert_int_equal (jm_keys_create (jm_test_dir, "agent", err, sizeof (err)), -1);
    /* names that would make a path are refused */
    assert_int_equal (jm_keys_create (jm_test_dir, "../evil", err, sizeof (err)), -1);
    assert_int_equal (access (s_file ("../evil.cert"), F_OK), -1);
}

static void
test_private_mode (void **state)
{
    (void)state;
    char err[1024] = "", want[1024];
    assert_int_equal (jm_keys_create (jm_test_dir, "coord", err, sizeof (err)), 0);
    const char *sec = s_file ("coord.cert_secret");
    assert_int_equal (jm_keys_check_private (sec, err, sizeof (err)), 0);
    assert_int_equal (chmod (sec, 0644), 0);
    assert_null (jm_keys_load_secret (sec, err, sizeof (err)));
    snprintf (want, sizeof (want),
              "secret key file '%s' is readable by group or others (mode 0644); "
              "run: chmod 600 %s",
              sec, sec);
    assert_string_equal (err, want);
    assert_int_equal (chmod (sec, 0640), 0);
    assert_int_equal (jm_keys_check_private (sec, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "mode 0640"));
    /* following the hint fixes it */
    assert_int_equal (chmod (sec, 0600), 0);
    zcert_t *cert = jm_keys_load_secret (sec, err, sizeof (err));
    assert_non_null (cert);
    zcert_destroy (&cert);

    assert_int_equal (jm_keys_check_private (s_file ("missing"), err, sizeof (err)), -1);
    assert_non_null (strstr (err, "missing"));
}

static void
test_load_public_errors (void **state)
{
    (void)state;
    char err[1024] = "", want[1024];
    const char *junk = s_file ("junk.cert");
    jm_test_write (junk, "this is not\na certificate\n");
    assert_null (jm_keys_load_public (junk, err, sizeof (err)));
    snprintf (want, sizeof (want), "cannot load certificate '%s': not a CZMQ certificate", junk);
    assert_string_equal (err, want);

    jm_test_write (junk, "metadata\n    name = \"x\"\ncurve\n    public-key = \"short\"\n");
    assert_null (jm_keys_load_public (junk, err, sizeof (err)));
    assert_string_equal (err, want);

    assert_null (jm_keys_load_public (s_file ("nothere.cert"), err, sizeof (err)));
    assert_non_null (strstr (err, "nothere.cert"));
}

/*  Server (coord cert, zauth with an allowlist dir) and a client; returns
    true if a message from the client arrives within timeout_ms. */
static bool
s_handshake (zcert_t *server_cert, const char *allowed_dir, zcert_t *client_cert, int timeout_ms)
{
    zactor_t *auth = zactor_new (zauth, NULL);
    assert_non_null (auth);
    assert_int_equal (zstr_sendx (auth, "CURVE", allowed_dir, NULL), 0);
    assert_int_equal (zsock_wait (auth), 0);

    zsock_t *server = zsock_new (ZMQ_ROUTER);
    assert_non_null (server);
    jm_curve_server (server, server_cert);
    int port = zsock_bind (server, "tcp://127.0.0.1:*");
    assert_true (port > 0);

    zsock_t *client = zsock_new (ZMQ_DEALER);
    assert_non_null (client);
    jm_curve_client (client, client_cert, zcert_public_txt (server_cert));
    assert_int_equal (zsock_connect (client, "tcp://127.0.0.1:%d", port), 0);
    assert_int_equal (zstr_send (client, "hello over curve"), 0);

    zpoller_t *poller = zpoller_new (server, NULL);
    bool got = false;
    if (zpoller_wait (poller, timeout_ms) == server) {
        zmsg_t *msg = zmsg_recv (server);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 2);
        zframe_t *id = zmsg_pop (msg);
        char *text = zmsg_popstr (msg);
        assert_string_equal (text, "hello over curve");
        got = true;
        free (text);
        zframe_destroy (&id);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_set_linger (client, 0);
    zsock_destroy (&client);
    zsock_destroy (&server);
    zactor_destroy (&auth);
    return got;
}

static void
test_curve_handshake (void **state)
{
    (void)state;
    char err[1024] = "";
    char *allowed = s_file ("allowed");
    assert_int_equal (mkdir (allowed, 0700), 0);
    assert_int_equal (jm_keys_create (jm_test_dir, "coord", err, sizeof (err)), 0);
    /* the allowed client's pair lives directly in the allowlist dir; only
       the public half matters to zauth */
    assert_int_equal (jm_keys_create (allowed, "client", err, sizeof (err)), 0);
    assert_int_equal (jm_keys_create (jm_test_dir, "intruder", err, sizeof (err)), 0);
    char client_sec[256];
    snprintf (client_sec, sizeof (client_sec), "%s/client.cert_secret", allowed);

    zcert_t *server_cert = jm_keys_load_secret (s_file ("coord.cert_secret"), err, sizeof (err));
    assert_non_null (server_cert);
    zcert_t *client_cert = jm_keys_load_secret (client_sec, err, sizeof (err));
    assert_non_null (client_cert);
    zcert_t *intruder_cert =
        jm_keys_load_secret (s_file ("intruder.cert_secret"), err, sizeof (err));
    assert_non_null (intruder_cert);
    /* zauth should see only public certificates */
    unlink (client_sec);

    assert_true (s_handshake (server_cert, allowed, client_cert, 5000));
    assert_false (s_handshake (server_cert, allowed, intruder_cert, 500));

    zcert_destroy (&server_cert);
    zcert_destroy (&client_cert);
    zcert_destroy (&intruder_cert);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_create_pair, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_refuse_overwrite, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_private_mode, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_load_public_errors, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_curve_handshake, jm_test_dir_setup,
                                         jm_test_dir_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
