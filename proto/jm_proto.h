/*  jm_proto.h - the jobman message codec (msgpack), driven by jm_msgs.h.

    Nothing else in jobman encodes or decodes wire messages.

    A jm_msg_t holds one message.  It has a member for every field of the
    table; only the fields the message's type lists are encoded, and decoding
    fills exactly those (the others stay zero/NULL).  Every pointer member is
    owned by the message and freed by jm_msg_destroy.  Build messages with
    jm_msg_new and the jm_*_push helpers; strings are copied.
*/
#ifndef JM_PROTO_H
#define JM_PROTO_H

#include "jm_msgs.h"
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message ids: JM_MSG_HELLO, JM_MSG_WELCOME, ... */
typedef enum {
#define JM_X_ENUM(name, dir, fields) JM_MSG_##name,
#define JM_X_F(f) 0
    JM_MESSAGES (JM_X_ENUM, JM_X_F)
#undef JM_X_ENUM
#undef JM_X_F
        JM_MSG_COUNT
} jm_msg_id_t;

/* Field ids: JM_FLD_version, ... and bit masks JM_FB(version). */
typedef enum {
#define JM_X_FENUM(name, type, max) JM_FLD_##name,
    JM_FIELDS (JM_X_FENUM)
#undef JM_X_FENUM
        JM_FLD_COUNT
} jm_field_id_t;
#define JM_FB(f) (UINT64_C (1) << JM_FLD_##f)

/*  Records.  Map keys on the wire are the member names.
    file:  { "path": STR<=4096, "hash": STR 64 lowercase hex (or "" in
             backward lists where unknown), "size": U64, "mode": U64 }
    task:  { "id": U64, "path": STR<=4096, "command": STR<=65536,
             "outlog": STR<=4096, "errlog": STR<=4096,
             "forward": FILES<=100000, "backward": STRS<=10000 }
    sub:   { "id": STR<=64, "state": STR<=32, "work_base": STR<=4096,
             "total": U64, "counts": U64S<=32, "created": U64, "bytes": U64 }
    tstat: { "id": U64, "path": STR<=4096, "state": STR<=32,
             "exit_code": I64, "site": STR<=128, "reason": STR<=8192 }
    machine: { "name": STR<=128, "site": STR<=128, "host": STR<=256,
             "command": STR<=65536, "root": STR<=4096,
             "resources": STR<=262144, "submit_size": U64, "ratio": U64 }
             (ratio: work_load_ratio in millionths, 0 = none)
    site:  { "name": STR<=128, "state": STR<=32, "drained": BOOL,
             "scheduler": STR<=32, "host": STR<=256, "slots": U64,
             "max_jobs": U64, "cores": U64, "gpus": U64, "running": U64,
             "queued": U64, "free_slots": U64, "done_1m": U64,
             "wait_ms": U64, "jobs": U64, "last_seen": U64 (unix ms),
             "tunnel": STR<=256 }                                        */
typedef struct {
    char *path;
    char hash[65];
    uint64_t size;
    uint32_t mode;
} jm_wfile_t;

typedef struct {
    jm_wfile_t *v;
    size_t n;
} jm_wfiles_t;

typedef struct {
    char **v;
    size_t n;
} jm_strs_t;

typedef struct {
    uint64_t *v;
    size_t n;
} jm_u64s_t;

typedef struct {
    uint64_t id;
    char *path;
    char *command;
    char *outlog;
    char *errlog;
    jm_wfiles_t forward;
    jm_strs_t backward;
} jm_wtask_t;

typedef struct {
    jm_wtask_t *v;
    size_t n;
} jm_wtasks_t;

typedef struct {
    char *id;
    char *state;
    char *work_base;
    uint64_t total;
    jm_u64s_t counts;
    uint64_t created;
    uint64_t bytes;
} jm_wsub_t;

typedef struct {
    jm_wsub_t *v;
    size_t n;
} jm_wsubs_t;

