/*  jm_jobscript.c - renders the bash script that runs one job's tasks.

    Per task the script forks one background subshell (which cd's into the
    task dir and runs /bin/sh -c <command>); the tag file and the "E" line
    come from that subshell after the command ended.  Task arguments are
    passed to a shell function as single-quoted words, so nothing from a
    path or file name is ever parsed as shell code. */
#define _GNU_SOURCE
#include "jm_jobscript.h"
#include "jm_text.h"
#include "jm_util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t id;
    char *dir;
    char *command;
    char *outlog;
    char *errlog;
} s_task_t;

struct _jm_jobscript_t {
    uint64_t job_id;
    char *work_base;
    char *job_dir;
    size_t para_deg;
    bool no_tags;
    char *header;
    char **prologue;
    size_t nprologue;
    s_task_t *tasks;
    size_t ntasks, cap;
    jm_resources_t *res; /* NULL = none */
};

jm_jobscript_t *
jm_jobscript_new (uint64_t job_id, const char *work_base, const char *job_dir, size_t para_deg)
{
    jm_jobscript_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->job_id = job_id;
    self->work_base = strdup (work_base);
    self->job_dir = strdup (job_dir);
    self->para_deg = para_deg ? para_deg : 1;
    return self;
}

void
jm_jobscript_destroy (jm_jobscript_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jm_jobscript_t *self = *self_p;
    for (size_t i = 0; i < self->ntasks; i++) {
        free (self->tasks[i].dir);
        free (self->tasks[i].command);
        free (self->tasks[i].outlog);
        free (self->tasks[i].errlog);
    }
    for (size_t i = 0; i < self->nprologue; i++)
        free (self->prologue[i]);
    free (self->prologue);
    free (self->tasks);
    free (self->header);
    jm_resources_destroy (&self->res);
    free (self->work_base);
    free (self->job_dir);
    free (self);
    *self_p = NULL;
}

static char *
s_dup_or (const char *s, const char *dflt)
{
    return strdup (s && *s ? s : dflt);
}

void
jm_jobscript_add_task (jm_jobscript_t *self, uint64_t task_id, const char *dir, const char *command,
                       const char *outlog, const char *errlog)
{
    if (self->ntasks == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->tasks = realloc (self->tasks, self->cap * sizeof *self->tasks);
    }
    s_task_t *t = &self->tasks[self->ntasks++];
    t->id = task_id;
    t->dir = s_dup_or (dir, ".");
    t->command = strdup (command ? command : "");
    t->outlog = s_dup_or (outlog, "/dev/null");
    t->errlog = s_dup_or (errlog, "/dev/null");
}

void
jm_jobscript_set_header (jm_jobscript_t *self, const char *header)
{
    free (self->header);
    self->header = header ? strdup (header) : NULL;
}

void
jm_jobscript_add_prologue (jm_jobscript_t *self, const char *line)
{
    self->prologue = realloc (self->prologue, (self->nprologue + 1) * sizeof *self->prologue);
    self->prologue[self->nprologue++] = strdup (line);
}

void
jm_jobscript_set_tag_files (jm_jobscript_t *self, bool on)
{
    self->no_tags = !on;
}

void
jm_jobscript_set_resources (jm_jobscript_t *self, const jm_resources_t *res)
{
    jm_resources_destroy (&self->res);
    self->res = res ? jm_resources_dup (res) : NULL;
}

const jm_resources_t *
jm_jobscript_resources (jm_jobscript_t *self)
{
    return self->res;
}

const char *
jm_jobscript_work_base (jm_jobscript_t *self)
{
    return self->work_base;
}

uint64_t
jm_jobscript_task_id (jm_jobscript_t *self, size_t i)
{
    assert (i < self->ntasks);
    return self->tasks[i].id;
}

uint64_t
jm_jobscript_job_id (jm_jobscript_t *self)
{
    return self->job_id;
}

const char *
jm_jobscript_job_dir (jm_jobscript_t *self)
{
    return self->job_dir;
}

size_t
jm_jobscript_ntasks (jm_jobscript_t *self)
{
    return self->ntasks;
}

/* Appends ' ' + the single-quoted word. */
static void
s_word (jm_text_t *b, const char *s)
{
    char *q = jm_sh_quote (s);
    jm_text_puts (b, " ");
    jm_text_puts (b, q);
    free (q);
}

