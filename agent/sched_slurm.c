/*  sched_slurm.c - the Slurm dialect of the batch core (jm_batch.h).

    Commands (verified on Slurm 22.05 here, see tests/test_sched_slurm.c for
    the captured output):
      submit  sbatch --parsable SCRIPT        -> "123" or "123;cluster"
      query   squeue -h -r -t all -o '%i|%T|%r' -j BASE1,BASE2,...
              -r lists array elements one per line ("123_4"), -t all keeps
              jobs that ended less than MinJobAge ago (their final state is
              the verdict), -j by our own ids (never other users' jobs).
              Array elements are asked for by their base id (a short argv
              for large arrays).  squeue with ONE unknown (purged) id exits
              1 with "Invalid job id specified"; with several ids it just
              leaves the unknown ones out.  Both mean "left the queue".
      final   sacct -n -P -X -o JobID,State,ExitCode -j IDS, falling back
              to `sacct -c` (jobcomp/filetxt, no slurmdbd) when plain sacct
              fails ("Slurm accounting storage is disabled").  With -c
              array elements appear under their raw job ids only, so they
              get no verdict there (the core then says they left the queue
              without their tags) - nothing wrong is ever reported.
      cancel  scancel ID...                                                */
#include "jm_batch.h"
#include "jm_text.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slurm's default MaxArraySize is 1001 (indices 0..1000). */
#define S_MAX_ARRAY 1000
#define S_DETAIL_MAX 256

/* A path for a quoted #SBATCH -o/-e argument: '%' doubled (Slurm expands
   %j, %A, ... in file names), and nothing that would end the quotes or
   the line or switch off pattern expansion (backslash). */
static char *
s_log_path (const char *dir, char *err, size_t errlen)
{
    jm_text_t b = JM_TEXT_INIT;
    for (const char *p = dir; *p; p++) {
        if (*p == '"' || *p == '\\' || iscntrl ((unsigned char)*p)) {
            snprintf (err, errlen,
                      "slurm: log directory '%s' contains a quote, backslash or control "
                      "character, which cannot go into an #SBATCH line",
                      dir);
            jm_text_reset (&b);
            return NULL;
        }
        if (*p == '%')
            jm_text_puts (&b, "%%");
        else
            jm_text_put (&b, p, 1);
    }
    char *path = jm_text_take (&b);
    if (!path)
        snprintf (err, errlen, "slurm: out of memory writing the #SBATCH header");
    return path;
}

static bool
s_one_line (const char *s)
{
    return strchr (s, '\n') == NULL && strchr (s, '\r') == NULL;
}

static char *
s_header (const jm_resources_t *res, const char *name, size_t n, const char *log_dir, char *err,
          size_t errlen)
{
    assert (res && name && log_dir && n >= 1);
    if (!*name || !s_one_line (name) || strchr (name, ' ')) {
        snprintf (err, errlen, "slurm: job name '%s' must be one word", name);
        return NULL;
    }
    char *dir = s_log_path (log_dir, err, errlen);
    if (!dir)
        return NULL;
    jm_text_t b = JM_TEXT_INIT;
    jm_text_add (&b, "#SBATCH --job-name=%s\n", name);
    if (res->queue_name && *res->queue_name)
        jm_text_add (&b, "#SBATCH --partition=%s\n", res->queue_name);
    jm_text_add (&b, "#SBATCH --nodes=%llu\n", (unsigned long long)res->number_node);
    jm_text_add (&b, "#SBATCH --ntasks-per-node=%llu\n", (unsigned long long)res->cpu_per_node);
    bool custom_gpu = res->custom_gpu_line && *res->custom_gpu_line;
    if (res->gpu_per_node > 0 && !custom_gpu)
        jm_text_add (&b, "#SBATCH --gres=gpu:%llu\n", (unsigned long long)res->gpu_per_node);
    if (n > 1)
        jm_text_add (&b, "#SBATCH --array=1-%zu\n", n);
    const char *pat = n > 1 ? "%A_%a" : "%j";
    jm_text_add (&b, "#SBATCH -o \"%s/slurm-%s.out\"\n", dir, pat);
    jm_text_add (&b, "#SBATCH -e \"%s/slurm-%s.err\"\n", dir, pat);
    free (dir);
    if (custom_gpu)
        jm_text_add (&b, "%s\n", res->custom_gpu_line);
    for (size_t i = 0; i < res->custom_flags.n; i++)
        jm_text_add (&b, "%s\n", res->custom_flags.v[i]);
    char *text = jm_text_take (&b);
    if (!text)
        snprintf (err, errlen, "slurm: out of memory writing the #SBATCH header");
    return text;
}

