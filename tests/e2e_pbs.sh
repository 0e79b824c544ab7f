#!/usr/bin/env bash
# e2e_pbs: the real jobman-agent --scheduler pbs and --scheduler torque
# against the fake qsub/qstat/qdel of tests/fake_pbs (first on PATH; they
# run the jobs for real).  Never skipped: the fakes are ours.  For each
# flavour (PBS Pro, then Torque), one agent:
#   1. an array (jobs arriving together) and plain jobs (job_array: false);
#      a task failing inside a job does not stop the later tasks of that job
#   2. a walltime limit kills a job: its tasks FAILED, reason TIMEOUT
#   3. a job qdel'ed by hand: its tasks FAILED, reason CANCELLED
#   4. jobman-submit cancel: qdel, none of ours queued or running in qstat
#   5. the per-user limit refuses qsub: retried (not failed) until all ran
#   6. 200 tasks, results checked
source "$(dirname "$0")/e2e_lib.sh"
source "$(dirname "$0")/sched_e2e_lib.sh"

FAKE=$JM_SOURCE_DIR/tests/fake_pbs
export PATH=$FAKE:$PATH
export FAKE_PBS_KILL_DELAY=1
[ "$(command -v qsub)" = "$FAKE/qsub" ] || fail "the fake qsub is not first on PATH"

# stop the agents first (they could submit again), then every fake job
_pbs_cleanup() {
    local rc=$? s
    _jm_kill_all
    for s in "$T"/pbs_*; do
        [ -d "$s" ] && FAKE_PBS_STATE=$s bash "$FAKE/fake_pbs_lib.sh" shutdown >/dev/null 2>&1
    done
    (exit $rc)
    _jm_cleanup
}
trap _pbs_cleanup EXIT

# the one-line table of every job and subjob, finished ones included
# (PBS Pro: -x; Torque shows completed jobs anyway): ID NAME USER TIME S QUEUE
pbs_all() {
    if [ "$FAKE_PBS_FLAVOR" = torque ]; then qstat -t 2>/dev/null | tail -n +3
    else qstat -x -t 2>/dev/null | tail -n +3; fi
}
# without history: what is still in the queue
pbs_live() { qstat -t 2>/dev/null | tail -n +3 | awk '$5 != "C"'; }

start_coord

