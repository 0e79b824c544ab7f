#!/usr/bin/env bash
# e2e_backward_common: backward_common_files are fetched from the site's
# work base after all tasks ended; `submit --wait` returns only after they
# are written into the local work base. A literal one the site does not
# have makes the submission FAILED.
source "$(dirname "$0")/e2e_lib.sh"

W=$T/work
N=5
mkdir -p "$W/base"
{
    echo "work_base: base"
    echo "backward_common_files: [summary.txt, '*.dat']"
    echo "resources: {group_size: 100, para_deg: 1}"
    echo "task_list:"
    for i in $(seq 0 $((N - 1))); do
        mkdir -p "$W/base/t$i"
        echo "  - {command: 'echo line-$i >> ../summary.txt; echo common result > ../all.dat; echo $i > r.txt', task_work_path: t$i, backward_files: [r.txt]}"
    done
} >"$T/sub.yml"

start_coord
start_agent a1 2

out=$(jm_submit submit "$T/sub.yml" --work-dir "$W" --wait) || fail "submission did not succeed: $out"
ID=$(echo "$out" | head -n1)
[ -f "$W/base/summary.txt" ] || fail "summary.txt was not fetched into the work base"
[ -f "$W/base/all.dat" ] || fail "all.dat was not fetched into the work base"
want=$(for i in $(seq 0 $((N - 1))); do echo "line-$i"; done)
check_eq "summary.txt" "$(cat "$W/base/summary.txt")" "$want"
check_eq "all.dat" "$(cat "$W/base/all.dat")" "common result"
check_eq "t3/r.txt" "$(cat "$W/base/t3/r.txt")" "3"
check_eq "state" "$(status_json "$ID" | jq -r '.submissions[0].state')" "DONE"
ok "backward common files in the work base after --wait"

# a literal backward common file no task writes: FAILED, tasks DONE
mkdir -p "$W/miss/t0"
cat >"$T/miss.yml" <<YML
work_base: miss
backward_common_files: [nosuch.txt]
resources: {group_size: 1, para_deg: 1}
task_list:
  - {command: 'true', task_work_path: t0}
YML
out=$(jm_submit submit "$T/miss.yml" --work-dir "$W") || fail "submit failed: $out"
ID2=$(echo "$out" | head -n1)
is_failed() { [ "$(status_json "$1" | jq -r '.submissions[0].state')" = FAILED ]; }
wait_until 30 is_failed "$ID2" || fail "submission with a missing backward common file did not become FAILED"
check_eq "done tasks" "$(count_state "$ID2" DONE)" 1
rc=0
jm_submit wait "$ID2" >"$T/wait2.out" || rc=$?
check_eq "exit code of wait for a submission whose common files failed" "$rc" 1
grep -q "backward common file 'nosuch.txt' not found" "$T"/coord.log ||
    fail "the coordinator's log does not say which file was missing"
ok "missing backward common file: submission FAILED, reason logged"
echo "PASS: e2e_backward_common"
