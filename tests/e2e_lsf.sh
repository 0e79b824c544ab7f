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
source "$(dirname "$0")/sched_e2e_lib.sh"

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

start_coord
start_agent a1 12 --scheduler lsf --poll-ms 500 --retry-ms 1000

# ---- 1-3: array + plain + failing task, run limit, bkill by hand, at once
gen_mixed_parts "$T" '#BSUB -W 1'
ID1=$(submit_dir "$T/s1")
ID2=$(submit_dir "$T/s2")
ID3=$(submit_dir "$T/s3")
ID4=$(submit_dir "$T/s4")
ok "submitted $ID1 (array), $ID2 (plain), $ID3 (run limit), $ID4 (bkill by hand)"

handkill_running() { lsf_all | grep -q '|RUN|.*|handkill$'; }
wait_until 40 handkill_running || fail "the handkill job never ran: $(lsf_all)"
HK=$(lsf_all | awk -F'|' '$6 == "handkill" {print $1; exit}')
out=$(bkill "$HK") || fail "bkill $HK failed"
check_eq "bkill output" "$out" "Job <$HK> is being terminated"

wait_ended "$ID1" "$ID2" "$ID3" "$ID4"
echo "--- bjobs -a after parts 1-3:"
lsf_all

check_array_part lsf "$ID1" "$T/s1"
# jobs that arrived together went out as one LSF array in queue 'short'
narr=$(lsf_all | awk -F'|' '$2 > 0 && $6 ~ /^jm[0-9]+\[[0-9]+\]$/' | wc -l)
[ "$narr" -ge 3 ] || fail "expected the 3 jobs of $ID1 as array elements, bjobs shows: $(lsf_all)"
grep -rqs '^#BSUB -q short$' "$(agent_root a1)/.jobman/jobs" ||
    fail "no submit.sh with '#BSUB -q short' under the agent's job dirs"
ok "submission 1 went out as an array ($narr elements) with #BSUB -q short"

check_plain_part lsf "$ID2" "$T/s2"
nplain=$(lsf_all | awk -F'|' '$2 == 0 && $3 == "DONE"' | wc -l)
[ "$nplain" -ge 2 ] || fail "expected 2 plain LSF jobs (jobindex 0) for $ID2: $(lsf_all)"
ok "job_array: false -> plain LSF jobs"

check_all_failed_with lsf "$ID3" TIMEOUT l0 l1
lsf_all | grep -q '|EXIT|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit|limited$' ||
    fail "bjobs does not show the run-limit kill: $(lsf_all)"

check_all_failed_with lsf "$ID4" CANCELLED k0 k1

# ---- 4: jobman-submit cancel while jobs run and wait in LSF
echo "FAKE_LSF_SLOTS=2" >"$FAKE_LSF_STATE/config"
gen_cancel_part "$T/s5" 5
ID5=$(submit_dir "$T/s5")
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
check_no_sleepers lsf
check_eq "CANCELLED count" "$(count_state "$ID5" CANCELLED)" 5
rm -f "$FAKE_LSF_STATE/config"

# ---- 5: the pending job threshold refuses bsub; the agent retries
printf 'FAKE_LSF_MAX_PEND=1\nFAKE_LSF_PEND_SECS=2\n' >"$FAKE_LSF_STATE/config"
run_refused_part lsf "$T/s6" "$T/agent_a1.log" "threshold reached"
rm -f "$FAKE_LSF_STATE/config"

# ---- 6: 200 tasks
run_200_part lsf "$T/s7"
echo "PASS: e2e_lsf"
