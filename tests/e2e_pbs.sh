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

task_field() { # JSON PATH FIELD
    echo "$1" | jq -r --arg p "$2" --arg f "$3" \
        '.submissions[0].tasks[] | select(.path == $p) | .[$f] | tostring'
}
sub_file() { # FILE RESOURCES
    { echo "work_base: ."; echo "resources: $2"; echo "task_list:"; } >"$1"
}
add_task() { # FILE DIR COMMAND
    mkdir -p "$(dirname "$1")/w/$2"
    printf '  - {command: %s, task_work_path: %s, backward_files: [out.txt]}\n' \
        "$(jq -Rn --arg c "$3" '$c')" "$2" >>"$1"
}
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
    local fl=$1 sched=$2 S=$T/$2 A=a_$2 i t r st js rc id
    export FAKE_PBS_FLAVOR=$fl FAKE_PBS_STATE=$T/pbs_$fl
    mkdir -p "$FAKE_PBS_STATE" "$S"
    echo "=== $sched (FAKE_PBS_FLAVOR=$fl)"
    start_agent "$A" 12 --scheduler "$sched" --poll-ms 500 --retry-ms 1000

    # ---- 1-3: array + plain + failing task, walltime, qdel by hand
    local D1=$S/s1 D2=$S/s2 D3=$S/s3 D4=$S/s4
    mkdir -p "$D1" "$D2" "$D3" "$D4"
    sub_file "$D1/sub.yml" "{group_size: 3, para_deg: 1, queue_name: short}"
    for i in $(seq 0 8); do
        if [ "$i" = 4 ]; then
            add_task "$D1/sub.yml" "t$i" "echo partial > out.txt; exit 3"
        else
            add_task "$D1/sub.yml" "t$i" "echo \$((${i} * ${i})) > out.txt"
        fi
    done
    sub_file "$D2/sub.yml" "{group_size: 2, para_deg: 2, job_array: false}"
    for i in 0 1 2 3; do add_task "$D2/sub.yml" "p$i" "echo plain $i > out.txt"; done
    sub_file "$D3/sub.yml" \
        "{group_size: 2, para_deg: 1, custom_flags: ['#PBS -l walltime=00:00:03'], kwargs: {job_name: limited}}"
    add_task "$D3/sub.yml" l0 "sleep 40; echo late > out.txt"
    add_task "$D3/sub.yml" l1 "echo never > out.txt"
    sub_file "$D4/sub.yml" "{group_size: 2, para_deg: 2, kwargs: {job_name: handkill}}"
    add_task "$D4/sub.yml" k0 "sleep 40; echo late > out.txt"
    add_task "$D4/sub.yml" k1 "sleep 40; echo late > out.txt"

    local ID1 ID2 ID3 ID4
    ID1=$(jm_submit submit "$D1/sub.yml" --work-dir "$D1/w") || fail "submit 1 failed"
    ID2=$(jm_submit submit "$D2/sub.yml" --work-dir "$D2/w") || fail "submit 2 failed"
    ID3=$(jm_submit submit "$D3/sub.yml" --work-dir "$D3/w") || fail "submit 3 failed"
    ID4=$(jm_submit submit "$D4/sub.yml" --work-dir "$D4/w") || fail "submit 4 failed"
    ok "$sched: submitted $ID1 (array), $ID2 (plain), $ID3 (walltime), $ID4 (qdel by hand)"

    handkill_running() { [ -n "$(pbs_all | awk '$2 == "handkill" && $5 == "R"')" ]; }
    wait_until 40 handkill_running || fail "$sched: the handkill job never ran: $(pbs_all)"
    local HK
    HK=$(pbs_all | awk '$2 == "handkill" && $5 == "R" {print $1; exit}')
    qdel "$HK" || fail "$sched: qdel $HK failed"
    ok "$sched: qdel $HK by hand"

    for id in "$ID1" "$ID2" "$ID3" "$ID4"; do
        rc=0
        jm_submit wait "$id" >"$T/wait_$id.out" 2>&1 || rc=$?
        [ $rc -le 1 ] || fail "$sched: wait $id exited $rc: $(cat "$T/wait_$id.out")"
    done
    echo "--- qstat after parts 1-3:"
    pbs_all

    js=$(status_json "$ID1")
    for i in $(seq 0 8); do
        st=$(task_field "$js" "t$i" state)
        if [ "$i" = 4 ]; then
            check_eq "$sched t4 state" "$st" FAILED
            check_eq "$sched t4 exit code" "$(task_field "$js" t4 exit_code)" 3
        else
            [ "$st" = DONE ] || fail "$sched: task t$i: $st ($(task_field "$js" "t$i" reason))"
            check_eq "$sched t$i result" "$(cat "$D1/w/t$i/out.txt")" "$((i * i))"
        fi
    done
    ok "$sched: t5 (after the failing t4 in the same job) ran: DONE"
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

    js=$(status_json "$ID2")
    for i in 0 1 2 3; do
        check_eq "$sched p$i state" "$(task_field "$js" "p$i" state)" DONE
        check_eq "$sched p$i result" "$(cat "$D2/w/p$i/out.txt")" "plain $i"
    done
    ok "$sched: job_array: false -> plain jobs"

    js=$(status_json "$ID3")
    for t in l0 l1; do
        check_eq "$sched $t state" "$(task_field "$js" $t state)" FAILED
        r=$(task_field "$js" $t reason)
        case $r in *TIMEOUT*) ok "$sched $t reason: $r" ;; *) fail "$sched: $t reason '$r' has no TIMEOUT" ;; esac
    done

    js=$(status_json "$ID4")
    for t in k0 k1; do
        check_eq "$sched $t state" "$(task_field "$js" $t state)" FAILED
        r=$(task_field "$js" $t reason)
        case $r in *CANCELLED*) ok "$sched $t reason: $r" ;; *) fail "$sched: $t reason '$r' has no CANCELLED" ;; esac
    done

    # ---- 4: jobman-submit cancel: some jobs running, the next ones queued
    local D5=$S/s5 ID5 MARK out
    mkdir -p "$D5"
    sub_file "$D5/sub.yml" "{group_size: 1, para_deg: 1, kwargs: {job_name: tocancel}}"
    MARK="45.$$$RANDOM"
    for i in 0 1 2; do add_task "$D5/sub.yml" "c$i" "sleep $MARK"; done
    ID5=$(jm_submit submit "$D5/sub.yml" --work-dir "$D5/w") || fail "submit 5 failed"
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
    no_sleepers() { ! pgrep -f "sleep $MARK" >/dev/null; }
    wait_until 10 no_sleepers || fail "$sched: task processes alive after cancel: $(pgrep -af "sleep $MARK")"
    check_eq "$sched CANCELLED count" "$(count_state "$ID5" CANCELLED)" 3

    # ---- 5: the per-user limit refuses qsub; the agent retries
    printf 'FAKE_PBS_MAX_QUEUED=1\nFAKE_PBS_QUEUE_DELAY=1\n' >"$FAKE_PBS_STATE/config"
    local D6=$S/s6
    mkdir -p "$D6"
    sub_file "$D6/sub.yml" "{group_size: 1, para_deg: 1, job_array: false}"
    for i in 0 1 2; do add_task "$D6/sub.yml" "q$i" "echo queued $i > out.txt"; done
    rc=0
    jm_submit submit "$D6/sub.yml" --work-dir "$D6/w" --wait >"$T/wait6_$sched.out" 2>&1 || rc=$?
    check_eq "$sched exit code of submit --wait under the per-user limit" "$rc" 0
    for i in 0 1 2; do check_eq "$sched q$i result" "$(cat "$D6/w/q$i/out.txt")" "queued $i"; done
    local refusal="would exceed queue generic's per-user limit"
    [ "$fl" = torque ] && refusal="Maximum number of jobs already in queue for user"
    grep -q "$refusal" "$T/agent_$A.log" ||
        fail "$sched: the agent never met the per-user limit (log lacks '$refusal')"
    ok "$sched agent log: $(grep -m1 "$refusal" "$T/agent_$A.log")"
    rm -f "$FAKE_PBS_STATE/config"

    # ---- 6: 200 tasks
    local N=200 D7=$S/s7 d bad=0
    mkdir -p "$D7"
    sub_file "$D7/sub.yml" "{group_size: 10, para_deg: 2}"
    for i in $(seq 0 $((N - 1))); do
        d=$(printf 'b%03d' "$i")
        mkdir -p "$D7/w/$d"
        echo "$i" >"$D7/w/$d/in.txt"
        printf '  - {command: "echo $(( $(cat in.txt) * 3 )) > out.txt", task_work_path: %s, forward_files: [in.txt], backward_files: [out.txt]}\n' \
            "$d" >>"$D7/sub.yml"
    done
    rc=0
    jm_submit submit "$D7/sub.yml" --work-dir "$D7/w" --wait >"$T/wait7_$sched.out" 2>&1 || rc=$?
    tail -n 2 "$T/wait7_$sched.out"
    check_eq "$sched exit code of the 200-task submit --wait" "$rc" 0
    for i in $(seq 0 $((N - 1))); do
        d=$(printf 'b%03d' "$i")
        [ "$(cat "$D7/w/$d/out.txt" 2>/dev/null)" = "$((i * 3))" ] || bad=$((bad + 1))
    done
    check_eq "$sched wrong or missing results of 200 tasks" "$bad" 0

    # the next flavour's submissions must not land on this agent
    local pid_var=AGENT_PID_$A
    kill -TERM "${!pid_var}" 2>/dev/null || true
    wait "${!pid_var}" 2>/dev/null || true
}

run_flavor pbspro pbs
run_flavor torque torque
echo "PASS: e2e_pbs"
