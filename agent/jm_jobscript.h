/*  jm_jobscript.h - the bash script that runs one job's tasks.

    One generator for every scheduler backend.  The Shell backend runs the
    script as it is; batch backends (Slurm, SGE, PBS, LSF) set a header with
    their directives (#SBATCH ...) and prologue lines (source, module load,
    export) and submit the same body.

    The script
      - cd's into the job's work base,
      - runs the tasks para_deg at a time (sliding window: up to para_deg
        background tasks, 'wait -n' for one before starting the next),
      - runs each task as
            ( cd <dir> || exit 127; exec /bin/sh -c <command> >><outlog> 2>><errlog> )
        (outlog/errlog relative to the task dir; "" means /dev/null); with
        bash >= 5.1 'wait -n -p' tells which task ended, so that subshell is
        the task's only extra process; older bash gets a second subshell
        that waits for it and reports (JOBMAN_JOBSCRIPT_COMPAT=1 forces
        that way),
      - prints "S <task_id>" before starting a task and, when it ended,
        writes its exit code to the tag file <job_dir>/<task_id>.exit and
        prints "E <task_id> <code>" on its standard output.  Only these
        lines go to standard output: the script starts with
        'exec 3>&1 1>&2' and writes them to fd 3, so whatever the prologue
        (source, module load) prints lands on standard error.
    With resources set (jm_jobscript_set_resources), dpdispatcher's fields
    shape the body: after cd'ing into the work base come 'module purge',
    'module unload X', 'module load X', 'source X' (~/ expanded), 'export
    K="V"' (jm_resources_env_quote), the prepend_script lines, then the
    prologue lines added here; after the tasks, the append_script lines;
    wait_time > 0 adds 'sleep N' after each task start.  (Scheduler
    directives are not the body's business: see jm_batch.h.)
    A failing task never stops the others.  Every path and command is
    single-quoted (jm_sh_quote), so no path can inject shell code; the
    command is the user's and is meant to run.                            */
#ifndef JM_JOBSCRIPT_H
#define JM_JOBSCRIPT_H

#include "jm_resources.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _jm_jobscript_t jm_jobscript_t;

/* work_base and job_dir should be absolute.  para_deg 0 is taken as 1.
   Strings are copied. */
jm_jobscript_t *jm_jobscript_new (uint64_t job_id, const char *work_base, const char *job_dir,
                                  size_t para_deg);
void jm_jobscript_destroy (jm_jobscript_t **self_p);

/* Add a task.  dir is relative to the work base ("." allowed), outlog and
   errlog relative to dir (NULL or "" = /dev/null).  Strings are copied. */
void jm_jobscript_add_task (jm_jobscript_t *self, uint64_t task_id, const char *dir,
                            const char *command, const char *outlog, const char *errlog);

/* Scheduler directives placed right after the "#!/bin/bash" line (batch
   backends; the text is inserted verbatim, it should end with '\n'). */
void jm_jobscript_set_header (jm_jobscript_t *self, const char *header);
/* A raw shell line run before the tasks, after cd'ing into the work base
   (e.g. "source ~/env.sh", "module load gcc").  Inserted verbatim: it comes
   from the site's own configuration, never from a remote message. */
void jm_jobscript_add_prologue (jm_jobscript_t *self, const char *line);

/* Tag files (<job_dir>/<task_id>.exit) are on by default: batch backends
   read them.  The Shell backend learns every exit code from the "E" lines
   on its pipe and turns them off: one file less per task. */
void jm_jobscript_set_tag_files (jm_jobscript_t *self, bool on);
/* Copies res (NULL = none); para_deg still comes from jm_jobscript_new. */
void jm_jobscript_set_resources (jm_jobscript_t *self, const jm_resources_t *res);
/* The resources set, or NULL. */
const jm_resources_t *jm_jobscript_resources (jm_jobscript_t *self);
/* The work base given to jm_jobscript_new. */
const char *jm_jobscript_work_base (jm_jobscript_t *self);
/* Id of task i (0 <= i < ntasks), in the order added. */
uint64_t jm_jobscript_task_id (jm_jobscript_t *self, size_t i);
uint64_t jm_jobscript_job_id (jm_jobscript_t *self);
const char *jm_jobscript_job_dir (jm_jobscript_t *self);
size_t jm_jobscript_ntasks (jm_jobscript_t *self);

/* Render the script: *text_p is malloc'ed (caller frees).  0 or -1 + err. */
int jm_jobscript_render (jm_jobscript_t *self, char **text_p, char *err, size_t errlen);
/* Render and write it to path (mode 0700, temp file + rename). 0 or -1 + err. */
int jm_jobscript_write (jm_jobscript_t *self, const char *path, char *err, size_t errlen);

#endif
