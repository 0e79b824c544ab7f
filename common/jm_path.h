/*  jm_path.h - path confinement for anything named by a submission or a
    message.  Nothing outside a task's (or work base's) directory is ever
    read or written because of a remote message.                         */
#ifndef JM_PATH_H
#define JM_PATH_H

#include <czmq.h>
#include <stddef.h>
#include <sys/types.h>

#define JM_PATH_MAX 4096

/*  Lexical check of a relative path: non-empty, at most JM_PATH_MAX bytes,
    not absolute, no ".." component, no NUL/newline.  "." components are
    allowed.  what names the field for the error
    ("task_work_path of task 3"); err reads e.g.
    "task_work_path of task 3: '../x' leaves the work base ('..')". */
int jm_path_check_rel (const char *rel, const char *what, char *err, size_t errlen);

/*  Open rel beneath dirfd with open(2) flags; '..' and symlinks that would
    leave dirfd's tree are refused (openat2 RESOLVE_BENEATH, or an
    equivalent walk where openat2 is missing).  With O_CREAT, missing
    parent directories are created (mode 0755).  Returns fd, or -1 + err. */
int jm_path_open_beneath (int dirfd, const char *rel, int flags, mode_t mode, char *err,
                          size_t errlen);
/* Create directory rel (and parents) beneath dirfd; returns an O_DIRECTORY
   fd of it, or -1 + err. */
int jm_path_mkdirs_beneath (int dirfd, const char *rel, char *err, size_t errlen);

/*  Expand glob pattern (relative, lexically checked) beneath directory dir.
    Appends to matches (zlist of malloc'ed strings, autofree) the relative
    paths of regular files whose real location is inside dir; matches that
    leave dir through a symlink are skipped and reported in err as a warning
    (return 0).  Returns number of matches added, or -1 + err. */
int jm_path_glob_beneath (const char *dir, const char *pattern, zlist_t *matches, char *err,
                          size_t errlen);

/* mkdir -p for a plain local path (client/coordinator own dirs). */
int jm_mkdirs (const char *path, mode_t mode, char *err, size_t errlen);

#endif
