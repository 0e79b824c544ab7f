#!/usr/bin/env bash
# e2e_sge: the real jobman-agent --scheduler sge on the real Son of Grid
# Engine of deploy/sge-up.sh (all.q has 2 slots: at most 2 of our jobs run
# at once, so the parts below are submitted together and checked as they
# finish):
#   C     jobman-submit cancel: none of its jobs left in qstat
#   H     a job qdel'ed by hand while its first task runs: its tasks
#         FAILED, the one that never ran with reason CANCELLED (qacct:
#         failed 100, exit_status 137)
#   TO    a task that outlives "#$ -l h_rt=0:0:5": FAILED, reason TIMEOUT
#         (qacct: failed 37)
#   E     a job SGE puts into Eqw (custom flag "#$ -wd /nonexistent/..."):
#         jobman deletes it, its task FAILED with a reason naming Eqw
#   F     plain jobs (job_array false), 4 tasks each one after the other;
#         the 2nd task of each exits 3, the later ones still succeed
#   P     200 tasks as arrays (job_array true), forward files and results
#         compared byte for byte
# Every SGE job of this run carries the name prefix $PFX (kwargs.job_name),
# so the test finds, checks and finally deletes only its own jobs (by id).
# Skips (77) when SGE is not up, unless JM_REQUIRE_CLUSTERS=1.

export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}

sge_up() {
    command -v qsub >/dev/null && command -v qstat >/dev/null && command -v qacct >/dev/null \
        && command -v qdel >/dev/null || return 1
    [ -d "$SGE_ROOT/$SGE_CELL" ] || return 1
    timeout 10 qstat -f -q all.q 2>/dev/null | grep -q '^all\.q@'
}
if ! sge_up; then
    if [ "${JM_REQUIRE_CLUSTERS:-0}" = 1 ]; then
        echo "FAIL: e2e_sge: SGE is not up (run: eval \"\$(deploy/sge-up.sh)\")" >&2
        exit 1
    fi
    echo "SKIP: e2e_sge: SGE is not up (eval \"\$(deploy/sge-up.sh)\" starts it)" >&2
    exit 77
fi

JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-240}
source "$(dirname "$0")/e2e_lib.sh"

PFX="jme2e$$r$RANDOM"
POLL_MS=1000
SGE_USER=$(id -un)

# Our jobs in qstat: "ID|STATE|NAME|TASKS" lines (TASKS: "" for a plain job,
# "4" or a range such as "3-6:1" or "5,6" for array elements) for names
# starting with $PFX$1.  qstat -xml: plain qstat cuts names at 10 columns.
our_jobs() { # PART
    qstat -u "$SGE_USER" -xml 2>/dev/null | awk -v p="$PFX${1:-}" '
        function val(tag) { s = $0; sub(".*<" tag ">", "", s); sub("</" tag ">.*", "", s); return s }
        /<job_list/ { id = ""; st = ""; nm = ""; tk = "" }
        /<JB_job_number>/ { id = val("JB_job_number") }
        /<JB_name>/ { nm = val("JB_name") }
        /<state>/ { st = val("state") }
        /<tasks>/ { tk = val("tasks") }
        /<\/job_list>/ { if (index(nm, p) == 1) print id "|" st "|" nm "|" tk }'
}

# Ids of the user's jobs whose output goes under $T (ours, whatever their
# names).
jobs_under_t() {
    local id
    for id in $(qstat -u "$SGE_USER" 2>/dev/null | awk 'NR > 2 { print $1 }' | sort -u); do
        qstat -j "$id" 2>/dev/null | grep -q "^stdout_path_list:.*:$T/" && echo "$id"
    done
}

# The agent first (so it submits nothing more), then qdel whatever is left
# of our jobs, by id; then the usual cleanup.
sge_cleanup() {
    local rc=$? ids
    [ -n "${AGENT_PID_sge1:-}" ] && kill -TERM "$AGENT_PID_sge1" 2>/dev/null && sleep 0.5
    ids=$( (our_jobs "" | cut -d'|' -f1; jobs_under_t) | sort -u | tr '\n' ' ') || true
    if [ -n "${ids// /}" ]; then
        echo "deleting our leftover SGE jobs: $ids" >&2
        # shellcheck disable=SC2086
        qdel $ids >/dev/null 2>&1 || true
    fi
    (exit $rc)
    _jm_cleanup
}
trap sge_cleanup EXIT

# sub_header FILE PART JOB_ARRAY [custom flag [group_size [para_deg]]]
sub_header() {
    local flags=""
    [ -n "${4:-}" ] && flags=", custom_flags: [\"$4\"]"
    {
        echo "work_base: ."
        echo "resources: {group_size: ${5:-1}, para_deg: ${6:-1}, queue_name: all.q,"
        echo "  job_array: $3, kwargs: {job_name: $PFX$2}$flags}"
        echo "task_list:"
    } >"$1"
}

W=$T/work
mkdir -p "$W"/{to,h,c,e,f,p}

