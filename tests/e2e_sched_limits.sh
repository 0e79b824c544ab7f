#!/usr/bin/env bash
# e2e_sched_limits: a batch site's limits, through the real jobman-agent
# (--scheduler pbs against the fake qsub/qstat/qdel of tests/fake_pbs, which
# run the jobs for real; never skipped).
#   --max-jobs 3: never more than 3 of our jobs queued or running at once
#     (9-s jobs submitted every 2 s would otherwise reach 5 at once),
#     although 7 jobs are waiting and the scheduler would take more;
#   --submit-rate 30 --submit-burst 1: qsub is called at most once per 2 s
#     (token bucket), one call per job (job_array: false).
# A qsub wrapper first on PATH logs every call with its time; a sampler
# records how many of our jobs qstat shows unfinished.
source "$(dirname "$0")/e2e_lib.sh"

FAKE=$JM_SOURCE_DIR/tests/fake_pbs
WRAP=$T/wrap
mkdir -p "$WRAP"
printf '#!/bin/sh\necho "$(date +%%s.%%N)" >>%q\nexec %q "$@"\n' "$T/qsub.calls" "$FAKE/qsub" \
    >"$WRAP/qsub"
chmod +x "$WRAP/qsub"
export PATH=$WRAP:$FAKE:$PATH
export FAKE_PBS_FLAVOR=pbspro FAKE_PBS_STATE=$T/pbs FAKE_PBS_KILL_DELAY=1
mkdir -p "$FAKE_PBS_STATE"
_limits_cleanup() {
    local rc=$?
    _jm_kill_all
    bash "$FAKE/fake_pbs_lib.sh" shutdown >/dev/null 2>&1 || true
    (exit $rc)
    _jm_cleanup
}
trap _limits_cleanup EXIT

NJOBS=7
W=$T/work
mkdir -p "$W"
{
    echo "work_base: ."
    echo "resources: {group_size: 1, para_deg: 1, job_array: false}"
    echo "task_list:"
    for i in $(seq 1 $NJOBS); do
        mkdir -p "$W/t$i"
        echo "  - {command: 'sleep 9; echo $i > out.txt', task_work_path: t$i, backward_files: [out.txt]}"
    done
} >"$T/sub.yml"

start_coord
start_agent lim 3 --scheduler pbs --poll-ms 500 --submit-rate 30 --submit-burst 1

# sampler: our unfinished jobs in qstat, every 0.2 s
(
    while :; do
        qstat 2>/dev/null | tail -n +3 | awk '$5 == "Q" || $5 == "R" || $5 == "H" || $5 == "E"' |
            wc -l >>"$T/live.samples"
        sleep 0.2
    done
) &
_jm_record_pid $!

ID=$(jm_submit submit "$T/sub.yml" --work-dir "$W") || fail "submit failed"
jm_submit wait "$ID" >"$T/wait.out" 2>&1 || fail "the submission did not succeed: $(tail -n2 "$T/wait.out")"
for i in $(seq 1 $NJOBS); do
    check_eq "t$i/out.txt" "$(cat "$W/t$i/out.txt" 2>/dev/null)" "$i"
done

# max_jobs
max_live=$(sort -n "$T/live.samples" | tail -n1)
[ "$max_live" -ge 2 ] || fail "the sampler never saw 2 jobs at once (max $max_live): it measured nothing"
[ "$max_live" -le 3 ] || fail "$max_live jobs queued or running at once with --max-jobs 3"
ok "at most $max_live jobs in the scheduler at once (--max-jobs 3)"

# one qsub per job, at most one per 2 s
check_eq "qsub calls" "$(wc -l <"$T/qsub.calls")" "$NJOBS"
min_gap=$(awk 'NR > 1 { g = $1 - prev; if (min == "" || g < min) min = g } { prev = $1 }
    END { printf "%.2f", min }' "$T/qsub.calls")
awk -v g="$min_gap" 'BEGIN { exit !(g >= 1.8) }' ||
    fail "two qsub calls only $min_gap s apart with --submit-rate 30 --submit-burst 1"
ok "qsub calls at least $min_gap s apart (--submit-rate 30 = one per 2 s)"
ok "e2e_sched_limits passed"
