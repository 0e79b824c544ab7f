#!/usr/bin/env bash
# e2e_cancel: cancelling a running submission ends 'wait' with 1, marks the
# tasks CANCELLED and kills the agent's task processes.
source "$(dirname "$0")/e2e_lib.sh"

W=$T/work
MARK="30.$$$RANDOM"   # a unique sleep argument to find our processes
mkdir -p "$W"
{
    echo "work_base: ."
    echo "resources: {group_size: 2, para_deg: 2}"
    echo "task_list:"
    for i in 0 1 2 3 4 5; do
        mkdir -p "$W/s$i"
        echo "  - {command: 'sleep $MARK', task_work_path: s$i}"
    done
} >"$T/sub.yml"

start_coord
start_agent a1 3

ID=$(jm_submit submit "$T/sub.yml" --work-dir "$W") || fail "submit failed"
ok "submitted $ID"
jm_submit_bg "$T/wait.out" wait "$ID"
WAIT_PID=$JM_BG_PID

wait_until 60 pgrep -f "sleep $MARK" || fail "no task started within 60 s"
ok "tasks are running ($(pgrep -f "sleep $MARK" | wc -l) processes)"
out=$(jm_submit cancel "$ID") || fail "cancel failed"
echo "$out"
case "$out" in cancelled\ *\ tasks) ;; *) fail "cancel printed '$out'" ;; esac
check_eq "tasks cancelled" "$(echo "$out" | awk '{print $2}')" 6

rc=0
wait $WAIT_PID || rc=$?
tail -n 1 "$T/wait.out"
check_eq "exit code of wait after cancel" "$rc" 1
check_eq "CANCELLED count" "$(count_state "$ID" CANCELLED)" 6
no_sleepers() { ! pgrep -f "sleep $MARK" >/dev/null; }
wait_until 10 no_sleepers \
    || fail "task processes still alive 10 s after cancel: $(pgrep -af "sleep $MARK")"
ok "the agent's sleep processes are gone"
echo "PASS: e2e_cancel"
