#!/usr/bin/env bash
# e2e_200_tasks: 200 tasks, each with its own forward file and a shared 2 MiB
# common file, run through a real coordinator and agent; every result file,
# stdout log and stderr log must come back byte for byte.
source "$(dirname "$0")/e2e_lib.sh"

N=200
W=$T/work/runs
mkdir -p "$W"
rand_file "$W/common.dat" $((2 * 1024 * 1024))
{
    echo "work_base: runs"
    echo "forward_common_files: [common.dat]"
    echo "backward_common_files: []"
    echo "resources: {group_size: 10, para_deg: 2}"
    echo "task_list:"
} >"$T/sub.yml"
for i in $(seq 0 $((N - 1))); do
    d=$(printf 't%03d' "$i")
    mkdir -p "$W/$d"
    if [ $((i % 10)) = 0 ]; then
        # a few KiB of random bytes for some tasks
        rand_file "$W/$d/in.dat" $((1024 * (2 + i % 7)))
    else
        echo "input of task $i" >"$W/$d/in.dat"
    fi
    # every 25th task also sends back a binary result of > 2 MiB (several
    # chunks on the way back), matched by a glob
    extra=""
    [ $((i % 25)) = 0 ] && extra="; cat ../common.dat in.dat > big.bin"
    cat >>"$T/sub.yml" <<EOT
  - command: "cat in.dat ../common.dat | sha256sum > out.dat; echo hi; echo oops >&2$extra"
    task_work_path: $d
    forward_files: [in.dat]
    backward_files: [out.dat, "*.bin"]
    outlog: log
    errlog: err
EOT
done
ok "generated $N tasks in $W"

start_coord
start_agent site1 4

rc=0
out=$(jm_submit submit "$T/sub.yml" --work-dir "$T/work" --wait) || rc=$?
echo "$out" | tail -n 3
check_eq "exit code of submit --wait" "$rc" 0
ID=$(echo "$out" | head -n1)
[ -n "$ID" ] || fail "submit printed no id"

bad=0
for i in $(seq 0 $((N - 1))); do
    d=$(printf 't%03d' "$i")
    want=$(cat "$W/$d/in.dat" "$W/common.dat" | sha256sum)
    [ -f "$W/$d/out.dat" ] || { echo "missing $d/out.dat" >&2; bad=$((bad + 1)); continue; }
    [ "$(cat "$W/$d/out.dat")" = "$want" ] || { echo "wrong $d/out.dat" >&2; bad=$((bad + 1)); }
    [ "$(cat "$W/$d/log" 2>/dev/null)" = "hi" ] || { echo "wrong $d/log" >&2; bad=$((bad + 1)); }
    [ "$(cat "$W/$d/err" 2>/dev/null)" = "oops" ] || { echo "wrong $d/err" >&2; bad=$((bad + 1)); }
    cmp -s <(printf 'hi\n') "$W/$d/log" || { echo "log of $d not byte-exact" >&2; bad=$((bad + 1)); }
    if [ $((i % 25)) = 0 ]; then
        cmp -s <(cat "$W/common.dat" "$W/$d/in.dat") "$W/$d/big.bin" ||
            { echo "big.bin of $d not byte-exact" >&2; bad=$((bad + 1)); }
    elif [ -e "$W/$d/big.bin" ]; then
        echo "unexpected $d/big.bin" >&2
        bad=$((bad + 1))
    fi
done
check_eq "bad result files" "$bad" 0

js=$(status_json "$ID")
check_eq "DONE count" "$(echo "$js" | jq '.submissions[0].counts.DONE')" $N
check_eq "total" "$(echo "$js" | jq '.submissions[0].total')" $N
check_eq "tasks listed DONE with exit 0" \
    "$(echo "$js" | jq '[.submissions[0].tasks[] | select(.state == "DONE" and .exit_code == 0)] | length')" $N
echo "PASS: e2e_200_tasks"
