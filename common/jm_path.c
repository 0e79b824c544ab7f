/*  jm_path.c - path confinement: lexical checks, openat2(RESOLVE_BENEATH)
    and a symlink-refusing component walk where openat2 is missing.

    The walk is also used when the environment variable JM_PATH_NO_OPENAT2
    is set (so tests can exercise it on kernels that have openat2).      */
#define _GNU_SOURCE
#include "jm_path.h"
#include "jm_log.h"
#include "jm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int
jm_path_check_rel (const char *rel, const char *what, char *err, size_t errlen)
{
    if (!what)
        what = "path";
    if (!rel || !*rel)
        return jm_err (err, errlen, "%s: the path is empty", what);
    size_t len = strlen (rel);
    if (len > JM_PATH_MAX)
        return jm_err (err, errlen, "%s: path of %zu bytes exceeds %d ('%.40s...')", what, len,
                       JM_PATH_MAX, rel);
    if (strchr (rel, '\n'))
        return jm_err (err, errlen, "%s: '%s' contains a newline", what, rel);
    if (rel[0] == '/')
        return jm_err (err, errlen, "%s: '%s' is an absolute path", what, rel);
    const char *p = rel;
    while (*p) {
        const char *slash = strchr (p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen (p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return jm_err (err, errlen, "%s: '%s' leaves its directory ('..')", what, rel);
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

/* Name of the directory behind dirfd, for messages. */
static void
s_dir_name (int dirfd, char *buf, size_t buflen)
{
    char link[64];
    snprintf (link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink (link, buf, buflen - 1);
    if (n <= 0 || dirfd == AT_FDCWD)
        snprintf (buf, buflen, "%s", dirfd == AT_FDCWD ? "the current directory" : "its directory");
    else
        buf[n] = 0;
}

/* set once the kernel said ENOSYS */
static int s_openat2_missing = 0;

static bool
s_use_walk (void)
{
    return s_openat2_missing || getenv ("JM_PATH_NO_OPENAT2") != NULL;
}

/*  Open rel (lexically checked) beneath dirfd one component at a time,
    refusing every symlink (errno EXDEV): without openat2 we cannot tell a
    harmless symlink from an escaping one without races. */
static int
s_walk_open (int dirfd, const char *rel, int flags, mode_t mode)
{
    char *copy = strdup (rel);
    if (!copy)
        return -1;
    /* split into non-empty components */
    size_t ncomp = 0;
    char *comps[JM_PATH_MAX / 2 + 2];
    for (char *save = NULL, *tok = strtok_r (copy, "/", &save); tok;
         tok = strtok_r (NULL, "/", &save))
        comps[ncomp++] = tok;
    if (ncomp == 0)
        comps[ncomp++] = ".";
    int cur = dirfd;
    int fd = -1;
    for (size_t i = 0; i < ncomp; i++) {
        const char *name = comps[i];
        bool last = i + 1 == ncomp;
        int next = last ? openat (cur, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)
                        : openat (cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int saved = errno;
            struct stat st;
            if (fstatat (cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode))
                saved = EXDEV;
            errno = saved;
            break;
        }
        if (last) {
            fd = next;
            break;
        }
        if (cur != dirfd)
            close (cur);
        cur = next;
    }
    int saved = errno;
    if (cur != dirfd)
        close (cur);
    free (copy);
    errno = saved;
    return fd;
}

static int
s_open (int dirfd, const char *rel, int flags, mode_t mode)
{
    if (!s_use_walk ()) {
        struct open_how how;
        memset (&how, 0, sizeof how);
        how.flags = (uint64_t)(flags | O_CLOEXEC);
        how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        for (;;) {
            long fd = syscall (SYS_openat2, dirfd, rel, &how, sizeof how);
            if (fd >= 0)
                return (int)fd;
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno != ENOSYS)
                return -1;
            s_openat2_missing = 1;
            break;
        }
    }
    return s_walk_open (dirfd, rel, flags, mode);
}

static int
s_open_error (int dirfd, const char *rel, const char *verb, char *err, size_t errlen)
{
    int saved = errno;
    char dir[PATH_MAX];
    s_dir_name (dirfd, dir, sizeof dir);
    if (saved == EXDEV || saved == ELOOP)
        jm_err (err, errlen, "'%s' leads outside %s (through a symlink or '..')", rel, dir);
    else
        jm_err (err, errlen, "cannot %s '%s' in %s: %s", verb, rel, dir, strerror (saved));
    errno = saved;
    return -1;
}

int
jm_path_mkdirs_beneath (int dirfd, const char *rel, char *err, size_t errlen)
{
    if (jm_path_check_rel (rel, "directory", err, errlen))
        return -1;
    size_t len = strlen (rel);
    char *prefix = malloc (len + 1);
    if (!prefix)
        return jm_err (err, errlen, "out of memory");
    int parent = s_open (dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
    if (parent < 0) {
        free (prefix);
        return s_open_error (dirfd, ".", "open", err, errlen);
    }
    size_t i = 0;
    while (i < len) {
        while (i < len && rel[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && rel[i] != '/')
            i++;
        memcpy (prefix, rel, i);
        prefix[i] = 0;
        int fd = s_open (dirfd, prefix, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0 && errno == ENOENT) {
            char name[NAME_MAX + 2];
            size_t n = i - start;
            if (n > NAME_MAX) {
                close (parent);
                free (prefix);
                return jm_err (err, errlen,
                               "cannot create directory '%s': a component is longer than %d bytes",
                               rel, NAME_MAX);
            }
            memcpy (name, rel + start, n);
            name[n] = 0;
            if (mkdirat (parent, name, 0755) != 0 && errno != EEXIST) {
                int saved = errno;
                close (parent);
                free (prefix);
                errno = saved;
                return s_open_error (dirfd, rel, "create directory", err, errlen);
            }
            fd = s_open (dirfd, prefix, O_RDONLY | O_DIRECTORY, 0);
        }
        if (fd < 0) {
            int saved = errno;
            close (parent);
            errno = saved;
            s_open_error (dirfd, prefix, "open directory", err, errlen);
            free (prefix);
            return -1;
        }
        close (parent);
        parent = fd;
    }
    free (prefix);
    return parent;
}

int
jm_path_open_beneath (int dirfd, const char *rel, int flags, mode_t mode, char *err, size_t errlen)
{
    if (jm_path_check_rel (rel, "path", err, errlen))
        return -1;
    if (!(flags & O_CREAT)) {
        int fd = s_open (dirfd, rel, flags, mode);
        if (fd < 0)
            return s_open_error (dirfd, rel, "open", err, errlen);
        return fd;
    }
    /* Create missing parents first, then open the last component
       beneath the whole tree (so a symlinked last component is judged
       against dirfd, not against its parent). */
    const char *slash = strrchr (rel, '/');
    if (slash && slash != rel) {
        size_t n = (size_t)(slash - rel);
        char *parent = strndup (rel, n);
        if (!parent)
            return jm_err (err, errlen, "out of memory");
        char suberr[PATH_MAX + 256];
        int pfd = jm_path_mkdirs_beneath (dirfd, parent, suberr, sizeof suberr);
        free (parent);
        if (pfd < 0)
            return jm_err (err, errlen, "cannot create '%s': %s", rel, suberr);
        close (pfd);
    }
    int fd = s_open (dirfd, rel, flags, mode);
    if (fd < 0)
        return s_open_error (dirfd, rel, "create", err, errlen);
    return fd;
}

/* Escape glob metacharacters of a literal directory name. */
static char *
s_glob_escape (const char *s)
{
    size_t n = strlen (s);
    char *out = malloc (2 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        if (strchr ("*?[]\\", *p))
            *o++ = '\\';
        *o++ = *p;
    }
    *o = 0;
    return out;
}

static void
s_warn_append (char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (!err || !errlen)
        return;
    size_t used = strlen (err);
    if (used + 4 >= errlen)
        return;
    if (used > 0) {
        snprintf (err + used, errlen - used, "; ");
        used += 2;
    }
    snprintf (err + used, errlen - used, fmt, a, b);
}

int
jm_path_glob_beneath (const char *dir, const char *pattern, zlist_t *matches, char *err,
                      size_t errlen)
{
    if (jm_path_check_rel (pattern, "pattern", err, errlen))
        return -1;
    char *real_dir = realpath (dir, NULL);
    if (!real_dir)
        return jm_err (err, errlen, "cannot search '%s' for '%s': %s", dir, pattern,
                       strerror (errno));
    char *esc = s_glob_escape (real_dir);
    size_t flen = strlen (esc) + strlen (pattern) + 2;
    char *full = malloc (flen);
    if (!esc || !full) {
        free (esc);
        free (full);
        free (real_dir);
        return jm_err (err, errlen, "out of memory");
    }
    snprintf (full, flen, "%s/%s", esc, pattern);
    free (esc);
    if (err && errlen)
        err[0] = 0;

    glob_t g;
    memset (&g, 0, sizeof g);
    int rc = glob (full, 0, NULL, &g);
    free (full);
    if (rc == GLOB_NOSPACE) {
        globfree (&g);
        free (real_dir);
        return jm_err (err, errlen, "out of memory expanding '%s' in '%s'", pattern, dir);
    }
    size_t dlen = strlen (real_dir);
    int added = 0;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        const char *m = g.gl_pathv[i];
        if (strncmp (m, real_dir, dlen) != 0 || m[dlen] != '/')
            continue; /* cannot happen: glob keeps our prefix */
        const char *rel = m + dlen + 1;
        if (jm_path_check_rel (rel, "match", NULL, 0) != 0) {
            s_warn_append (err, errlen, "skipped '%s' (a '..' match of '%s')", rel, pattern);
            continue;
        }
        struct stat st;
        if (lstat (m, &st) != 0 || S_ISDIR (st.st_mode))
            continue;
        char *real = realpath (m, NULL);
        bool inside = real && strncmp (real, real_dir, dlen) == 0 &&
                      (real[dlen] == '/' || (dlen == 1 && real_dir[0] == '/'));
        if (!inside) {
            s_warn_append (err, errlen, "skipped '%s': it leads outside %s (through a symlink)",
                           rel, real_dir);
            free (real);
            continue;
        }
        free (real);
        if (stat (m, &st) != 0 || !S_ISREG (st.st_mode))
            continue;
        /* matches is autofree (see jm_path.h): the list keeps its own copy */
        if (zlist_append (matches, (char *)rel) != 0)
            continue;
        added++;
    }
    globfree (&g);
    free (real_dir);
    return added;
}

int
jm_mkdirs (const char *path, mode_t mode, char *err, size_t errlen)
{
    if (!path || !*path)
        return jm_err (err, errlen, "cannot create a directory with an empty name");
    char *copy = strdup (path);
    if (!copy)
        return jm_err (err, errlen, "out of memory");
    size_t len = strlen (copy);
    for (size_t i = 1; i <= len; i++) {
        if (copy[i] != '/' && copy[i] != 0)
            continue;
        char saved = copy[i];
        copy[i] = 0;
        if (mkdir (copy, mode) != 0 && errno != EEXIST) {
            int e = errno;
            jm_err (err, errlen, "cannot create directory '%s': %s", copy, strerror (e));
            free (copy);
            errno = e;
            return -1;
        }
        copy[i] = saved;
    }
    struct stat st;
    int src = stat (path, &st);
    if (src != 0 || !S_ISDIR (st.st_mode)) {
        jm_err (err, errlen, "cannot create directory '%s': %s", path,
                src != 0 ? strerror (errno) : "a file of that name is in the way");
        free (copy);
        return -1;
    }
    free (copy);
    return 0;
}
