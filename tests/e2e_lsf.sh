#!/usr/bin/env bash
# e2e_lsf: the real jobman-agent --scheduler lsf against the fake LSF
# commands in tests/fake_lsf (first on PATH; they run the jobs for real).
# Never skipped: the fakes are ours.
#   1. an array (jobs arriving together) and plain jobs (job_array: false);
#      a task failing inside a job does not stop the later tasks of that job
#   2. a -W run limit kills a job: its tasks FAILED, reason TIMEOUT
#   3. a job bkill'ed by hand: its tasks FAILED, reason CANCELLED
#   4. jobman-submit cancel: bkill, nothing of ours left unfinished in bjobs
#   5. the pending job threshold refuses bsub: retried until all ran
#   6. 200 tasks, results checked
source "$(dirname "$0")/e2e_lib.sh"

FAKE=$JM_SOURCE_DIR/tests/fake_lsf
export PATH=$FAKE:$PATH
export FAKE_LSF_STATE=$T/lsf
export FAKE_LSF_SLOTS=6 FAKE_LSF_MINUTE_SECS=3 FAKE_LSF_TERM_SECS=1 FAKE_LSF_IDLE_EXIT=3
export FAKE_LSF_TICK=0.2 FAKE_LSF_SUB_TRY_SECS=1
mkdir -p "$FAKE_LSF_STATE"
[ "$(command -v bsub)" = "$FAKE/bsub" ] || fail "the fake bsub is not first on PATH"

# stop the agent first (it could submit again), then the fake mbatchd and
# every job element, by their recorded PIDs
_lsf_cleanup() {
    local rc=$?
    _jm_kill_all
    bash "$FAKE/fake_lsf_lib.sh" shutdown >/dev/null 2>&1 || true
    (exit $rc)
    _jm_cleanup
}
trap _lsf_cleanup EXIT

BJOBS_FMT="jobid jobindex stat exit_code exit_reason job_name delimiter='|'"
lsf_all() { bjobs -a -noheader -o "$BJOBS_FMT" 2>/dev/null || true; }

task_field() { # JSON PATH FIELD
    echo "$1" | jq -r --arg p "$2" --arg f "$3" \
        '.submissions[0].tasks[] | select(.path == $p) | .[$f] | tostring'
}

# sub_file FILE RESOURCES: header of a submission file
sub_file() {
    { echo "work_base: ."; echo "resources: $2"; echo "task_list:"; } >"$1"
}
add_task() { # FILE DIR COMMAND
    mkdir -p "$(dirname "$1")/w/$2"
    printf '  - {command: %s, task_work_path: %s, backward_files: [out.txt]}\n' \
        "$(jq -Rn --arg c "$3" '$c')" "$2" >>"$1"
}

start_coord
start_agent a1 12 --scheduler lsf --poll-ms 500 --retry-ms 1000

# ---- 1-3: array + plain + failing task, run limit, bkill by hand, at once
D1=$T/s1 && mkdir -p "$D1"
sub_file "$D1/sub.yml" "{group_size: 3, para_deg: 1, queue_name: short}"
for i in $(seq 0 8); do
    if [ "$i" = 4 ]; then
        add_task "$D1/sub.yml" "t$i" "echo partial > out.txt; exit 3"
    else
        add_task "$D1/sub.yml" "t$i" "echo \$((${i} * ${i})) > out.txt"
    fi
done
D2=$T/s2 && mkdir -p "$D2"
sub_file "$D2/sub.yml" "{group_size: 2, para_deg: 2, job_array: false}"
for i in 0 1 2 3; do add_task "$D2/sub.yml" "p$i" "echo plain $i > out.txt"; done
D3=$T/s3 && mkdir -p "$D3"
sub_file "$D3/sub.yml" "{group_size: 2, para_deg: 1, custom_flags: ['#BSUB -W 1'], kwargs: {job_name: limited}}"
add_task "$D3/sub.yml" l0 "sleep 40; echo late > out.txt"
add_task "$D3/sub.yml" l1 "echo never > out.txt"
D4=$T/s4 && mkdir -p "$D4"
sub_file "$D4/sub.yml" "{group_size: 2, para_deg: 2, kwargs: {job_name: handkill}}"
add_task "$D4/sub.yml" k0 "sleep 40; echo late > out.txt"
add_task "$D4/sub.yml" k1 "sleep 40; echo late > out.txt"

