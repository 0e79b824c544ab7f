#!/usr/bin/env bash
# run-tests.sh - build into build/ and run every test (unit + end-to-end),
# then build with AddressSanitizer/UBSan into build-asan/ and run the unit
# tests there.  Exits non-zero if any build or test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
status=0

echo "==> build (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$JOBS"
# Real Slurm and SGE for the scheduler end-to-end tests (deploy/CLUSTERS.md).
# They are brought up here (packages installed if missing) and taken down
# afterwards unless they were already running; JM_CLUSTERS=0 skips them (the
# e2e_slurm/e2e_sge tests then skip), and without them the tests fail
# (JM_REQUIRE_CLUSTERS=1) instead of skipping.
STATE=${JOBMAN_CLUSTERS_STATE:-/var/lib/jobman-testclusters}
was_up() { [ -s "$STATE/$1/$2.pid" ] && kill -0 "$(cat "$STATE/$1/$2.pid")" 2>/dev/null; }
started_slurm=0 started_sge=0
if [ "${JM_CLUSTERS:-1}" = 1 ]; then
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    was_up slurm slurmctld || started_slurm=1
    was_up sge sge_qmaster || started_sge=1
    echo "==> real test clusters: Slurm and SGE (deploy/slurm-up.sh, deploy/sge-up.sh)"
    $SUDO ./deploy/slurm-up.sh || status=1
    sge_env=$($SUDO ./deploy/sge-up.sh) || status=1
    eval "$sge_env"
    export JM_REQUIRE_CLUSTERS=1
fi
stop_clusters() {
    if [ $started_slurm = 1 ]; then $SUDO ./deploy/slurm-down.sh || true; fi
    if [ $started_sge = 1 ]; then $SUDO ./deploy/sge-down.sh || true; fi
}
trap stop_clusters EXIT

echo "==> ctest (build/)"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900 || status=1

echo "==> build with -DJM_SANITIZE=ON (build-asan/)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DJM_SANITIZE=ON
cmake --build build-asan -j"$JOBS"
echo "==> unit tests under ASan/UBSan (build-asan/)"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" -R '^test_' --timeout 600 || status=1

echo "==> fuzz the message decoder with libFuzzer for 60 s (build-fuzz/)"
mkdir -p build-fuzz/corpus
cp tests/fuzz_corpus/* build-fuzz/corpus/
if clang -g -O1 -fsanitize=fuzzer,address,undefined -DJM_LIBFUZZER -Iproto -Icommon \
    tests/fuzz_proto.c proto/jm_proto.c common/jm_log.c common/jm_util.c \
    $(pkg-config --cflags --libs libczmq libzmq msgpack) -o build-fuzz/fuzz_proto; then
    build-fuzz/fuzz_proto -max_total_time=60 -seed=1 -print_final_stats=1 \
        build-fuzz/corpus 2>build-fuzz/fuzz.log || { status=1; tail -50 build-fuzz/fuzz.log >&2; }
    grep -E "stat::number_of_executed_units|Done" build-fuzz/fuzz.log || true
else
    echo "cannot build the libFuzzer target" >&2
    status=1
fi

if [ $status = 0 ]; then
    echo "==> all tests passed"
else
    echo "==> SOME TESTS FAILED (see above)" >&2
fi
exit $status
