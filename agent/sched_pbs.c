/*  sched_pbs.c - two dialects of the PBS family for jm_batch: PBS Pro /
    OpenPBS (backend "pbs") and Torque (backend "torque").

    Both take the script with `qsub SCRIPT`, which prints the job id
    ("1234.server"; an array "1234[].server", its elements
    "1234[5].server"), delete with one `qdel ID...`, and are queried with
    the full text display `qstat -f`, the one format both document and
    have printed for decades:

        Job Id: 1234[5].server
            Job_Name = jm17
            job_state = F
            substate = 92
            Resource_List.walltime = 00:01:00
            resources_used.walltime = 00:01:02
            Exit_status = -29
        <blank line; values longer than a line go on with a TAB>

    PBS Pro (PBS Professional Reference Guide, "qsub", "qstat", "Job
    States", "Job Exit Status"; OpenPBS src/include/job.h):
      #PBS -l select=N:ncpus=C[:ngpus=G], arrays #PBS -J 1-N (at least two
      subjobs, so n == 1 is a plain job), element index PBS_ARRAY_INDEX,
      ^array_index^ in -o names one file per subjob.
      Query `qstat -f -x -t IDS`: -x includes finished (history) jobs in
      state F (subjobs X), -t expands an array "1234[]" into its subjobs.
      States Q H W T S U M queued, R E B running, F X finished.
      Exit_status: the job script's exit code, 256 + N when its top
      process was killed by signal N (qdel: 271), or a negative
      JOB_EXEC_* code: -29 KILL_WALLTIME, -28 KILL_CPUT, -27 KILL_MEM,
      -26 KILL_VMEM, -24/-25 KILL_NCPUS, -4..-6 INITABT..., -14
      RERUN_SIS_FAIL, -20 RERUN_MS_FAIL.  Substate 91 = terminated
      (deleted), 92 finished, 93 failed.
      Refusals by limits: "qsub: would exceed queue generic's per-user
      limit", "qsub: Maximum number of jobs already in queue workq",
      "qsub: Maximum number of jobs for user U already in complex" (OpenPBS
      test suite, pbs_entity_limits).

    Torque (Adaptive Computing Torque Administrator Guide 6.x, "qsub",
    "qstat", "Job Exit Status"):
      #PBS -l nodes=N:ppn=C[:gpus=G], arrays #PBS -t 1-N, element index
      PBS_ARRAYID.  Query `qstat -f -t IDS` (Torque's -x means XML, not
      history); finished jobs stay in state C for keep_completed seconds
      with exit_status.  States Q H W T S queued, R E running, C
      completed.  exit_status: the script's code, 256 + signal (qdel and,
      in Torque before 6, the walltime kill: then resources_used.walltime
      >= Resource_List.walltime tells them apart), or -11
      JOB_EXEC_OVERLIMIT_WT, -12 OVERLIMIT_CPUT, -10 OVERLIMIT_MEM.
      Refusal by a limit: "qsub: submit error (Maximum number of jobs
      already in queue for user MSG=total number of current user's jobs
      exceeds the queue limit: user u@host, queue batch)".

    Unknown ids (history purged, keep_completed over) make qstat print
    "qstat: Unknown Job Id 1234.server" (Torque: "Unknown Job Id Error")
    and exit non-zero while still printing the others: that is a
    successful query in which those jobs are absent. */
#define _GNU_SOURCE
#include "jm_batch.h"
#include "jm_text.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_PBSPRO, S_TORQUE } s_flavor_t;

/* ------------------------------------------------------------------ */
/* Directives                                                          */