ID1=$(jm_submit submit "$D1/sub.yml" --work-dir "$D1/w") || fail "submit 1 failed"
ID2=$(jm_submit submit "$D2/sub.yml" --work-dir "$D2/w") || fail "submit 2 failed"
ID3=$(jm_submit submit "$D3/sub.yml" --work-dir "$D3/w") || fail "submit 3 failed"
ID4=$(jm_submit submit "$D4/sub.yml" --work-dir "$D4/w") || fail "submit 4 failed"
ok "submitted $ID1 (array), $ID2 (plain), $ID3 (run limit), $ID4 (bkill by hand)"

handkill_running() { lsf_all | grep -q '|RUN|.*|handkill$'; }
wait_until 40 handkill_running || fail "the handkill job never ran: $(lsf_all)"
HK=$(lsf_all | awk -F'|' '$6 == "handkill" {print $1; exit}')
out=$(bkill "$HK") || fail "bkill $HK failed"
check_eq "bkill output" "$out" "Job <$HK> is being terminated"

for id in "$ID1" "$ID2" "$ID3" "$ID4"; do
    rc=0
    jm_submit wait "$id" >"$T/wait_$id.out" 2>&1 || rc=$?
    [ $rc -le 1 ] || fail "wait $id exited $rc: $(cat "$T/wait_$id.out")"
done
echo "--- bjobs -a after parts 1-3:"
lsf_all

js=$(status_json "$ID1")
for i in $(seq 0 8); do
    st=$(task_field "$js" "t$i" state)
    if [ "$i" = 4 ]; then
        check_eq "t4 state" "$st" FAILED
        check_eq "t4 exit code" "$(task_field "$js" t4 exit_code)" 3
    else
        [ "$st" = DONE ] || fail "task t$i: $st ($(task_field "$js" "t$i" reason))"
        check_eq "t$i result" "$(cat "$D1/w/t$i/out.txt")" "$((i * i))"
    fi
done
ok "t5 (after the failing t4 in the same job) ran: DONE"
# jobs that arrived together went out as one LSF array in queue 'short'
narr=$(lsf_all | awk -F'|' '$2 > 0 && $6 ~ /^jm[0-9]+\[[0-9]+\]$/' | wc -l)
[ "$narr" -ge 3 ] || fail "expected the 3 jobs of $ID1 as array elements, bjobs shows: $(lsf_all)"
grep -rqs '^#BSUB -q short$' "$(agent_root a1)/.jobman/jobs" ||
    fail "no submit.sh with '#BSUB -q short' under the agent's job dirs"
ok "submission 1 went out as an array ($narr elements) with #BSUB -q short"

js=$(status_json "$ID2")
for i in 0 1 2 3; do
    check_eq "p$i state" "$(task_field "$js" "p$i" state)" DONE
    check_eq "p$i result" "$(cat "$D2/w/p$i/out.txt")" "plain $i"
done
nplain=$(lsf_all | awk -F'|' '$2 == 0 && $3 == "DONE"' | wc -l)
[ "$nplain" -ge 2 ] || fail "expected 2 plain LSF jobs (jobindex 0) for $ID2: $(lsf_all)"
ok "job_array: false -> plain LSF jobs"

js=$(status_json "$ID3")
for t in l0 l1; do
    check_eq "$t state" "$(task_field "$js" $t state)" FAILED
    r=$(task_field "$js" $t reason)
    case $r in *TIMEOUT*) ok "$t reason: $r" ;; *) fail "$t reason '$r' has no TIMEOUT" ;; esac
done
lsf_all | grep -q '|EXIT|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit|limited$' ||
    fail "bjobs does not show the run-limit kill: $(lsf_all)"

js=$(status_json "$ID4")
for t in k0 k1; do
    check_eq "$t state" "$(task_field "$js" $t state)" FAILED
    r=$(task_field "$js" $t reason)
    case $r in *CANCELLED*) ok "$t reason: $r" ;; *) fail "$t reason '$r' has no CANCELLED" ;; esac
done

