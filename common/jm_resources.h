/*  jm_resources.h - dpdispatcher's Resources, parsed and validated once.

    The same class reads the `resources:` map of a submission file (client
    side, YAML or JSON) and the JSON text that travels in SUBMIT and JOB
    (agent side), so both sides apply the same rules.  Keys are
    dpdispatcher's:

      resources:
        number_node: 1          # >= 1, default 1
        cpu_per_node: 4         # >= 1, default 1
        gpu_per_node: 0         # default 0
        queue_name: debug       # default "" (the scheduler's default queue)
        group_size: 10          # tasks per job, >= 1, default 1
        para_deg: 2             # tasks at once inside a job, >= 1, default 1
        custom_flags: ["#SBATCH --mem=4G"]   # directive lines, verbatim
        source_list: [~/env.sh]              # sourced before the tasks
        module_purge: false
        module_unload_list: []
        module_list: [gcc/12]
        envs: {OMP_NUM_THREADS: 4, PATH: "/opt/x/bin:$PATH"}
        prepend_script: ["ulimit -s unlimited"]  # lines before the tasks
        append_script: []                        # lines after the tasks
        wait_time: 0            # seconds to pause after starting each task
        strategy:
          customized_script_header_template_file: header.tmpl  # relative
                                # to the submission file's directory
          if_cuda_multi_devices: false   # accepted, not implemented (notice)
          ratio_unfinished: 0.0          # accepted, not implemented (notice)
        kwargs:                 # per scheduler, as dpdispatcher
          custom_gpu_line: "#SBATCH --gres=gpu:1"   # Slurm, LSF
          pe_name: smp          # SGE parallel environment, default "smp"
          job_name: myjob       # SGE (and every backend): job name prefix
        job_array: true         # jobman: submit jobs that arrive together as
                                # one scheduler array (default true)

    Rules (errors name "FILE:LINE: resources.FIELD: problem"):
      - unknown keys are refused (as dpdispatcher does), except the accepted
        but unimplemented ones above, which add a notice;
      - queue_name, kwargs.pe_name, kwargs.job_name: [A-Za-z0-9_.+:@%-],
        1..128 bytes (they go into directive lines);
      - custom_flags and kwargs.custom_gpu_line: one line each (no CR/LF);
      - envs keys: shell identifiers; values: scalars (numbers are text);
      - source_list, module lists: non-empty, no NUL/CR/LF;
      - prepend_script/append_script: shell lines, written verbatim (they
        are the user's script, like a task's command);
      - the header template is read at parse time (client side) and
        travels as text; it may use {number_node} {cpu_per_node}
        {gpu_per_node} {queue_name} {group_size} {para_deg} {job_name}
        {pe_name} ({{ and }} are literal braces, as in Python's format).

    Wire form (jm_resources_to_json / jm_resources_from_json): a JSON object
    with the keys above, except that strategy carries
    "customized_script_header_template" (the text) instead of the file
    name.  Every key is always present, so the JSON is canonical.        */
#ifndef JM_RESOURCES_H
#define JM_RESOURCES_H

#include "jm_yaml.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *key;
    char *value;
} jm_kv_t;

typedef struct {
    char **v;
    size_t n;
} jm_rstrs_t;

typedef struct {
    uint64_t number_node;
    uint64_t cpu_per_node;
    uint64_t gpu_per_node;
    char *queue_name; /* "" = default */
    uint64_t group_size;
    uint64_t para_deg;
    jm_rstrs_t custom_flags;
    jm_rstrs_t source_list;
    bool module_purge;
    jm_rstrs_t module_unload_list;
    jm_rstrs_t module_list;
    jm_kv_t *envs; /* in the order written */
    size_t n_envs;
    jm_rstrs_t prepend_script;
    jm_rstrs_t append_script;
    uint64_t wait_time;
    char *header_template; /* text, or NULL */
    char *custom_gpu_line; /* "" = none */
    char *pe_name;         /* default "smp" */
    char *job_name;        /* "" = jobman picks "jm<job id>" */
    bool job_array;        /* default true */
} jm_resources_t;

/* Defaults (number_node 1, cpu_per_node 1, group_size 1, para_deg 1,
   pe_name "smp", job_array true, everything else empty). */
jm_resources_t *jm_resources_new (void);
void jm_resources_destroy (jm_resources_t **self_p);
jm_resources_t *jm_resources_dup (const jm_resources_t *self);

/*  From the `resources` map node of a submission file (node may be NULL:
    defaults).  file names the submission file in messages; base_dir is
    where a relative header template file is looked up.  notices (may be
    NULL) receives one line per accepted-but-ignored key (caller frees
    with free()); NULL + err on a bad value. */
jm_resources_t *jm_resources_from_ynode (const jm_ynode_t *node, const char *file,
                                         const char *base_dir, char **notices, char *err,
                                         size_t errlen);

/* Canonical JSON text (malloc'ed; caller frees). */
char *jm_resources_to_json (const jm_resources_t *self);
/* From the wire form; the same checks.  what names the sender in errors
   (e.g. "JOB 17 from the coordinator").  NULL + err. */
jm_resources_t *jm_resources_from_json (const char *text, const char *what, char *err,
                                        size_t errlen);

/* The header template with placeholders filled in (malloc'ed), or NULL +
   err naming an unknown placeholder or an unbalanced brace.  job_name is
   what the backend uses as the job name. */
char *jm_resources_fill_template (const jm_resources_t *self, const char *job_name, char *err,
                                  size_t errlen);

/* Shell text of one envs value for `export KEY=<text>`: double-quoted, with
   $NAME and ${NAME} expanded and every other $, `, " and \ escaped (no
   command substitution).  malloc'ed. */
char *jm_resources_env_quote (const char *value);

#endif
