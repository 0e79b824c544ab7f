/*  sched_sge.c - the (Son of) Grid Engine 8.1 dialect of the batch core
    (jm_batch.h).

    Everything below was checked against the real SGE 8.1.9 of
    deploy/sge-up.sh; the outputs quoted are what it printed
    (tests/test_sched_sge.c replays them).

    Header: #$ lines (qsub(1); qsub reads "#$" directives from the script).
      -N name   job names may not start with a digit ('denied: "1abc" is not
                a valid object name (cannot start with a digit)'), may not
                contain / : @ * ? \ or blanks, at most 511 bytes ("job name
                too long, maximum allowed length is 512 characters"): other
                characters become '_', a leading digit gets a "j" prefix;
      -S /bin/bash   the script is bash (posix_compliant shell_start_mode
                would otherwise use the queue's shell).  SGE starts it as a
                login shell when bash is in the cluster's login_shells (the
                default), so the job sees the user's profile, as users of
                SGE expect; the test cluster sets login_shells none;
      -q queue, -pe <pe_name> <cpu_per_node * number_node> when > 1;
      -t 1-N    arrays; each element sees SGE_TASK_ID;
      -o/-e     "<log_dir>/sge.$JOB_ID.$TASK_ID.out|err" ($JOB_ID/$TASK_ID
                are qsub's pseudo environment variables; TASK_ID is 0 for a
                plain job).  Double quotes keep blanks; a ':' would be read as
                "host:path", so a log dir with ':' (or '"', '$', '\') is
                refused with a clear error;
      no -V: the job's environment is what the job script sets (as
      dpdispatcher), not the agent's; no -cwd: the scripts cd themselves;
      GPUs: SGE has no standard GPU request: custom_gpu_line verbatim only;
      then custom_flags verbatim.

    Submit: `qsub -terse SCRIPT` prints "123" or, for an array,
    "123.1-3:1" (base id 123).  Refusals seen here:
      exit 25 "Unable to run job: job rejected: only 2 jobs are allowed per
               user (current job count: 2)"            (max_u_jobs)
      exit 25 "Unable to run job: job rejected: only 2 jobs are allowed per
               cluster"                                 (max_jobs)
      exit 1  "Unable to run job: unable to send message to qmaster using
               port 1 on host "vm": got send error"     (qmaster down)
      exit 1  "Unable to run job: job rejected: you tried to submit a job
               with more than 5 tasks"                  (max_aj_tasks)
    25 is SGE's "try again later" status: RETRY, as is an unreachable
    qmaster (it comes back); everything else is FAIL.

    Elements are "123.4" (qdel, qstat -j and qacct accept that form).

    Status: ONE `qstat -u USER -xml`.  Plain qstat leaves the queue column
    empty for pending jobs and may shorten columns, so the XML is read:
    one <job_list> per running task or pending range, with <JB_job_number>,
    <state> and, for arrays only, <tasks>: "4", "3-6:1", "5,6" (what is left
    of a range after some elements started), in general a comma list of
    N or N-M:S.  States (sge_status(5)): any 'E' (Eqw, Ehqw, EhRqw) ->
    ERROR; pending (qw, hqw, hRwq, Rq) -> QUEUED; running, transferring,
    suspended, deleting (r, t, Rr, Rt, s, S, T, ts, dr, dt, ...) -> RUNNING:
    a suspended job has started and resumes on the same host; a deleting
    one stays RUNNING until it leaves qstat.

    Final verdict: qacct reads the accounting file (not qmaster) and takes
    one -j, so `sh -c 'for j; do qacct -j "$j"; done' sh BASE...` with each
    base id once.  Each finished element is one record:
        jobnumber    55
        taskid       2          ("undefined" for a plain job)
        failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
        exit_status  137                  (Killed)
    A job that never ran (deleted while pending) has no record ("error: job
    id 59 not found" on stderr).  failed (sge_status(5)): 0 -> COMPLETED when
    exit_status is 0, else FAILED; 37 -> TIMEOUT; 17 ("through signal") or
    100 ("assumedly after job") with exit_status 137/143 -> CANCELLED (qdel
    of a running job); 1-11, 18-21 (execd, shepherd, prolog, PE failures)
    -> NODE_FAIL; anything else -> FAILED.  If an id appears more than once
    (ids restart when the qmaster spool is reset) the last record counts.

    Cancel: `qdel ID...` with plain and element ids at once.            */
