/*  jm_coord_db.h - the coordinator's state: in-memory submissions and
    tasks, and their SQLite rows (schema, insert, load, updates).

    Writes go into the db's current batch (jm_db_begin is called here);
    the caller commits once per event-loop pass.                        */
#ifndef JM_COORD_DB_H
#define JM_COORD_DB_H

#include "jm_db.h"
#include "jm_proto.h"
#include "jm_state.h"
#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define JM_COORD_SCHEMA_VERSION 1

typedef struct _jm_csub_t jm_csub_t;

/* One task of a submission.  Strings are owned (malloc'ed). */
typedef struct {
    jm_csub_t *sub; /* back pointer, not owned */
    uint32_t idx;
    char *path;
    char *command;
    char *outlog;
    char *errlog;
    jm_wfiles_t forward;
    jm_strs_t backward;
    jm_task_state_t state;
    int64_t exit_code;
    char *reason; /* "" when none */
    char *site;   /* "" when never dispatched */
    uint64_t job_id;
    /* results being fetched (FETCHING): the TASK_END's file list, also
       kept in table task_results while the task is FETCHING */
    jm_wfiles_t results;
    bool *result_done;      /* run time: per result, copied out */
    bool *result_wait;      /* run time: per result, waiting for its site to come back */
    size_t results_left;    /* results not yet done */
    size_t results_waiting; /* of those, waiting for the site */
    bool results_stored;    /* task_results holds rows for this task */
    int32_t machine;        /* index of the machine entry it was sent to, -1 none */
    /* speculative copy: the job (and site) the task also runs in, 0 none */
    uint64_t alt_job_id;
} jm_ctask_t;

typedef enum { JM_SUB_ACTIVE, JM_SUB_DONE, JM_SUB_FAILED, JM_SUB_CANCELLED } jm_sub_state_t;

struct _jm_csub_t {
    char *id;
    int64_t created; /* unix seconds */
    char *work_base;
    uint64_t group_size;
    uint64_t para_deg;
    char *resources; /* dpdispatcher Resources as canonical JSON; "" = defaults */
    jm_sub_state_t state;
    uint64_t bytes_sent;
    jm_wfiles_t common;
    jm_strs_t backward_common;
    jm_ctask_t *tasks;
    size_t ntasks;
    /* run time */
    uint64_t counts[JM_TASK_NSTATES];
    uint32_t *pending; /* FIFO of task indexes (may hold stale entries) */
    size_t pend_head, pend_tail, pend_cap;
    bool bytes_dirty;    /* bytes_sent needs writing */
    bool progress_dirty; /* watchers need a PROGRESS */
    /* machine entries (SUBMIT.machines; none = any site) */
    jm_wmachines_t machines;
    bool speculative;
    /* run time, per machine entry: tasks assigned to it (machine == i)
       and of those, tasks out at the site (STAGING/QUEUED/RUNNING) */
    size_t *m_assigned;
    size_t *m_out;
    /* run time: cores and GPUs one job asks for, per entry (index
       machines.n: the submission's own resources); valid once need_known */
    uint64_t *m_cpu, *m_gpu;
    bool need_known;
};

/* "ACTIVE", ... / parse (-1 if unknown). */
const char *jm_sub_state_name (jm_sub_state_t state);
int jm_sub_state_from_name (const char *name);

/* A new empty submission (ntasks zeroed task slots). */
jm_csub_t *jm_csub_new (const char *id, int64_t created, const char *work_base, uint64_t group_size,
                        uint64_t para_deg, size_t ntasks);
void jm_csub_destroy (jm_csub_t **self_p);
/* Recount counts[] (and the per-machine counters) from the tasks. */
void jm_csub_recount (jm_csub_t *self);
/* Per-machine counters for machines.n entries (call after setting
   machines; jm_csub_recount fills them). */
void jm_csub_machines_alloc (jm_csub_t *self);
/* A task state that holds a slot at a site. */
bool jm_ctask_state_out (jm_task_state_t state);
/* Pending FIFO. */
void jm_csub_pending_push (jm_csub_t *self, uint32_t idx);
/* Next PENDING task index (skipping stale entries) or -1. */
int64_t jm_csub_pending_pop (jm_csub_t *self);
bool jm_csub_has_pending (jm_csub_t *self);
/* Free a task's fetch bookkeeping (results_stored is left alone). */
void jm_ctask_results_clear (jm_ctask_t *task);

/* Free the contents of wire lists (not the struct itself). */
void jm_wfiles_clear (jm_wfiles_t *list);
void jm_strs_clear (jm_strs_t *list);

/* Create tables if missing, check/set user_version.  0 or -1 + err. */
int jm_coord_db_init (jm_db_t *db, char *err, size_t errlen);

/* Insert a submission with all its tasks and files (inside the current
   batch).  0 or -1 + err; on -1 the caller rolls back. */
int jm_coord_db_insert_sub (jm_db_t *db, const jm_csub_t *sub, char *err, size_t errlen);

/* Load every submission, oldest first, into list (of jm_csub_t*, caller
   destroys each).  Tasks keep their stored state; FETCHING tasks get
   their stored result list in results (results_stored set).  0 or -1 +
   err. */
int jm_coord_db_load (jm_db_t *db, zlist_t *list, char *err, size_t errlen);

/* Updates (batched). 0 or -1 (logged). */
int jm_coord_db_task_update (jm_db_t *db, const jm_csub_t *sub, const jm_ctask_t *task);
int jm_coord_db_sub_update (jm_db_t *db, const jm_csub_t *sub);
/* Replace the task's stored result list (table task_results) by
   task->results (none: the rows are deleted).  Sets results_stored. */
int jm_coord_db_task_results (jm_db_t *db, const jm_csub_t *sub, jm_ctask_t *task);
/* Small persistent counters (table meta): value of key, or dflt. */
uint64_t jm_coord_db_meta_get (jm_db_t *db, const char *key, uint64_t dflt);
int jm_coord_db_meta_set (jm_db_t *db, const char *key, uint64_t value);
int jm_coord_db_job_insert (jm_db_t *db, uint64_t job_id, const char *sub_id, const char *site,
                            const char *state, int64_t created);
int jm_coord_db_job_state (jm_db_t *db, uint64_t job_id, const char *state);
/* Mark every job not in a final state with state (e.g. after a restart). */
int jm_coord_db_jobs_abandon (jm_db_t *db, const char *state);
/* Largest job id recorded (0 if none). */
uint64_t jm_coord_db_max_job_id (jm_db_t *db);
int jm_coord_db_site_upsert (jm_db_t *db, const char *name, const char *pubkey,
                             const char *scheduler, uint64_t slots, const char *host,
                             const char *state, int64_t last_seen);
int jm_coord_db_site_state (jm_db_t *db, const char *name, const char *state, int64_t last_seen);
int jm_coord_db_site_drained (jm_db_t *db, const char *name, bool drained);
/* Every recorded site: calls fn (arg, name, scheduler, slots, host,
   drained, last_seen) per row.  0 or -1. */
typedef void (jm_coord_db_site_fn) (void *arg, const char *name, const char *scheduler,
                                    uint64_t slots, const char *host, bool drained,
                                    int64_t last_seen);
int jm_coord_db_sites_load (jm_db_t *db, jm_coord_db_site_fn *fn, void *arg);

#endif
