/*  jm_batch.h - what every batch scheduler backend shares (Slurm, SGE,
    PBS Pro, Torque, LSF), and the small "dialect" each one fills in.

    The core (jm_batch.c) does the work: it writes each job's script,
    collects jobs that arrive together into one scheduler array, submits
    through a token bucket, backs off when the scheduler refuses because of
    a user/QOS limit, polls with ONE status query per interval for all its
    jobs, reads progress from files, and maps the scheduler's verdict to a
    reason.  A dialect (sched_slurm.c, ...) only knows its scheduler's
    command lines, directives and output formats.  Every scheduler command
    runs through jm_cmd (never blocks the loop) and at most one status
    query is in flight at a time.

    Files, for a job J with job dir D = <root>/.jobman/jobs/J:
      D/job.sh     the job's tasks (jm_jobscript; no header): written at
                   submit time, tag files on;
      D/events     its "S <task>" / "E <task> <code>" lines (the script's
                   standard output); read from the last offset every poll;
      D/<task>.exit  tag files: the exit code of each finished task;
      D/job.err    the script's standard error;
      F/submit.sh  the script given to the scheduler, F being the job dir of
                   the first job of the unit (a plain job or an array):
                     #!/bin/bash
                     <dialect header, or the filled header template>
                     case "$<array_index_var>" in 1) jm_d=<D1> ;; ... esac
                     exec /bin/bash "$jm_d/job.sh" >>"$jm_d/events" 2>>"$jm_d/job.err"
                   (a plain job sets jm_d directly); the scheduler's own
                   stdout/stderr files go to F too (dialect's choice of names).

    Arrays: jobs submitted within flush_ms of each other, with the same
    work base and equal resources, resources.job_array true, no header
    template, and a dialect with array_index_var, go out as one array of
    up to max_array elements, indices 1..n.

    Status: every poll_ms, if any job is in the scheduler, the events files
    are read (task starts and ends reach the agent within one interval) and
    one query_argv command runs.  A job the query reports DONE, or does not
    report at all (and the query succeeded), has left the queue:
      - every task has an E line or a tag file -> JOB_END, reason "";
      - else the verdict (from the query, or from final_argv when the query
        had none) gives the reason: "TIMEOUT: slurm job 57 (TIMEOUT)"; tags
        are re-read for up to 2 more polls first (shared file systems show
        files late); no verdict after that -> "FAILED: slurm job 57 left the
        queue without writing its tags".
    A job reported in ERROR (SGE Eqw, ...) is cancelled and ended with
    "FAILED: sge job 57 is in an error state (<detail>)".  A failed query
    concludes nothing (logged once per streak).  A job jobman cancels ends
    "cancelled" once the cancel command succeeded (or at once while it is
    still waiting in the core's queue).  submit fails when opts->slots
    jobs (0 = no limit) are active or the job id is already active.       */
#ifndef JM_BATCH_H
#define JM_BATCH_H

#include "jm_cmd.h"
#include "jm_resources.h"
#include "jm_sched.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    JM_BST_QUEUED,  /* waiting, held, suspended */
    JM_BST_RUNNING, /* running, completing */
    JM_BST_DONE,    /* finished; verdict says how, if known */
    JM_BST_ERROR    /* stuck in an error state; jobman cancels it */
} jm_bstate_t;

typedef enum {
    JM_VERDICT_NONE = 0, /* the scheduler did not say */
    JM_VERDICT_COMPLETED,
    JM_VERDICT_FAILED,
    JM_VERDICT_TIMEOUT,
    JM_VERDICT_NODE_FAIL,
    JM_VERDICT_OUT_OF_MEMORY,
    JM_VERDICT_CANCELLED
} jm_verdict_t;

/* "COMPLETED", "TIMEOUT", ...; "NONE". */
const char *jm_verdict_name (jm_verdict_t v);

typedef struct {
    const char *sid;      /* canonical id of a job or array element */
    jm_bstate_t state;    /* from a status query; parse_final reports DONE */
    jm_verdict_t verdict; /* DONE/ERROR: how it ended, if known */
    const char *detail;   /* the scheduler's own words for messages, e.g.
                             "TIMEOUT", "failed 37: qmaster enforced h_rt";
                             may be "" */
} jm_batch_seen_t;

typedef void (jm_batch_seen_fn) (void *arg, const jm_batch_seen_t *seen);

typedef enum { JM_SUBMIT_OK = 0, JM_SUBMIT_RETRY = 1, JM_SUBMIT_FAIL = -1 } jm_submit_rc_t;

/*  A dialect: constant data + pure functions (no I/O, no state), so each
    is unit-tested on captured real output.  Canonical ids: what
    parse_submit returns for a plain job, element_id for array elements;
    parse_query/parse_final must report exactly these strings. */
