#!/usr/bin/env bash
# e2e_unallowed_agent: an agent whose key was never allowed gets no work and
# no files; once an allowed agent starts, the submission completes.
source "$(dirname "$0")/e2e_lib.sh"

W=$T/work
mkdir -p "$W/in"
echo "shared" >"$W/in/c.txt"
{
    echo "work_base: in"
    echo "forward_common_files: [c.txt]"
    echo "resources: {group_size: 2, para_deg: 1}"
    echo "task_list:"
    for i in 0 1 2 3 4 5; do
        mkdir -p "$W/in/u$i"
        echo "  - {command: 'cat ../c.txt > o.txt; echo $i >> o.txt', task_work_path: u$i, backward_files: [o.txt]}"
    done
} >"$T/sub.yml"

start_coord
start_agent_unallowed intruder 4
ID=$(jm_submit submit "$T/sub.yml" --work-dir "$W") || fail "submit failed"
ok "submitted $ID while only an unallowed agent runs"
jm_submit_bg "$T/wait.out" wait "$ID"
WAIT_PID=$JM_BG_PID
sleep 5
check_eq "PENDING tasks after 5 s" "$(count_state "$ID" PENDING)" 6
js=$(status_json "$ID")
check_eq "tasks with a site" "$(echo "$js" | jq '[.submissions[0].tasks[] | select(.site != "")] | length')" 0
n=$(root_entries intruder)
check_eq "entries under the unallowed agent's root" "$n" 0
kill -0 $WAIT_PID 2>/dev/null || fail "wait ended although nothing ran"

start_agent trusted 2
rc=0
wait $WAIT_PID || rc=$?
tail -n 2 "$T/wait.out"
check_eq "exit code of wait once an allowed agent runs" "$rc" 0
for i in 0 1 2 3 4 5; do
    [ "$(cat "$W/in/u$i/o.txt")" = "$(printf 'shared\n%s' $i)" ] || fail "u$i/o.txt wrong"
done
ok "results of all 6 tasks present"
check_eq "sites that ran tasks" "$(status_json "$ID" | jq -r '[.submissions[0].tasks[].site] | unique | join(",")')" trusted
n=$(root_entries intruder)
check_eq "entries under the unallowed agent's root at the end" "$n" 0
echo "PASS: e2e_unallowed_agent"
