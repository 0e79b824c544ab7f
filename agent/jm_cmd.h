/*  jm_cmd.h - run a scheduler command (sbatch, squeue, qstat, ...) without
    blocking the agent's event loop.

    The child is started with posix_spawnp (PATH lookup, so tests and
    benchmarks can put wrappers first on PATH), stdin from a file or
    /dev/null (LSF's bsub reads its script from stdin), its
    stdout and stderr read through non-blocking pipes polled by the zloop.
    When both pipes are at EOF and the child has been reaped, the callback
    runs once from the loop.  A command that outlives timeout_ms is killed
    (SIGTERM, SIGKILL 2 s later) and reported with timed_out set.

    The child is reaped by its PID only (waitpid(pid)), never waitpid(-1),
    so other children of the agent are not disturbed.  It runs in its own
    process group, so a timeout or cancel also kills what a wrapper script
    started; a child that exits while a grandchild still holds its output
    pipes open is reported half a second later with what it wrote.
    Single-threaded: commands belong to the thread that runs their loop. */
#ifndef JM_CMD_H
#define JM_CMD_H

#include <czmq.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int status;      /* exit code; 128+N if killed by signal N.  (A command
                        that cannot be started, e.g. not on PATH, makes
                        jm_cmd_start return NULL + err instead: no result
                        has status -1.) */
    bool timed_out;  /* killed because it outlived timeout_ms */
    const char *out; /* standard output, NUL-terminated (capped at 64 MiB) */
    size_t out_len;
    const char *err; /* standard error (capped at 1 MiB), or the spawn error */
    size_t err_len;
    double secs; /* wall time */
} jm_cmd_result_t;

/* Called once from the loop; r and its strings are valid during the call. */
typedef void (jm_cmd_done_fn) (void *arg, const jm_cmd_result_t *r);

typedef struct _jm_cmd_t jm_cmd_t;

/*  Starts argv[0] with argv (NULL-terminated; copied), standard input
    from stdin_path (NULL = /dev/null).  Returns a handle,
    or NULL + err if the pipes or the spawn failed (no callback then).
    The handle is freed by the library after the callback returns; keep it
    only to cancel before that. */
jm_cmd_t *jm_cmd_start (zloop_t *loop, char *const argv[], const char *stdin_path,
                        unsigned timeout_ms, jm_cmd_done_fn *fn, void *arg, char *err,
                        size_t errlen);

/*  Kills the command (SIGKILL), reaps it, removes it from the loop; the
    callback is not called.  *self_p is set to NULL.  Use from destroy. */
void jm_cmd_cancel (jm_cmd_t **self_p);

/*  Spawn attributes for a child of a loop-driven process: the signals
    CZMQ and we handle reset to default, an empty signal mask, and a
    process group of its own (so that killing the group ends what it
    started).  The caller destroys *at. */
void jm_cmd_spawnattr_init (posix_spawnattr_t *at);

/* "sbatch --parsable /x/y" for logs (malloc'ed, words single-quoted when
   needed). */
char *jm_cmd_describe (char *const argv[]);

/* A growable NULL-terminated argv. */
typedef struct {
    char **v; /* v[n] == NULL */
    size_t n, cap;
} jm_argv_t;

void jm_argv_add (jm_argv_t *self, const char *s);
void jm_argv_addf (jm_argv_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* Frees the strings and the array; leaves an empty argv. */
void jm_argv_clear (jm_argv_t *self);

#endif
