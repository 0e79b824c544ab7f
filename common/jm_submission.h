/*  jm_submission.h - a dpdispatcher-style Submission file (YAML or JSON).

      work_base: runs                    # relative to --work-dir (default ".")
      forward_common_files: [common.dat] # relative to work_base
      backward_common_files: []
      resources: {group_size: 10, para_deg: 2}  # dpdispatcher Resources,
                                         # see jm_resources.h
      speculative: false                 # jobman: true lets a task run at
                                         # two sites near the end (first
                                         # result wins); default false
      task_list:
        - command: "..."                 # may hold {command}: the machine
                                         # entry's command (--machine)
          task_work_path: t000           # relative to work_base
          forward_files: [in.dat]        # relative to the task dir
          backward_files: [out.dat, "*.log"]   # globs, relative to task dir
          outlog: log                    # default "log"
          errlog: err                    # default "err"

    Loading validates everything (types, required fields, every path
    lexically confined, every forward file an existing regular file inside
    its directory) before anything is written anywhere.                   */
#ifndef JM_SUBMISSION_H
#define JM_SUBMISSION_H

#include "../proto/jm_proto.h"
#include "jm_machine.h"
#include "jm_resources.h"
#include "jm_store.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *command;
    char *task_work_path;
    char **forward_files;
    size_t n_forward;
    char **backward_files;
    size_t n_backward;
    char *outlog;
    char *errlog;
} jm_task_spec_t;

typedef struct {
    char *file;                /* the submission file, for messages */
    char *work_base;           /* as written */
    char *work_base_abs;       /* realpath of work_dir/work_base (must exist) */
    uint64_t group_size;       /* default 1 (= resources->group_size) */
    uint64_t para_deg;         /* default 1 (= resources->para_deg) */
    jm_resources_t *resources; /* the `resources` map; never NULL after load.
                                  A relative header template file is read
                                  from the submission file's directory. */
    char *notices;             /* NULL, or lines for the user (keys accepted
                                  but ignored), each ending in '\n' */
    char **forward_common_files;
    size_t n_forward_common;
    char **backward_common_files;
    size_t n_backward_common;
    jm_task_spec_t *tasks;
    size_t n_tasks;
    bool speculative; /* `speculative:`, default false */
} jm_submission_t;

/*  Parse and validate.  work_dir NULL means the current directory.  On
    error returns NULL and err names the file, the field and the task index,
    e.g. "sub.yml:12: task_list[3].forward_files[0]: '../x' leaves the task
    directory". */
jm_submission_t *jm_submission_load (const char *file, const char *work_dir, char *err,
                                     size_t errlen);
void jm_submission_destroy (jm_submission_t **self_p);

/*  Put every forward file (common and per task) into store and build the
    SUBMIT message (its resources: jm_resources_to_json).  NULL + err on I/O
    failure. */
jm_msg_t *jm_submission_to_msg (const jm_submission_t *self, jm_store_t *store, char *err,
                                size_t errlen);

/*  Without a machine file, a task command that contains "{command}" has
    nothing to put there: -1 + err naming the file and the first such task,
    e.g. "sub.yml: task 3 (t003): command uses {command} but no --machine
    file was given".  0 when no command uses it. */
int jm_submission_check_no_machine (const jm_submission_t *self, char *err, size_t errlen);

/*  Append one SUBMIT machine record per entry of machines to msg->machines:
    name, site (explicit site or ""), host (remote_profile.hostname or ""),
    command (or ""), root (remote_root or ""), resources (canonical JSON,
    or "" when the entry's resources are all defaults), submit_size and
    ratio (llround (work_load_ratio * 1e6)). */
void jm_submission_add_machines (jm_msg_t *msg, const jm_machines_t *machines);

#endif