# C: three sleepers, one per job (one array).
sub_header "$T/c.yml" C true
for i in 0 1 2; do
    mkdir -p "$W/c/c$i"
    echo "  - {command: 'sleep 150', task_work_path: c$i}" >>"$T/c.yml"
done

# H: one job of two tasks, one after the other; the first sleeps.
sub_header "$T/h.yml" H true "" 2 1
mkdir -p "$W/h/h0" "$W/h/h1"
echo "  - {command: 'sleep 150', task_work_path: h0}" >>"$T/h.yml"
echo "  - {command: 'echo never > r.txt', task_work_path: h1}" >>"$T/h.yml"

# TO: one task sleeping past its 5-second hard run time limit.
sub_header "$T/to.yml" TO false '#$ -l h_rt=0:0:5'
mkdir -p "$W/to/t0"
echo "  - {command: 'echo started > started.txt; sleep 60', task_work_path: t0}" >>"$T/to.yml"

# E: a job that cannot chdir to its working directory goes into Eqw.
sub_header "$T/e.yml" E false "#\$ -wd /nonexistent/jm$$"
mkdir -p "$W/e/e0"
echo "  - {command: 'echo never > r.txt', task_work_path: e0}" >>"$T/e.yml"

# F: 8 tasks, 2 plain jobs of 4 run one after the other; every 2nd of 4 fails.
sub_header "$T/f.yml" F false "" 4 1
for i in $(seq 0 7); do
    mkdir -p "$W/f/f$i"
    if [ $((i % 4)) = 1 ]; then cmd="echo partial $i > r.txt; exit 3"; else cmd="echo result $i > r.txt"; fi
    echo "  - {command: '$cmd', task_work_path: f$i, backward_files: [r.txt]}" >>"$T/f.yml"
done

# P: 200 tasks, 10 per job, 2 at once in a job, as arrays.
N=200
sub_header "$T/p.yml" P true "" 10 2
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'p%03d' "$i")
    mkdir -p "$W/p/$d"
    if [ $((i % 10)) = 0 ]; then
        rand_file "$W/p/$d/in.dat" $((1024 * (3 + i % 5)))
    else
        echo "input of task $i" >"$W/p/$d/in.dat"
    fi
    echo "  - {command: 'sha256sum in.dat > out.sha; cp in.dat copy.bin', task_work_path: $d, forward_files: [in.dat], backward_files: [out.sha, copy.bin]}" >>"$T/p.yml"
done
ok "generated submissions (job name prefix $PFX)"

start_coord
start_agent sge1 30 --scheduler sge --poll-ms $POLL_MS
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

submit() { jm_submit submit "$T/$1.yml" --work-dir "$W/$1" || fail "submit of $1.yml failed"; }
ID_C=$(submit c)
ID_H=$(submit h)
ID_TO=$(submit to)
ID_E=$(submit e)
ID_F=$(submit f)
ID_P=$(submit p)
ok "submitted C=$ID_C H=$ID_H TO=$ID_TO E=$ID_E F=$ID_F P=$ID_P"

task_field() { # ID PATH FIELD
    status_json "$1" | jq -r --arg p "$2" --arg f "$3" '.submissions[0].tasks[] | select(.path == $p) | .[$f]'
}

# --- C: jobman-submit cancel takes its jobs out of the queue -------------
has_c_jobs() { [ -n "$(our_jobs C)" ]; }
wait_until 60 has_c_jobs || fail "no SGE job of C within 60 s: $(qstat -u "$SGE_USER")"
ok "C is in SGE: $(our_jobs C | tr '\n' ' ') ($(elapsed) s)"
out=$(jm_submit cancel "$ID_C") || fail "jobman-submit cancel $ID_C failed"
echo "$out"
no_c() { [ -z "$(our_jobs C)" ]; }
wait_until 20 no_c || fail "C's jobs still in qstat 20 s after cancel: $(our_jobs C)"
ok "no job of C in qstat after jobman-submit cancel ($(elapsed) s)"
check_eq "C tasks CANCELLED" "$(count_state "$ID_C" CANCELLED)" 3

# --- H: qdel by hand while its first task runs ---------------------------
h_running() {
    [ "$(count_state "$ID_H" RUNNING)" -ge 1 ] && our_jobs H | grep -q '|r|'
}
wait_until 120 h_running || fail "H's first task did not run within 120 s: $(our_jobs H)"
IFS='|' read -r hid _ _ htask < <(our_jobs H | grep '|r|' | head -n1)
HJOB=$hid${htask:+.$htask}
qdel "$HJOB" >/dev/null || fail "qdel $HJOB failed"
ok "qdel'ed H's SGE job $HJOB by hand ($(elapsed) s)"

# --- F: a failing task does not stop the later tasks of its job ----------
rc=0
jm_submit wait "$ID_F" >"$T/wait_f.out" || rc=$?
check_eq "exit code of wait F" "$rc" 1
js=$(status_json "$ID_F")
for i in $(seq 0 7); do
    t=$(echo "$js" | jq -c --arg p "f$i" '.submissions[0].tasks[] | select(.path == $p) | [.state, .exit_code]')
    if [ $((i % 4)) = 1 ]; then
        [ "$t" = '["FAILED",3]' ] || fail "F task f$i: got $t, want FAILED 3"
    else
        [ "$t" = '["DONE",0]' ] || fail "F task f$i: got $t, want DONE 0"
        [ "$(cat "$W/f/f$i/r.txt" 2>/dev/null)" = "result $i" ] || fail "F task f$i: r.txt missing or wrong"
    fi