/* --------------------------------------------------------------------- */

static void
s_submit_argv (const char *script, size_t n, jm_argv_t *argv)
{
    (void)n;
    jm_argv_add (argv, "sbatch");
    jm_argv_add (argv, "--parsable");
    jm_argv_add (argv, script);
}

/* The scheduler's message for logs and reasons: its non-empty lines joined
   with " / " (sbatch often says why on one line and what failed on the
   next), or what stdout said, or the exit code. */
static void
s_message (int status, const char *out, const char *errout, char *err, size_t errlen)
{
    const char *src = errout && *errout ? errout : out && *out ? out : NULL;
    if (!src) {
        snprintf (err, errlen, "exited with status %d and said nothing", status);
        return;
    }
    size_t len = 0, l;
    const char *line;
    err[0] = '\0';
    while (len + 1 < errlen && jm_batch_next_line (&src, &line, &l)) {
        while (l > 0 && isspace ((unsigned char)line[l - 1]))
            l--;
        if (l == 0)
            continue;
        int w = snprintf (err + len, errlen - len, "%s%.*s", len ? " / " : "", (int)l, line);
        if (w < 0)
            break;
        len += (size_t)w;
        if (len >= errlen)
            len = errlen - 1;
    }
}

/*  Which refusals are worth trying again later.  RETRY only when sbatch's
    words show that the job was NOT accepted and that waiting can help:
      - a submit-count limit of the user/account/QOS: sbatch prints the
        reason on a line of its own, "sbatch: error:
        QOSMaxSubmitJobPerUserLimit" (also AssocMaxSubmitJobLimit,
        QOSGrpSubmitJobsLimit, AssocGrpSubmitJobsLimit,
        QOSMaxSubmitJobPerAccountLimit: all contain "SubmitJob"), then
        "Batch job submission failed: Job violates accounting/QOS policy
        (job submit limit, user's size and/or time limits)".  Once some of
        our jobs end, the next submit goes through.
      - that generic policy line without a reason line (older Slurm, or
        a submit plugin): it names the submit limit first, and for a
        program that submits many equal jobs that limit is the usual cause;
        with a reason line that is NOT a submit limit (e.g.
        QOSMaxWallDurationPerJobLimit: the job asks too much) it is FAIL,
        waiting will not change it.
      - "Resource temporarily unavailable" (EAGAIN: slurmctld refused, e.g.
        MaxJobCount reached) and "Slurm temporarily unable to accept job"
        (sbatch's own message for the same, after its retries).
      - "Unable to contact slurm controller (connect failure)": no
        connection, so certainly not submitted; slurmctld restarting.
    FAIL for everything else, including "Socket timed out on send/recv
    operation": the controller may have accepted the job before the reply
    was lost, and a second submit would run the same tasks twice into the
    same directories; failing names the problem and the user resubmits. */
static const char *const s_retry_words[] = {
    "SubmitJob",
    "MaxSubmitJobs",
    "Resource temporarily unavailable",
    "temporarily unable to accept job",
    "Unable to contact slurm controller",
    NULL,
};

static jm_submit_rc_t
s_refusal (const char *text)
{
    if (jm_batch_says (text, s_retry_words))
        return JM_SUBMIT_RETRY;
    if (strstr (text, "Job violates accounting/QOS policy")) {
        /* A reason line of its own ("sbatch: error: <Reason>") other than
           the "Batch job submission failed" line -> a specific limit. */
        const char *p = text;
        while ((p = strstr (p, "error: "))) {
            p += strlen ("error: ");
            if (strncmp (p, "Batch job submission failed", 27) != 0) {
                size_t l = strcspn (p, " \n");
                if (l > 0 && p[l] != ' ')
                    return JM_SUBMIT_FAIL; /* a one-word reason, not a submit limit */
            }
        }
        return JM_SUBMIT_RETRY;
    }
    return JM_SUBMIT_FAIL;
}

