#!/usr/bin/env bash
# bench_fleet: the 600-task scenario of e2e_fleet (tests/fleet_lib.sh)
# twice on the same fleet, and a table of makespan vs. ideal:
#   live    jobman's split by live capacity (no work_load_ratio)
#   ratio   thkit's way: the same tasks split by fixed equal ratios,
#           work_load_ratio $BENCH_RATIO on each entry (a cap the
#           coordinator honours)
# The ideal makespan of each run comes from that run's measured
# per-site capacities (n_i / span_i); 'bad' counts tasks that did not end
# DONE with the right results (left out of the figures; the run goes on).
# A benchmark, not a ctest.
#   JM_BUILD_DIR (default ./build), BENCH_N (600), BENCH_RATIO (0.3334:
#   0.3333 x 600 = 199.98 would leave 3 tasks no entry may take, were the
#   cap rounded down), JM_TEST_TIMEOUT (900)
JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-900}
JM_CMD_TIMEOUT=${JM_CMD_TIMEOUT:-600}
source "$(dirname "$0")/e2e_lib.sh"
source "$(dirname "$0")/netns_lib.sh"
source "$(dirname "$0")/fleet_lib.sh"

N=${BENCH_N:-600}
RATIO=${BENCH_RATIO:-0.3334}

fleet_start
fleet_machine_file "$T/live.yml"
fleet_machine_file "$T/ratio.yml" "$RATIO"

declare -A R
for run in live ratio; do
    fleet_gen_sub "$T/w/$run.yml" "$T/w/$run" "$N"
    start_clock
    id=$(fleet_submit "$T/w/$run.yml" "$T/$run.yml")
    fleet_wait "$id" $((JM_CMD_TIMEOUT - 10)) 1
    wall=$(elapsed)
    fleet_collect "$id" "$T/w/$run" "$N" "$T/$run.tsv"
    [ "$FLEET_BAD" = 0 ] || echo "$run: WARNING: $FLEET_BAD tasks not DONE with the right results" >&2
    echo "$run ($id, submit to finish $wall s):"
    stats=$(fleet_stats "$T/$run.tsv" "$N")
    echo "$stats" | grep -v '^RESULT'
    R[$run]="$(echo "$stats" | grep '^RESULT' | cut -d' ' -f2-) $wall $FLEET_BAD"
done

echo
echo "bench_fleet: $N tasks, group_size $FLEET_GROUP; siteA shell 4 slots 0.2 s/task," \
    "siteB shell 2 slots 0.6 s/task, siteC $FLEET_C_BATCH 2 jobs 0.4 s/task"
printf '%-22s %10s %9s %7s %7s %7s %7s %9s %5s\n' split makespan ideal ratio siteA siteB siteC wall bad
for run in live ratio; do
    read -r mk ideal ratio na nb nc wall bad <<<"${R[$run]}"
    label="live capacity"
    [ $run = ratio ] && label="work_load_ratio $RATIO"
    printf '%-22s %9.2fs %8.2fs %7.3f %7d %7d %7d %8.1fs %5d\n' "$label" "$mk" "$ideal" "$ratio" \
        "$na" "$nb" "$nc" "$wall" "$bad"
done