done
ok "F: tasks after a failed one in the same job ran and succeeded ($(elapsed) s)"

# --- TO: the time limit ---------------------------------------------------
rc=0
jm_submit wait "$ID_TO" >"$T/wait_to.out" || rc=$?
check_eq "exit code of wait TO" "$rc" 1
check_eq "TO task state" "$(task_field "$ID_TO" t0 state)" FAILED
[ -n "$(find "$(agent_root sge1)" -path '*/t0/started.txt')" ] || fail "TO's task never started"
r=$(task_field "$ID_TO" t0 reason)
case "$r" in *TIMEOUT*) ok "TO reason: $r ($(elapsed) s)" ;; *) fail "TO reason '$r' lacks TIMEOUT" ;; esac

# --- E: a job in Eqw is deleted, its task FAILED -------------------------
rc=0
jm_submit wait "$ID_E" >"$T/wait_e.out" || rc=$?
check_eq "exit code of wait E" "$rc" 1
check_eq "E task state" "$(task_field "$ID_E" e0 state)" FAILED
r=$(task_field "$ID_E" e0 reason)
case "$r" in *Eqw*) ok "E reason: $r ($(elapsed) s)" ;; *) fail "E reason '$r' lacks Eqw" ;; esac
no_e() { [ -z "$(our_jobs E)" ]; }
wait_until 20 no_e || fail "E's job still in qstat: $(our_jobs E)"
ok "E's job deleted from qstat"

# --- H: the hand-deleted job's tasks --------------------------------------
rc=0
jm_submit wait "$ID_H" >"$T/wait_h.out" || rc=$?
check_eq "exit code of wait H" "$rc" 1
check_eq "H task h0 state" "$(task_field "$ID_H" h0 state)" FAILED
ok "H task h0: exit $(task_field "$ID_H" h0 exit_code), reason '$(task_field "$ID_H" h0 reason)'"
check_eq "H task h1 state" "$(task_field "$ID_H" h1 state)" FAILED
r=$(task_field "$ID_H" h1 reason)
case "$r" in *CANCELLED*) ok "H task h1 reason: $r" ;; *) fail "H task h1 reason '$r' lacks CANCELLED" ;; esac
[ ! -e "$W/h/h1/r.txt" ] || fail "H's second task ran although its job was deleted"

# --- P: 200 tasks, byte for byte ------------------------------------------
rc=0
jm_submit wait "$ID_P" >"$T/wait_p.out" || rc=$?
tail -n 2 "$T/wait_p.out"
check_eq "exit code of wait P" "$rc" 0
bad=0
for i in $(seq 0 $((N - 1))); do
    d=$W/p/$(printf 'p%03d' "$i")
    cmp -s "$d/in.dat" "$d/copy.bin" || { echo "copy.bin of $d differs" >&2; bad=$((bad + 1)); }
    [ "$(cat "$d/out.sha" 2>/dev/null)" = "$(cd "$d" && sha256sum in.dat)" ] \
        || { echo "out.sha of $d wrong" >&2; bad=$((bad + 1)); }
done
check_eq "P: bad result files" "$bad" 0
check_eq "P: DONE count" "$(count_state "$ID_P" DONE)" $N
ok "P: 200 tasks done, results byte for byte ($(elapsed) s)"

# --- arrays vs plain jobs, from SGE's accounting ---------------------------
# one qacct record per job or array element: "ID TASKID" (TASKID
# "undefined" for a plain job)
acct() { # PART
    qacct -j "$PFX$1*" 2>/dev/null | awk '$1 == "jobnumber" { j = $2 } $1 == "taskid" { print j, $2 }'
}
acct P >"$T/acct_p"
acct F >"$T/acct_f"
# 20 jobs of 10 tasks; those that reach the agent together go out as one
# array, so most are array elements (one that came alone is a plain job)
check_eq "P: SGE jobs in qacct" "$(wc -l <"$T/acct_p")" 20
p_elems=$(grep -vc ' undefined$' "$T/acct_p" || true)
[ "$p_elems" -ge 2 ] || fail "P (job_array true) ran as $p_elems array elements: $(cat "$T/acct_p")"
ok "P ran as $p_elems array elements in $(grep -v ' undefined$' "$T/acct_p" | cut -d' ' -f1 | sort -u | wc -l) arrays"
check_eq "F: plain jobs in qacct (job_array false)" "$(grep -c ' undefined$' "$T/acct_f" || true)" 2
check_eq "F: array elements" "$(grep -vc ' undefined$' "$T/acct_f" || true)" 0

check_eq "our jobs still in qstat" "$(our_jobs "" | wc -l)" 0
echo "PASS: e2e_sge ($(elapsed) s after the agent started)"