static char *
s_header (s_flavor_t fl, const jm_resources_t *res, const char *name, size_t n, const char *log_dir,
          char *err, size_t errlen)
{
    const char *what = fl == S_PBSPRO ? "pbs" : "torque";
    if (!name || !*name || strpbrk (name, " \t\r\n")) {
        snprintf (err, errlen, "%s: job name '%s' is empty or has white space", what,
                  name ? name : "");
        return NULL;
    }
    /* -o takes [host:]path and directive words are split at white space */
    if (!log_dir || !*log_dir || strpbrk (log_dir, " \t\r\n:")) {
        snprintf (err, errlen,
                  "%s: log dir '%s' has white space or ':', which a #PBS -o line cannot "
                  "carry (choose another --root)",
                  what, log_dir ? log_dir : "");
        return NULL;
    }
    jm_text_t t = JM_TEXT_INIT;
    jm_text_add (&t, "#PBS -N %s\n", name);
    if (res->queue_name && *res->queue_name)
        jm_text_add (&t, "#PBS -q %s\n", res->queue_name);
    unsigned long long nodes = res->number_node ? res->number_node : 1;
    unsigned long long cpus = res->cpu_per_node ? res->cpu_per_node : 1;
    unsigned long long gpus = res->gpu_per_node;
    if (fl == S_PBSPRO) {
        jm_text_add (&t, "#PBS -l select=%llu:ncpus=%llu", nodes, cpus);
        if (gpus)
            jm_text_add (&t, ":ngpus=%llu", gpus);
        jm_text_puts (&t, "\n");
        if (n > 1)
            jm_text_add (&t, "#PBS -J 1-%zu\n", n);
        /* ^array_index^: one output file per subjob (PBS Pro RG, qsub -o) */
        jm_text_add (&t, "#PBS -o %s/pbs%s.out\n", log_dir, n > 1 ? ".^array_index^" : "");
    }
    else {
        jm_text_add (&t, "#PBS -l nodes=%llu:ppn=%llu", nodes, cpus);
        if (gpus)
            jm_text_add (&t, ":gpus=%llu", gpus);
        jm_text_puts (&t, "\n");
        if (n > 1)
            jm_text_add (&t, "#PBS -t 1-%zu\n", n);
        /* array elements: Torque names the file per element (-<index>) */
        jm_text_add (&t, "#PBS -o %s/torque.out\n", log_dir);
    }
    jm_text_add (&t, "#PBS -j oe\n");
    if (res->custom_gpu_line && *res->custom_gpu_line)
        jm_text_add (&t, "%s\n", res->custom_gpu_line);
    for (size_t i = 0; i < res->custom_flags.n; i++)
        jm_text_add (&t, "%s\n", res->custom_flags.v[i]);
    char *text = jm_text_take (&t);
    if (!text)
        snprintf (err, errlen, "%s: out of memory", what);
    return text;
}

static char *
s_pbspro_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir,
                 char *err, size_t errlen)
{
    return s_header (S_PBSPRO, res, name, n, log_dir, err, errlen);
}

static char *
s_torque_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir,
                 char *err, size_t errlen)
{
    return s_header (S_TORQUE, res, name, n, log_dir, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Submit                                                              */

static void
s_submit_argv (const char *script, size_t n, jm_argv_t *argv)
{
    (void)n;
    jm_argv_add (argv, "qsub");
    jm_argv_add (argv, script);
}

/* "1234", "1234.server.domain", "1234[]", "1234[].server", "1234[5].server" */
static bool
s_valid_id (const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && isdigit ((unsigned char)s[i]))
        i++;
    if (i == 0)
        return false;
    if (i < len && s[i] == '[') {
        i++;
        while (i < len && isdigit ((unsigned char)s[i]))
            i++;
        if (i >= len || s[i] != ']')
            return false;
        i++;
    }
    if (i == len)
        return true;
    if (s[i] != '.' || i + 1 == len)
        return false;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum (c) && c != '.' && c != '-' && c != '_')
            return false;
    }
    return true;
}

/* The text of s with surrounding white space trimmed and inner line
   breaks turned into "; ", into out. */
static void
s_oneline (const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    bool pending = false;
    if (!outlen)
        return;
    for (; s && *s; s++) {
        if (*s == '\n' || *s == '\r') {
            pending = o > 0;
            continue;
        }
        if (pending) {
            for (const char *p = "; "; *p && o + 1 < outlen; p++)
                out[o++] = *p;
            pending = false;
        }
        if (o + 1 < outlen)
            out[o++] = *s;
    }
    while (o > 0 && isspace ((unsigned char)out[o - 1]))
        o--;
    out[o] = 0;
    size_t lead = strspn (out, " \t");
    if (lead)
        memmove (out, out + lead, strlen (out + lead) + 1);
}

