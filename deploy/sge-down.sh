#!/usr/bin/env bash
# sge-down.sh -- stop exactly the daemons deploy/sge-up.sh started (PIDs
# recorded in $STATE/sge/*.pid), after deleting all jobs of this private test
# cluster. Idempotent: nothing running is fine. Packages and the cell's
# configuration stay, so the next sge-up.sh is fast.
set -uo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE="${JOBMAN_CLUSTERS_STATE:-/var/lib/jobman-testclusters}/sge"
log() { printf '[sge-down %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

STOP_TIMEOUT=30
# shellcheck source=deploy/clusters-lib.sh
source "$(dirname "$0")/clusters-lib.sh"

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
