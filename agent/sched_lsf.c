/*  sched_lsf.c - the IBM Spectrum LSF dialect of the batch core (jm_batch.h).

    What it relies on, and where each format is documented (IBM Spectrum LSF
    10.1 command reference unless said otherwise):

    Submit: the script goes to bsub on standard input (`bsub < script`), so
    its #BSUB lines are read as options.  argv is `env LSB_NTRIES=1 bsub`:
    when the user's pending-job threshold (MAX_PEND_JOBS / MAX_PEND_SLOTS,
    lsb.users / lsb.params) is reached, bsub prints
        User <name>: Pending job threshold reached. Retrying in 60 seconds...
    and by default keeps retrying forever; "The system will continue to send
    the job submission requests with the interval specified by
    SUB_TRY_INTERVAL ... until it has made a number of attempts equal to the
    LSB_NTRIES environment variable" (LSF admin guide, "About job states",
    Maximum pending job threshold).  With LSB_NTRIES=1 bsub gives up at once
    and the core backs off (RETRY) instead of a blocked bsub.
    Success prints on stdout (bsub(1)):
        Job <1234> is submitted to queue <normal>.
        Job <1234> is submitted to default queue <normal>.
    Arrays: -J "name[1-N]"; each element sees LSB_JOBINDEX; an element is
    named "1234[5]" by bjobs/bkill ("job_ID[index]" in their synopses).
    %J and %I in -o/-e are the job id and the array index (bsub -o).
    Array size limit: MAX_JOB_ARRAY_SIZE, default 1000 (lsb.params).

    Status: ONE command for all our jobs,
        bjobs -a -noheader -o "jobid jobindex stat exit_code exit_reason
                               delimiter='|'" <base ids...>
    (bjobs -o: custom fields, "-" for an empty value, delimiter='c';
    jobindex is 0 for a plain job; -a includes jobs that finished within
    CLEAN_PERIOD).  With LSB_BJOBS_DISPLAY_ENH=Y the jobid column itself is
    "1234[5]"; both forms are accepted.  An id bjobs no longer knows gives
    "Job <1234> is not found" on stderr and exit code 255
    (lsf.conf LSB_BJOBS_CONSISTENT_EXIT_CODE, whose examples show both
    messages); that is a successful query in which the job is absent.
    States (bjobs(1) "JOB STATUS"): PEND PROV PSUSP USUSP SSUSP WAIT ->
    queued; RUN UNKWN -> running (UNKWN: mbatchd lost contact with the
    host, the job may still run); DONE -> done/COMPLETED; EXIT -> done,
    verdict from exit_reason; ZOMBI -> done/NODE_FAIL.
    exit_reason carries the termination keyword (admin guide, "Termination
    reasons displayed by bacct, bhist, and bjobs"), e.g.
        TERM_RUNLIMIT: job killed after reaching LSF run time limit
    TERM_RUNLIMIT TERM_CPULIMIT TERM_DEADLINE -> TIMEOUT; TERM_MEMLIMIT
    TERM_SWAP -> OUT_OF_MEMORY; TERM_OWNER TERM_ADMIN TERM_FORCE_OWNER
    TERM_FORCE_ADMIN TERM_BUCKET_KILL TERM_REQUEUE_OWNER TERM_REQUEUE_ADMIN
    -> CANCELLED; TERM_REMOVE_HUNG_JOB TERM_ZOMBIE TERM_HOST -> NODE_FAIL;
    anything else (or none: the script's own exit code) -> FAILED.
    No final query: the status query already includes finished jobs (-a),
    so a job it does not report is gone from LSF altogether.

    Cancel: `bkill id ...` with every id ("1234" or "1234[5]") at once
    (bkill(1) synopsis: [job_ID ... | 0 | "job_ID[index]" ...]).       */