/* Refusals because of a per-user/queue/server limit on queued jobs: they
   go away when jobs finish, so jm_batch retries later. */
static const char *const s_limit_words[] = {
    "would exceed",
    "Maximum number of jobs",
    "exceeds the queue limit",
    NULL,
};

static jm_submit_rc_t
s_parse_submit (int status, const char *out, const char *errout, char *id, size_t idlen, char *err,
                size_t errlen)
{
    if (status == 0) {
        const char *p = out ? out : "";
        while (isspace ((unsigned char)*p))
            p++;
        size_t len = strcspn (p, "\r\n");
        while (len > 0 && isspace ((unsigned char)p[len - 1]))
            len--;
        if (len > 0 && len < idlen && s_valid_id (p, len)) {
            memcpy (id, p, len);
            id[len] = 0;
            return JM_SUBMIT_OK;
        }
        char text[256];
        s_oneline (out, text, sizeof text);
        snprintf (err, errlen, "qsub succeeded but printed no job id: '%s'", text);
        return JM_SUBMIT_FAIL;
    }
    char text[512];
    s_oneline (errout && *errout ? errout : out, text, sizeof text);
    if (jm_batch_says (errout, s_limit_words) || jm_batch_says (out, s_limit_words)) {
        snprintf (err, errlen, "%s", text);
        return JM_SUBMIT_RETRY;
    }
    if (*text)
        snprintf (err, errlen, "%s", text);
    else
        snprintf (err, errlen, "qsub exited with status %d and printed nothing", status);
    return JM_SUBMIT_FAIL;
}

static void
s_element_id (const char *base, size_t idx, char *out, size_t outlen)
{
    const char *br = strstr (base, "[]");
    if (br)
        snprintf (out, outlen, "%.*s[%zu]%s", (int)(br - base), base, idx, br + 2);
    else {
        size_t num = strcspn (base, ".");
        snprintf (out, outlen, "%.*s[%zu]%s", (int)num, base, idx, base + num);
    }
}

/* ------------------------------------------------------------------ */
/* Query                                                               */

/* Element ids "N[i].srv" become their array "N[].srv" once (qstat -t
   lists its subjobs); other ids as they are. */
static void
s_add_ids (const char *const *sids, size_t n, jm_argv_t *argv)
{
    zhashx_t *seen = zhashx_new ();
    for (size_t i = 0; i < n; i++) {
        const char *sid = sids[i];
        const char *lb = strchr (sid, '[');
        const char *rb = lb ? strchr (lb, ']') : NULL;
        char buf[512];
        if (lb && rb && rb > lb + 1)
            snprintf (buf, sizeof buf, "%.*s[]%s", (int)(lb - sid), sid, rb + 1);
        else
            snprintf (buf, sizeof buf, "%s", sid);
        if (zhashx_lookup (seen, buf))
            continue;
        zhashx_insert (seen, buf, (void *)1);
        jm_argv_add (argv, buf);
    }
    zhashx_destroy (&seen);
}

static void
s_pbspro_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user;
    jm_argv_add (argv, "qstat");
    jm_argv_add (argv, "-f");
    jm_argv_add (argv, "-x");
    jm_argv_add (argv, "-t");
    s_add_ids (sids, n, argv);
}

static void
s_torque_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user;
    jm_argv_add (argv, "qstat");
    jm_argv_add (argv, "-f");
    jm_argv_add (argv, "-t");
    s_add_ids (sids, n, argv);
}

/* ------------------------------------------------------------------ */
/* qstat -f                                                            */

typedef struct {
    char *id;
    char state;
    long substate; /* -1 = not shown */
    bool has_exit;
    long exit_status;
    long wt_used, wt_limit; /* seconds, -1 = not shown */
    char *comment;
} s_job_t;