typedef struct {
    uint64_t id;
    char *path;
    char *state;
    int64_t exit_code;
    char *site;
    char *reason;
} jm_wtstat_t;

typedef struct {
    jm_wtstat_t *v;
    size_t n;
} jm_wtstats_t;

/* A machine entry of a submission (thkit MACHINE.yml / dpdispatcher). */
typedef struct {
    char *name;           /* entry key, e.g. "dft_1" */
    char *site;           /* explicit site: key, or "" */
    char *host;           /* remote_profile.hostname, or "" */
    char *command;        /* substituted for {command} in task commands */
    char *root;           /* remote_root, or "" (the agent's root) */
    char *resources;      /* canonical JSON, or "" (the submission's) */
    uint64_t submit_size; /* 0 = no cap */
    uint64_t ratio;       /* work_load_ratio * 1e6; 0 = no cap */
} jm_wmachine_t;

typedef struct {
    jm_wmachine_t *v;
    size_t n;
} jm_wmachines_t;

/* A site as the coordinator sees it (SITES_REPLY). */
typedef struct {
    char *name;
    char *state; /* "up", "lost", "gone" (disconnected, never or no longer seen) */
    bool drained;
    char *scheduler;
    char *host;
    uint64_t slots;
    uint64_t max_jobs;
    uint64_t cores;
    uint64_t gpus;
    uint64_t running;    /* tasks running (agent's LOAD) */
    uint64_t queued;     /* jobs waiting at the site (agent's LOAD) */
    uint64_t free_slots; /* (agent's LOAD) */
    uint64_t done_1m;    /* tasks ended in the last minute (agent's LOAD) */
    uint64_t wait_ms;    /* median queue wait of recent jobs (agent's LOAD) */
    uint64_t jobs;       /* jobs the coordinator has out at the site */
    uint64_t last_seen;  /* unix ms, 0 = never */
    char *tunnel;        /* ssh tunnel state, "" = none */
} jm_wsite_t;

typedef struct {
    jm_wsite_t *v;
    size_t n;
} jm_wsites_t;

typedef struct {
    jm_msg_id_t id;
    uint64_t version;
    char *role;
    char *name;
    char *scheduler;
    uint64_t slots;
    char *host;
    uint64_t heartbeat_ms;
    uint64_t code;
    char *reason;
    uint64_t credit;
    uint64_t job_id;
    char *sub_id;
    char *work_base;
    uint64_t group_size;
    uint64_t para_deg;
    jm_wfiles_t common;
    jm_strs_t backward_common;
    jm_wtasks_t tasks;
    uint64_t task_id;
    int64_t exit_code;
    jm_wfiles_t files;
    jm_u64s_t ids;
    char hash[65];
    uint64_t offset;
    uint64_t size;
    uint8_t *data;
    size_t data_size;
    char *state;
    jm_wsubs_t subs;
    jm_wtstats_t tstats;
    jm_u64s_t counts;
    uint64_t total;
    uint64_t bytes;
    bool finished;
    bool detail;
    char *resources;
    uint64_t max_jobs;
    uint64_t cores;
    uint64_t gpus;
    uint64_t running;
    uint64_t queued;
    uint64_t free_slots;
    uint64_t done_1m;
    uint64_t wait_ms;
    char *root;
    jm_wmachines_t machines;
    bool speculative;
    jm_strs_t unserved;
    jm_wsites_t sites;
} jm_msg_t;

/*  Decode results: 0 is success; each failure is a distinct negative code. */
typedef enum {
    JM_PROTO_OK = 0,
    JM_PROTO_EMALFORMED = -1, /* not msgpack, trailing bytes, not a map   */
    JM_PROTO_EVERSION = -2,   /* "v" missing or not JM_PROTO_VERSION      */
    JM_PROTO_ETYPE = -3,      /* "t" missing or names no known message    */
    JM_PROTO_EMISSING = -4,   /* a field of the message is absent         */
    JM_PROTO_EFIELDTYPE = -5, /* a field has the wrong msgpack type       */
    JM_PROTO_ETOOBIG = -6,    /* a string, binary or array exceeds its max */
    JM_PROTO_EUNKNOWN = -7,   /* a key the message (or record) does not have */
    JM_PROTO_EDUP = -8,       /* a key appears twice                      */
    JM_PROTO_EVALUE = -9      /* a value is out of its domain (bad hash hex,
                                 NUL inside a string, mode > 07777)        */
} jm_proto_err_t;