#define _GNU_SOURCE
#include "jm_batch.h"
#include "jm_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_ARRAY 1000 /* LSF's default MAX_JOB_ARRAY_SIZE */
#define S_QUERY_FIELDS "jobid jobindex stat exit_code exit_reason delimiter='|'"

/* ---------------------------------------------------------------- header */

/* A path for a #BSUB line: double-quoted, refusing what cannot be quoted. */
static bool
s_quotable (const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\n' || *s == '\r' || *s == '\\')
            return false;
    return true;
}

static char *
s_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir, char *err,
          size_t errlen)
{
    if (!name || !*name || !s_quotable (name)) {
        snprintf (err, errlen, "lsf: job name '%s' cannot go into a #BSUB -J line",
                  name ? name : "");
        return NULL;
    }
    if (!log_dir || !s_quotable (log_dir)) {
        snprintf (err, errlen, "lsf: log directory '%s' cannot go into a #BSUB line",
                  log_dir ? log_dir : "");
        return NULL;
    }
    jm_text_t t = JM_TEXT_INIT;
    const char *file = n > 1 ? "lsf.%J_%I" : "lsf.%J";
    if (n > 1)
        jm_text_add (&t, "#BSUB -J \"%s[1-%zu]\"\n", name, n);
    else
        jm_text_add (&t, "#BSUB -J \"%s\"\n", name);
    if (res->queue_name && *res->queue_name)
        jm_text_add (&t, "#BSUB -q %s\n", res->queue_name);
    uint64_t nodes = res->number_node ? res->number_node : 1;
    uint64_t cpus = res->cpu_per_node ? res->cpu_per_node : 1;
    jm_text_add (&t, "#BSUB -n %llu\n", (unsigned long long)(nodes * cpus));
    if (nodes > 1)
        jm_text_add (&t, "#BSUB -R \"span[ptile=%llu]\"\n", (unsigned long long)cpus);
    if (res->custom_gpu_line && *res->custom_gpu_line)
        jm_text_add (&t, "%s\n", res->custom_gpu_line);
    else if (res->gpu_per_node > 0)
        jm_text_add (&t, "#BSUB -gpu \"num=%llu\"\n", (unsigned long long)res->gpu_per_node);
    jm_text_add (&t, "#BSUB -o \"%s/%s.out\"\n", log_dir, file);
    jm_text_add (&t, "#BSUB -e \"%s/%s.err\"\n", log_dir, file);
    for (size_t i = 0; i < res->custom_flags.n; i++)
        jm_text_add (&t, "%s\n", res->custom_flags.v[i]);
    char *text = jm_text_take (&t);
    if (!text)
        snprintf (err, errlen, "lsf: out of memory writing the #BSUB header");
    return text;
}

/* ---------------------------------------------------------------- submit */

static void
s_submit_argv (const char *script, size_t n, jm_argv_t *argv)
{
    (void)script; /* on standard input */
    (void)n;
    jm_argv_add (argv, "env");
    jm_argv_add (argv, "LSB_NTRIES=1");
    jm_argv_add (argv, "bsub");
}

/* First non-blank line of text, trimmed, into out. */
static void
s_first_line (const char *text, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = '\0';
    if (!text)
        return;
    while (*text) {
        while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
            text++;
        const char *end = strchr (text, '\n');
        size_t len = end ? (size_t)(end - text) : strlen (text);
        while (len && (text[len - 1] == ' ' || text[len - 1] == '\r' || text[len - 1] == '\t'))
            len--;
        if (len) {
            snprintf (out, outlen, "%.*s", (int)len, text);
            return;
        }
        if (!end)
            return;
        text = end;
    }
}

/* "Job <1234> is submitted to [default ]queue <q>." -> 1234 */
static bool
s_find_submitted (const char *out, char *id, size_t idlen)
{
    const char *p = out;
    while (p && (p = strstr (p, "Job <"))) {
        const char *d = p + 5;
        size_t k = 0;
        while (isdigit ((unsigned char)d[k]))
            k++;
        if (k > 0 && k < 20 && strncmp (d + k, "> is submitted to ", 18) == 0) {
            if (k + 1 > idlen)
                return false;
            memcpy (id, d, k);
            id[k] = '\0';
            return true;
        }
        p = d;
    }
    return false;
}

