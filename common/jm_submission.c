/*  jm_submission.c - load and validate a dpdispatcher-style Submission,
    then turn it into a SUBMIT message with its files in the store.

    Validation is complete before anything is written: every field is type
    checked, every path is lexically confined, and every forward file is
    opened beneath its directory (so a symlink out of it is refused) and
    must be a regular file. */
#define _GNU_SOURCE
#include "jm_submission.h"
#include "jm_path.h"
#include "jm_util.h"
#include "jm_yaml.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Top-level keys of dpdispatcher submission files that we accept and
   ignore (the machine is ours to choose; hashes and jobs are its state). */
static const char *s_ignored_top[] = {
    "machine", "submission_hash", "belonging_tasks", "belonging_jobs", "api_version", NULL,
};

typedef struct {
    const char *file;
    char *err;
    size_t errlen;
} jm_sctx_t;

static bool
s_in (const char *key, const char **list)
{
    for (; *list; list++)
        if (strcmp (key, *list) == 0)
            return true;
    return false;
}

static void
s_free_strs (char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free (v[i]);
    free (v);
}

void
jm_submission_destroy (jm_submission_t **self_p)
{
    assert (self_p);
    jm_submission_t *self = *self_p;
    if (!self)
        return;
    free (self->file);
    free (self->work_base);
    free (self->work_base_abs);
    s_free_strs (self->forward_common_files, self->n_forward_common);
    s_free_strs (self->backward_common_files, self->n_backward_common);
    for (size_t i = 0; i < self->n_tasks; i++) {
        jm_task_spec_t *t = &self->tasks[i];
        free (t->command);
        free (t->task_work_path);
        s_free_strs (t->forward_files, t->n_forward);
        s_free_strs (t->backward_files, t->n_backward);
        free (t->outlog);
        free (t->errlog);
    }
    free (self->tasks);
    jm_resources_destroy (&self->resources);
    free (self->notices);
    free (self);
    *self_p = NULL;
}

/*  "FILE:LINE: what: message" */
static int s_fail (jm_sctx_t *ctx, int line, const char *what, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static int
s_fail (jm_sctx_t *ctx, int line, const char *what, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);
    if (what)
        return jm_err (ctx->err, ctx->errlen, "%s:%d: %s: %s", ctx->file, line, what, msg);
    return jm_err (ctx->err, ctx->errlen, "%s:%d: %s", ctx->file, line, msg);
}

/*  A string field: any scalar (numbers included, as their text).  A null
    value gives def (NULL def: required). */
static int
s_get_str (jm_sctx_t *ctx, const jm_ynode_t *v, int line, const char *what, const char *def,
           char **out)
{
    if (!v || jm_ynode_is_null (v)) {
        if (!def)
            return s_fail (ctx, v ? v->line : line, what, "required but missing");
        *out = strdup (def);
        return 0;
    }
    if (v->type != JM_Y_SCALAR)
        return s_fail (ctx, v->line, what, "must be a string, not a %s",
                       v->type == JM_Y_MAP ? "map" : "list");
    *out = strdup (v->value);
    assert (*out);
    return 0;
}

/*  A boolean (YAML 1.1 words or JSON true/false, unquoted); null or
    missing keeps *out. */
static int
s_get_bool (jm_sctx_t *ctx, const jm_ynode_t *v, const char *what, bool *out)
{
    if (!v || jm_ynode_is_null (v) || jm_ynode_bool (v, out) == 0)
        return 0;
    if (v->type != JM_Y_SCALAR)
        return s_fail (ctx, v->line, what, "must be true or false, not a %s",
                       v->type == JM_Y_MAP ? "map" : "list");
    return s_fail (ctx, v->line, what, "must be true or false, not '%.64s'", v->value);
}