run_flavor() { # FLAVOR SCHEDULER
    local fl=$1 sched=$2 S=$T/$2 A=a_$2 id
    export FAKE_PBS_FLAVOR=$fl FAKE_PBS_STATE=$T/pbs_$fl
    mkdir -p "$FAKE_PBS_STATE" "$S"
    echo "=== $sched (FAKE_PBS_FLAVOR=$fl)"
    start_agent "$A" 12 --scheduler "$sched" --poll-ms 500 --retry-ms 1000

    # ---- 1-3: array + plain + failing task, walltime, qdel by hand
    gen_mixed_parts "$S" '#PBS -l walltime=00:00:03'
    local ID1 ID2 ID3 ID4
    ID1=$(submit_dir "$S/s1")
    ID2=$(submit_dir "$S/s2")
    ID3=$(submit_dir "$S/s3")
    ID4=$(submit_dir "$S/s4")
    ok "$sched: submitted $ID1 (array), $ID2 (plain), $ID3 (walltime), $ID4 (qdel by hand)"

    handkill_running() { [ -n "$(pbs_all | awk '$2 == "handkill" && $5 == "R"')" ]; }
    wait_until 40 handkill_running || fail "$sched: the handkill job never ran: $(pbs_all)"
    local HK
    HK=$(pbs_all | awk '$2 == "handkill" && $5 == "R" {print $1; exit}')
    qdel "$HK" || fail "$sched: qdel $HK failed"
    ok "$sched: qdel $HK by hand"

    wait_ended "$ID1" "$ID2" "$ID3" "$ID4"
    echo "--- qstat after parts 1-3:"
    pbs_all

    check_array_part "$sched" "$ID1" "$S/s1"
    local narr arrdir
    narr=$(pbs_all | awk '$1 ~ /^[0-9]+\[[0-9]+\]\./' | wc -l)
    [ "$narr" -ge 3 ] || fail "$sched: expected the 3 jobs of $ID1 as subjobs: $(pbs_all)"
    arrdir=$(agent_root "$A")/.jobman/jobs
    if [ "$fl" = torque ]; then
        grep -rqs '^#PBS -t 1-3$' "$arrdir" || fail "$sched: no submit.sh with '#PBS -t 1-3'"
        grep -rqs '^#PBS -l nodes=1:ppn=1$' "$arrdir" || fail "$sched: no '#PBS -l nodes=1:ppn=1'"
    else
        grep -rqs '^#PBS -J 1-3$' "$arrdir" || fail "$sched: no submit.sh with '#PBS -J 1-3'"
        grep -rqs '^#PBS -l select=1:ncpus=1$' "$arrdir" || fail "$sched: no '#PBS -l select=1:ncpus=1'"
    fi
    grep -rqs '^#PBS -q short$' "$arrdir" || fail "$sched: no submit.sh with '#PBS -q short'"
    ok "$sched: submission 1 went out as an array ($narr subjobs) in queue short"

    check_plain_part "$sched" "$ID2" "$S/s2"
    ok "$sched: job_array: false -> plain jobs"

    check_all_failed_with "$sched" "$ID3" TIMEOUT l0 l1
    check_all_failed_with "$sched" "$ID4" CANCELLED k0 k1

    # ---- 4: jobman-submit cancel: some jobs running, the next ones queued
    local ID5 out
    gen_cancel_part "$S/s5" 3
    ID5=$(submit_dir "$S/s5")
    three_running() { [ "$(pbs_live | awk '$2 == "tocancel" && $5 == "R"' | wc -l)" -ge 3 ]; }
    wait_until 40 three_running || fail "$sched: tocancel jobs did not run: $(pbs_all)"
    ok "$sched: in the queue: $(pbs_live | awk '$2 == "tocancel" {print $1 "=" $5}' | tr '\n' ' ')"
    out=$(jm_submit cancel "$ID5") || fail "$sched: cancel failed"
    echo "$out"
    gone() { [ -z "$(pbs_live | awk '$2 == "tocancel" && ($5 == "Q" || $5 == "R" || $5 == "E")')" ]; }
    wait_until 20 gone || fail "$sched: jobs still queued/running after cancel: $(pbs_live)"
    ok "$sched: qstat shows none of the cancelled jobs queued or running"
    if [ "$fl" = pbspro ]; then
        # history: ended by qdel (substate 91 terminated, killed by SIGTERM)
        for id in $(pbs_all | awk '$2 == "tocancel" && $1 !~ /\[\]/ {print $1}'); do
            out=$(qstat -x -f "$id")
            grep -q '^    substate = 91$' <<<"$out" || fail "$sched: $id not terminated: $out"
        done
    fi
    check_no_sleepers "$sched"
    check_eq "$sched CANCELLED count" "$(count_state "$ID5" CANCELLED)" 3

    # ---- 5: the per-user limit refuses qsub; the agent retries
    printf 'FAKE_PBS_MAX_QUEUED=1\nFAKE_PBS_QUEUE_DELAY=1\n' >"$FAKE_PBS_STATE/config"
    local refusal="would exceed queue generic's per-user limit"
    [ "$fl" = torque ] && refusal="Maximum number of jobs already in queue for user"
    run_refused_part "$sched" "$S/s6" "$T/agent_$A.log" "$refusal"
    rm -f "$FAKE_PBS_STATE/config"

    # ---- 6: 200 tasks
    run_200_part "$sched" "$S/s7"

    # the next flavour's submissions must not land on this agent
    local pid_var=AGENT_PID_$A
    _jm_kill_child TERM "${!pid_var}"
    wait "${!pid_var}" 2>/dev/null || true
}

run_flavor pbspro pbs
run_flavor torque torque
echo "PASS: e2e_pbs"
