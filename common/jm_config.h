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
    /* Agents started with --bind: the coordinator's ROUTER connects to
       each of these tcp:// (or ipc://) endpoints.  NULL/0 when none. */
    char **connect;
    size_t nconnect;
    /* Machine file (thkit MACHINE.yml, dpdispatcher/dpgen machine.json)
       whose entries with a remote_profile.hostname get a reverse ssh
       tunnel; NULL = no tunnels.  Absolute: a relative path is taken
       relative to the home, a leading ~/ is the user's home.  The file is
       read by the coordinator (jm_machines_load), not here. */
    char *tunnel_machines;
    char *tunnel_prefix;       /* entry name prefix for tunnel_machines, or NULL */
    unsigned tunnel_port;      /* port on the login node's 127.0.0.1 that
                                  agents dial; 0 = the coordinator's bound port */
    uint64_t requeue_after_ms; /* a silent site's work is requeued after this;
                                  0 in the file = 10 x heartbeat_ms (so never 0
                                  after jm_config_load) */
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
