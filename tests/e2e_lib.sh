# e2e_lib.sh - sourced by tests/e2e_*.sh: starts the real jobman programs on
# 127.0.0.1 (ephemeral ports), records every PID, and cleans up on exit.
#
#   JM_BUILD_DIR   where jobman-coord/-agent/-submit are (default ./build)
#   JM_KEEP=1      keep the temp dir (logs, homes, roots) after the test
#   JM_TEST_TIMEOUT  overall watchdog in seconds (default 280)
#
# Provides: $T (temp dir), $JOBMAN_HOME, $COORD $AGENT $SUBMIT,
#   start_coord, stop_coord, start_agent NAME [SLOTS [AGENT ARGS]], start_agent_unallowed
#   NAME [SLOTS], agent_root NAME, root_entries NAME, jm_submit ARGS...,
#   jm_submit_to FILE ARGS..., wait_for_file F [SECS],
#   wait_until SECS CMD..., fail MSG, ok MSG, check_eq WHAT GOT WANT,
#   status_json ID, count_state ID STATE.

set -euo pipefail

JM_SOURCE_DIR=${JM_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
JM_BUILD_DIR=${JM_BUILD_DIR:-$JM_SOURCE_DIR/build}
JM_BUILD_DIR=$(cd "$JM_BUILD_DIR" 2>/dev/null && pwd) || {
    echo "FAIL: build dir '${JM_BUILD_DIR}' missing (build first or set JM_BUILD_DIR)" >&2
    exit 1
}
COORD=$JM_BUILD_DIR/jobman-coord
AGENT=$JM_BUILD_DIR/jobman-agent
SUBMIT=$JM_BUILD_DIR/jobman-submit
for _b in "$COORD" "$AGENT" "$SUBMIT"; do
    [ -x "$_b" ] || { echo "FAIL: $_b not built" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "FAIL: jq is needed (deploy/install-deps.sh)" >&2; exit 1; }

JM_TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/jm_${JM_TEST_NAME}.XXXXXX")
export JOBMAN_HOME=$T/home
export JOBMAN_TIMEOUT_MS=${JOBMAN_TIMEOUT_MS:-5000}
JM_PIDFILE=$T/pids
: >"$JM_PIDFILE"
JM_CMD_TIMEOUT=${JM_CMD_TIMEOUT:-200}
COORD_PID=
COORD_EP=

ok() { echo "ok: $*"; }

_jm_dump_logs() {
    local f
    for f in "$T"/*.log; do
        [ -f "$f" ] || continue
        echo "---- last lines of $(basename "$f") ----" >&2
        tail -n 30 "$f" >&2 || true
    done
}

fail() {
    echo "FAIL: ${JM_TEST_NAME}: $*" >&2
    _jm_dump_logs
    exit 1
}

check_eq() { # WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
    ok "$1 = $3"
}

_jm_record_pid() { echo "$1" >>"$JM_PIDFILE"; }

# _jm_ours PID: PID is still a child of this test's shell. A recorded
# process that has ended and been reaped (a finished jm_submit_bg, an agent
# the test stopped) leaves its PID free for the kernel to give to anything,
# e.g. a job of a test running beside this one: such a PID is never signalled.
# ($$ is the test's shell in subshells too, e.g. the watchdog.)
_jm_ours() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) } # after "(comm) ": state ppid ...
    st=${st#* }   # ppid ...
    [ "${st%% *}" = "$$" ]
}

# _jm_kill_child SIG PID: signal PID if it is still one of ours.
_jm_kill_child() {
    _jm_ours "$2" && kill "-$1" "$2" 2>/dev/null
    return 0
}

# Kill every recorded PID that is still ours: TERM, then KILL whatever is
# left after 5 s.
_jm_kill_all() {
    local pids p i
    pids=$(cat "$JM_PIDFILE" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    for p in $pids; do _jm_kill_child TERM "$p"; done
    for i in $(seq 50); do
        local alive=0
        for p in $pids; do _jm_ours "$p" && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in $pids; do _jm_kill_child KILL "$p"; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
}

_jm_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${JM_WATCHDOG_PID:-}" ]; then
        pkill -TERM -P "$JM_WATCHDOG_PID" 2>/dev/null || true # its sleep
        kill -TERM "$JM_WATCHDOG_PID" 2>/dev/null || true
    fi
    _jm_kill_all
    if [ "${JM_KEEP:-0}" = 1 ] || [ $rc != 0 -a "${JM_KEEP_ON_FAIL:-0}" = 1 ]; then
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap _jm_cleanup EXIT
trap 'echo "FAIL: ${JM_TEST_NAME}: interrupted" >&2; exit 130' INT
trap 'echo "FAIL: ${JM_TEST_NAME}: terminated (watchdog: over ${JM_TEST_TIMEOUT:-280} s?)" >&2; _jm_dump_logs; exit 124' TERM

# Watchdog: after JM_TEST_TIMEOUT seconds kill the daemons (so a blocked
# foreground command returns) and then this shell.
(
    trap - EXIT INT TERM
    sleep "${JM_TEST_TIMEOUT:-280}"
    for p in $(cat "$JM_PIDFILE" 2>/dev/null); do _jm_kill_child TERM "$p"; done
    kill -TERM $$ 2>/dev/null || true
    # and the test's own foreground children (by parent PID, this watchdog
    # included, last), so that bash gets to run its TERM trap
    pkill -TERM -P $$ 2>/dev/null || true
) </dev/null >/dev/null 2>&1 &
JM_WATCHDOG_PID=$!

# wait_for_file FILE [SECS]: wait until FILE exists and is non-empty.
wait_for_file() {
    local f=$1 secs=${2:-10} i
    for i in $(seq $((secs * 10))); do
        [ -s "$f" ] && return 0
        sleep 0.1
    done
    fail "timed out after ${secs} s waiting for $f"
}

# wait_until SECS CMD...: poll CMD (every 0.2 s) until it succeeds.
wait_until() {
    local secs=$1 i
    shift
    for i in $(seq $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# jm_submit ARGS...: jobman-submit with a timeout.
jm_submit() { timeout --kill-after=5 "$JM_CMD_TIMEOUT" "$SUBMIT" "$@"; }

# jm_submit_to FILE ARGS...: jm_submit with stdout and stderr to FILE.  Use
# it rather than 'jm_submit ... >FILE 2>&1': a function's redirection holds
# in this shell while it runs, so a watchdog's TERM there would send the
# test's FAIL message and cleanup output into FILE.
jm_submit_to() {
    local out=$1
    shift
    timeout --kill-after=5 "$JM_CMD_TIMEOUT" "$SUBMIT" "$@" >"$out" 2>&1
}

# jm_submit_bg OUTFILE ARGS...: jobman-submit in the background (stdout and
# stderr to OUTFILE); its PID (recorded for cleanup) in JM_BG_PID.
jm_submit_bg() {
    local out=$1
    shift
    timeout --kill-after=5 "$JM_CMD_TIMEOUT" "$SUBMIT" "$@" >"$out" 2>&1 &
    JM_BG_PID=$!
    _jm_record_pid "$JM_BG_PID"
}

start_coord() {
    if [ ! -f "$JOBMAN_HOME/coord.cert" ]; then
        timeout 30 "$COORD" init --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' \
            >>"$T/coord_init.log" 2>&1 || fail "jobman-coord init failed"
    fi
    rm -f "$JOBMAN_HOME/coord.endpoint"
    "$COORD" run --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' >>"$T/coord.log" 2>&1 &
    COORD_PID=$!
    _jm_record_pid "$COORD_PID"
    wait_for_file "$JOBMAN_HOME/coord.endpoint" 15
    COORD_EP=$(head -n1 "$JOBMAN_HOME/coord.endpoint")
    case "$COORD_EP" in
    tcp://127.0.0.1:*) ;;
    *) fail "coordinator endpoint '$COORD_EP' is not on 127.0.0.1" ;;
    esac
    kill -0 "$COORD_PID" 2>/dev/null || fail "jobman-coord run exited at start"
    echo "coordinator pid $COORD_PID at $COORD_EP"
}

stop_coord() {
    [ -n "$COORD_PID" ] || return 0
    _jm_kill_child TERM "$COORD_PID"
    local i
    for i in $(seq 50); do
        _jm_ours "$COORD_PID" || break
        sleep 0.1
    done
    _jm_kill_child KILL "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
    COORD_PID=
}

agent_home() { echo "$T/agents/$1"; }
agent_root() { echo "$T/roots/$1"; }

# root_entries NAME: number of things under an agent's root apart from the
# agent's own empty bookkeeping dirs (.jobman, .jobman/jobs): 0 means no
# submission, job or file was ever placed there.
root_entries() {
    find "$(agent_root "$1")" -mindepth 1 ! -path '*/.jobman' ! -path '*/.jobman/jobs' | wc -l
}

_jm_agent_init() { # NAME
    local home root
    home=$(agent_home "$1")
    root=$(agent_root "$1")
    mkdir -p "$root" "$(dirname "$home")"
    if [ ! -f "$home/agent.cert" ]; then
        timeout 30 "$AGENT" init --home "$home" >>"$T/agent_$1.log" 2>&1 \
            || fail "jobman-agent init for $1 failed"
    fi
    [ -f "$home/agent.cert" ] || fail "jobman-agent init made no $home/agent.cert"
}

_jm_agent_run() { # NAME SLOTS [AGENT ARGS...]
    local name=$1 slots=$2 home root pid
    shift 2
    home=$(agent_home "$name")
    root=$(agent_root "$name")
    "$AGENT" run --home "$home" --coordinator "$COORD_EP" \
        --coordinator-cert "$JOBMAN_HOME/coord.cert" --site "$name" --root "$root" \
        --scheduler shell --slots "$slots" "$@" >>"$T/agent_$name.log" 2>&1 &
    pid=$!
    _jm_record_pid "$pid"
    eval "AGENT_PID_$name=$pid"
    echo "agent $name pid $pid (slots $slots, root $root${*:+, $*})"
}

# start_agent NAME [SLOTS [AGENT ARGS...]]: init, allow and run an agent
# (site NAME); extra arguments go to 'jobman-agent run' after the defaults
# (e.g. --scheduler slurm --poll-ms 1000 overrides --scheduler shell).
start_agent() {
    local name=$1 slots=${2:-4}
    shift $(($# < 2 ? $# : 2))
    _jm_agent_init "$name"
    timeout 30 "$COORD" allow "$(agent_home "$name")/agent.cert" --name "$name" \
        --home "$JOBMAN_HOME" >>"$T/coord_init.log" 2>&1 || fail "jobman-coord allow $name failed"
    _jm_agent_run "$name" "$slots" "$@"
}

# start_agent_unallowed NAME [SLOTS]: an agent whose key was never allowed.
start_agent_unallowed() {
    local name=$1 slots=${2:-4}
    _jm_agent_init "$name"
    _jm_agent_run "$name" "$slots"
}

# status_json ID: jobman-submit status ID --json (fails the test on error).
status_json() {
    jm_submit status "$1" --json || fail "jobman-submit status $1 --json failed"
}

# count_state ID STATE: number of tasks of ID in STATE (from counts).
count_state() {
    status_json "$1" | jq -r --arg s "$2" '.submissions[0].counts[$s]'
}

# rand_file PATH BYTES: random content.
rand_file() { head -c "$2" /dev/urandom >"$1"; }

# Run directly (ctest's 'e2e_lib'): check the harness itself: a test that
# exits keeps its exit code, its daemons are killed by PID and its temp dir
# is removed; the watchdog ends a test that hangs.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    inner() { # EXTRA-COMMANDS -> rc; writes "coord-pid agent-pid tempdir" to $T/info
        local rc=0
        JM_INFO=$T/info bash -c 'source "$1"; start_coord; start_agent self 1;
            echo "$COORD_PID $AGENT_PID_self $T" >"$JM_INFO"; eval "$2"' \
            _ "${BASH_SOURCE[0]}" "$1" >"$T/inner.log" 2>&1 || rc=$?
        echo $rc
    }
    check_gone() {
        local c a d
        read -r c a d <"$T/info" || fail "inner test wrote no PIDs: $(cat "$T/inner.log")"
        ! kill -0 "$c" 2>/dev/null || fail "coordinator $c still alive after the test ended"
        ! kill -0 "$a" 2>/dev/null || fail "agent $a still alive after the test ended"
        [ ! -e "$d" ] || fail "temp dir $d left behind"
        ok "daemons $c, $a killed and $d removed"
    }
    check_eq "exit code of a test that exits 3" "$(inner 'exit 3')" 3
    check_gone
    rm -f "$T/info"
    check_eq "exit code of a test whose watchdog fires" \
        "$(JM_TEST_TIMEOUT=3 inner 'sleep 30')" 124
    check_gone
    grep -q "watchdog" "$T/inner.log" || fail "watchdog message missing: $(cat "$T/inner.log")"
    ok "watchdog reported itself"
    echo "PASS: e2e_lib"
fi