#define _GNU_SOURCE
#include "jm_batch.h"
#include "jm_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_ARRAY 75000 /* SGE's default max_aj_tasks */
#define S_NAME_MAX 128    /* well under SGE's 512 */
#define S_MAX_TASK_ID 100000000UL

/* ---------------------------------------------------------------- header */

/* A job name SGE accepts: [A-Za-z0-9_.+%-] kept, the rest '_', no
   leading digit, at most S_NAME_MAX bytes. */
static void
s_job_name (const char *name, char *out, size_t outlen)
{
    size_t k = 0;
    if (!name || !*name)
        name = "jm";
    if (isdigit ((unsigned char)name[0]) && k + 1 < outlen)
        out[k++] = 'j';
    for (const char *p = name; *p && k + 1 < outlen && k < S_NAME_MAX; p++) {
        unsigned char c = (unsigned char)*p;
        out[k++] = (isalnum (c) || strchr ("_.+%-", c)) ? (char)c : '_';
    }
    out[k] = '\0';
}

static char *
s_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir, char *err,
          size_t errlen)
{
    if (!log_dir || !*log_dir || strpbrk (log_dir, ":\"$\\\n\r")) {
        snprintf (err, errlen,
                  "sge: log directory '%s' cannot go into a #$ -o line (':' would be read as "
                  "host:path; '\"', '$', '\\' and line breaks cannot be quoted)",
                  log_dir ? log_dir : "");
        return NULL;
    }
    char jname[S_NAME_MAX + 2];
    s_job_name (name, jname, sizeof jname);
    jm_text_t t = JM_TEXT_INIT;
    jm_text_add (&t, "#$ -N %s\n", jname);
    jm_text_add (&t, "#$ -S /bin/bash\n");
    if (res->queue_name && *res->queue_name)
        jm_text_add (&t, "#$ -q %s\n", res->queue_name);
    uint64_t nodes = res->number_node ? res->number_node : 1;
    uint64_t cpus = res->cpu_per_node ? res->cpu_per_node : 1;
    if (nodes * cpus > 1)
        jm_text_add (&t, "#$ -pe %s %llu\n", res->pe_name && *res->pe_name ? res->pe_name : "smp",
                     (unsigned long long)(nodes * cpus));
    if (n > 1)
        jm_text_add (&t, "#$ -t 1-%zu\n", n);
    jm_text_add (&t, "#$ -o \"%s/sge.$JOB_ID.$TASK_ID.out\"\n", log_dir);
    jm_text_add (&t, "#$ -e \"%s/sge.$JOB_ID.$TASK_ID.err\"\n", log_dir);
    if (res->custom_gpu_line && *res->custom_gpu_line)
        jm_text_add (&t, "%s\n", res->custom_gpu_line);
    for (size_t i = 0; i < res->custom_flags.n; i++)
        jm_text_add (&t, "%s\n", res->custom_flags.v[i]);
    char *text = jm_text_take (&t);
    if (!text)
        snprintf (err, errlen, "sge: out of memory writing the #$ header");
    return text;
}

/* ---------------------------------------------------------------- submit */

static void
s_submit_argv (const char *script, size_t n, jm_argv_t *argv)
{
    (void)n;
    jm_argv_add (argv, "qsub");
    jm_argv_add (argv, "-terse");
    jm_argv_add (argv, script);
}

/* The lines of text that say something, joined with "; ", without SGE's
   closing "Exiting." */
static void
s_message (const char *text, char *out, size_t outlen)
{
    size_t k = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    const char *s;
    size_t len;
    while (text && jm_batch_next_line (&text, &s, &len)) {
        jm_batch_trim (&s, &len);
        if (len && !(len == 8 && strncmp (s, "Exiting.", 8) == 0)) {
            int w = snprintf (out + k, outlen - k, "%s%.*s", k ? "; " : "", (int)len, s);
            if (w < 0 || (size_t)w >= outlen - k)
                return;
            k += (size_t)w;
        }
    }
}

/* Refusals that go away: a job count limit, an unreachable qmaster. */
static const char *const s_retry_words[] = {
    "jobs are allowed per",
    "unable to send message to qmaster",
    "unable to contact qmaster",
    NULL,
};

