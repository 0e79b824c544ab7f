/*  jm_agent.h - the jobman agent: one event loop that dials out to the
    coordinator (DEALER, CURVE client), takes jobs, stages their files into
    the root, runs them through a scheduler backend and streams results
    back.  agent_main.c is a thin main over this. */
#ifndef JM_AGENT_H
#define JM_AGENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *home;               /* holds agent.cert(_secret) and store/ */
    const char *coordinator;        /* tcp://HOST:PORT the DEALER dials, or NULL
                                       when bind is set */
    const char *bind;               /* endpoint the DEALER binds instead (the
                                       coordinator connects; the agent stays
                                       the CURVE client); exactly one of
                                       coordinator and bind */
    const char *coordinator_cert;   /* the coordinator's public cert file */
    const char *site;               /* site name: [A-Za-z0-9._-]+ */
    const char *root;               /* remote work root (created if missing) */
    const char *const *allow_roots; /* further roots a JOB may ask for
                                       (created if missing); may be NULL */
    size_t n_allow_roots;
    const char *scheduler;   /* backend name (jm_sched_lookup); NULL = "shell" */
    size_t slots;            /* jobs at once (batch schedulers: max_jobs,
                                queued or running); 0 = online CPUs for
                                shell, 100 for a batch scheduler */
    size_t cores;            /* most cores one job can request; 0 = online
                                CPUs for shell, not stated for batch */
    size_t gpus;             /* most GPUs one job can request; 0 = none */
    uint64_t cache_max;      /* store size limit in bytes (LRU eviction of
                                files no held job needs); 0 = none */
    unsigned poll_ms;        /* batch: status poll interval; 0 = 10000 */
    unsigned submit_per_min; /* batch: submit calls per minute; 0 = no limit */
    unsigned submit_burst;   /* batch: token bucket size; 0 = 5 */
    unsigned retry_ms;       /* batch: first back-off after a limit refusal;
                                0 = 10000 */
    uint64_t heartbeat_ms;   /* until WELCOME says otherwise; 0 = 5000 */
    int stop_fd;             /* readable (data or EOF) = stop; -1 = none.
                                SIGINT/SIGTERM (CZMQ's handler) also stop. */
} jm_agent_config_t;

/* Checks cfg (0, or -1 + err naming the bad option).  Does not touch the
   disk beyond reading; jm_agent_run also checks keys, cert and root. */
int jm_agent_config_check (const jm_agent_config_t *cfg, char *err, size_t errlen);

/*  Runs the agent until stopped.  Returns 0 after a clean stop, 2 if it
    refused to start (bad option, unreadable or unsafe key, unloadable
    coordinator cert, root that cannot be created; logged), 1 on a fatal
    runtime error (e.g. the coordinator refused our protocol version). */
int jm_agent_run (const jm_agent_config_t *cfg);

#endif
