/*  jm_log.h - logging to stderr, prefixed with the program name and time. */
#ifndef JM_LOG_H
#define JM_LOG_H

#include <stdarg.h>

typedef enum { JM_LOG_DEBUG, JM_LOG_INFO, JM_LOG_WARN, JM_LOG_ERROR } jm_log_level_t;

/* Program name used as prefix ("jobman-agent"); default "jobman". */
void jm_log_init (const char *progname);
/* Messages below level are dropped; JOBMAN_LOG=debug|info|warn|error sets
   it at jm_log_init. */
void jm_log_set_level (jm_log_level_t level);
void jm_log (jm_log_level_t level, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
#define jm_debug(...) jm_log (JM_LOG_DEBUG, __VA_ARGS__)
#define jm_info(...) jm_log (JM_LOG_INFO, __VA_ARGS__)
#define jm_warn(...) jm_log (JM_LOG_WARN, __VA_ARGS__)
#define jm_error(...) jm_log (JM_LOG_ERROR, __VA_ARGS__)
/* The program name given to jm_log_init. */
const char *jm_progname (void);

#endif
