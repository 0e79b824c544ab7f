#!/usr/bin/env bash
# e2e_exit_codes: usage errors exit 2, an unreachable coordinator exits 3,
# --help exits 0 for every command of the three programs.
source "$(dirname "$0")/e2e_lib.sh"

expect_rc() { # WANT CMD...
    local want=$1 rc=0
    shift
    timeout 60 "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
    [ "$rc" = "$want" ] || fail "'$(basename "$1") ${*:2}' exited $rc, want $want; stderr: $(head -c 500 "$T/err")"
    ok "'$(basename "$1") ${*:2}' exits $want"
}

for cmd in "" submit status wait cancel list; do
    expect_rc 0 "$SUBMIT" $cmd --help
    [ -s "$T/out" ] || fail "jobman-submit $cmd --help printed nothing"
done
for cmd in "" init run allow; do expect_rc 0 "$COORD" $cmd --help; done
for cmd in "" init run; do expect_rc 0 "$AGENT" $cmd --help; done

expect_rc 2 "$SUBMIT"
expect_rc 2 "$SUBMIT" frobnicate
expect_rc 2 "$SUBMIT" submit
expect_rc 2 "$SUBMIT" wait
expect_rc 2 "$SUBMIT" cancel
expect_rc 2 "$SUBMIT" status a b
expect_rc 2 "$SUBMIT" list --bogus
expect_rc 2 "$SUBMIT" submit "$T/no-such-file.yml"
grep -q "no-such-file.yml" "$T/err" || fail "error does not name the missing file: $(cat "$T/err")"
expect_rc 2 "$COORD" frobnicate
expect_rc 2 "$AGENT" frobnicate

# A home with keys but no coordinator running.
timeout 30 "$COORD" init --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' >/dev/null 2>&1 \
    || fail "jobman-coord init failed"
# a port nobody listens on: a stale endpoint file
echo "tcp://127.0.0.1:9" >"$JOBMAN_HOME/coord.endpoint"
mkdir -p "$T/work/t0"
printf 'work_base: .\ntask_list:\n  - {command: "true", task_work_path: t0}\n' >"$T/ok.yml"
export JOBMAN_TIMEOUT_MS=1000
start=$(date +%s)
expect_rc 3 "$SUBMIT" list
grep -q "cannot reach the coordinator" "$T/err" || fail "unclear message: $(cat "$T/err")"
expect_rc 3 "$SUBMIT" status
expect_rc 3 "$SUBMIT" status someid
expect_rc 3 "$SUBMIT" wait someid
expect_rc 3 "$SUBMIT" cancel someid
expect_rc 3 "$SUBMIT" submit "$T/ok.yml" --work-dir "$T/work" --wait
elapsed=$(($(date +%s) - start))
[ $elapsed -lt 20 ] || fail "unreachable checks took $elapsed s with a 1 s timeout"
expect_rc 2 "$SUBMIT" submit "$T/no-such-file.yml"

# A running coordinator: an unknown submission id is bad input.
export JOBMAN_TIMEOUT_MS=5000
start_coord
expect_rc 0 "$SUBMIT" list
expect_rc 2 "$SUBMIT" status no-such-id
expect_rc 2 "$SUBMIT" wait no-such-id
echo "PASS: e2e_exit_codes"
