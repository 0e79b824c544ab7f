#!/usr/bin/env bash
# bench_sched.sh slurm|sge - how often jobman calls the real scheduler, and
# how long N tasks take, on the real single-node test cluster (deploy/).
# Not part of ctest.
#
# Every scheduler command (sbatch/squeue/sacct/scancel, qsub/qstat/qacct/qdel)
# is counted through a wrapper put first on the agent's PATH.  Two runs of
# the same N tasks (group_size G, so N/G jobs):
#   (1) job_array true  (default): jobs that arrive together go out as arrays
#   (2) job_array false: one submit call per job (the baseline: what
#       dpdispatcher does; it also runs one status query per job per poll)
# (then (1) again, as the first run also fills the agent's file store).
# Each run reports submit calls, status queries, other calls, wall time from
# 'submit' to the exit of '--wait', and the polls that fit in that time
# (wall / poll interval): the target is queries <= polls + 1.
#   BENCH_N (1000), BENCH_GROUP (50), BENCH_PARA (10), BENCH_POLL_MS (10000),
#   BENCH_MAX_JOBS (100)
set -euo pipefail
SCHED=${1:-}
case "$SCHED" in
slurm) SUBMIT_CMD=sbatch QUERY_CMD=squeue OTHER_CMDS="sacct scancel" ;;
sge) SUBMIT_CMD=qsub QUERY_CMD=qstat OTHER_CMDS="qacct qdel" ;;
*)
    echo "usage: $0 slurm|sge" >&2
    exit 2
    ;;
esac
export JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-1800}
export JM_CMD_TIMEOUT=${JM_CMD_TIMEOUT:-1500}
if [ "$SCHED" = sge ] && [ -z "${SGE_ROOT:-}" ]; then
    export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
fi
source "$(dirname "$0")/e2e_lib.sh"

N=${BENCH_N:-1000}
GROUP=${BENCH_GROUP:-50}
PARA=${BENCH_PARA:-10}
POLL=${BENCH_POLL_MS:-10000}
MAXJ=${BENCH_MAX_JOBS:-100}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

command -v "$SUBMIT_CMD" >/dev/null || fail "$SUBMIT_CMD not found: bring the cluster up (deploy/$SCHED-up.sh)"
if [ "$SCHED" = slurm ]; then
    timeout 20 sinfo -h >/dev/null 2>&1 || fail "Slurm is not up: run deploy/slurm-up.sh"
else
    timeout 20 qstat >/dev/null 2>&1 || fail "SGE is not up: run deploy/sge-up.sh"
fi

# Counting wrappers: log the command name, then run the real one.
WRAP=$T/wrap
COUNT=$T/calls.log
mkdir -p "$WRAP"
for c in $SUBMIT_CMD $QUERY_CMD $OTHER_CMDS; do
    real=$(command -v "$c") || fail "$c not found"
    printf '#!/bin/sh\necho %s >>%q\nexec %q "$@"\n' "$c" "$COUNT" "$real" >"$WRAP/$c"
    chmod +x "$WRAP/$c"
done

echo "$SCHED: $(nproc) CPUs; N=$N tasks, group_size $GROUP ($((N / GROUP)) jobs), para_deg $PARA," \
    "poll every $POLL ms, max_jobs $MAXJ"
start_coord
PATH="$WRAP:$PATH" start_agent bench "$MAXJ" --scheduler "$SCHED" --poll-ms "$POLL"

count() { grep -cx "$1" "$COUNT" 2>/dev/null || true; }

run() { # NAME JOB_ARRAY
    local name=$1 arr=$2 W=$T/work_$1
    mkdir -p "$W"
    {
        echo "work_base: ."
        echo "resources: {group_size: $GROUP, para_deg: $PARA, job_array: $arr}"
        echo "task_list:"
        for i in $(seq 0 $((N - 1))); do
            mkdir -p "$W/t$i"
            echo "$i" >"$W/t$i/in.txt"
            echo "  - {command: 'echo \$((\$(cat in.txt) * 2)) > out.txt', task_work_path: t$i, forward_files: [in.txt], backward_files: [out.txt]}"
        done
    } >"$T/$name.yml"
    : >"$COUNT"
    local t0 ms
    t0=$(now_ms)
    jm_submit submit "$T/$name.yml" --work-dir "$W" --wait >"$T/$name.out" ||
        fail "($name) did not succeed: $(tail -n2 "$T/$name.out")"
    ms=$(($(now_ms) - t0))
    for i in 0 $((N / 2)) $((N - 1)); do
        check_eq "($name) t$i/out.txt" "$(cat "$W/t$i/out.txt")" "$((i * 2))"
    done
    local others=""
    for c in $OTHER_CMDS; do others="$others $c $(count "$c"),"; done
    awk -v name="$name" -v sub_c="$SUBMIT_CMD" -v subn="$(count "$SUBMIT_CMD")" \
        -v q="$QUERY_CMD" -v qn="$(count "$QUERY_CMD")" -v others="${others%,}" \
        -v ms="$ms" -v poll="$POLL" -v n="$N" -v jobs="$((N / GROUP))" 'BEGIN {
        printf "(%s) %d jobs: %s %d calls, %s %d calls,%s; wall %.1f s = %.1f tasks/s; polls in that time: %d\n",
            name, jobs, sub_c, subn, q, qn, others, ms / 1000, n * 1000 / ms, int(ms / poll) }'
    echo "($name) per-job polling (dpdispatcher: one query per job per poll) would be ~$(((N / GROUP) * (ms / POLL))) queries"
}

# The first run also warms the agent's file store (the forward files are
# the same in every run), so arrays run once more after the baseline.
run array true
run plain false
run array2 true
ok "bench_sched $SCHED done"