static jm_submit_rc_t
s_parse_submit (int status, const char *out, const char *errout, char *id, size_t idlen, char *err,
                size_t errlen)
{
    out = out ? out : "";
    errout = errout ? errout : "";
    if (status == 0) {
        const char *p = out;
        while (isspace ((unsigned char)*p))
            p++;
        size_t k = 0;
        while (isdigit ((unsigned char)p[k]))
            k++;
        /* "123" or "123.1-3:1" */
        if (k > 0 && k < 20 && k < idlen &&
            (p[k] == '\0' || p[k] == '.' || isspace ((unsigned char)p[k]))) {
            memcpy (id, p, k);
            id[k] = '\0';
            return JM_SUBMIT_OK;
        }
    }
    char msg[512];
    s_message (errout, msg, sizeof msg);
    if (!*msg)
        s_message (out, msg, sizeof msg);
    if (status == 0) {
        snprintf (err, errlen, "qsub printed no job id: %s", *msg ? msg : "(no output)");
        return JM_SUBMIT_FAIL;
    }
    snprintf (err, errlen, "qsub exited with %d: %s", status, *msg ? msg : "(no output)");
    if (status == 25 || jm_batch_says (errout, s_retry_words))
        return JM_SUBMIT_RETRY;
    return JM_SUBMIT_FAIL;
}

static void
s_element_id (const char *base, size_t idx, char *out, size_t outlen)
{
    snprintf (out, outlen, "%s.%zu", base, idx);
}

/* ----------------------------------------------------------------- query */

static void
s_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)sids;
    (void)n;
    jm_argv_add (argv, "qstat");
    if (user && *user) {
        jm_argv_add (argv, "-u");
        jm_argv_add (argv, user);
    }
    jm_argv_add (argv, "-xml");
}

/* The text of <tag>...</tag> inside [p, end), trimmed; NULL if absent. */
static const char *
s_xml_elem (const char *p, const char *end, const char *tag, size_t *len)
{
    char open[64], close[64];
    snprintf (open, sizeof open, "<%s>", tag);
    snprintf (close, sizeof close, "</%s>", tag);
    const char *s = memmem (p, (size_t)(end - p), open, strlen (open));
    if (!s)
        return NULL;
    s += strlen (open);
    const char *e = memmem (s, (size_t)(end - s), close, strlen (close));
    if (!e)
        return NULL;
    while (s < e && isspace ((unsigned char)*s))
        s++;
    while (e > s && isspace ((unsigned char)e[-1]))
        e--;
    *len = (size_t)(e - s);
    return s;
}

static jm_bstate_t
s_state (const char *st)
{
    if (strchr (st, 'E'))
        return JM_BST_ERROR;
    if (strchr (st, 'q'))
        return JM_BST_QUEUED; /* qw hqw hRwq Rq */
    if (strpbrk (st, "rtsSTd"))
        return JM_BST_RUNNING;
    return JM_BST_QUEUED;
}

/* Parses an unsigned number at *p (advancing it); false if none or too
   big. */
static bool
s_num (const char **p, const char *end, unsigned long *v)
{
    const char *s = *p;
    unsigned long x = 0;
    while (s < end && isdigit ((unsigned char)*s)) {
        x = x * 10 + (unsigned long)(*s - '0');
        if (x > S_MAX_TASK_ID)
            return false;
        s++;
    }
    if (s == *p)
        return false;
    *p = s;
    *v = x;
    return true;
}

/* One <job_list> block -> seen (every element of a task range). */
static int
s_job_list (const char *p, const char *end, jm_batch_seen_fn *seen, void *arg, char *err,
            size_t errlen)
{
    size_t nl, sl, tl;
    const char *num = s_xml_elem (p, end, "JB_job_number", &nl);
    const char *st = s_xml_elem (p, end, "state", &sl);
    if (!num || !jm_batch_all_digits (num, nl) || nl > 19 || !st || !sl || sl > 15) {
        snprintf (err, errlen, "qstat -xml: a <job_list> without a job number or state");
        return -1;
    }
    char state[16];
    snprintf (state, sizeof state, "%.*s", (int)sl, st);
    for (size_t i = 0; i < sl; i++)
        if (!isalpha ((unsigned char)state[i])) {
            snprintf (err, errlen, "qstat -xml: job %.*s has a strange state '%s'", (int)nl, num,
                      state);
            return -1;
        }
    jm_bstate_t bst = s_state (state);
    char detail[32];
    snprintf (detail, sizeof detail, "%s", state);
    char sid[48];
    jm_batch_seen_t s = {sid, bst, JM_VERDICT_NONE, detail};
    if (bst == JM_BST_ERROR)
        s.verdict = JM_VERDICT_FAILED;

    const char *tasks = s_xml_elem (p, end, "tasks", &tl);
    if (!tasks) {
        snprintf (sid, sizeof sid, "%.*s", (int)nl, num);
        seen (arg, &s);
        return 0;
    }
    /* "4", "3-6:1", "5,6", "1-9:2,12" */
    const char *q = tasks, *tend = tasks + tl;
    if (q == tend)
        goto bad;
    while (q < tend) {
        unsigned long a, b, step = 1;
        if (!s_num (&q, tend, &a) || a == 0)
            goto bad;
        b = a;
        if (q < tend && *q == '-') {
            q++;
            if (!s_num (&q, tend, &b) || b < a)
                goto bad;
            if (q < tend && *q == ':') {
                q++;
                if (!s_num (&q, tend, &step) || step == 0)
                    goto bad;
            }
        }
        if (q < tend) {
            if (*q != ',')
                goto bad;
            q++;
            if (q == tend)
                goto bad;
        }
        for (unsigned long i = a; i <= b; i += step) {
            snprintf (sid, sizeof sid, "%.*s.%lu", (int)nl, num, i);
            seen (arg, &s);
        }
    }
    return 0;
bad:
    snprintf (err, errlen, "qstat -xml: job %.*s has a task list '%.*s' that is not N[-M[:S]],...",
              (int)nl, num, (int)(tl > 64 ? 64 : tl), tasks);
    return -1;
}

