/*  jm_util.h - small helpers shared by the three programs. */
#ifndef JM_UTIL_H
#define JM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic milliseconds. */
int64_t jm_now_ms (void);
/* snprintf into err if err is non-NULL; returns -1 (for 'return jm_err(...)'). */
int jm_err (char *err, size_t errlen, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
/* Read a whole file (NUL-terminated, *len_p may be NULL). NULL + err. */
char *jm_read_file (const char *path, size_t *len_p, char *err, size_t errlen);
/* Write a whole file atomically (temp + rename) with mode. 0 or -1 + err. */
int jm_write_file_atomic (const char *path, const void *data, size_t len, unsigned mode, char *err,
                          size_t errlen);
/* Single-quote s for /bin/sh: 'it'\''s'. malloc'ed. */
char *jm_sh_quote (const char *s);
/* waitpid (pid, status, WNOHANG), EINTR retried, for a child that leads its
   own process group. With sig > 0, once the child has exited but before it
   is reaped, what is left of its group gets sig: until the reap the group's
   number cannot have been given to another process, afterwards it can. */
pid_t jm_reap_group (pid_t pid, int sig, int *status);

#endif
