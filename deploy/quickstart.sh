#!/usr/bin/env bash
# quickstart.sh - the jobman demo on one machine: builds if needed, starts a
# coordinator and a local agent on 127.0.0.1, submits ~20 small tasks with
# input files and a common file, follows them with a progress bar, shows the
# results, and stops its daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

echo "==> building (build/)"
cmake -S . -B build >/dev/null
cmake --build build -j2 >/dev/null
BIN=$SRC/build

T=$(mktemp -d /tmp/jobman-quickstart.XXXXXX)
export JOBMAN_HOME=$T/home
PIDS=()
cleanup() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ ${#PIDS[@]} = 0 ] || echo "==> stopped the coordinator and the agent"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> coordinator home $JOBMAN_HOME"
"$BIN/jobman-coord" init --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*'
"$BIN/jobman-coord" run --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' >"$T/coord.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do [ -s "$JOBMAN_HOME/coord.endpoint" ] && break; sleep 0.1; done
[ -s "$JOBMAN_HOME/coord.endpoint" ] || { echo "coordinator did not start:" >&2; cat "$T/coord.log" >&2; exit 1; }
EP=$(head -n1 "$JOBMAN_HOME/coord.endpoint")
echo "==> coordinator listening on $EP"

"$BIN/jobman-agent" init --home "$T/agent"
"$BIN/jobman-coord" allow "$T/agent/agent.cert" --name local --home "$JOBMAN_HOME"
"$BIN/jobman-agent" run --home "$T/agent" --coordinator "$EP" \
    --coordinator-cert "$JOBMAN_HOME/coord.cert" --site local --root "$T/remote" \
    --scheduler shell --slots 2 >"$T/agent.log" 2>&1 &
PIDS+=($!)
echo "==> agent 'local' running (shell scheduler, 2 slots, root $T/remote)"

deploy/demo/make_demo.sh "$T/work" 20 >/dev/null
echo "==> submitting $T/work/submission.yml (20 tasks)"
# --json: the id as JSON on stdout, the progress (a bar on a terminal) on stderr
rc=0
out=$("$BIN/jobman-submit" submit "$T/work/submission.yml" --work-dir "$T/work" --wait --json) || rc=$?
ID=$(echo "$out" | jq -r .id)
echo "==> submission $ID finished (exit code $rc)"

echo
echo "==> results are in $T/work/demo:"
ls "$T/work/demo" | head -n 5
echo "    ..."
for d in task01 task02 task03; do
    printf '%s/result.txt: %s\n' "$d" "$(cat "$T/work/demo/$d/result.txt" 2>/dev/null || echo missing)"
done
echo
"$BIN/jobman-submit" status "$ID" | head -n 8 || true
echo
echo "==> logs: $T/coord.log $T/agent.log; remove everything with: rm -rf $T"
exit $rc