static int
s_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    out = out ? out : "";
    if (status != 0) {
        char msg[400];
        s_message (errout, msg, sizeof msg);
        snprintf (err, errlen, "qstat exited with %d: %s", status, *msg ? msg : "(no output)");
        return -1;
    }
    if (!strstr (out, "<job_info")) {
        char msg[200];
        s_message (out, msg, sizeof msg);
        snprintf (err, errlen, "qstat -xml printed no <job_info>: %s", *msg ? msg : "(no output)");
        return -1;
    }
    const char *p = out;
    while ((p = strstr (p, "<job_list"))) {
        const char *e = strstr (p, "</job_list>");
        if (!e) {
            snprintf (err, errlen, "qstat -xml: <job_list> without </job_list>");
            return -1;
        }
        if (s_job_list (p, e, seen, arg, err, errlen) != 0)
            return -1;
        p = e + 11;
    }
    return 0;
}

/* ----------------------------------------------------------------- final */

static void
s_final_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user;
    jm_argv_add (argv, "sh");
    jm_argv_add (argv, "-c");
    jm_argv_add (argv, "for j; do qacct -j \"$j\"; done");
    jm_argv_add (argv, "sh");
    jm_batch_argv_add_bases (argv, sids, n, ".");
}

typedef struct {
    char sid[48];
    long failed;
    char failed_text[160];
    long exit_status;
    size_t order;
} s_rec_t;

static jm_verdict_t
s_verdict (const s_rec_t *r)
{
    if (r->failed == 0)
        return r->exit_status == 0 ? JM_VERDICT_COMPLETED : JM_VERDICT_FAILED;
    if (r->failed == 37)
        return JM_VERDICT_TIMEOUT;
    if ((r->failed == 100 || r->failed == 17) && (r->exit_status == 137 || r->exit_status == 143))
        return JM_VERDICT_CANCELLED;
    if ((r->failed >= 1 && r->failed <= 11) || (r->failed >= 18 && r->failed <= 21))
        return JM_VERDICT_NODE_FAIL;
    return JM_VERDICT_FAILED;
}

/* "key   value  " line: value trimmed into out; a value that does not fit
   becomes "?" unless cut is true. */
static bool
s_field (const char *line, size_t len, const char *key, char *out, size_t outlen, bool cut)
{
    size_t kl = strlen (key);
    if (len <= kl || strncmp (line, key, kl) != 0 || !isspace ((unsigned char)line[kl]))
        return false;
    const char *v = line + kl;
    size_t vl = len - kl;
    jm_batch_trim (&v, &vl);
    if (vl >= outlen && !cut)
        snprintf (out, outlen, "?");
    else
        snprintf (out, outlen, "%.*s", (int)vl, v);
    return true;
}