static void
s_cd_work_base (jm_text_t *b, jm_jobscript_t *self)
{
    jm_text_puts (b, "cd --");
    s_word (b, self->work_base);
    jm_text_puts (b, " || { echo \"jobman: cannot enter the work base\" >&2; exit 121; }\n");
}

static bool
s_env_name_ok (const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/*  dpdispatcher's environment set-up, in its order: module purge, module
    unload, module load, source, export, prepend_script. */
static void
s_resources_prologue (jm_text_t *b, const jm_resources_t *res)
{
    if (res->module_purge)
        jm_text_puts (b, "module purge\n");
    for (size_t i = 0; i < res->module_unload_list.n; i++) {
        jm_text_puts (b, "module unload");
        s_word (b, res->module_unload_list.v[i]);
        jm_text_puts (b, "\n");
    }
    for (size_t i = 0; i < res->module_list.n; i++) {
        jm_text_puts (b, "module load");
        s_word (b, res->module_list.v[i]);
        jm_text_puts (b, "\n");
    }
    for (size_t i = 0; i < res->source_list.n; i++) {
        const char *src = res->source_list.v[i];
        if (strncmp (src, "~/", 2) == 0) {
            jm_text_puts (b, "source \"$HOME\"/");
            char *q = jm_sh_quote (src + 2);
            jm_text_puts (b, q);
            free (q);
        }
        else {
            jm_text_puts (b, "source");
            s_word (b, src);
        }
        jm_text_puts (b, "\n");
    }
    for (size_t i = 0; i < res->n_envs; i++) {
        char *q = jm_resources_env_quote (res->envs[i].value);
        jm_text_add (b, "export %s=%s\n", res->envs[i].key, q);
        free (q);
    }
    for (size_t i = 0; i < res->prepend_script.n; i++) {
        jm_text_puts (b, res->prepend_script.v[i]);
        jm_text_puts (b, "\n");
    }
}

int
jm_jobscript_render (jm_jobscript_t *self, char **text_p, char *err, size_t errlen)
{
    if (strchr (self->work_base, '\n') || strchr (self->job_dir, '\n'))
        return jm_err (err, errlen, "job %" PRIu64 ": work base or job dir contains a newline",
                       self->job_id);
    if (self->res)
        for (size_t i = 0; i < self->res->n_envs; i++)
            if (!s_env_name_ok (self->res->envs[i].key))
                return jm_err (err, errlen,
                               "job %" PRIu64 ": resources.envs: '%.100s' is not a shell variable "
                               "name",
                               self->job_id, self->res->envs[i].key);
    jm_text_t b = JM_TEXT_INIT;
    jm_text_puts (&b, "#!/bin/bash\n");
    if (self->header)
        jm_text_puts (&b, self->header);
    /* only the S/E lines go to standard output (fd 3 from here on): what
       the set-up (source, module load) prints lands on standard error */
    jm_text_puts (&b, "exec 3>&1 1>&2\n");
    jm_text_add (&b, "# jobman job %" PRIu64 ": %zu task(s), %zu at a time\n", self->job_id,
                 self->ntasks, self->para_deg);
    s_cd_work_base (&b, self);
    jm_text_puts (&b, "jm_jobdir=");
    char *q = jm_sh_quote (self->job_dir);
    jm_text_puts (&b, q);
    free (q);
    jm_text_puts (&b, "\n");
    /* the set-up may cd elsewhere (a sourced file, prepend_script): back
       to the work base after each part, as task dirs are relative to it */
    if (self->res) {
        s_resources_prologue (&b, self->res);
        s_cd_work_base (&b, self);
    }
    for (size_t i = 0; i < self->nprologue; i++) {
        jm_text_puts (&b, self->prologue[i]);
        jm_text_puts (&b, "\n");
    }
    if (self->nprologue)
        s_cd_work_base (&b, self);
    /*  jm_go ID DIR OUTLOG ERRLOG COMMAND starts one task in the background
        once fewer than para_deg run.  Two ways, chosen when the script runs:
        with bash >= 5.1, 'wait -n -p' names the task that ended, so a task
        is one subshell that execs /bin/sh (one fork per task) and the
        script reports its end; older bash needs a reporting subshell around
        /bin/sh (two forks).  JOBMAN_JOBSCRIPT_COMPAT=1 forces the second
        (tests).  A missing task dir gives 127.
        bash 5.2 under load now and then returns 127 from 'wait -n' without
        a PID although a task is running or has just ended (about 2 runs in
        100 of 200 one-line tasks beside two busy loops): the fast way then
        waits for one task it knows by PID, whose status bash keeps, and the
        closing 'wait' keeps the script alive until every task has ended. */
    char wait_line[64] = "";
    if (self->res && self->res->wait_time > 0)
        snprintf (wait_line, sizeof wait_line, "    sleep %" PRIu64 "\n", self->res->wait_time);
    const char *tag = self->no_tags ? "" : "    echo \"$jm_rc\" >\"$jm_jobdir/$jm_id.exit\"\n";
    jm_text_add (
        &b,
        "jm_running=0\n"
        "jm_fast=0\n"
        "if [ -z \"$JOBMAN_JOBSCRIPT_COMPAT\" ] && { [ \"${BASH_VERSINFO[0]}\" -gt 5 ] ||\n"
        "    { [ \"${BASH_VERSINFO[0]}\" -eq 5 ] && [ \"${BASH_VERSINFO[1]}\" -ge 1 ]; }; }; then\n"
        "    jm_fast=1\n"
        "    declare -A jm_ids\n"
        "fi\n"
        "jm_done () {\n"
        "%s"
        "    echo \"E $jm_id $jm_rc\" >&3\n"
        "}\n"
        "jm_task () {\n"
        "    jm_id=$1\n"
        "    if cd -- \"$2\"; then\n"
        "        /bin/sh -c -- \"$5\" >>\"$3\" 2>>\"$4\" </dev/null 3>&-\n"
        "        jm_rc=$?\n"
        "    else\n"
        "        jm_rc=127\n"
        "    fi\n"
        "    jm_done\n"
        "}\n"
        "jm_reap () {\n"
        "    if [ $jm_fast = 1 ]; then\n"
        "        jm_pid=\n"
        "        wait -n -p jm_pid\n"
        "        jm_rc=$?\n"
        "        if [ -z \"$jm_pid\" ]; then\n"
        "            for jm_pid in \"${!jm_ids[@]}\"; do break; done\n"
        "            wait \"$jm_pid\"\n"
        "            jm_rc=$?\n"
        "        fi\n"
        "        jm_id=${jm_ids[$jm_pid]}\n"
        "        unset \"jm_ids[$jm_pid]\"\n"
        "        jm_done\n"
        "    else\n"
        "        wait -n\n"
        "    fi\n"
        "    jm_running=$((jm_running - 1))\n"
        "}\n"
        "jm_go () {\n"
        "    if [ \"$jm_running\" -ge %zu ]; then\n"
        "        jm_reap\n"
        "    fi\n"
        "    echo \"S $1\" >&3\n"
        "    if [ $jm_fast = 1 ]; then\n"
        "        ( cd -- \"$2\" || exit 127; exec /bin/sh -c -- \"$5\" >>\"$3\" 2>>\"$4\" "
        "</dev/null 3>&- ) &\n"
        "        jm_ids[$!]=$1\n"
        "    else\n"
        "        jm_task \"$@\" &\n"
        "    fi\n"
        "    jm_running=$((jm_running + 1))\n"
        "%s"
        "}\n",
        tag, self->para_deg, wait_line);
    for (size_t i = 0; i < self->ntasks; i++) {
        s_task_t *t = &self->tasks[i];
        jm_text_add (&b, "jm_go %" PRIu64, t->id);
        s_word (&b, t->dir);
        s_word (&b, t->outlog);
        s_word (&b, t->errlog);
        s_word (&b, t->command);
        jm_text_puts (&b, "\n");
    }
    jm_text_puts (&b, "while [ \"$jm_running\" -gt 0 ]; do\n    jm_reap\ndone\nwait\n");
    if (self->res)
        for (size_t i = 0; i < self->res->append_script.n; i++) {
            jm_text_puts (&b, self->res->append_script.v[i]);
            jm_text_puts (&b, "\n");
        }
    jm_text_puts (&b, "exit 0\n");
    char *text = jm_text_take (&b);
    if (!text)
        return jm_err (err, errlen, "job %" PRIu64 ": out of memory rendering its script",
                       self->job_id);
    *text_p = text;
    return 0;
}

int
jm_jobscript_write (jm_jobscript_t *self, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    if (jm_jobscript_render (self, &text, err, errlen) != 0)
        return -1;
    int rc = jm_write_file_atomic (path, text, strlen (text), 0700, err, errlen);
    free (text);
    return rc;
}
