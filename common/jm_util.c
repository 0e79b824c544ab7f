/*  jm_util.c - small helpers. */
#include "jm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t
jm_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
jm_err (char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

char *
jm_read_file (const char *path, size_t *len_p, char *err, size_t errlen)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        jm_err (err, errlen, "cannot open '%s': %s", path, strerror (errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc (cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc (buf, cap);
        }
        ssize_t n = read (fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            jm_err (err, errlen, "cannot read '%s': %s", path, strerror (errno));
            free (buf);
            close (fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close (fd);
    buf[len] = 0;
    if (len_p)
        *len_p = len;
    return buf;
}

int
jm_write_file_atomic (const char *path, const void *data, size_t len, unsigned mode, char *err,
                      size_t errlen)
{
    size_t plen = strlen (path);
    char *tmp = malloc (plen + 32);
    snprintf (tmp, plen + 32, "%s.tmp.%d", path, (int)getpid ());
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        jm_err (err, errlen, "cannot create '%s': %s", tmp, strerror (errno));
        free (tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write (fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            jm_err (err, errlen, "cannot write '%s': %s", tmp, strerror (errno));
            close (fd);
            unlink (tmp);
            free (tmp);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    fchmod (fd, mode);
    if (close (fd) != 0 || rename (tmp, path) != 0) {
        jm_err (err, errlen, "cannot write '%s': %s", path, strerror (errno));
        unlink (tmp);
        free (tmp);
        return -1;
    }
    free (tmp);
    return 0;
}

char *
jm_sh_quote (const char *s)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *out = malloc (n + 1), *o = out;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy (o, "'\\''", 4);
            o += 4;
        }
        else
            *o++ = *p;
    }
    *o++ = '\'';
    *o = 0;
    return out;
}

pid_t
jm_reap_group (pid_t pid, int sig, int *status)
{
    if (sig > 0) {
        siginfo_t info = {0};
        if (waitid (P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid)
            kill (-pid, sig);
    }
    pid_t r;
    do
        r = waitpid (pid, status, WNOHANG);
    while (r < 0 && errno == EINTR);
    return r;
}