# ---- 4: jobman-submit cancel while jobs run and wait in LSF
echo "FAKE_LSF_SLOTS=2" >"$FAKE_LSF_STATE/config"
D5=$T/s5 && mkdir -p "$D5"
sub_file "$D5/sub.yml" "{group_size: 1, para_deg: 1, kwargs: {job_name: tocancel}}"
MARK="45.$$$RANDOM"
for i in 0 1 2 3 4; do add_task "$D5/sub.yml" "c$i" "sleep $MARK"; done
ID5=$(jm_submit submit "$D5/sub.yml" --work-dir "$D5/w") || fail "submit 5 failed"
two_running() { [ "$(lsf_all | grep -c '|RUN|.*|tocancel')" -ge 2 ]; }
wait_until 40 two_running || fail "no tocancel job ran: $(lsf_all)"
ok "running and pending in LSF: $(lsf_all | grep tocancel | cut -d'|' -f1-3 | tr '\n' ' ')"
out=$(jm_submit cancel "$ID5") || fail "cancel failed"
echo "$out"
gone() { ! lsf_all | grep '|tocancel' | grep -qE '\|(PEND|RUN)\|'; }
wait_until 20 gone || fail "jobs still pending/running in LSF after cancel: $(lsf_all)"
mine_unfinished=$(bjobs -noheader -o "$BJOBS_FMT" 2>/dev/null | grep -c tocancel || true)
check_eq "unfinished tocancel jobs in plain bjobs" "$mine_unfinished" 0
lsf_all | grep tocancel | grep -vq 'TERM_OWNER' &&
    fail "a cancelled job ended other than by bkill: $(lsf_all | grep tocancel)"
no_sleepers() { ! pgrep -f "sleep $MARK" >/dev/null; }
wait_until 10 no_sleepers || fail "task processes alive after cancel: $(pgrep -af "sleep $MARK")"
check_eq "CANCELLED count" "$(count_state "$ID5" CANCELLED)" 5
rm -f "$FAKE_LSF_STATE/config"

# ---- 5: the pending job threshold refuses bsub; the agent retries
printf 'FAKE_LSF_MAX_PEND=1\nFAKE_LSF_PEND_SECS=2\n' >"$FAKE_LSF_STATE/config"
D6=$T/s6 && mkdir -p "$D6"
sub_file "$D6/sub.yml" "{group_size: 1, para_deg: 1, job_array: false}"
for i in 0 1 2; do add_task "$D6/sub.yml" "q$i" "echo queued $i > out.txt"; done
rc=0
jm_submit submit "$D6/sub.yml" --work-dir "$D6/w" --wait >"$T/wait6.out" 2>&1 || rc=$?
check_eq "exit code of submit --wait under the pending threshold" "$rc" 0
for i in 0 1 2; do check_eq "q$i result" "$(cat "$D6/w/q$i/out.txt")" "queued $i"; done
grep -q "threshold reached" "$T/agent_a1.log" ||
    fail "the agent never met the pending job threshold (log has no 'threshold reached')"
ok "agent log: $(grep -m1 "threshold reached" "$T/agent_a1.log")"
rm -f "$FAKE_LSF_STATE/config"

# ---- 6: 200 tasks
N=200
D7=$T/s7 && mkdir -p "$D7"
sub_file "$D7/sub.yml" "{group_size: 10, para_deg: 2}"
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'b%03d' "$i")
    mkdir -p "$D7/w/$d"
    echo "$i" >"$D7/w/$d/in.txt"
    printf '  - {command: "echo $(( $(cat in.txt) * 3 )) > out.txt", task_work_path: %s, forward_files: [in.txt], backward_files: [out.txt]}\n' \
        "$d" >>"$D7/sub.yml"
done
rc=0
jm_submit submit "$D7/sub.yml" --work-dir "$D7/w" --wait >"$T/wait7.out" 2>&1 || rc=$?
tail -n 2 "$T/wait7.out"
check_eq "exit code of the 200-task submit --wait" "$rc" 0
bad=0
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'b%03d' "$i")
    [ "$(cat "$D7/w/$d/out.txt" 2>/dev/null)" = "$((i * 3))" ] || bad=$((bad + 1))
done
check_eq "wrong or missing results of 200 tasks" "$bad" 0
echo "PASS: e2e_lsf"