static jm_submit_rc_t
s_parse_submit (int status, const char *out, const char *errout, char *id, size_t idlen, char *err,
                size_t errlen)
{
    assert (id && idlen > 0 && err && errlen > 0);
    id[0] = '\0';
    out = out ? out : "";
    errout = errout ? errout : "";
    if (status != 0) {
        s_message (status, out, errout, err, errlen);
        /* Look at both streams: a wrapper may print to either. */
        jm_submit_rc_t rc = s_refusal (errout);
        if (rc == JM_SUBMIT_FAIL)
            rc = s_refusal (out);
        return rc;
    }
    /* --parsable: "<id>" or "<id>;<cluster>" on a line of its own.  The
       cluster part is dropped: ids are only meaningful on this cluster. */
    const char *line;
    size_t l;
    for (const char *p = out; jm_batch_next_line (&p, &line, &l);) {
        size_t d = 0;
        while (d < l && isdigit ((unsigned char)line[d]))
            d++;
        size_t end = l;
        while (end > d && isspace ((unsigned char)line[end - 1]))
            end--;
        if (d > 0 && (d == end || line[d] == ';') && d < idlen && d <= 20) {
            memcpy (id, line, d);
            id[d] = '\0';
            return JM_SUBMIT_OK;
        }
    }
    char msg[512];
    s_message (status, out, errout, msg, sizeof msg);
    snprintf (err, errlen, "sbatch succeeded but printed no job id: %s", msg);
    return JM_SUBMIT_FAIL;
}

static void
s_element_id (const char *base, size_t idx, char *out, size_t outlen)
{
    snprintf (out, outlen, "%s_%zu", base, idx);
}

/* --------------------------------------------------------------------- */
/* States.  Names as squeue %T and sacct State print them (sacct adds
   " by UID" to CANCELLED). */

typedef struct {
    const char *name;
    jm_bstate_t state;
    jm_verdict_t verdict;
} s_state_t;

static const s_state_t s_states[] = {
    /* waiting, held, suspended, or about to start again */
    {"PENDING", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"CONFIGURING", JM_BST_QUEUED, JM_VERDICT_NONE}, /* nodes booting */
    {"SUSPENDED", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"STOPPED", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"REQUEUED", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"REQUEUE_FED", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"REQUEUE_HOLD", JM_BST_QUEUED, JM_VERDICT_NONE},
    {"RESV_DEL_HOLD", JM_BST_QUEUED, JM_VERDICT_NONE},
    /* the script runs, or is being cleaned up after */
    {"RUNNING", JM_BST_RUNNING, JM_VERDICT_NONE},
    {"COMPLETING", JM_BST_RUNNING, JM_VERDICT_NONE},
    {"SIGNALING", JM_BST_RUNNING, JM_VERDICT_NONE},
    {"STAGE_OUT", JM_BST_RUNNING, JM_VERDICT_NONE},
    {"RESIZING", JM_BST_RUNNING, JM_VERDICT_NONE},
    /* ended */
    {"COMPLETED", JM_BST_DONE, JM_VERDICT_COMPLETED},
    {"FAILED", JM_BST_DONE, JM_VERDICT_FAILED},
    {"TIMEOUT", JM_BST_DONE, JM_VERDICT_TIMEOUT},
    {"DEADLINE", JM_BST_DONE, JM_VERDICT_TIMEOUT}, /* killed at its --deadline */
    {"NODE_FAIL", JM_BST_DONE, JM_VERDICT_NODE_FAIL},
    {"BOOT_FAIL", JM_BST_DONE, JM_VERDICT_NODE_FAIL}, /* its node never came up */
    {"OUT_OF_MEMORY", JM_BST_DONE, JM_VERDICT_OUT_OF_MEMORY},
    {"CANCELLED", JM_BST_DONE, JM_VERDICT_CANCELLED},
    {"PREEMPTED", JM_BST_DONE, JM_VERDICT_CANCELLED}, /* killed for another job */
    {"REVOKED", JM_BST_DONE, JM_VERDICT_CANCELLED},   /* federation: ran elsewhere */
    /* requeued and held by an epilog's special exit: stays until a human
       releases it, so jobman cancels it and says why */
    {"SPECIAL_EXIT", JM_BST_ERROR, JM_VERDICT_FAILED},
};

/* Pending reasons that never clear by themselves: the job would wait
   forever.  "launch failed requeued held" is Slurm's hold after the batch
   script could not be started on its node (squeue prints it with spaces). */
static const char *s_stuck_reasons[] = {
    "launch failed requeued held",
    "launch_failed_requeued_held",
    "BadConstraints",
    "DependencyNeverSatisfied",
};

static const s_state_t *
s_state_lookup (const char *word, size_t len)
{
    for (size_t i = 0; i < sizeof s_states / sizeof s_states[0]; i++)
        if (strlen (s_states[i].name) == len && memcmp (s_states[i].name, word, len) == 0)
            return &s_states[i];
    return NULL;
}

/* A canonical id: "123" or "123_4" (no array ranges, no steps). */
static bool
s_canonical_id (const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && isdigit ((unsigned char)s[i]))
        i++;
    if (i == 0 || i > 20)
        return false;
    if (i == len)
        return true;
    if (s[i] != '_')
        return false;
    size_t j = ++i;
    while (i < len && isdigit ((unsigned char)s[i]))
        i++;
    return i == len && i > j && i - j <= 10;
}

