/*  jm_config.h - the jobman home and its config file.

    Home: --home DIR, else $JOBMAN_HOME, else ~/.jobman.  Coordinator home:
      coord.cert, coord.cert_secret   coordinator's CURVE pair
      client.cert, client.cert_secret the local client's pair (allowed)
      allowed/<name>.cert             allowlist of public keys
      config.yml                      bind, endpoint, heartbeat_ms, ...
      state.db                        SQLite state (WAL)
      store/                          content-addressed file store
      coord.endpoint                  written by 'run': where clients connect
    Agent home: agent.cert, agent.cert_secret, store/.                     */
#ifndef JM_CONFIG_H
#define JM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *home;            /* absolute */
    char *bind;            /* default tcp://127.0.0.1:7100 */
    char *endpoint;        /* for clients; default derived from bind */
    uint64_t heartbeat_ms; /* default 1000 */
    uint64_t chunk_size;   /* default 1 MiB */
    uint64_t window;       /* chunks in flight per peer, default 8 */
} jm_config_t;

/* Resolve the home directory (malloc'ed absolute path). */
char *jm_home_resolve (const char *flag_home);

/* Load <home>/config.yml (missing file = defaults).  Unknown keys or bad
   values -> NULL + err naming file and key. */
jm_config_t *jm_config_load (const char *home, char *err, size_t errlen);
void jm_config_destroy (jm_config_t **self_p);
/* Write a default config.yml for home (refuses to overwrite). */
int jm_config_write_default (const char *home, const char *bind, char *err, size_t errlen);

/* Turn a bind endpoint into one a local client can connect to
   (host "*" or "0.0.0.0" becomes 127.0.0.1). malloc'ed. */
char *jm_endpoint_for_connect (const char *bind);

#endif
