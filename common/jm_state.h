/*  jm_state.h - the task state machine, written down once.

    PENDING -> STAGING -> QUEUED -> RUNNING -> FETCHING -> DONE | FAILED
    The full transition table is in jm_state.c and proto/PROTOCOL.md.   */
#ifndef JM_STATE_H
#define JM_STATE_H

#include <stdbool.h>

typedef enum {
    JM_TASK_PENDING,
    JM_TASK_STAGING,
    JM_TASK_QUEUED,
    JM_TASK_RUNNING,
    JM_TASK_FETCHING,
    JM_TASK_DONE,
    JM_TASK_FAILED,
    JM_TASK_CANCELLED,
    JM_TASK_NSTATES
} jm_task_state_t;

/* "PENDING", ...; "?" when out of range. */
const char *jm_task_state_name (jm_task_state_t state);
/* State named name (case-sensitive), or -1. */
int jm_task_state_from_name (const char *name);
/* True for DONE, FAILED, CANCELLED. */
bool jm_task_state_terminal (jm_task_state_t state);
/* True if from -> to is in the table. Same-state is not a transition. */
bool jm_task_transition_ok (jm_task_state_t from, jm_task_state_t to);

#endif