typedef struct {
    s_job_t *v;
    size_t n, cap;
} s_jobs_t;

static void
s_jobs_free (s_jobs_t *jobs)
{
    for (size_t i = 0; i < jobs->n; i++) {
        free (jobs->v[i].id);
        free (jobs->v[i].comment);
    }
    free (jobs->v);
    jobs->v = NULL;
    jobs->n = jobs->cap = 0;
}

static s_job_t *
s_jobs_add (s_jobs_t *jobs, const char *id, size_t idlen)
{
    if (jobs->n == jobs->cap) {
        jobs->cap = jobs->cap ? jobs->cap * 2 : 16;
        jobs->v = realloc (jobs->v, jobs->cap * sizeof *jobs->v);
        assert (jobs->v);
    }
    s_job_t *j = &jobs->v[jobs->n++];
    *j = (s_job_t){.id = strndup (id, idlen), .substate = -1, .wt_used = -1, .wt_limit = -1};
    return j;
}

/* "[[HH:]MM:]SS" -> seconds, or -1. */
static long
s_duration (const char *s)
{
    long total = 0, part = 0;
    int fields = 0;
    bool digits = false;
    for (; *s; s++) {
        if (isdigit ((unsigned char)*s)) {
            if (part > 100000000L)
                return -1;
            part = part * 10 + (*s - '0');
            digits = true;
        }
        else if (*s == ':' && digits && fields < 2) {
            total = total * 60 + part;
            part = 0;
            digits = false;
            fields++;
        }
        else
            return -1;
    }
    if (!digits)
        return -1;
    return total * 60 + part;
}

static bool
s_long (const char *s, long *v)
{
    char *end;
    if (!*s)
        return false;
    long x = strtol (s, &end, 10);
    if (*end)
        return false;
    *v = x;
    return true;
}

/* Parses qstat -f text into jobs.  0, or -1 + err. */
static int
s_parse_full (const char *out, s_jobs_t *jobs, char *err, size_t errlen)
{
    s_job_t *cur = NULL;
    const char *p = out ? out : "";
    size_t lineno = 0, len;
    const char *line;
    while (jm_batch_next_line (&p, &line, &len)) {
        lineno++;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        size_t blank = 0;
        while (blank < len && isspace ((unsigned char)line[blank]))
            blank++;
        if (blank == len)
            continue;
        if (len > 8 && strncmp (line, "Job Id: ", 8) == 0) {
            const char *id = line + 8;
            size_t idlen = len - 8;
            while (idlen && isspace ((unsigned char)id[idlen - 1]))
                idlen--;
            if (!s_valid_id (id, idlen)) {
                snprintf (err, errlen, "qstat -f line %zu: bad job id '%.*s'", lineno,
                          (int)(idlen > 100 ? 100 : idlen), id);
                return -1;
            }
            cur = s_jobs_add (jobs, id, idlen);
            continue;
        }
        if (line[0] == '\t')
            continue; /* continuation of a long value */
        const char *eq = NULL;
        for (size_t i = blank; i + 2 < len; i++)
            if (line[i] == ' ' && line[i + 1] == '=' && line[i + 2] == ' ') {
                eq = line + i;
                break;
            }
        if (!cur || blank == 0 || !eq) {
            snprintf (err, errlen,
                      "qstat -f line %zu is neither 'Job Id: ID' nor an indented "
                      "'name = value': '%.*s'",
                      lineno, (int)(len > 100 ? 100 : len), line);
            return -1;
        }
        char key[128], val[512];
        snprintf (key, sizeof key, "%.*s", (int)(eq - line - blank), line + blank);
        snprintf (val, sizeof val, "%.*s", (int)(line + len - (eq + 3)), eq + 3);
        if (strcmp (key, "job_state") == 0) {
            if (strlen (val) != 1) {
                snprintf (err, errlen, "qstat -f: job %s: job_state '%s' is not one letter",
                          cur->id, val);
                return -1;
            }
            cur->state = val[0];
        }
        else if (strcmp (key, "substate") == 0)
            s_long (val, &cur->substate);
        else if (strcmp (key, "Exit_status") == 0 || strcmp (key, "exit_status") == 0)
            cur->has_exit = s_long (val, &cur->exit_status);
        else if (strcmp (key, "resources_used.walltime") == 0)
            cur->wt_used = s_duration (val);
        else if (strcmp (key, "Resource_List.walltime") == 0)
            cur->wt_limit = s_duration (val);
        else if (strcmp (key, "comment") == 0) {
            free (cur->comment);
            cur->comment = strdup (val);
        }
    }
    for (size_t i = 0; i < jobs->n; i++)
        if (!jobs->v[i].state) {
            snprintf (err, errlen, "qstat -f: job %s has no job_state", jobs->v[i].id);
            return -1;
        }
    return 0;
}

