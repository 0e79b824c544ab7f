/*  jm_keys.h - CURVE key pairs (CZMQ zcert) and socket security set-up.

    A pair is two files: <name>.cert (public) and <name>.cert_secret (mode
    0600).  A secret file readable by group or others is refused.          */
#ifndef JM_KEYS_H
#define JM_KEYS_H

#include <czmq.h>

/* Create dir/<name>.cert and dir/<name>.cert_secret (0600).  Refuses to
   overwrite an existing pair (-1 + err).  metadata "name" is set to name. */
int jm_keys_create (const char *dir, const char *name, char *err, size_t errlen);

/* -1 + err if path's mode lets group or others read it (or it's missing). */
int jm_keys_check_private (const char *path, char *err, size_t errlen);

/* Load a secret cert (path of the _secret file) after the mode check. */
zcert_t *jm_keys_load_secret (const char *secret_path, char *err, size_t errlen);
/* Load a public cert file; a file holding a secret key is accepted but the
   secret is not used.  NULL + err naming the file. */
zcert_t *jm_keys_load_public (const char *path, char *err, size_t errlen);

/* Make sock a CURVE server with cert (ZAP domain "jobman"). */
void jm_curve_server (zsock_t *sock, zcert_t *cert);
/* Make sock a CURVE client with own cert and the server's public key. */
void jm_curve_client (zsock_t *sock, zcert_t *own, const char *server_public_z85);

#endif