static int
s_rec_cmp (const void *a, const void *b)
{
    const s_rec_t *x = a, *y = b;
    int c = strcmp (x->sid, y->sid);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct {
    char num[24], task[24], failed[200], exit_status[64];
} s_raw_t;

/* A finished raw record -> recs; -1 + err if it is not one. */
static int
s_rec_add (s_raw_t *raw, s_rec_t **recs, size_t *n, size_t *cap, char *err, size_t errlen)
{
    if (!raw->num[0] && !raw->task[0] && !raw->failed[0] && !raw->exit_status[0])
        return 0; /* nothing (before the first separator) */
    char *e;
    if (!jm_batch_all_digits (raw->num, strlen (raw->num)) || !raw->failed[0] ||
        !raw->exit_status[0]) {
        snprintf (err, errlen, "qacct: a record without jobnumber, failed or exit_status");
        return -1;
    }
    s_rec_t r = {0};
    if (strcmp (raw->task, "undefined") == 0 || !raw->task[0])
        snprintf (r.sid, sizeof r.sid, "%s", raw->num);
    else if (jm_batch_all_digits (raw->task, strlen (raw->task)))
        snprintf (r.sid, sizeof r.sid, "%s.%s", raw->num, raw->task);
    else {
        snprintf (err, errlen, "qacct: job %s has a strange taskid '%s'", raw->num, raw->task);
        return -1;
    }
    r.failed = strtol (raw->failed, &e, 10);
    if (e == raw->failed || r.failed < 0) {
        snprintf (err, errlen, "qacct: job %s has a strange failed '%s'", r.sid, raw->failed);
        return -1;
    }
    while (*e == ' ' || *e == ':')
        e++;
    snprintf (r.failed_text, sizeof r.failed_text, "%s", e);
    r.exit_status = strtol (raw->exit_status, &e, 10);
    if (e == raw->exit_status || r.exit_status < 0) {
        snprintf (err, errlen, "qacct: job %s has a strange exit_status '%s'", r.sid,
                  raw->exit_status);
        return -1;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        s_rec_t *p = realloc (*recs, nc * sizeof *p);
        if (!p) {
            snprintf (err, errlen, "qacct: out of memory");
            return -1;
        }
        *recs = p;
        *cap = nc;
    }
    r.order = *n;
    (*recs)[(*n)++] = r;
    memset (raw, 0, sizeof *raw);
    return 0;
}

static int
s_parse_final (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    out = out ? out : "";
    errout = errout ? errout : "";
    s_rec_t *recs = NULL;
    size_t n = 0, cap = 0;
    s_raw_t raw = {0};
    bool any_line = false;
    const char *p = out, *line;
    size_t len;
    while (jm_batch_next_line (&p, &line, &len)) {
        if (len >= 10 && strspn (line, "=") >= 10) {
            if (s_rec_add (&raw, &recs, &n, &cap, err, errlen) != 0)
                goto fail;
            any_line = true;
        }
        else if (len) {
            any_line = true;
            if (!s_field (line, len, "jobnumber", raw.num, sizeof raw.num, false) &&
                !s_field (line, len, "taskid", raw.task, sizeof raw.task, false) &&
                !s_field (line, len, "failed", raw.failed, sizeof raw.failed, true))
                s_field (line, len, "exit_status", raw.exit_status, sizeof raw.exit_status, false);
        }
    }
    if (s_rec_add (&raw, &recs, &n, &cap, err, errlen) != 0)
        goto fail;
    if (n == 0 && (status != 0 || any_line) && !strstr (errout, "error: job id")) {
        char msg[400];
        s_message (*errout ? errout : out, msg, sizeof msg);
        snprintf (err, errlen, "qacct exited with %d and printed no record: %s", status,
                  *msg ? msg : "(no output)");
        goto fail;
    }
    /* the last record of each id counts */
    if (n > 1)
        qsort (recs, n, sizeof *recs, s_rec_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp (recs[i].sid, recs[i + 1].sid) == 0)
            continue;
        const s_rec_t *r = &recs[i];
        char detail[256];
        if (r->failed)
            snprintf (detail, sizeof detail, "failed %ld: %s, exit_status %ld", r->failed,
                      r->failed_text, r->exit_status);
        else
            snprintf (detail, sizeof detail, "exit_status %ld", r->exit_status);
        jm_batch_seen_t s = {r->sid, JM_BST_DONE, s_verdict (r), detail};
        seen (arg, &s);
    }
    free (recs);
    return 0;
fail:
    free (recs);
    return -1;
}

/* Not static: tests/test_sched_sge.c replays captured output through it. */
const jm_batch_dialect_t jm_sge_dialect = {
    .name = "sge",
    .submit_prog = "qsub",
    .array_index_var = "SGE_TASK_ID",
    .max_array = S_MAX_ARRAY,
    .submit_stdin = false,
    .header = s_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_query_argv,
    .parse_query = s_parse_query,
    .final_argv = s_final_argv,
    .parse_final = s_parse_final,
    .cancel_prog = "qdel",
};

JM_BATCH_BACKEND (sge, jm_sge_dialect);
