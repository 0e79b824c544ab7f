#!/usr/bin/env bash
# sge-down.sh -- stop exactly the daemons deploy/sge-up.sh started (PIDs
# recorded in $STATE/sge/*.pid), after deleting all jobs of this private test
# cluster. Idempotent: nothing running is fine. Packages and the cell's
# configuration stay, so the next sge-up.sh is fast.
set -uo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE="${JOBMAN_CLUSTERS_STATE:-/var/lib/jobman-testclusters}/sge"
log() { printf '[sge-down %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

stop_recorded() { # name [timeout_s]
    local name=$1 t=${2:-30} f="$STATE/$1.pid" pid
    [[ -s "$f" ]] || return 0
    pid="$(cat "$f")"
    # Only signal the PID if it is still the daemon we started (PID reuse).
    if kill -0 "$pid" 2>/dev/null && [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$name" ]]; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq $((t * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop in ${t}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$f"
}

if [[ -s "$STATE/sge_qmaster.pid" ]] && command -v qstat >/dev/null && qstat >/dev/null 2>&1; then
    # delete every job (any user) so no shepherd or job process is left behind
    qdel -f -u '*' '*' >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        [[ -z "$(qstat -u '*' 2>/dev/null | head -1)" ]] && break
        sleep 0.2
    done
fi
stop_recorded sge_execd
stop_recorded sge_qmaster
log "down"