static jm_submit_rc_t
s_parse_submit (int status, const char *out, const char *errout, char *id, size_t idlen, char *err,
                size_t errlen)
{
    out = out ? out : "";
    errout = errout ? errout : "";
    if (status == 0 && s_find_submitted (out, id, idlen))
        return JM_SUBMIT_OK;
    /* "User <u>: Pending job threshold reached. Retrying in 60 seconds..."
       (also "Group <g>: ..." and the slot threshold) */
    const char *limit = strstr (errout, "threshold reached");
    if (!limit)
        limit = strstr (out, "threshold reached");
    if (limit) {
        const char *text = strstr (errout, "threshold reached") ? errout : out;
        const char *line = limit;
        while (line > text && line[-1] != '\n')
            line--;
        s_first_line (line, err, errlen);
        return JM_SUBMIT_RETRY;
    }
    char line[512];
    s_first_line (errout, line, sizeof line);
    if (!*line)
        s_first_line (out, line, sizeof line);
    if (status == 0)
        snprintf (err, errlen, "bsub printed no job id: %s", *line ? line : "(no output)");
    else
        snprintf (err, errlen, "bsub exited with %d: %s", status, *line ? line : "(no output)");
    return JM_SUBMIT_FAIL;
}

static void
s_element_id (const char *base, size_t idx, char *out, size_t outlen)
{
    snprintf (out, outlen, "%s[%zu]", base, idx);
}

/* ----------------------------------------------------------------- query */

static void
s_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user; /* by job id: only our jobs, finished ones included */
    jm_argv_add (argv, "bjobs");
    jm_argv_add (argv, "-a");
    jm_argv_add (argv, "-noheader");
    jm_argv_add (argv, "-o");
    jm_argv_add (argv, S_QUERY_FIELDS);
    /* base ids once each: "1234" lists every element of array 1234 */
    jm_batch_argv_add_bases (argv, sids, n, "[");
}

typedef struct {
    const char *keyword;
    jm_verdict_t verdict;
} s_term_t;

/* Admin guide, "Termination reasons displayed by bacct, bhist, and bjobs". */
static const s_term_t s_terms[] = {
    {"TERM_RUNLIMIT", JM_VERDICT_TIMEOUT},
    {"TERM_CPULIMIT", JM_VERDICT_TIMEOUT},
    {"TERM_DEADLINE", JM_VERDICT_TIMEOUT},
    {"TERM_MEMLIMIT", JM_VERDICT_OUT_OF_MEMORY},
    {"TERM_SWAP", JM_VERDICT_OUT_OF_MEMORY},
    {"TERM_OWNER", JM_VERDICT_CANCELLED},
    {"TERM_ADMIN", JM_VERDICT_CANCELLED},
    {"TERM_FORCE_OWNER", JM_VERDICT_CANCELLED},
    {"TERM_FORCE_ADMIN", JM_VERDICT_CANCELLED},
    {"TERM_BUCKET_KILL", JM_VERDICT_CANCELLED},
    {"TERM_REQUEUE_OWNER", JM_VERDICT_CANCELLED},
    {"TERM_REQUEUE_ADMIN", JM_VERDICT_CANCELLED},
    {"TERM_REMOVE_HUNG_JOB", JM_VERDICT_NODE_FAIL},
    {"TERM_ZOMBIE", JM_VERDICT_NODE_FAIL},
    {"TERM_HOST", JM_VERDICT_NODE_FAIL},
};