/* Splits "a|b|rest" (rest may hold '|').  false if fewer than 3 fields. */
static bool
s_split3 (const char *line, size_t len, const char *f[3], size_t fl[3])
{
    const char *end = line + len;
    const char *p = line;
    for (int k = 0; k < 2; k++) {
        const char *bar = memchr (p, '|', (size_t)(end - p));
        if (!bar)
            return false;
        f[k] = p;
        fl[k] = (size_t)(bar - p);
        p = bar + 1;
    }
    f[2] = p;
    fl[2] = (size_t)(end - p);
    while (fl[2] > 0 && isspace ((unsigned char)f[2][fl[2] - 1]))
        fl[2]--;
    return true;
}

static bool
s_state_word (const char *s, size_t len, size_t *wlen)
{
    size_t i = 0;
    while (i < len && (isupper ((unsigned char)s[i]) || s[i] == '_'))
        i++;
    *wlen = i;
    /* "CANCELLED by 0" (sacct) */
    return i > 0 && (i == len || s[i] == ' ');
}

typedef struct {
    const char *out;
    const char *pos;
    const char *line;
    size_t len;
    int lineno;
} s_lines_t;

static bool
s_next_line (s_lines_t *it)
{
    while (jm_batch_next_line (&it->pos, &it->line, &it->len)) {
        it->lineno++;
        size_t l = it->len;
        while (l > 0 && isspace ((unsigned char)it->line[l - 1]))
            l--;
        it->len = l;
        if (l > 0)
            return true;
    }
    return false;
}

static int
s_parse_query (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    out = out ? out : "";
    errout = errout ? errout : "";
    if (status != 0) {
        /* One id that Slurm no longer knows: the job left the queue. */
        if (strstr (errout, "Invalid job id specified") && !*out)
            return 0;
        char msg[512];
        s_message (status, out, errout, msg, sizeof msg);
        snprintf (err, errlen, "squeue failed (status %d): %s", status, msg);
        return -1;
    }
    /* Check every line first, so that nonsense reports nothing at all. */
    s_lines_t it = {out, out, NULL, 0, 0};
    while (s_next_line (&it)) {
        const char *f[3];
        size_t fl[3], wl;
        if (!s_split3 (it.line, it.len, f, fl) || !s_canonical_id (f[0], fl[0]) ||
            !s_state_word (f[1], fl[1], &wl) || wl != fl[1]) {
            snprintf (err, errlen, "squeue output line %d is not 'ID|STATE|REASON': '%.*s'",
                      it.lineno, (int)(it.len > 200 ? 200 : it.len), it.line);
            return -1;
        }
    }
    it = (s_lines_t){out, out, NULL, 0, 0};
    while (s_next_line (&it)) {
        const char *f[3];
        size_t fl[3];
        s_split3 (it.line, it.len, f, fl);
        char sid[64], detail[S_DETAIL_MAX];
        snprintf (sid, sizeof sid, "%.*s", (int)fl[0], f[0]);
        const s_state_t *st = s_state_lookup (f[1], fl[1]);
        jm_batch_seen_t s = {sid, JM_BST_QUEUED, JM_VERDICT_NONE, detail};
        bool reason = fl[2] > 0 && !(fl[2] == 4 && memcmp (f[2], "None", 4) == 0);
        if (reason)
            snprintf (detail, sizeof detail, "%.*s, reason %.*s", (int)fl[1], f[1], (int)fl[2],
                      f[2]);
        else
            snprintf (detail, sizeof detail, "%.*s", (int)fl[1], f[1]);
        if (st) {
            s.state = st->state;
            s.verdict = st->verdict;
        }
        /* else: a state this code does not know (newer Slurm).  The job is
           still listed, so it has not left: keep watching it as queued. */
        if (s.state == JM_BST_QUEUED && reason) {
            for (size_t i = 0; i < sizeof s_stuck_reasons / sizeof s_stuck_reasons[0]; i++)
                if (strlen (s_stuck_reasons[i]) == fl[2] &&
                    memcmp (s_stuck_reasons[i], f[2], fl[2]) == 0) {
                    s.state = JM_BST_ERROR;
                    s.verdict = JM_VERDICT_FAILED;
                }
        }
        seen (arg, &s);
    }
    return 0;
}

/* --------------------------------------------------------------------- */

/* "1,2,3" (malloc'ed); with bases_only, array elements "12_3" as "12",
   each base once. */
