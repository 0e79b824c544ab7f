#!/usr/bin/env bash
# bench_throughput.sh - jobman's task throughput on this machine, beside the
# raw rate at which this machine spawns 'sh -c true'.  Not part of ctest.
#   (a) raw: N x 'sh -c true' in a loop
#   (b) N tasks of 'true', group_size 50, para_deg 2, one agent with nproc slots
#   (c) N tasks, each with a distinct 1 KiB forward file and 1 KiB backward file
# Times for (b) and (c) run from 'submit' to the exit of its --wait.
#   BENCH_N (default 1000), BENCH_GROUP (50), BENCH_PARA (2), BENCH_SLOTS (nproc)
export JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-1500}
export JM_CMD_TIMEOUT=${JM_CMD_TIMEOUT:-1200}
source "$(dirname "$0")/e2e_lib.sh"

N=${BENCH_N:-1000}
GROUP=${BENCH_GROUP:-50}
PARA=${BENCH_PARA:-2}
SLOTS=${BENCH_SLOTS:-$(nproc)}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.1f", (ms > 0 ? n * 1000 / ms : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "machine: $(nproc) CPUs; N=$N tasks, group_size $GROUP, para_deg $PARA, agent slots $SLOTS"

t0=$(now_ms)
for i in $(seq "$N"); do sh -c true; done
raw_ms=$(($(now_ms) - t0))
raw=$(rate "$N" "$raw_ms")
echo "(a) raw 'sh -c true' spawn: $N in ${raw_ms} ms = $raw /s"

start_coord
start_agent bench "$SLOTS"

# (b) N x true
W=$T/work_b
mkdir -p "$W"
{
    echo "work_base: ."
    echo "resources: {group_size: $GROUP, para_deg: $PARA}"
    echo "task_list:"
    for i in $(seq 0 $((N - 1))); do
        mkdir -p "$W/t$i"
        echo "  - {command: 'true', task_work_path: t$i}"
    done
} >"$T/b.yml"
t0=$(now_ms)
jm_submit submit "$T/b.yml" --work-dir "$W" --wait >"$T/b.out" || fail "(b) did not succeed: $(tail -n1 "$T/b.out")"
b_ms=$(($(now_ms) - t0))
b=$(rate "$N" "$b_ms")
echo "(b) jobman, $N x 'true': ${b_ms} ms = $b tasks/s (ratio to raw spawn: $(ratio "$b" "$raw"))"

# (c) N tasks with a 1 KiB forward and a 1 KiB backward file
W=$T/work_c
mkdir -p "$W"
{
    echo "work_base: ."
    echo "resources: {group_size: $GROUP, para_deg: $PARA}"
    echo "task_list:"
    for i in $(seq 0 $((N - 1))); do
        mkdir -p "$W/t$i"
        # 1 KiB of distinct text; the result is its upper-case form (1 KiB, distinct)
        { printf 'task %06d ' "$i"; head -c 1012 /dev/zero | tr '\0' 'x'; } | head -c 1024 >"$W/t$i/in.dat"
        echo "  - {command: 'tr a-z A-Z < in.dat > out.dat', task_work_path: t$i, forward_files: [in.dat], backward_files: [out.dat]}"
    done
} >"$T/c.yml"
t0=$(now_ms)
jm_submit submit "$T/c.yml" --work-dir "$W" --wait >"$T/c.out" || fail "(c) did not succeed: $(tail -n1 "$T/c.out")"
c_ms=$(($(now_ms) - t0))
c=$(rate "$N" "$c_ms")
for i in 0 $((N / 2)) $((N - 1)); do
    [ "$(tr a-z A-Z <"$W/t$i/in.dat")" = "$(cat "$W/t$i/out.dat")" ] || fail "(c) t$i/out.dat wrong"
done
echo "(c) jobman, $N tasks with 1 KiB in + 1 KiB out: ${c_ms} ms = $c tasks/s (ratio to raw spawn: $(ratio "$c" "$raw"))"

# (c0) the same commands as (c), run by hand in a loop in fresh copies of the
# task dirs: what the work itself costs here without jobman
W0=$T/work_c0
mkdir -p "$W0"
for i in $(seq 0 $((N - 1))); do
    mkdir -p "$W0/t$i"
    cp "$W/t$i/in.dat" "$W0/t$i/in.dat"
done
t0=$(now_ms)
for i in $(seq 0 $((N - 1))); do
    (cd "$W0/t$i" && sh -c 'tr a-z A-Z < in.dat > out.dat' >log 2>err)
done
c0_ms=$(($(now_ms) - t0))
c0=$(rate "$N" "$c0_ms")
echo "(c0) the commands of (c) in a plain loop: ${c0_ms} ms = $c0 tasks/s"

echo
printf '%-44s %10s %8s\n' "benchmark" "tasks/s" "ratio"
printf '%-44s %10s %8s\n' "(a) raw sh -c true" "$raw" "1.00"
printf '%-44s %10s %8s\n' "(b) $N x true (group $GROUP, para $PARA)" "$b" "$(ratio "$b" "$raw")"
printf '%-44s %10s %8s\n' "(c) $N x 1 KiB in/out" "$c" "$(ratio "$c" "$raw")"
printf '%-44s %10s %8s\n' "(c0) (c)'s commands in a plain loop" "$c0" "$(ratio "$c0" "$raw")"
echo "work dirs on: $(stat -f -c %T "$T") ($T)"