/*  A path field: a string, lexically confined. */
static int
s_get_path (jm_sctx_t *ctx, const jm_ynode_t *v, int line, const char *what, const char *def,
            char **out)
{
    if (s_get_str (ctx, v, line, what, def, out))
        return -1;
    char perr[JM_PATH_MAX + 256];
    if (jm_path_check_rel (*out, what, perr, sizeof perr)) {
        s_fail (ctx, v ? v->line : line, NULL, "%s", perr);
        free (*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/*  A list of confined paths (null/missing = empty). */
static int
s_get_paths (jm_sctx_t *ctx, const jm_ynode_t *v, int line, const char *what, char ***out,
             size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!v || jm_ynode_is_null (v))
        return 0;
    if (v->type != JM_Y_SEQ)
        return s_fail (ctx, v->line, what, "must be a list of strings");
    char **list = calloc (v->n ? v->n : 1, sizeof (char *));
    assert (list);
    for (size_t i = 0; i < v->n; i++) {
        char item_what[256];
        snprintf (item_what, sizeof item_what, "%s[%zu]", what, i);
        if (jm_ynode_is_null (v->items[i])) {
            s_free_strs (list, i);
            return s_fail (ctx, v->items[i]->line, item_what, "empty path");
        }
        if (s_get_path (ctx, v->items[i], line, item_what, NULL, &list[i])) {
            s_free_strs (list, i);
            return -1;
        }
    }
    *out = list;
    *n_out = v->n;
    return 0;
}

/*  Each name must be an existing regular file beneath dirfd. */
static int
s_check_files (jm_sctx_t *ctx, int dirfd, const char *dir_label, const jm_ynode_t *list,
               char **names, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        char item_what[256], perr[JM_PATH_MAX + 512];
        snprintf (item_what, sizeof item_what, "%s[%zu]", what, i);
        int line = list->items[i]->line;
        int fd = jm_path_open_beneath (dirfd, names[i], O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, perr,
                                       sizeof perr);
        if (fd < 0)
            return s_fail (ctx, line, item_what, "%s", perr);
        struct stat st;
        int rc = fstat (fd, &st);
        close (fd);
        if (rc != 0)
            return s_fail (ctx, line, item_what, "cannot stat '%s' in %s: %s", names[i], dir_label,
                           strerror (errno));
        if (!S_ISREG (st.st_mode))
            return s_fail (ctx, line, item_what, "'%s' in %s is not a regular file", names[i],
                           dir_label);
    }
    return 0;
}

static int
s_load_task (jm_sctx_t *ctx, const jm_ynode_t *node, size_t index, int basefd, jm_task_spec_t *t)
{
    static const char *known[] = {
        "command", "task_work_path", "forward_files",       "backward_files",
        "outlog",  "errlog",         "task_need_resources", NULL,
    };
    char what[256];
    snprintf (what, sizeof what, "task_list[%zu]", index);
    if (node->type != JM_Y_MAP)
        return s_fail (ctx, node->line, what, "must be a map with command and task_work_path");
    for (size_t i = 0; i < node->n; i++)
        if (!s_in (node->keys[i], known))
            return s_fail (ctx, node->key_lines[i], what,
                           "unknown key '%s' (known: command, task_work_path, forward_files, "
                           "backward_files, outlog, errlog)",
                           node->keys[i]);
    char fwhat[300];
#define S_FIELD(name) (snprintf (fwhat, sizeof fwhat, "%s." name, what), fwhat)
    if (s_get_str (ctx, jm_ynode_get (node, "command"), node->line, S_FIELD ("command"), NULL,
                   &t->command))
        return -1;
    if (!*t->command)
        return s_fail (ctx, jm_ynode_get (node, "command")->line, fwhat, "empty command");
    const jm_ynode_t *twp = jm_ynode_get (node, "task_work_path");
    if (s_get_path (ctx, twp, node->line, S_FIELD ("task_work_path"), NULL, &t->task_work_path))
        return -1;
    const jm_ynode_t *fwd = jm_ynode_get (node, "forward_files");
    if (s_get_paths (ctx, fwd, node->line, S_FIELD ("forward_files"), &t->forward_files,
                     &t->n_forward))
        return -1;
    if (s_get_paths (ctx, jm_ynode_get (node, "backward_files"), node->line,
                     S_FIELD ("backward_files"), &t->backward_files, &t->n_backward))
        return -1;
    if (s_get_path (ctx, jm_ynode_get (node, "outlog"), node->line, S_FIELD ("outlog"), "log",
                    &t->outlog))
        return -1;
    if (s_get_path (ctx, jm_ynode_get (node, "errlog"), node->line, S_FIELD ("errlog"), "err",
                    &t->errlog))
        return -1;
    if (t->n_forward > 0) {
        char perr[JM_PATH_MAX + 512], label[JM_PATH_MAX + 64];
        int dirfd = jm_path_open_beneath (basefd, t->task_work_path, O_RDONLY | O_DIRECTORY, 0,
                                          perr, sizeof perr);
        if (dirfd < 0)
            return s_fail (ctx, twp->line, S_FIELD ("task_work_path"), "%s", perr);
        snprintf (label, sizeof label, "task directory '%s'", t->task_work_path);
        int rc = s_check_files (ctx, dirfd, label, fwd, t->forward_files, t->n_forward,
                                S_FIELD ("forward_files"));
        close (dirfd);
        if (rc)
            return -1;
    }
#undef S_FIELD
    return 0;
}

jm_submission_t *
jm_submission_load (const char *file, const char *work_dir, char *err, size_t errlen)
{
    assert (file);
    jm_sctx_t ctx = {.file = file, .err = err, .errlen = errlen};
    jm_ynode_t *root = jm_yaml_load_file (file, err, errlen);
    if (!root)
        return NULL;
    jm_submission_t *self = calloc (1, sizeof (*self));
    assert (self);
    self->file = strdup (file);
    self->group_size = 1;
    self->para_deg = 1;
    int basefd = -1;

    if (root->type != JM_Y_MAP) {
        s_fail (&ctx, root->line, NULL, "a submission must be a map with a task_list");
        goto fail;
    }
    static const char *known[] = {
        "work_base",
        "forward_common_files",
        "backward_common_files",
        "resources",
        "task_list",
        "speculative",
        NULL,
    };
    for (size_t i = 0; i < root->n; i++)
        if (!s_in (root->keys[i], known) && !s_in (root->keys[i], s_ignored_top)) {
            s_fail (&ctx, root->key_lines[i], NULL,
                    "unknown key '%s' (known: work_base, forward_common_files, "
                    "backward_common_files, resources, speculative, task_list)",
                    root->keys[i]);
            goto fail;
        }
    if (s_get_bool (&ctx, jm_ynode_get (root, "speculative"), "speculative", &self->speculative))
        goto fail;

    const jm_ynode_t *wb = jm_ynode_get (root, "work_base");
    if (s_get_path (&ctx, wb, root->line, "work_base", ".", &self->work_base))
        goto fail;

    {
        /* a relative header template file is next to the submission file */
        char *copy = strdup (file);
        assert (copy);
        self->resources = jm_resources_from_ynode (jm_ynode_get (root, "resources"), file,
                                                   dirname (copy), &self->notices, err, errlen);
        free (copy);
        if (!self->resources)
            goto fail;
        self->group_size = self->resources->group_size;
        self->para_deg = self->resources->para_deg;
    }

    const jm_ynode_t *fcf = jm_ynode_get (root, "forward_common_files");
    if (s_get_paths (&ctx, fcf, root->line, "forward_common_files", &self->forward_common_files,
                     &self->n_forward_common) ||
        s_get_paths (&ctx, jm_ynode_get (root, "backward_common_files"), root->line,
                     "backward_common_files", &self->backward_common_files,
                     &self->n_backward_common))
        goto fail;

    const jm_ynode_t *tl = jm_ynode_get (root, "task_list");
    if (!tl || jm_ynode_is_null (tl)) {
        s_fail (&ctx, tl ? tl->line : root->line, NULL,
                "task_list is missing; a submission needs at least one task");
        goto fail;
    }
    if (tl->type != JM_Y_SEQ || tl->n == 0) {
        s_fail (&ctx, tl->line, "task_list", "must be a non-empty list of tasks");
        goto fail;
    }

    /* the work base: work_dir/work_base, resolved, an existing directory */
    {
        const char *wd = work_dir && *work_dir ? work_dir : ".";
        size_t n = strlen (wd) + strlen (self->work_base) + 2;
        char *joined = malloc (n);
        assert (joined);
        snprintf (joined, n, "%s/%s", wd, self->work_base);
        char *abs = realpath (joined, NULL);
        struct stat st;
        if (!abs || stat (abs, &st) != 0 || !S_ISDIR (st.st_mode)) {
            s_fail (&ctx, wb ? wb->line : root->line, "work_base", "'%s' is not a directory%s%s",
                    joined, abs ? "" : ": ", abs ? "" : strerror (errno));
            free (abs);
            free (joined);
            goto fail;
        }
        free (joined);
        self->work_base_abs = abs;
        basefd = open (abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (basefd < 0) {
            s_fail (&ctx, wb ? wb->line : root->line, "work_base", "cannot open '%s': %s", abs,
                    strerror (errno));
            goto fail;
        }
    }
    if (self->n_forward_common > 0) {
        char label[PATH_MAX + 32];
        snprintf (label, sizeof label, "work base '%s'", self->work_base_abs);
        if (s_check_files (&ctx, basefd, label, fcf, self->forward_common_files,
                           self->n_forward_common, "forward_common_files"))
            goto fail;
    }

    self->tasks = calloc (tl->n, sizeof (jm_task_spec_t));
    assert (self->tasks);
    for (size_t i = 0; i < tl->n; i++) {
        self->n_tasks = i + 1; /* so destroy frees a partly filled task */
        if (s_load_task (&ctx, tl->items[i], i, basefd, &self->tasks[i]))
            goto fail;
    }
    close (basefd);
    jm_ynode_destroy (&root);
    return self;
fail:
    if (basefd >= 0)
        close (basefd);
    jm_ynode_destroy (&root);
    jm_submission_destroy (&self);
    return NULL;
}

/*  Import name (beneath dirfd) into the store; push it onto files. */
static int
s_import (jm_store_t *store, int dirfd, const char *dir_label, const char *name, jm_wfiles_t *files,
          char *err, size_t errlen)
{
    char perr[JM_PATH_MAX + 512];
    int fd =
        jm_path_open_beneath (dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, perr, sizeof perr);
    if (fd < 0)
        return jm_err (err, errlen, "%s", perr);
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        close (fd);
        return jm_err (err, errlen, "'%s' in %s is not a regular file", name, dir_label);
    }
    char hash[JM_HASH_HEX];
    uint64_t size = 0;
    char label[JM_PATH_MAX * 2 + 64];
    snprintf (label, sizeof label, "%s/%s", dir_label, name);
    int rc = jm_store_import_fd (store, fd, label, hash, &size, err, errlen);
    close (fd);
    if (rc)
        return -1;
    jm_wfiles_push (files, name, hash, size, (uint32_t)(st.st_mode & 0777));
    return 0;
}

jm_msg_t *
jm_submission_to_msg (const jm_submission_t *self, jm_store_t *store, char *err, size_t errlen)
{
    assert (self && store);
    int basefd = open (self->work_base_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0) {
        jm_err (err, errlen, "cannot open work base '%s': %s", self->work_base_abs,
                strerror (errno));
        return NULL;
    }
    jm_msg_t *msg = jm_msg_new (JM_MSG_SUBMIT);
    assert (msg);
    jm_str_set (&msg->work_base, self->work_base_abs);
    msg->group_size = self->group_size;
    msg->para_deg = self->para_deg;
    msg->speculative = self->speculative;
    {
        /* the members win, should a caller have changed them after load */
        jm_resources_t *res = jm_resources_dup (self->resources);
        res->group_size = self->group_size;
        res->para_deg = self->para_deg;
        free (msg->resources);
        msg->resources = jm_resources_to_json (res);
        jm_resources_destroy (&res);
    }
    for (size_t i = 0; i < self->n_forward_common; i++)
        if (s_import (store, basefd, self->work_base_abs, self->forward_common_files[i],
                      &msg->common, err, errlen))
            goto fail;
    for (size_t i = 0; i < self->n_backward_common; i++)
        jm_strs_push (&msg->backward_common, self->backward_common_files[i]);

    for (size_t i = 0; i < self->n_tasks; i++) {
        const jm_task_spec_t *t = &self->tasks[i];
        jm_wtask_t *w = jm_wtasks_push (&msg->tasks);
        w->id = i;
        jm_str_set (&w->path, t->task_work_path);
        jm_str_set (&w->command, t->command);
        jm_str_set (&w->outlog, t->outlog);
        jm_str_set (&w->errlog, t->errlog);
        for (size_t j = 0; j < t->n_backward; j++)
            jm_strs_push (&w->backward, t->backward_files[j]);
        if (t->n_forward == 0)
            continue;
        char perr[JM_PATH_MAX + 512];
        int dirfd = jm_path_open_beneath (basefd, t->task_work_path, O_RDONLY | O_DIRECTORY, 0,
                                          perr, sizeof perr);
        if (dirfd < 0) {
            jm_err (err, errlen, "task %zu ('%s'): %s", i, t->task_work_path, perr);
            goto fail;
        }
        size_t n = strlen (self->work_base_abs) + strlen (t->task_work_path) + 2;
        char *label = malloc (n);
        assert (label);
        snprintf (label, n, "%s/%s", self->work_base_abs, t->task_work_path);
        int rc = 0;
        for (size_t j = 0; rc == 0 && j < t->n_forward; j++)
            rc = s_import (store, dirfd, label, t->forward_files[j], &w->forward, err, errlen);
        free (label);
        close (dirfd);
        if (rc)
            goto fail;
    }
    close (basefd);
    return msg;
fail:
    close (basefd);
    jm_msg_destroy (&msg);
    return NULL;
}

int
jm_submission_check_no_machine (const jm_submission_t *self, char *err, size_t errlen)
{
    assert (self);
    for (size_t i = 0; i < self->n_tasks; i++)
        if (strstr (self->tasks[i].command, "{command}"))
            return jm_err (err, errlen,
                           "%s: task %zu (%s): command uses {command} but no --machine file "
                           "was given",
                           self->file, i, self->tasks[i].task_work_path);
    return 0;
}

/*  The entry's resources as canonical JSON, or "" when they equal the
    defaults (the entry had none): the submission's then apply. */
static char *
s_machine_resources (const jm_resources_t *res)
{
    char *json = jm_resources_to_json (res);
    jm_resources_t *defaults = jm_resources_new ();
    char *def_json = jm_resources_to_json (defaults);
    jm_resources_destroy (&defaults);
    if (strcmp (json, def_json) == 0) {
        free (json);
        json = strdup ("");
        assert (json);
    }
    free (def_json);
    return json;
}

void
jm_submission_add_machines (jm_msg_t *msg, const jm_machines_t *machines)
{
    assert (msg && machines);
    for (size_t i = 0; i < jm_machines_count (machines); i++) {
        const jm_machine_t *m = jm_machines_entry (machines, i);
        jm_wmachine_t *w = jm_wmachines_push (&msg->machines);
        jm_str_set (&w->name, m->name);
        jm_str_set (&w->site, m->site);
        jm_str_set (&w->host, m->remote_profile.hostname);
        jm_str_set (&w->command, m->command);
        jm_str_set (&w->root, m->remote_root);
        free (w->resources);
        w->resources = s_machine_resources (m->resources);
        w->submit_size = m->submit_size;
        /* a ratio too small for millionths still caps (0 would mean none) */
        long long r = m->work_load_ratio > 0 ? llround (m->work_load_ratio * 1e6) : 0;
        w->ratio = r > 0 ? (uint64_t)r : m->work_load_ratio > 0 ? 1 : 0;
    }
}