static jm_verdict_t
s_exit_verdict (const char *reason)
{
    const char *p = strstr (reason, "TERM_");
    if (!p)
        return JM_VERDICT_FAILED;
    size_t len = 0;
    while (isupper ((unsigned char)p[len]) || p[len] == '_')
        len++;
    for (size_t i = 0; i < sizeof s_terms / sizeof s_terms[0]; i++)
        if (strlen (s_terms[i].keyword) == len && strncmp (p, s_terms[i].keyword, len) == 0)
            return s_terms[i].verdict;
    return JM_VERDICT_FAILED;
}

/* One record line -> seen.  false if it is not one. */
static bool
s_parse_record (const char *line, size_t linelen, jm_batch_seen_fn *seen, void *arg)
{
    const char *f[5];
    size_t fl[5];
    const char *p = line, *end = line + linelen;
    for (int i = 0; i < 5; i++) {
        const char *bar = i < 4 ? memchr (p, '|', (size_t)(end - p)) : NULL;
        if (i < 4 && !bar)
            return false;
        f[i] = p;
        fl[i] = (size_t)((bar ? bar : end) - p);
        jm_batch_trim (&f[i], &fl[i]);
        p = bar ? bar + 1 : end;
    }
    /* jobid: 1234 or 1234[5] (LSB_BJOBS_DISPLAY_ENH=Y) */
    char sid[64];
    size_t base = strcspn (f[0], "[");
    if (base > fl[0])
        base = fl[0];
    if (!jm_batch_all_digits (f[0], base) || base > 20)
        return false;
    if (base < fl[0]) {
        if (f[0][fl[0] - 1] != ']' || !jm_batch_all_digits (f[0] + base + 1, fl[0] - base - 2))
            return false;
        snprintf (sid, sizeof sid, "%.*s", (int)fl[0], f[0]);
    }
    else if (fl[1] == 1 && f[1][0] == '-')
        snprintf (sid, sizeof sid, "%.*s", (int)base, f[0]);
    else if (jm_batch_all_digits (f[1], fl[1]) && fl[1] <= 10) {
        unsigned long idx = strtoul (f[1], NULL, 10);
        if (idx > 0)
            snprintf (sid, sizeof sid, "%.*s[%lu]", (int)base, f[0], idx);
        else
            snprintf (sid, sizeof sid, "%.*s", (int)base, f[0]);
    }
    else
        return false;

    /* stat: an upper-case word */
    char stat[16];
    if (fl[2] == 0 || fl[2] >= sizeof stat)
        return false;
    for (size_t i = 0; i < fl[2]; i++)
        if (!isupper ((unsigned char)f[2][i]))
            return false;
    snprintf (stat, sizeof stat, "%.*s", (int)fl[2], f[2]);
    /* exit_code: "-" or a number */
    bool has_code = !(fl[3] == 1 && f[3][0] == '-') && fl[3] > 0;
    if (has_code && (!jm_batch_all_digits (f[3], fl[3]) || fl[3] > 9))
        return false;
    bool has_reason = !(fl[4] == 1 && f[4][0] == '-') && fl[4] > 0;

    jm_batch_seen_t s = {sid, JM_BST_QUEUED, JM_VERDICT_NONE, stat};
    char detail[512];
    if (strcmp (stat, "RUN") == 0 || strcmp (stat, "UNKWN") == 0)
        s.state = JM_BST_RUNNING;
    else if (strcmp (stat, "DONE") == 0) {
        s.state = JM_BST_DONE;
        s.verdict = JM_VERDICT_COMPLETED;
    }
    else if (strcmp (stat, "EXIT") == 0) {
        char reason[400];
        snprintf (reason, sizeof reason, "%.*s", has_reason ? (int)fl[4] : 0, f[4]);
        s.state = JM_BST_DONE;
        s.verdict = has_reason ? s_exit_verdict (reason) : JM_VERDICT_FAILED;
        if (has_reason && has_code)
            snprintf (detail, sizeof detail, "EXIT %s, exit code %.*s", reason, (int)fl[3], f[3]);
        else if (has_reason)
            snprintf (detail, sizeof detail, "EXIT %s", reason);
        else if (has_code)
            snprintf (detail, sizeof detail, "EXIT, exit code %.*s", (int)fl[3], f[3]);
        else
            snprintf (detail, sizeof detail, "EXIT");
        s.detail = detail;
    }
    else if (strcmp (stat, "ZOMBI") == 0) {
        s.state = JM_BST_DONE;
        s.verdict = JM_VERDICT_NODE_FAIL;
    }
    /* PEND PROV PSUSP USUSP SSUSP WAIT and states we do not know: queued */
    seen (arg, &s);
    return true;
}