static int
s_bstate (s_flavor_t fl, const s_job_t *j, jm_bstate_t *st)
{
    const char *queued = fl == S_PBSPRO ? "QHWTSUM" : "QHWTS";
    const char *running = fl == S_PBSPRO ? "REB" : "RE";
    const char *done = fl == S_PBSPRO ? "FX" : "C";
    if (strchr (done, j->state))
        *st = JM_BST_DONE;
    else if (strchr (running, j->state))
        *st = JM_BST_RUNNING;
    else if (strchr (queued, j->state)) {
        *st = JM_BST_QUEUED;
        /* PBS Pro holds a job that keeps failing to start (documented
           comment); it would wait forever */
        if (j->state == 'H' && j->comment && strstr (j->comment, "too many failed attempts"))
            *st = JM_BST_ERROR;
    }
    else
        return -1;
    return 0;
}

static const char *
s_exec_name (s_flavor_t fl, long v)
{
    switch (v) {
    case -1:
        return "JOB_EXEC_FAIL1";
    case -2:
        return "JOB_EXEC_FAIL2";
    case -3:
        return "JOB_EXEC_RETRY";
    case -4:
        return "JOB_EXEC_INITABT";
    case -5:
        return "JOB_EXEC_INITRST";
    case -6:
        return "JOB_EXEC_INITRMG";
    case -7:
        return "JOB_EXEC_BADRESRT";
    default:
        break;
    }
    if (fl == S_TORQUE) {
        switch (v) {
        case -8:
            return "JOB_EXEC_CMDFAIL";
        case -9:
            return "JOB_EXEC_STDOUTFAIL";
        case -10:
            return "JOB_EXEC_OVERLIMIT_MEM";
        case -11:
            return "JOB_EXEC_OVERLIMIT_WT";
        case -12:
            return "JOB_EXEC_OVERLIMIT_CPUT";
        default:
            return "";
        }
    }
    switch (v) {
    case -10:
        return "JOB_EXEC_FAILUID";
    case -11:
        return "JOB_EXEC_RERUN";
    case -12:
        return "JOB_EXEC_CHKP";
    case -13:
        return "JOB_EXEC_FAIL_PASSWORD";
    case -14:
        return "JOB_EXEC_RERUN_SIS_FAIL";
    case -15:
        return "JOB_EXEC_QUERST";
    case -16:
        return "JOB_EXEC_FAILHOOK_RERUN";
    case -17:
        return "JOB_EXEC_FAILHOOK_DELETE";
    case -18:
        return "JOB_EXEC_HOOK_RERUN";
    case -19:
        return "JOB_EXEC_HOOK_DELETE";
    case -20:
        return "JOB_EXEC_RERUN_MS_FAIL";
    case -21:
        return "JOB_EXEC_FAIL_SECURITY";
    case -22:
        return "JOB_EXEC_HOOKERROR";
    case -23:
        return "JOB_EXEC_FAIL_KRB5";
    case -24:
        return "JOB_EXEC_KILL_NCPUS_BURST";
    case -25:
        return "JOB_EXEC_KILL_NCPUS_SUM";
    case -26:
        return "JOB_EXEC_KILL_VMEM";
    case -27:
        return "JOB_EXEC_KILL_MEM";
    case -28:
        return "JOB_EXEC_KILL_CPUT";
    case -29:
        return "JOB_EXEC_KILL_WALLTIME";
    case -30:
        return "JOB_EXEC_JOINJOB";
    default:
        return "";
    }
}

