/*  jm_client.h - the jobman-submit client: one CURVE DEALER connection to
    the coordinator, and the commands of jobman-submit built on it.

    The client shares its home with the coordinator (same machine):
      <home>/coord.endpoint       where to connect (written by 'jobman-coord run'),
                                  else config.yml's endpoint
      <home>/coord.cert           the coordinator's public key
      <home>/client.cert_secret   the client's own key pair (allowed)
      <home>/store/               the coordinator's store: 'submit' puts
                                  forward files there before SUBMIT

    Exit codes of the commands (JM_EXIT_*):
      0  success (for 'wait' / 'submit --wait': every task DONE)
      1  some task failed or was cancelled; or the coordinator refused a
         request for another reason than bad input; or a local I/O error
      2  bad usage or bad input (nothing was submitted): an invalid
         submission file, a SUBMIT refused with ERROR code 5, an unknown
         submission id (ERROR code 4)
      3  cannot reach the coordinator: no WELCOME within the timeout
         (default 5 s, $JOBMAN_TIMEOUT_MS overrides), the home has no keys,
         or a waiting client heard nothing for 15 s                       */
#ifndef JM_CLIENT_H
#define JM_CLIENT_H

#include "jm_proto.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JM_EXIT_OK 0
#define JM_EXIT_FAILED 1
#define JM_EXIT_USAGE 2
#define JM_EXIT_UNREACHABLE 3

/* Default handshake timeout (ms); $JOBMAN_TIMEOUT_MS overrides. */
#define JM_CLIENT_TIMEOUT_MS 5000
/* A waiting client that hears nothing for this long gives up (exit 3). */
#define JM_CLIENT_SILENCE_MS 15000

typedef struct _jm_client_t jm_client_t;

/*  Connect to the coordinator of home (absolute) with CURVE and do the
    HELLO/WELCOME handshake.  NULL + err if the keys cannot be loaded or no
    WELCOME arrives in time, e.g. "cannot reach the coordinator at
    tcp://127.0.0.1:7100: no answer within 5 s (is 'jobman-coord run'
    running with --home /x?)".  *errcode_p (may be NULL) receives the exit
    code to use (JM_EXIT_UNREACHABLE or JM_EXIT_FAILED). */
jm_client_t *jm_client_new (const char *home, int *errcode_p, char *err, size_t errlen);
void jm_client_destroy (jm_client_t **self_p);

const char *jm_client_endpoint (jm_client_t *self);
const char *jm_client_home (jm_client_t *self);
/* Heartbeat interval the coordinator announced in WELCOME (ms). */
uint64_t jm_client_heartbeat_ms (jm_client_t *self);

/* Send a message (destroys *msg_p). 0 or -1 + err. */
int jm_client_send (jm_client_t *self, jm_msg_t **msg_p, char *err, size_t errlen);
/*  Receive one message within timeout_ms (-1: forever).  NULL on timeout
    (err says so) or on an undecodable message (err has the decoder's
    text). */
jm_msg_t *jm_client_recv (jm_client_t *self, int timeout_ms, char *err, size_t errlen);
/*  Send *req (destroyed) and return the next message, or NULL + err on
    timeout.  An ERROR reply is returned like any other message. */
jm_msg_t *jm_client_request (jm_client_t *self, jm_msg_t **req, int timeout_ms, char *err,
                             size_t errlen);
/* Redo the HELLO/WELCOME handshake (after ERROR code 3). 0 or -1 + err. */
int jm_client_rehello (jm_client_t *self, char *err, size_t errlen);

/* Handshake timeout in ms: $JOBMAN_TIMEOUT_MS or JM_CLIENT_TIMEOUT_MS. */
int jm_client_timeout_ms (void);

/*  Commands.  Each prints its results to out and its errors to stderr
    ("jobman-submit: ..."), and returns a JM_EXIT_* code. */
typedef struct {
    const char *home;         /* absolute home (jm_home_resolve) */
    bool json;                /* JSON output */
    bool wait;                /* submit: continue as 'wait' */
    const char *work_dir;     /* submit: --work-dir, NULL = current dir */
    int progress;             /* wait: 1 bar (TTY), 0 plain lines, -1 decide by isatty(out) */
    FILE *out;                /* stdout if NULL */
    const char *machine_file; /* submit: --machine FILE (thkit MACHINE.yml, dpdispatcher or
                                 dpgen machine.json), NULL = none */
    const char *prefix;       /* submit: --prefix P (entries whose name starts with P) */
    const char *prog;         /* program name for messages, NULL = "jobman-submit" */
} jm_client_opts_t;

int jm_client_cmd_submit (const jm_client_opts_t *opts, const char *file);
int jm_client_cmd_wait (const jm_client_opts_t *opts, const char *sub_id);
int jm_client_cmd_status (const jm_client_opts_t *opts, const char *sub_id);
int jm_client_cmd_list (const jm_client_opts_t *opts);
int jm_client_cmd_cancel (const jm_client_opts_t *opts, const char *sub_id);

/*  'sites': one line per site (NAME STATE SCHED CAPACITY RUNNING QUEUED
    DONE/MIN WAIT LAST-HEARTBEAT TUNNEL) or, with opts->json, a JSON array
    of objects holding every field of the site record. */
int jm_client_cmd_sites (const jm_client_opts_t *opts);

/*  'jobman-coord site drain|resume NAME': SITE_SET {name, "drained" or
    "up"}; prints the site's table line.  An unknown site (ERROR 4) prints
    "<prog>: no site named 'x'" and returns JM_EXIT_FAILED. */
int jm_client_cmd_site_set (const jm_client_opts_t *opts, const char *name, bool drain);

/*  Render one site's table line (the columns of 'sites') into buf; now_ms
    is the current time (unix ms) for the heartbeat's age.  With header,
    the column titles (site is then unused). */
void jm_client_site_line (char *buf, size_t buflen, const jm_wsite_t *site, uint64_t now_ms,
                          bool header);

/*  Write one site record to f as a JSON object. */
void jm_client_site_json (FILE *f, const jm_wsite_t *site);

/*  Write s to f as a JSON string (with quotes), escaping quotes,
    backslashes and control characters. */
void jm_json_str (FILE *f, const char *s);

/*  Render a progress line into buf from counts indexed by jm_task_state_t:
    with bar, "[#####-----]  450/1000  done 440  failed 10  running 8
    queued 40  pending 502"; without, the same without the bar. */
void jm_client_progress_line (char *buf, size_t buflen, uint64_t total, const uint64_t *counts,
                              size_t ncounts, bool bar);

#endif
