#!/usr/bin/env bash
# e2e_failures: tasks with odd index exit with a non-zero code; wait exits 1,
# status shows those FAILED with their codes and the others DONE.
source "$(dirname "$0")/e2e_lib.sh"

N=20
W=$T/work
mkdir -p "$W"
{
    echo "work_base: ."
    echo "resources: {group_size: 3, para_deg: 2}"
    echo "task_list:"
} >"$T/sub.yml"
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'f%02d' "$i")
    mkdir -p "$W/$d"
    if [ $((i % 2)) = 1 ]; then
        cmd="echo partial $i > res.txt; exit $((i % 5 + 1))"
    else
        cmd="echo result $i > res.txt"
    fi
    cat >>"$T/sub.yml" <<EOT
  - command: "$cmd"
    task_work_path: $d
    backward_files: [res.txt]
EOT
done

start_coord
start_agent a1 3

ID=$(jm_submit submit "$T/sub.yml" --work-dir "$W") || fail "submit failed"
ok "submitted $ID"
rc=0
jm_submit wait "$ID" >"$T/wait.out" || rc=$?
tail -n 2 "$T/wait.out"
check_eq "exit code of wait" "$rc" 1

js=$(status_json "$ID")
check_eq "DONE count" "$(echo "$js" | jq '.submissions[0].counts.DONE')" 10
check_eq "FAILED count" "$(echo "$js" | jq '.submissions[0].counts.FAILED')" 10
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'f%02d' "$i")
    t=$(echo "$js" | jq -c --arg p "$d" '.submissions[0].tasks[] | select(.path == $p) | [.state, .exit_code]')
    if [ $((i % 2)) = 1 ]; then
        [ "$t" = "[\"FAILED\",$((i % 5 + 1))]" ] || fail "task $d: got $t, want FAILED with exit $((i % 5 + 1))"
    else
        [ "$t" = '["DONE",0]' ] || fail "task $d: got $t, want DONE 0"
        [ "$(cat "$W/$d/res.txt" 2>/dev/null)" = "result $i" ] || fail "task $d: res.txt missing or wrong"
    fi
done
ok "failed tasks carry their exit codes; successful ones have their results"
echo "PASS: e2e_failures"