/* How a finished (or stuck) job ended, in the scheduler's words. */
static jm_verdict_t
s_verdict (s_flavor_t fl, const s_job_t *j, char *detail, size_t dlen)
{
    const char *attr = fl == S_PBSPRO ? "Exit_status" : "exit_status";
    if (!j->has_exit) {
        /* finished without ever running: deleted while queued (PBS Pro
           substate 91 "terminated"; Torque only completes a job that never
           ran when it is deleted) */
        if ((fl == S_PBSPRO && j->state == 'F' && j->substate == 91) ||
            (fl == S_TORQUE && j->state == 'C')) {
            snprintf (detail, dlen, "job_state %c without %s: deleted before it ran", j->state,
                      attr);
            return JM_VERDICT_CANCELLED;
        }
        snprintf (detail, dlen, "job_state %c", j->state);
        return JM_VERDICT_NONE;
    }
    long v = j->exit_status;
    if (v == 0) {
        snprintf (detail, dlen, "%s 0", attr);
        return JM_VERDICT_COMPLETED;
    }
    if (v < 0) {
        const char *name = s_exec_name (fl, v);
        snprintf (detail, dlen, "%s %ld%s%s", attr, v, *name ? " " : "", name);
        if (fl == S_PBSPRO) {
            if (v == -29 || v == -28)
                return JM_VERDICT_TIMEOUT;
            if (v == -27 || v == -26)
                return JM_VERDICT_OUT_OF_MEMORY;
            if (v == -4 || v == -5 || v == -6 || v == -14 || v == -20)
                return JM_VERDICT_NODE_FAIL;
        }
        else {
            if (v == -11 || v == -12)
                return JM_VERDICT_TIMEOUT;
            if (v == -10)
                return JM_VERDICT_OUT_OF_MEMORY;
            if (v == -4 || v == -5 || v == -6)
                return JM_VERDICT_NODE_FAIL;
        }
        return JM_VERDICT_FAILED;
    }
    if (v >= 256 && v < 256 + 128) {
        long sig = v - 256;
        if (j->wt_limit > 0 && j->wt_used >= j->wt_limit) {
            snprintf (detail, dlen, "%s %ld: killed by signal %ld after walltime %lds of %lds",
                      attr, v, sig, j->wt_used, j->wt_limit);
            return JM_VERDICT_TIMEOUT;
        }
        snprintf (detail, dlen, "%s %ld: killed by signal %ld", attr, v, sig);
        if (sig == SIGTERM || sig == SIGKILL || (fl == S_PBSPRO && j->substate == 91))
            return JM_VERDICT_CANCELLED;
        return JM_VERDICT_FAILED;
    }
    snprintf (detail, dlen, "%s %ld", attr, v);
    return JM_VERDICT_FAILED;
}

/* stderr lines qstat prints for ids it no longer knows (the rest of its
   answer is good): "qstat: Unknown Job Id 1234.server", Torque "qstat:
   Unknown Job Id Error 1234.server", PBS Pro without -x "... Job has
   finished, use -x or -H to obtain historical job information". */