/* "Job <1234> is not found", "Job <1234[5]> is not found",
   "No unfinished job found", "No job found": a job that is not there. */
static bool
s_absent_line (const char *line, size_t len)
{
    static const char *const whole[] = {"No unfinished job found", "No job found"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (len == strlen (whole[i]) && strncmp (line, whole[i], len) == 0)
            return true;
    static const char tail[] = "> is not found";
    size_t tl = sizeof tail - 1;
    return len > 5 + tl && strncmp (line, "Job <", 5) == 0 &&
           strncmp (line + len - tl, tail, tl) == 0;
}

/* A seen callback that drops everything: the validating pass. */
static void
s_drop (void *arg, const jm_batch_seen_t *seen)
{
    (void)arg;
    (void)seen;
}

static int
s_parse_bjobs (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    out = out ? out : "";
    errout = errout ? errout : "";
    /* stderr: only "not found" lines are expected */
    const char *bad = NULL;
    size_t badlen = 0;
    const char *l;
    size_t ll;
    for (const char *p = errout; jm_batch_next_line (&p, &l, &ll);) {
        jm_batch_trim (&l, &ll);
        if (ll && !s_absent_line (l, ll) && !bad) {
            bad = l;
            badlen = ll;
        }
    }
    /* pass 0 checks every stdout line is a record (or an absence note),
       pass 1 reports them: nothing is reported from output that fails */
    size_t records = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (const char *p = out; jm_batch_next_line (&p, &l, &ll);) {
            jm_batch_trim (&l, &ll);
            if (!ll || s_absent_line (l, ll))
                continue;
            if (pass == 0) {
                if (!s_parse_record (l, ll, s_drop, NULL)) {
                    snprintf (err, errlen, "bjobs: cannot read line '%.*s'",
                              (int)(ll > 200 ? 200 : ll), l);
                    return -1;
                }
                records++;
            }
            else
                s_parse_record (l, ll, seen, arg);
        }
        if (pass == 0 && bad && (status != 0 || records == 0)) {
            snprintf (err, errlen, "bjobs exited with %d: %.*s", status,
                      (int)(badlen > 200 ? 200 : badlen), bad);
            return -1;
        }
        if (pass == 0 && status != 0 && status != 255) {
            snprintf (err, errlen, "bjobs exited with %d", status);
            return -1;
        }
    }
    return 0;
}

static int
s_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    return s_parse_bjobs (status, out, errout, seen, arg, err, errlen);
}

/* Not static: tests/test_sched_lsf.c reaches the pure functions through it. */
const jm_batch_dialect_t jm_batch_lsf_dialect = {
    .name = "lsf",
    .submit_prog = "bsub",
    .array_index_var = "LSB_JOBINDEX",
    .max_array = S_MAX_ARRAY,
    .submit_stdin = true,
    .header = s_header,
    .submit_argv = s_submit_argv,
    .parse_submit = s_parse_submit,
    .element_id = s_element_id,
    .query_argv = s_query_argv,
    .parse_query = s_parse_query,
    .final_argv = NULL,
    .parse_final = NULL,
    .cancel_prog = "bkill",
};

JM_BATCH_BACKEND (lsf, jm_batch_lsf_dialect);
