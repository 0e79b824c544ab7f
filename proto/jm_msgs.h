/*  jm_msgs.h - THE message table of the jobman wire protocol.

    Every message that crosses a socket is listed here once: its name, who
    sends it, and the set of fields it carries.  The codec (jm_proto.c),
    PROTOCOL.md and the fuzz corpus follow from this table.  Adding a
    message is one line here plus its handler.

    Wire form: one ZeroMQ frame holding one msgpack map:
        { "v": JM_PROTO_VERSION, "t": "<MESSAGE NAME>", <field>: <value>, ... }
    A message carries exactly the fields listed for it, no more, no fewer.
*/
#ifndef JM_MSGS_H
#define JM_MSGS_H

#define JM_PROTO_VERSION 2

/*  Field types.
    U64/I64: msgpack integers (I64 accepts negative), BOOL: msgpack boolean,
    STR: UTF-8 string (no NUL bytes), BIN: binary,
    STRS: array of STR, U64S: array of U64,
    FILES: array of file records, TASKS: array of task records,
    SUBS: array of submission summaries, TSTATS: array of task statuses,
    MACHINES: array of machine entries, SITES: array of site records.
    Records are maps; their keys are listed with their C structs in
    jm_proto.h. */

/*  X(name, type, max)
    max bounds a STR/BIN length in bytes or an array's element count.    */
#define JM_FIELDS(X)                                                                               \
    X (version, U64, 0)                                                                            \
    X (role, STR, 16)                                                                              \
    X (name, STR, 128)                                                                             \
    X (scheduler, STR, 32)                                                                         \
    X (slots, U64, 0)                                                                              \
    X (host, STR, 256)                                                                             \
    X (heartbeat_ms, U64, 0)                                                                       \
    X (code, U64, 0)                                                                               \
    X (reason, STR, 8192)                                                                          \
    X (credit, U64, 0)                                                                             \
    X (job_id, U64, 0)                                                                             \
    X (sub_id, STR, 64)                                                                            \
    X (work_base, STR, 4096)                                                                       \
    X (group_size, U64, 0)                                                                         \
    X (para_deg, U64, 0)                                                                           \
    X (common, FILES, 100000)                                                                      \
    X (backward_common, STRS, 10000)                                                               \
    X (tasks, TASKS, 1000000)                                                                      \
    X (task_id, U64, 0)                                                                            \
    X (exit_code, I64, 0)                                                                          \
    X (files, FILES, 100000)                                                                       \
    X (ids, U64S, 1000000)                                                                         \
    X (hash, STR, 64)                                                                              \
    X (offset, U64, 0)                                                                             \
    X (size, U64, 0)                                                                               \
    X (data, BIN, 1048576)                                                                         \
    X (state, STR, 32)                                                                             \
    X (subs, SUBS, 100000)                                                                         \
    X (tstats, TSTATS, 1000000)                                                                    \
    X (counts, U64S, 32)                                                                           \
    X (total, U64, 0)                                                                              \
    X (bytes, U64, 0)                                                                              \
    X (finished, BOOL, 0)                                                                          \
    X (detail, BOOL, 0)                                                                            \
    X (resources, STR, 262144)                                                                     \
    X (max_jobs, U64, 0)                                                                           \
    X (cores, U64, 0)                                                                              \
    X (gpus, U64, 0)                                                                               \
    X (running, U64, 0)                                                                            \
    X (queued, U64, 0)                                                                             \
    X (free_slots, U64, 0)                                                                         \
    X (done_1m, U64, 0)                                                                            \
    X (wait_ms, U64, 0)                                                                            \
    X (root, STR, 4096)                                                                            \
    X (machines, MACHINES, 1000)                                                                   \
    X (speculative, BOOL, 0)                                                                       \
    X (unserved, STRS, 1000)                                                                       \
    X (sites, SITES, 10000)

/*  X(NAME, "direction", fields...)  F(x) names field x.
    Directions: A = agent, C = client, K = coordinator.                  */
#define JM_MESSAGES(X, F)                                                                          \
    /* handshake: first message on every connection, both roles */                                 \
    X (HELLO, "A,C -> K",                                                                          \
       F (version) | F (role) | F (name) | F (scheduler) | F (slots) | F (host) | F (max_jobs) |   \
           F (cores) | F (gpus))                                                                   \
    X (WELCOME, "K -> A,C", F (version) | F (heartbeat_ms))                                        \
    X (ERROR, "any", F (code) | F (reason))                                                        \
    X (HEARTBEAT, "A <-> K", 0)                                                                    \
    /* agent: pull-based work */                                                                   \
    X (CREDIT, "A -> K", F (credit))                                                               \
    X (LOAD, "A -> K", F (running) | F (queued) | F (free_slots) | F (done_1m) | F (wait_ms))      \
    X (JOB, "K -> A",                                                                              \
       F (job_id) | F (sub_id) | F (para_deg) | F (resources) | F (root) | F (common) | F (tasks)) \
    X (JOB_STATE, "A -> K", F (job_id) | F (state) | F (reason))                                   \
    X (TASK_STARTED, "A -> K", F (ids))                                                            \
    X (TASK_END, "A -> K", F (task_id) | F (exit_code) | F (files) | F (reason))                   \
    X (CANCEL_JOB, "K -> A", F (job_id))                                                           \
    X (WITHDRAW, "K -> A", F (job_id))                                                             \
    /* backward common files, after all tasks of a submission ended */                             \
    X (COLLECT, "K -> A", F (sub_id) | F (backward_common))                                        \
    X (COLLECTED, "A -> K", F (sub_id) | F (files) | F (reason))                                   \
    /* file transfer, both directions (receiver pulls chunks with credit) */                       \
    X (FETCH, "A <-> K", F (job_id) | F (hash) | F (offset) | F (size))                            \
    X (CHUNK, "A <-> K", F (hash) | F (offset) | F (data))                                         \
    X (NOFILE, "A <-> K", F (hash) | F (reason))                                                   \
    /* client */                                                                                   \
    X (SUBMIT, "C -> K",                                                                           \
       F (work_base) | F (group_size) | F (para_deg) | F (resources) | F (common) |                \
           F (backward_common) | F (tasks) | F (machines) | F (speculative))                       \
    X (SUBMITTED, "K -> C", F (sub_id) | F (total) | F (unserved))                                 \
    X (STATUS, "C -> K", F (sub_id) | F (detail))                                                  \
    X (STATUS_REPLY, "K -> C", F (subs) | F (tstats))                                              \
    X (WATCH, "C -> K", F (sub_id))                                                                \
    X (PROGRESS, "K -> C", F (sub_id) | F (state) | F (total) | F (counts) | F (finished))         \
    X (CANCEL, "C -> K", F (sub_id))                                                               \
    X (CANCELLED, "K -> C", F (sub_id) | F (total))                                                \
    /* sites: list, drain and resume */                                                            \
    X (SITES, "C -> K", F (name))                                                                  \
    X (SITES_REPLY, "K -> C", F (sites))                                                           \
    X (SITE_SET, "C -> K", F (name) | F (state))

#endif
