#!/usr/bin/env bash
# e2e_sge: the real jobman-agent --scheduler sge on the real Son of Grid
# Engine of deploy/sge-up.sh (all.q has 2 slots: at most 2 of our jobs run
# at once, so the parts below are submitted together and checked as they
# finish):
#   C     jobman-submit cancel: none of its jobs left in qstat
#   H     a job qdel'ed by hand while its first task runs: its tasks
#         FAILED, the one that never ran with reason CANCELLED (qacct:
#         failed 100, exit_status 137)
#   TO    a task that outlives "#$ -l h_rt=0:0:10": FAILED, reason TIMEOUT
#         (qacct: failed 37)
#   E     a job SGE puts into Eqw (custom flag "#$ -wd /nonexistent/..."):
#         jobman deletes it, its task FAILED with a reason naming Eqw
#   F     plain jobs (job_array false), 4 tasks each one after the other;
#         the 2nd task of each exits 3, the later ones still succeed
#   P     200 tasks as arrays (job_array true), forward files and results
#         compared byte for byte
#   R     (after the others) SGE's per-user limit max_u_jobs set to 1: qsub
#         refuses the agent's jobs ("job rejected: only 1 jobs are allowed
#         per user", exit 25) while one is in the system; the agent backs
#         off and retries, and all 4 jobs end DONE.  The global
#         configuration is restored (also on failure).
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
source "$(dirname "$0")/sched_e2e_lib.sh"

PFX="jme2e$$r$RANDOM"
POLL_MS=1000
SGE_USER=$(id -un)
SCHED=SGE
QUEUE=all.q

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

# ours by name or by output path: qdel'ed on exit
our_leftover_ids() { our_jobs "" | cut -d'|' -f1; jobs_under_t; }
cancel_leftovers_on_exit sge1 qdel

# for check_part_c (sched_e2e_lib.sh): a job leaves qstat when it ends
our_active_jobs() { our_jobs "$1"; }
queue_dump() { qstat -u "$SGE_USER"; }

W=$T/work
mkdir -p "$W"/{to,h,c,e,f,p}

gen_part_c
gen_part_h
# TO: one task sleeping past its 10-second hard run time limit. SGE counts the
# limit from dispatch; 10 s leaves a loaded machine time to start the script.
sub_header "$T/to.yml" TO false '#$ -l h_rt=0:0:10'
mkdir -p "$W/to/t0"
echo "  - {command: 'echo started > started.txt; sleep 60', task_work_path: t0}" >>"$T/to.yml"
# E: a job that cannot chdir to its working directory goes into Eqw.
sub_header "$T/e.yml" E false "#\$ -wd /nonexistent/jm$$"
mkdir -p "$W/e/e0"
echo "  - {command: 'echo never > r.txt', task_work_path: e0}" >>"$T/e.yml"
gen_part_f
N=200
gen_part_p $N
ok "generated submissions (job name prefix $PFX)"

start_coord
start_agent sge1 30 --scheduler sge --poll-ms $POLL_MS --retry-ms 1000
start_clock

submit_parts c h to e f p

# --- C: jobman-submit cancel takes its jobs out of the queue -------------
check_part_c "$ID_C"

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
check_part_f "$ID_F"

# --- TO: the time limit ---------------------------------------------------
check_wait_rc "wait TO" "$ID_TO" 1
[ -n "$(find "$(agent_root sge1)" -path '*/t0/started.txt')" ] || fail "TO's task never started"
js=$(status_json "$ID_TO")
check_failed_with "TO task" "$js" t0 TIMEOUT
ok "TO ended ($(elapsed) s)"

# --- E: a job in Eqw is deleted, its task FAILED -------------------------
check_wait_rc "wait E" "$ID_E" 1
js=$(status_json "$ID_E")
check_failed_with "E task" "$js" e0 Eqw
no_e() { [ -z "$(our_jobs E)" ]; }
wait_until 20 no_e || fail "E's job still in qstat: $(our_jobs E)"
ok "E's job deleted from qstat ($(elapsed) s)"

# --- H: the hand-deleted job's tasks --------------------------------------
check_part_h "$ID_H"

# --- P: 200 tasks, byte for byte ------------------------------------------
check_part_p "$ID_P" $N

# --- arrays vs plain jobs, from SGE's accounting ---------------------------
# one qacct record per job or array element: "ID TASKID" (TASKID
# "undefined" for a plain job: then just "ID")
acct() { # PART
    qacct -j "$PFX$1*" 2>/dev/null | awk '$1 == "jobnumber" { j = $2 } $1 == "taskid" { print j, $2 }' \
        | sed 's/ undefined$//'
}
# SGE writes accounting records a little after a job ends (flush_time)
acct_complete() { [ "$(acct P | wc -l)" -ge 20 ] && [ "$(acct F | wc -l)" -ge 2 ]; }
wait_until 30 acct_complete || true # check_array_split says what is missing
check_array_split qacct "$(acct P)" "$(acct F)"

check_eq "our jobs still in qstat" "$(our_jobs "" | wc -l)" 0

# --- R: a real refusal by the per-user limit is retried, not failed -------
mkdir -p "$T/conf"
qconf -sconf global >"$T/conf/global.orig" || fail "qconf -sconf global failed"
grep -q '^max_u_jobs ' "$T/conf/global.orig" || fail "no max_u_jobs in SGE's global configuration"
restore_conf() {
    cp "$T/conf/global.orig" "$T/conf/global"
    qconf -Mconf "$T/conf/global" >/dev/null 2>&1
}
_r_exit() {
    local rc=$?
    restore_conf
    (exit $rc)
    _jm_cancel_leftovers
}
trap _r_exit EXIT
sed 's/^max_u_jobs .*/max_u_jobs 1/' "$T/conf/global.orig" >"$T/conf/global"
qconf -Mconf "$T/conf/global" >/dev/null || fail "cannot set max_u_jobs"
sub_header "$T/r.yml" R false
mkdir -p "$W/r"
for i in 0 1 2 3; do
    mkdir -p "$W/r/r$i"
    echo "  - {command: 'sleep 1; echo r$i > out.txt', task_work_path: r$i, backward_files: [out.txt]}" >>"$T/r.yml"
done
submit_parts r
check_wait_rc "wait R" "$ID_R" 0
restore_conf
for i in 0 1 2 3; do check_eq "R r$i/out.txt" "$(cat "$W/r/r$i/out.txt")" "r$i"; done
grep -q 'refused a submission for now.*allowed per user' "$T/agent_sge1.log" ||
    fail "the agent log shows no refusal by max_u_jobs: $(grep -i refus "$T/agent_sge1.log" | head -3)"
ok "R: qsub refused by max_u_jobs 1, retried, all 4 DONE ($(elapsed) s)"
echo "PASS: e2e_sge ($(elapsed) s after the agent started)"