typedef struct {
    const char *name;            /* "slurm": log and reason text */
    const char *submit_prog;     /* "sbatch": create fails if not on PATH */
    const char *array_index_var; /* "SLURM_ARRAY_TASK_ID"; NULL = no arrays */
    size_t max_array;            /* most elements per array; 0 = no limit */
    bool submit_stdin;           /* the script goes on stdin (LSF's bsub) */

    /* Directive lines (each ending in '\n') for a plain job (n == 1) or an
       array of n elements (indices 1..n): name, queue, nodes/cpus/gpus,
       scheduler log files in log_dir, then custom_gpu_line and
       custom_flags verbatim.  malloc'ed text, or NULL + err. */
    char *(*header) (const jm_resources_t *res, const char *name, size_t n, const char *log_dir,
                     char *err, size_t errlen);
    /* argv to submit script (not including it when submit_stdin). */
    void (*submit_argv) (const char *script, size_t n, jm_argv_t *argv);
    /* Result of the submit command (status: its exit code).  OK + the
       canonical base id in id; RETRY when the scheduler refused because of
       a user/QOS/queue limit (try later); FAIL otherwise.  err gets the
       scheduler's message for RETRY and FAIL. */
    jm_submit_rc_t (*parse_submit) (int status, const char *out, const char *errout, char *id,
                                    size_t idlen, char *err, size_t errlen);
    /* Canonical id of element idx (1-based) of array base. */
    void (*element_id) (const char *base, size_t idx, char *out, size_t outlen);

    /* ONE status query for all of sids (the agent's jobs in the scheduler;
       user is the agent's user name, for dialects that query by user). */
    void (*query_argv) (const char *user, const char *const *sids, size_t n, jm_argv_t *argv);
    /* Every job/element found -> seen.  Jobs not reported have left the
       queue.  0, or -1 + err when the output makes no sense. */
    int (*parse_query) (int status, const char *out, const char *errout, jm_batch_seen_fn *seen,
                        void *arg, char *err, size_t errlen);
    /* Optional (NULL): the verdict of jobs that left the queue unseen
       (sacct, qacct, qstat -x, bjobs -a).  Reports DONE + verdict. */
    void (*final_argv) (const char *user, const char *const *sids, size_t n, jm_argv_t *argv);
    int (*parse_final) (int status, const char *out, const char *errout, jm_batch_seen_fn *seen,
                        void *arg, char *err, size_t errlen);

    /* ONE command cancelling all of sids: cancel_prog followed by the
       sids (jm_batch_cancel_argv). */
    const char *cancel_prog;
} jm_batch_dialect_t;

/* The backend operations (jm_sched.h) over a dialect. */
jm_sched_t *jm_batch_create (const jm_batch_dialect_t *dialect, const jm_sched_opts_t *opts,
                             char *err, size_t errlen);
void jm_batch_destroy (jm_sched_t **self_p);
int jm_batch_submit (jm_sched_t *self, jm_jobscript_t *script, char *err, size_t errlen);
int jm_batch_cancel (jm_sched_t *self, uint64_t job_id);
/* Withdraws a job none of whose tasks has started (jm_sched.h): a job
   still in the core's queue at once, a job in the scheduler by the
   dialect's cancel command; JOB_END "withdrawn" follows once that command
   returned (or "cancelled" with the task events if a task had started
   after all). */
int jm_batch_withdraw (jm_sched_t *self, uint64_t job_id);
size_t jm_batch_active (jm_sched_t *self);

/* ---------------------------------------------------------------------
   Helpers the dialects share (jm_batch_util.c): pure functions on the
   schedulers' text and on job id lists. */

/* Steps over one line of text: *line, *len get the line at *pos (without
   its '\n'; a last line may lack one) and *pos moves past it.  false when
   *pos is at the end of the text (then *line and *len are unchanged). */
bool jm_batch_next_line (const char **pos, const char **line, size_t *len);
/* Trims white space (isspace) off both ends of [*s, *s + *len). */
void jm_batch_trim (const char **s, size_t *len);
/* true if len > 0 and s[0..len) are all decimal digits. */
bool jm_batch_all_digits (const char *s, size_t len);
/* true if text (may be NULL: false) contains any of phrases (a
   NULL-terminated list): e.g. a scheduler's "try again later" words. */
bool jm_batch_says (const char *text, const char *const *phrases);

/* The base of sids[i] is its prefix up to the first character of stop
   ("_" for Slurm's "12_3", "." for SGE's "12.3", "[" for LSF's "12[3]");
   *len gets its length.  true if no earlier sids[j] (j < i) has the same
   base: the first time this base is seen. */
bool jm_batch_base_is_new (const char *const *sids, size_t i, const char *stop, size_t *len);
/* Adds the base of each of sids to argv, each base once, in order. */
void jm_batch_argv_add_bases (jm_argv_t *argv, const char *const *sids, size_t n, const char *stop);
/* The dialect's cancel command for sids: cancel_prog, then each sid. */
void jm_batch_cancel_argv (const jm_batch_dialect_t *dialect, const char *const *sids, size_t n,
                           jm_argv_t *argv);

/* Defines `const jm_sched_backend_t jm_sched_<ident>` for a dialect. */
#define JM_BATCH_BACKEND(ident, dialect)                                                           \
    static jm_sched_t *s_##ident##_create (const jm_sched_opts_t *opts, char *err, size_t errlen)  \
    {                                                                                              \
        return jm_batch_create (&(dialect), opts, err, errlen);                                    \
    }                                                                                              \
    const jm_sched_backend_t jm_sched_##ident = {                                                  \
        #ident,          s_##ident##_create, jm_batch_destroy, jm_batch_submit,                    \
        jm_batch_cancel, jm_batch_active,    jm_batch_withdraw}

#endif
