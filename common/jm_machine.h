/*  jm_machine.h - the machine files users already have, read once.

    Three shapes are recognised (YAML or JSON, decided by the content):

    (a) thkit's MACHINE.yml: one top-level key per machine entry

          dft_1:
            machine:
              batch_type: Slurm          # required, see below
              context_type: SSHContext   # accepted (SSH: one notice)
              remote_root: /scratch/u/work
              retry_count: 3             # default 3 (dpdispatcher's)
              remote_profile:            # kept for the ssh tunnel and for
                hostname: hpc1.example.org   # matching an agent
                username: u
                port: 22
                key_filename: ~/.ssh/id_ed25519
                proxy_command: "ssh -W %h:%p gw"
            resources: {...}             # dpdispatcher Resources
            command: "mpirun -np 32 pw.x"  # substituted for {command}
            submit_size: 10              # optional, integer >= 1
            work_load_ratio: 0.5         # optional, number > 0
            site: hpc1                   # jobman: the agent's site name

        With a prefix, only the entries whose key starts with it are kept.

    (b) dpdispatcher's machine.json: {"machine": {...}, "resources": {...}}
        (the same keys as one entry above), one entry named "machine".

    (c) dpgen's machine.json: step names (train, model_devi, fp), each
        holding a list of entries (or one entry), plus api_version and
        deepmd_version (ignored).  Entries are named "<step>_<index>",
        0-based as in the list ("fp_0", "fp_1"); the prefix selects
        among these names, so "fp" keeps every fp entry.  The file is
        read this way when it has api_version/deepmd_version or a step
        whose value is a list.

    Rules (errors name "FILE:LINE: PATH.field: problem", where PATH is
    where the entry sits in the file: "dft_1", "fp[1]", or nothing for
    (b)):
      - machine.batch_type: one of shell slurm slurmjobarray sge pbs
        openpbs torque lsf, case-insensitive (stored lower case);
      - unknown keys inside machine and remote_profile are accepted
        (dpdispatcher has many: local_root, clean_asynchronously, ...);
        unknown keys of an entry itself are refused, naming the known
        ones;
      - remote_profile.hostname/username: no blanks or control
        characters, not starting with '-' (they reach ssh's command
        line); port: an integer 1..65535 (kept as text);
        key_filename/proxy_command: one line;
      - site: [A-Za-z0-9._-], 1..128 bytes (as an agent's --site);
      - resources: exactly jm_resources_from_ynode's rules, a header
        template file being relative to the machine file's directory.
    SSH needs no action: an SSH-ish context_type (containing "ssh") adds
    ONE notice line per file saying the agent replaces SSH.           */
#ifndef JM_MACHINE_H
#define JM_MACHINE_H

#include "jm_resources.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;           /* "dft_1", "machine", "fp_0" */
    int line;             /* where the entry starts in the file */
    char *batch_type;     /* lower case, one of the list above */
    char *context_type;   /* as written, or NULL */
    char *remote_root;    /* or NULL */
    uint64_t retry_count; /* default 3 */
    struct {
        char *hostname; /* each NULL when absent */
        char *username;
        char *port;         /* decimal text, 1..65535 */
        char *key_filename; /* as written (~ not expanded) */
        char *proxy_command;
    } remote_profile;
    char *site;                /* explicit site, or NULL */
    char *command;             /* or NULL */
    uint64_t submit_size;      /* 0 = none */
    double work_load_ratio;    /* 0 = none */
    jm_resources_t *resources; /* never NULL (defaults if absent) */
} jm_machine_t;

typedef struct _jm_machines_t jm_machines_t;

/*  Loads the machine file.  prefix (NULL or "": every entry) keeps only
    the entries whose name starts with it; none matching is an error
    naming the prefix and listing the entries.  notices (may be NULL)
    receives the accepted-but-ignored lines, one per line, malloc'ed
    (caller frees), or NULL when there are none.  NULL + err. */
jm_machines_t *jm_machines_load (const char *file, const char *prefix, char **notices, char *err,
                                 size_t errlen);
void jm_machines_destroy (jm_machines_t **self_p);

/* Entries kept, in file order (>= 1 for a loaded file). */
size_t jm_machines_count (const jm_machines_t *self);
/* Entry index (< count). */
const jm_machine_t *jm_machines_entry (const jm_machines_t *self, size_t index);
/* The entry named name, or NULL. */
const jm_machine_t *jm_machines_find (const jm_machines_t *self, const char *name);

/* The name of the agent's site that serves m: the explicit site, else
   remote_profile.hostname, else NULL (any agent may). */
const char *jm_machine_site_for (const jm_machine_t *m);

/* task_command with every "{command}" replaced by machine_command;
   NULL machine_command: an unchanged copy.  malloc'ed (caller frees). */
char *jm_machine_substitute_command (const char *task_command, const char *machine_command);

#endif