/* Name of a message id ("HELLO"), or NULL if out of range. */
const char *jm_msg_name (jm_msg_id_t id);
/* Direction text from the table ("A,C -> K"). */
const char *jm_msg_direction (jm_msg_id_t id);
/* Field mask of a message type. */
uint64_t jm_msg_fields (jm_msg_id_t id);
/* Human name of a decode error code. */
const char *jm_proto_strerror (int code);

/* New, zeroed message of the given type; version set to JM_PROTO_VERSION. */
jm_msg_t *jm_msg_new (jm_msg_id_t id);
void jm_msg_destroy (jm_msg_t **self_p);

/*  Encode into a newly allocated buffer (*buf_p, caller frees with free()).
    Returns 0, or -1 if a field violates the table's limits (a programmer or
    input error; err says which field). */
int jm_msg_encode (const jm_msg_t *self, uint8_t **buf_p, size_t *size_p, char *err, size_t errlen);

/*  Strict decode of one message.  On success *msg_p is a new message and 0
    is returned.  On failure returns a jm_proto_err_t code, *msg_p is NULL
    and err (if non-NULL) holds a message naming the message type and field,
    e.g. "JOB: field 'tasks[3].path': string of 5000 bytes exceeds 4096".
    For JM_PROTO_EVERSION, *peer_version_p (if non-NULL) receives the
    version the peer sent (0 if absent). Never crashes on any input. */
int jm_msg_decode (const uint8_t *data, size_t size, jm_msg_t **msg_p, uint64_t *peer_version_p,
                   char *err, size_t errlen);

/*  Socket helpers.  For a ROUTER socket pass the peer's routing id frame
    (not consumed; it is copied).  Destroys *self_p in every case.
    Returns 0 or -1. */
int jm_msg_send (jm_msg_t **self_p, zsock_t *sock, zframe_t *routing_id);

/*  Receive one message.  For a ROUTER socket pass routing_id_p to receive
    the sender's routing id (caller destroys it); pass NULL for DEALER.
    Returns a message, or NULL with *errcode_p (if non-NULL) set: a decode
    error code, or JM_PROTO_EMALFORMED for a wrong frame count; err holds the
    text.  The caller answers the peer; the socket is always left ready for
    the next message. */
jm_msg_t *jm_msg_recv (zsock_t *sock, zframe_t **routing_id_p, int *errcode_p,
                       uint64_t *peer_version_p, char *err, size_t errlen);

/* Builders.  Strings are copied; NULL is stored as "". */
jm_wfile_t *jm_wfiles_push (jm_wfiles_t *list, const char *path, const char *hash, uint64_t size,
                            uint32_t mode);
void jm_strs_push (jm_strs_t *list, const char *s);
void jm_u64s_push (jm_u64s_t *list, uint64_t v);
/* New zeroed task at the end of the list; set its members (strings: use
   strdup; the message owns them). */
jm_wtask_t *jm_wtasks_push (jm_wtasks_t *list);
jm_wsub_t *jm_wsubs_push (jm_wsubs_t *list);
jm_wtstat_t *jm_wtstats_push (jm_wtstats_t *list);
jm_wmachine_t *jm_wmachines_push (jm_wmachines_t *list);
jm_wsite_t *jm_wsites_push (jm_wsites_t *list);
/* Sets *dst to a copy of s (freeing the old value); NULL stores "". */
void jm_str_set (char **dst, const char *s);
/* Copies size bytes into msg->data. */
void jm_msg_set_data (jm_msg_t *self, const void *data, size_t size);

#endif
