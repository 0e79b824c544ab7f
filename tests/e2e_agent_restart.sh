#!/usr/bin/env bash
# e2e_agent_restart: an agent that falls silent for longer than the
# coordinator's loss limit (3 heartbeat intervals) loses nothing.
#   1. The agent is stopped (SIGSTOP) while its tasks run; the tasks (its
#      children) finish meanwhile; the coordinator marks the site lost but
#      keeps the tasks assigned (requeue_after_ms is far off: a brief
#      loss does not move work); after SIGCONT the agent reports them and
#      every result comes back.
#   2. The agent is stopped while the coordinator fetches a large result
#      (small chunks, window 1, so the fetch takes a while); after SIGCONT
#      the fetch is asked again and the result arrives intact.
# 'submit --wait' must exit 0 both times.
JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-60}
source "$(dirname "$0")/e2e_lib.sh"

HB=300 # coordinator heartbeat (ms): the site is lost after ~0.9 s of silence

timeout 30 "$COORD" init --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' \
    >>"$T/coord_init.log" 2>&1 || fail "jobman-coord init failed"
cat >"$JOBMAN_HOME/config.yml" <<EOT
bind: 'tcp://127.0.0.1:*'
heartbeat_ms: $HB
requeue_after_ms: 60000
chunk_size: 1024
window: 1
EOT
start_coord
start_agent site1 4
APID=$AGENT_PID_site1
ROOT=$(agent_root site1)

# Resume the agent whatever happens (a stopped process ignores TERM).
trap 'rc=$?; _jm_kill_child CONT "$APID"; (exit $rc); _jm_cleanup' EXIT

# submission_id FILE: first line of a background 'submit --wait' output.
submission_id() {
    wait_until 15 grep -q . "$1" || fail "submit printed no id: $(cat "$1")"
    head -n1 "$1"
}

lost_count() { grep -c "site site1 lost" "$T/coord.log" || true; }

# ---- 1: stopped while its tasks run
N=4
W=$T/work/one
mkdir -p "$W"
{
    echo "work_base: one"
    echo "resources: {group_size: 1, para_deg: 1}"
    echo "task_list:"
    for i in $(seq 0 $((N - 1))); do
        mkdir -p "$W/t$i"
        echo "  - {command: 'sleep 2; echo result of task $i > out.dat', task_work_path: t$i, backward_files: [out.dat]}"
    done
} >"$T/one.yml"
jm_submit_bg "$T/one.out" submit "$T/one.yml" --work-dir "$T/work" --wait
SUB1=$JM_BG_PID
ID1=$(submission_id "$T/one.out")
running() { [ "$(count_state "$ID1" RUNNING)" = "$N" ]; }
wait_until 15 running || fail "the $N tasks never all ran: $(status_json "$ID1")"
ok "$N tasks running"

lost_before=$(lost_count)
kill -STOP "$APID"
ok "agent $APID stopped"
# the tasks finish while the agent is stopped
finished() { [ "$(ls "$ROOT/$ID1"/t*/out.dat 2>/dev/null | wc -l)" = "$N" ]; }
wait_until 10 finished || fail "tasks did not finish while the agent was stopped"
site_lost() { [ "$(lost_count)" -gt "$lost_before" ]; }
wait_until 10 site_lost || fail "the coordinator never marked site1 lost"
sleep $((4 * HB / 1000 + 1)) # well over 4 heartbeat intervals of silence
js=$(status_json "$ID1")
check_eq "tasks still RUNNING at the lost site" "$(echo "$js" | jq '.submissions[0].counts.RUNNING')" $N
check_eq "FAILED tasks while lost" "$(echo "$js" | jq '.submissions[0].counts.FAILED')" 0
kill -CONT "$APID"
ok "agent resumed"

rc=0
wait "$SUB1" || rc=$?
check_eq "exit code of submit --wait (1)" "$rc" 0
for i in $(seq 0 $((N - 1))); do
    check_eq "t$i/out.dat" "$(cat "$W/t$i/out.dat" 2>/dev/null)" "result of task $i"
done

# ---- 2: stopped while a large result is being fetched
W=$T/work/two
mkdir -p "$W/big"
cat >"$T/two.yml" <<EOT
work_base: two
task_list:
  - {command: "seq 1 2000000 > big.txt", task_work_path: big, backward_files: [big.txt]}
EOT
seq 1 2000000 >"$T/big.want"
jm_submit_bg "$T/two.out" submit "$T/two.yml" --work-dir "$T/work" --wait
SUB2=$JM_BG_PID
ID2=$(submission_id "$T/two.out")
fetching() { [ "$(count_state "$ID2" FETCHING)" = 1 ]; }
if wait_until 20 fetching; then
    lost_before=$(lost_count)
    kill -STOP "$APID"
    ok "agent stopped during the fetch"
    wait_until 10 site_lost || fail "the coordinator never marked site1 lost"
    sleep $((4 * HB / 1000 + 1))
    check_eq "task state while its site is lost" \
        "$(status_json "$ID2" | jq -r '.submissions[0].tasks[0].state')" FETCHING
    kill -CONT "$APID"
    ok "agent resumed"
    grep -q "waits for site site1" "$T/coord.log" && ok "the fetch waited for the site"
else
    echo "note: the fetch finished before the agent could be stopped" >&2
fi
rc=0
wait "$SUB2" || rc=$?
check_eq "exit code of submit --wait (2)" "$rc" 0
cmp -s "$T/big.want" "$W/big/big.txt" || fail "big.txt differs from what the task wrote"
ok "big.txt ($(stat -c %s "$W/big/big.txt") bytes) intact"
echo "PASS: e2e_agent_restart"
