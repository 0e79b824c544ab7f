/*  jm_keys.c - CURVE key pairs on disk (CZMQ zcert format) and socket set-up.

    Certificates are read with zconfig rather than zcert_load: zcert_load
    silently prefers "<file>_secret" when it exists, and we want each call
    to read exactly the file it names. */
#include "jm_keys.h"
#include "jm_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char *
s_path (const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen (dir) + strlen (name) + strlen (suffix) + 2;
    char *p = malloc (n);
    assert (p);
    snprintf (p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static bool
s_name_ok (const char *name)
{
    if (!*name || strlen (name) > 128)
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum ((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
            return false;
    return name[0] != '.';
}

int
jm_keys_create (const char *dir, const char *name, char *err, size_t errlen)
{
    assert (dir && name);
    if (!s_name_ok (name))
        return jm_err (err, errlen,
                       "key name '%s' is not valid (letters, digits, '-', '_', '.'; "
                       "at most 128 characters)",
                       name);
    struct stat st;
    if (stat (dir, &st) != 0) {
        if (errno != ENOENT || mkdir (dir, 0700) != 0)
            return jm_err (err, errlen, "cannot create key directory '%s': %s", dir,
                           strerror (errno));
    }
    else if (!S_ISDIR (st.st_mode))
        return jm_err (err, errlen, "key directory '%s' is not a directory", dir);

    char *pub = s_path (dir, name, ".cert");
    char *sec = s_path (dir, name, ".cert_secret");
    int rc = 0;
    if (lstat (pub, &st) == 0 || lstat (sec, &st) == 0) {
        rc = jm_err (err, errlen,
                     "key pair '%s' already exists in '%s'; not overwriting it (remove "
                     "%s and %s first if you really want a new one)",
                     name, dir, pub, sec);
        goto done;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        rc = jm_err (err, errlen, "cannot generate a CURVE key pair: %s", strerror (errno));
        goto done;
    }
    zcert_set_meta (cert, "name", "%s", name);
    /* secret first: if anything fails we never leave a public half whose
       secret is lost */
    if (zcert_save_secret (cert, sec) != 0) {
        rc = jm_err (err, errlen, "cannot write secret key file '%s': %s", sec, strerror (errno));
        unlink (sec);
    }
    else if (chmod (sec, 0600) != 0 || stat (sec, &st) != 0 || (st.st_mode & 0777) != 0600) {
        rc = jm_err (err, errlen, "cannot make secret key file '%s' private (mode 0600): %s", sec,
                     strerror (errno));
        unlink (sec);
    }
    else if (zcert_save_public (cert, pub) != 0) {
        rc = jm_err (err, errlen, "cannot write public key file '%s': %s", pub, strerror (errno));
        unlink (pub);
        unlink (sec);
    }
    else
        chmod (pub, 0644);
    zcert_destroy (&cert);
done:
    free (pub);
    free (sec);
    return rc;
}

int
jm_keys_check_private (const char *path, char *err, size_t errlen)
{
    assert (path);
    struct stat st;
    if (stat (path, &st) != 0)
        return jm_err (err, errlen, "cannot read secret key file '%s': %s", path, strerror (errno));
    if (!S_ISREG (st.st_mode))
        return jm_err (err, errlen, "secret key file '%s' is not a regular file", path);
    if (st.st_mode & 077)
        return jm_err (err, errlen,
                       "secret key file '%s' is readable by group or others (mode %04o); "
                       "run: chmod 600 %s",
                       path, (unsigned)(st.st_mode & 07777), path);
    return 0;
}

/*  Read a zcert file; NULL + err.  want_secret: the secret key must be
    present and is kept; otherwise it is dropped. */
static zcert_t *
s_load (const char *path, bool want_secret, char *err, size_t errlen)
{
    struct stat st;
    if (stat (path, &st) != 0) {
        jm_err (err, errlen, "cannot load certificate '%s': %s", path, strerror (errno));
        return NULL;
    }
    if (!S_ISREG (st.st_mode) || st.st_size > 65536) {
        jm_err (err, errlen, "cannot load certificate '%s': not a CZMQ certificate", path);
        return NULL;
    }
    /* zconfig_str_load, not zconfig_load: the latter leaks on a syntax error */
    char *text = jm_read_file (path, NULL, err, errlen);
    if (!text)
        return NULL;
    zconfig_t *root = zconfig_str_load (text);
    free (text);
    const char *pub_txt = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    const char *sec_txt = root ? zconfig_get (root, "/curve/secret-key", NULL) : NULL;
    byte pub[32], sec[32];
    memset (sec, 0, sizeof (sec));
    if (!pub_txt || strlen (pub_txt) != 40 || !zmq_z85_decode (pub, pub_txt)) {
        jm_err (err, errlen, "cannot load certificate '%s': not a CZMQ certificate", path);
        zconfig_destroy (&root);
        return NULL;
    }
    if (want_secret) {
        if (!sec_txt || strlen (sec_txt) != 40 || !zmq_z85_decode (sec, sec_txt)) {
            jm_err (err, errlen, "cannot load certificate '%s': it holds no secret key", path);
            zconfig_destroy (&root);
            return NULL;
        }
    }
    zcert_t *cert = zcert_new_from (pub, sec);
    assert (cert);
    zconfig_t *meta = zconfig_locate (root, "/metadata");
    for (zconfig_t *item = meta ? zconfig_child (meta) : NULL; item; item = zconfig_next (item))
        if (zconfig_value (item))
            zcert_set_meta (cert, zconfig_name (item), "%s", zconfig_value (item));
    zconfig_destroy (&root);
    memset (sec, 0, sizeof (sec));
    return cert;
}

zcert_t *
jm_keys_load_secret (const char *secret_path, char *err, size_t errlen)
{
    assert (secret_path);
    if (jm_keys_check_private (secret_path, err, errlen))
        return NULL;
    return s_load (secret_path, true, err, errlen);
}

zcert_t *
jm_keys_load_public (const char *path, char *err, size_t errlen)
{
    assert (path);
    return s_load (path, false, err, errlen);
}

void
jm_curve_server (zsock_t *sock, zcert_t *cert)
{
    assert (sock && cert);
    zsock_set_zap_domain (sock, "jobman");
    zcert_apply (cert, sock);
    zsock_set_curve_server (sock, 1);
}

void
jm_curve_client (zsock_t *sock, zcert_t *own, const char *server_public_z85)
{
    assert (sock && own && server_public_z85);
    zcert_apply (own, sock);
    zsock_set_curve_serverkey (sock, server_public_z85);
}
