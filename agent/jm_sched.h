/*  jm_sched.h - the interface every scheduler backend implements.

    A backend runs job scripts (jm_jobscript_t) on the local scheduler and
    reports what happens to them as events, delivered from the agent's zloop
    (never from another thread):
      TASK_START  "S <task_id>" seen        (task_id)
      TASK_END    "E <task_id> <code>" seen  (task_id, exit_code)
      JOB_END     the job is over            (status: how it ended;
                                              reason "withdrawn" after
                                              a successful withdraw)
    Events come in batches (evs[0..n-1], in the order they happened, all of
    one job) so the agent can put the starts of one read into one message.

    Shell (sched_shell.c) runs 'bash job.sh' as a child in its own process
    group and reads the script's standard output through a pipe.  Batch
    backends (sched_slurm.c, sched_sge.c, sched_pbs.c, sched_lsf.c) share
    jm_batch.c: they submit a wrapper with their directives, and each
    poll_ms read the jobs' event and tag files and run one batched
    scheduler query for all their jobs (jm_batch.h).

    JOB_END's reason is "" when the job ended normally (every task that did
    not report an end then failed for a reason the agent words itself), or
    the reason for every task of the job that did not end, worded for the
    user: "TIMEOUT: slurm job 57 (TIMEOUT)", "cancelled" (jobman's cancel),
    "cannot submit to slurm: sbatch: error: ...".

    One backend file = one jm_sched_backend_t; jm_sched_lookup finds it by
    name.                                                                  */
#ifndef JM_SCHED_H
#define JM_SCHED_H

#include "jm_jobscript.h"
#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JM_SCHED_TASK_START, JM_SCHED_TASK_END, JM_SCHED_JOB_END } jm_sched_ev_type_t;

typedef struct {
    jm_sched_ev_type_t type;
    uint64_t job_id;
    uint64_t task_id;   /* TASK_START, TASK_END */
    int exit_code;      /* TASK_END: the task's exit code */
    int job_exit;       /* JOB_END: exit status of the job, or -1 if killed */
    int job_signal;     /* JOB_END: signal that killed it, or 0 */
    const char *reason; /* JOB_END: "" or why (e.g. "cancelled"); TASK_END: NULL/"" or
                           why the task was killed (the job's verdict, e.g. "TIMEOUT:
                           slurm job 57 (TIMEOUT)"); valid during the call */
} jm_sched_ev_t;

/* Receives a batch of events.  The callback may call submit/cancel. */
typedef void (jm_sched_event_fn) (void *arg, const jm_sched_ev_t *evs, size_t n);

typedef struct {
    zloop_t *loop;            /* the agent's event loop (pollers, timers) */
    size_t slots;             /* at most this many jobs at once (a batch
                                 site's max_jobs: queued or running) */
    unsigned poll_ms;         /* batch backends: poll interval; 0 = 10000 */
    unsigned submit_per_min;  /* batch: submit calls per minute (token
                                 bucket); 0 = unlimited */
    unsigned submit_burst;    /* batch: bucket size; 0 = 5 */
    unsigned retry_ms;        /* batch: first back-off after a limit refusal
                                 (doubles up to 300 s); 0 = 10000 */
    unsigned flush_ms;        /* batch: jobs arriving within this window go
                                 out as one array; 0 = 200 */
    jm_sched_event_fn *event; /* event sink */
    void *arg;                /* passed to event */
} jm_sched_opts_t;

typedef struct _jm_sched_t jm_sched_t; /* a backend's private state */

typedef struct {
    const char *name; /* "shell", "slurm", ... as given to --scheduler */
    /* NULL + err if the backend cannot run here (e.g. sbatch missing). */
    jm_sched_t *(*create) (const jm_sched_opts_t *opts, char *err, size_t errlen);
    /* Stops: kills what the backend started itself (Shell: the job process
       groups) so nothing is orphaned; batch jobs are left to the scheduler.
       No events are delivered during or after destroy. */
    void (*destroy) (jm_sched_t **self_p);
    /* Writes <job_dir>/job.sh from script (job dir must exist) and submits
       it.  0, or -1 + err (no events follow for this job). */
    int (*submit) (jm_sched_t *self, jm_jobscript_t *script, char *err, size_t errlen);
    /* Cancels a job: its JOB_END event follows (reason "cancelled").
       0, or -1 if the job is unknown or already over. */
    int (*cancel) (jm_sched_t *self, uint64_t job_id);
    /* Number of jobs submitted and not yet ended. */
    size_t (*active) (jm_sched_t *self);
    /* Takes back a job none of whose tasks has started (the coordinator's
       WITHDRAW).  0 = being withdrawn: its JOB_END follows with reason
       "withdrawn" and no task events (batch: only after the scheduler's
       cancel command returned); should a task turn out to have started
       meanwhile, the job ends "cancelled" with its task events instead.
       1 = refused, the job has started (Shell: a submitted job runs at
       once); nothing changes.  -1 = unknown, over, or being cancelled.
       NULL = submitted jobs are never withdrawn. */
    int (*withdraw) (jm_sched_t *self, uint64_t job_id);
} jm_sched_backend_t;

extern const jm_sched_backend_t jm_sched_shell;
extern const jm_sched_backend_t jm_sched_slurm;
extern const jm_sched_backend_t jm_sched_sge;
extern const jm_sched_backend_t jm_sched_pbs;    /* PBS Pro / OpenPBS */
extern const jm_sched_backend_t jm_sched_torque; /* Torque (PBS dialect) */
extern const jm_sched_backend_t jm_sched_lsf;

/*  Backend by name, case-insensitive, with dpdispatcher's batch_type names
    as aliases (Shell, Slurm, SlurmJobArray, SGE, PBS, OpenPBS, Torque,
    LSF), or NULL. */
const jm_sched_backend_t *jm_sched_lookup (const char *name);
/* "shell, slurm, sge, pbs, torque, lsf" for messages. */
const char *jm_sched_names (void);

#endif
