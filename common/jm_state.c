/*  jm_state.c - task state transition table. */
#include "jm_state.h"

#include <string.h>

static const char *s_names[JM_TASK_NSTATES] = {
    "PENDING", "STAGING", "QUEUED", "RUNNING", "FETCHING", "DONE", "FAILED", "CANCELLED",
};

#define B(s) (1u << JM_TASK_##s)
/* s_next[from] = set of states reachable from 'from' in one step. */
static const unsigned s_next[JM_TASK_NSTATES] = {
    [JM_TASK_PENDING] = B (STAGING) | B (CANCELLED),
    [JM_TASK_STAGING] =
        B (QUEUED) | B (RUNNING) | B (FETCHING) | B (FAILED) | B (CANCELLED) | B (PENDING),
    [JM_TASK_QUEUED] = B (RUNNING) | B (FETCHING) | B (FAILED) | B (CANCELLED) | B (PENDING),
    [JM_TASK_RUNNING] = B (FETCHING) | B (FAILED) | B (CANCELLED) | B (PENDING),
    /* FETCHING -> PENDING: its site was lost before the results came */
    [JM_TASK_FETCHING] = B (DONE) | B (FAILED) | B (CANCELLED) | B (PENDING),
    [JM_TASK_DONE] = 0,
    [JM_TASK_FAILED] = 0,
    [JM_TASK_CANCELLED] = 0,
};
#undef B

const char *
jm_task_state_name (jm_task_state_t state)
{
    if ((int)state < 0 || state >= JM_TASK_NSTATES)
        return "?";
    return s_names[state];
}

int
jm_task_state_from_name (const char *name)
{
    for (int i = 0; name && i < JM_TASK_NSTATES; i++)
        if (strcmp (name, s_names[i]) == 0)
            return i;
    return -1;
}

bool
jm_task_state_terminal (jm_task_state_t state)
{
    return state == JM_TASK_DONE || state == JM_TASK_FAILED || state == JM_TASK_CANCELLED;
}

bool
jm_task_transition_ok (jm_task_state_t from, jm_task_state_t to)
{
    if ((int)from < 0 || from >= JM_TASK_NSTATES || (int)to < 0 || to >= JM_TASK_NSTATES)
        return false;
    return (s_next[from] >> to) & 1u;
}
