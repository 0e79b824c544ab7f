/*  jm_sched.c - the table of scheduler backends. */
#include "jm_sched.h"
#include <strings.h>

static const struct {
    const char *alias;
    const jm_sched_backend_t *backend;
} s_names[] = {
    {"shell", &jm_sched_shell},   {"slurm", &jm_sched_slurm}, {"slurmjobarray", &jm_sched_slurm},
    {"sge", &jm_sched_sge},       {"pbs", &jm_sched_pbs},     {"openpbs", &jm_sched_pbs},
    {"torque", &jm_sched_torque}, {"lsf", &jm_sched_lsf},
};

const jm_sched_backend_t *
jm_sched_lookup (const char *name)
{
    for (size_t i = 0; name && i < sizeof s_names / sizeof s_names[0]; i++)
        if (strcasecmp (s_names[i].alias, name) == 0)
            return s_names[i].backend;
    return NULL;
}

const char *
jm_sched_names (void)
{
    return "shell, slurm, sge, pbs, torque, lsf";
}
