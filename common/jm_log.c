/*  jm_log.c - logging to stderr. */
#include "jm_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static const char *s_prog = "jobman";
static jm_log_level_t s_level = JM_LOG_INFO;

void
jm_log_init (const char *progname)
{
    if (progname)
        s_prog = progname;
    const char *env = getenv ("JOBMAN_LOG");
    if (!env)
        return;
    if (strcasecmp (env, "debug") == 0)
        s_level = JM_LOG_DEBUG;
    else if (strcasecmp (env, "warn") == 0)
        s_level = JM_LOG_WARN;
    else if (strcasecmp (env, "error") == 0)
        s_level = JM_LOG_ERROR;
}

void
jm_log_set_level (jm_log_level_t level)
{
    s_level = level;
}

const char *
jm_progname (void)
{
    return s_prog;
}

void
jm_log (jm_log_level_t level, const char *fmt, ...)
{
    static const char *names[] = {"D", "I", "W", "E"};
    if (level < s_level)
        return;
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    localtime_r (&tv.tv_sec, &tm);
    char line[4096];
    int n = snprintf (line, sizeof line, "%02d:%02d:%02d.%03d %s %s: ", tm.tm_hour, tm.tm_min,
                      tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], s_prog);
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end (ap);
    /* one write per line keeps lines whole when several processes share a log */
    size_t len = strlen (line);
    line[len++] = '\n';
    fwrite (line, 1, len, stderr);
}