static char *
s_id_list (const char *const *sids, size_t n, bool bases_only)
{
    jm_text_t b = JM_TEXT_INIT;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen (sids[i]);
        if (!bases_only || jm_batch_base_is_new (sids, i, "_", &l))
            jm_text_add (&b, "%s%.*s", b.len ? "," : "", (int)l, sids[i]);
    }
    char *list = jm_text_take (&b);
    if (!list)
        abort (); /* no error path in an argv builder (as jm_argv_add) */
    return list;
}

static void
s_query_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user; /* by id: all the agent's jobs run as one user anyway */
    char *list = s_id_list (sids, n, true);
    jm_argv_add (argv, "squeue");
    jm_argv_add (argv, "-h");
    jm_argv_add (argv, "-r");
    jm_argv_add (argv, "-t");
    jm_argv_add (argv, "all");
    jm_argv_add (argv, "-o");
    jm_argv_add (argv, "%i|%T|%r");
    jm_argv_add (argv, "-j");
    jm_argv_add (argv, list);
    free (list);
}

/* One command: accounting (slurmdbd) first, the job completion log (-c)
   when accounting is disabled.  The first one's complaint is dropped (it
   is expected where there is no slurmdbd); the second one's stderr is
   kept for the message when both fail ("Unknown type ArrayJobId" noise
   for array tasks there is harmless: stderr is not read on success). */
#define S_SACCT_FIELDS "-n -P -X -o JobID,State,ExitCode"
static const char s_final_script[] = "sacct " S_SACCT_FIELDS " -j \"$1\" 2>/dev/null"
                                     " || sacct -c " S_SACCT_FIELDS " -j \"$1\"";

static void
s_final_argv (const char *user, const char *const *sids, size_t n, jm_argv_t *argv)
{
    (void)user;
    char *list = s_id_list (sids, n, false);
    jm_argv_add (argv, "sh");
    jm_argv_add (argv, "-c");
    jm_argv_add (argv, s_final_script);
    jm_argv_add (argv, "sh");
    jm_argv_add (argv, list);
    free (list);
}

static int
s_parse_final (int status, const char *out, const char *errout, jm_batch_seen_fn *seen, void *arg,
               char *err, size_t errlen)
{
    out = out ? out : "";
    if (status != 0) {
        char msg[512];
        s_message (status, out, errout, msg, sizeof msg);
        snprintf (err, errlen, "sacct failed (status %d): %s", status, msg);
        return -1;
    }
    s_lines_t it = {out, out, NULL, 0, 0};
    while (s_next_line (&it)) {
        const char *f[3];
        size_t fl[3], wl;
        if (!s_split3 (it.line, it.len, f, fl) || fl[0] == 0 || !isdigit ((unsigned char)f[0][0]) ||
            !s_state_word (f[1], fl[1], &wl) || memchr (f[2], '|', fl[2])) {
            snprintf (err, errlen, "sacct output line %d is not 'JOBID|STATE|EXITCODE': '%.*s'",
                      it.lineno, (int)(it.len > 200 ? 200 : it.len), it.line);
            return -1;
        }
    }
    it = (s_lines_t){out, out, NULL, 0, 0};
    while (s_next_line (&it)) {
        const char *f[3];
        size_t fl[3], wl;
        s_split3 (it.line, it.len, f, fl);
        s_state_word (f[1], fl[1], &wl);
        /* Steps ("12.batch"), pending ranges ("12_[3-5]"), jobs still
           in the queue: not a verdict on one of our ids. */
        const s_state_t *st = s_state_lookup (f[1], wl);
        if (!s_canonical_id (f[0], fl[0]) || !st || st->state != JM_BST_DONE)
            continue;
        char sid[64], detail[S_DETAIL_MAX];
        snprintf (sid, sizeof sid, "%.*s", (int)fl[0], f[0]);
        if (fl[2] > 0 && !(fl[2] == 3 && memcmp (f[2], "0:0", 3) == 0))
            snprintf (detail, sizeof detail, "%.*s, exit code %.*s", (int)fl[1], f[1], (int)fl[2],
                      f[2]);
        else
            snprintf (detail, sizeof detail, "%.*s", (int)fl[1], f[1]);
        jm_batch_seen_t s = {sid, JM_BST_DONE, st->verdict, detail};
        seen (arg, &s);
    }
    return 0;
}

/* Not static: tests/test_sched_slurm.c declares it to test the dialect
   on captured output. */
const jm_batch_dialect_t jm_slurm_dialect = {
    .name = "slurm",
    .submit_prog = "sbatch",
    .array_index_var = "SLURM_ARRAY_TASK_ID",
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
    .cancel_prog = "scancel",
};

JM_BATCH_BACKEND (slurm, jm_slurm_dialect);
