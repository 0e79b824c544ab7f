/*  jm_coord.h - jobman-coord: the coordinator library.

    The coordinator holds the state of every submission in SQLite
    (<home>/state.db) and serves agents and clients on one CURVE ROUTER
    socket; ZAP (zauth) admits only keys in <home>/allowed/.  The protocol
    is proto/PROTOCOL.md.

    Task ids in JOB, TASK_STARTED and TASK_END are (job_id << 32) | idx,
    where idx is the task's index in its submission: TASK_STARTED and
    TASK_END carry no job id, and two submissions' tasks may share an idx
    at one site.  A plain idx (< 2^32) is accepted too and resolved among
    the site's outstanding jobs.  Clients see the plain idx.              */
#ifndef JM_COORD_H
#define JM_COORD_H

#include <czmq.h>
#include <stddef.h>

/* Task id on the wire for task idx of job job_id, and its parts. */
#define JM_COORD_TASK_WIRE_ID(job_id, idx) (((uint64_t)(job_id) << 32) | (uint64_t)(idx))
#define JM_COORD_WIRE_JOB(id) ((uint64_t)(id) >> 32)
#define JM_COORD_WIRE_IDX(id) ((uint64_t)(id)&0xffffffffu)

/*  Create a coordinator home: dir (0700), coord and client key pairs,
    allowed/client.cert, config.yml (with bind, may be NULL), state.db,
    store/.  Only missing pieces are created; a complete home is refused.
    Returns an exit code: 0 ok, 2 home already initialised, 1 other error
    (err says which file). */
int jm_coord_init_home (const char *home, const char *bind, char *err, size_t errlen);

/*  Allow the public key in cert_path under name ([A-Za-z0-9._-]+): writes
    <home>/allowed/<name>.cert (public key only, metadata name=name).  The
    same key again is fine; a different key under an existing name is
    refused.  Takes effect on a running coordinator (zcertstore reloads the
    directory on every lookup; the coordinator also re-arms zauth when the
    directory changes).  0 or -1 + err. */
int jm_coord_allow (const char *home, const char *cert_path, const char *name, char *err,
                    size_t errlen);

/*  Remove <home>/allowed/<name>.cert.  0 or -1 + err. */
int jm_coord_deny (const char *home, const char *name, char *err, size_t errlen);

/*  Run the coordinator until SIGINT/SIGTERM (zsys_interrupted).  bind
    overrides config.yml's bind; "tcp://127.0.0.1:*" binds an ephemeral
    port.  Writes <home>/coord.endpoint and <home>/coord.pid while running.
    Returns a process exit code: 0 clean stop, 2 refused to start (insecure
    secret key, bad home), 1 other errors. */
int jm_coord_run (const char *home, const char *bind_override);

/*  Same loop as a zactor (for tests): args is a jm_coord_args_t*, read
    before the actor signals.  The actor signals 0 once the socket is bound
    and coord.endpoint written (or -1 if start-up failed), and stops on
    "$TERM" (zactor_destroy). */
typedef struct {
    const char *home;
    const char *bind; /* may be NULL */
} jm_coord_args_t;
void jm_coord_actor (zsock_t *pipe, void *args);

#endif