static bool
s_unknown_id_line (const char *line, size_t len)
{
    char buf[512];
    snprintf (buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
    return strstr (buf, "Unknown Job Id") || strstr (buf, "Job has finished");
}

static int
s_parse (s_flavor_t fl, bool final, int status, const char *out, const char *errout,
         jm_batch_seen_fn *seen, void *arg, char *err, size_t errlen)
{
    if (status != 0) {
        /* acceptable only if every stderr line is about an unknown id */
        const char *p = errout ? errout : "";
        const char *bad = NULL;
        size_t badlen = 0;
        bool any = false;
        const char *line;
        size_t len;
        while (jm_batch_next_line (&p, &line, &len)) {
            if (strspn (line, " \t\r") < len) {
                any = true;
                if (!s_unknown_id_line (line, len) && !bad) {
                    bad = line;
                    badlen = len;
                }
            }
        }
        if (bad || !any) {
            char text[300];
            snprintf (text, sizeof text, "%.*s", (int)(badlen > 256 ? 256 : badlen),
                      bad ? bad : "");
            snprintf (err, errlen, "qstat exited with status %d%s%s", status,
                      bad ? ": " : " and printed no error", text);
            return -1;
        }
    }
    s_jobs_t jobs = {0};
    if (s_parse_full (out, &jobs, err, errlen) != 0) {
        s_jobs_free (&jobs);
        return -1;
    }
    for (size_t i = 0; i < jobs.n; i++) {
        jm_bstate_t st;
        if (s_bstate (fl, &jobs.v[i], &st) != 0) {
            snprintf (err, errlen, "qstat -f: job %s: unknown job_state '%c'", jobs.v[i].id,
                      jobs.v[i].state);
            s_jobs_free (&jobs);
            return -1;
        }
    }
    for (size_t i = 0; i < jobs.n; i++) {
        const s_job_t *j = &jobs.v[i];
        if (strstr (j->id, "[]"))
            continue; /* an array itself; its subjobs are listed too */
        jm_bstate_t st;
        s_bstate (fl, j, &st);
        if (final && st != JM_BST_DONE)
            continue;
        char detail[300] = "";
        jm_batch_seen_t s = {
            .sid = j->id, .state = st, .verdict = JM_VERDICT_NONE, .detail = detail};
        if (st == JM_BST_DONE)
            s.verdict = s_verdict (fl, j, detail, sizeof detail);
        else if (st == JM_BST_ERROR) {
            s.verdict = JM_VERDICT_FAILED;
            snprintf (detail, sizeof detail, "job_state %c: %s", j->state,
                      j->comment ? j->comment : "");
        }
        seen (arg, &s);
    }
    s_jobs_free (&jobs);
    return 0;
}

static int
s_pbspro_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen,
                      void *arg, char *err, size_t errlen)
{
    return s_parse (S_PBSPRO, false, status, out, errout, seen, arg, err, errlen);
}

static int
s_pbspro_parse_final (int status, const char *out, const char *errout, jm_batch_seen_fn *seen,
                      void *arg, char *err, size_t errlen)
{
    return s_parse (S_PBSPRO, true, status, out, errout, seen, arg, err, errlen);
}

static int
s_torque_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen,
                      void *arg, char *err, size_t errlen)
{
    return s_parse (S_TORQUE, false, status, out, errout, seen, arg, err, errlen);
}

/* ------------------------------------------------------------------ */

/* The dialects (non-static for tests/test_sched_pbs.c).
   max_array: PBS Pro's server default max_array_size is 10000; Torque's
   max_job_array_size has no default, keep the same. */
const jm_batch_dialect_t jm_pbs_dialect = {
    .name = "pbs",
    .submit_prog = "qsub",
    .array_index_var = "PBS_ARRAY_INDEX",
    .max_array = 10000,
    .submit_stdin = false,
    .header = s_pbspro_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_pbspro_query_argv,
    .parse_query = s_pbspro_parse_query,
    /* history (qstat -x) again, for jobs the query reported without a
       verdict or not at all */
    .final_argv = s_pbspro_query_argv,
    .parse_final = s_pbspro_parse_final,
    .cancel_prog = "qdel",
};

/* Torque has no history command besides tracejob (root, server logs):
   completed jobs are seen in the query while keep_completed lasts. */
const jm_batch_dialect_t jm_torque_dialect = {
    .name = "torque",
    .submit_prog = "qsub",
    .array_index_var = "PBS_ARRAYID",
    .max_array = 10000,
    .submit_stdin = false,
    .header = s_torque_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_torque_query_argv,
    .parse_query = s_torque_parse_query,
    .final_argv = NULL,
    .parse_final = NULL,
    .cancel_prog = "qdel",
};

JM_BATCH_BACKEND (pbs, jm_pbs_dialect);
JM_BATCH_BACKEND (torque, jm_torque_dialect);
