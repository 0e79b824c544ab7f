#!/usr/bin/env bash
# slurm-down.sh -- stop exactly the daemons deploy/slurm-up.sh started (PIDs
# recorded in $STATE/slurm/*.pid), after cancelling all jobs of this private
# test cluster. Idempotent: nothing running is fine. Packages stay installed.
#   --purge   also delete Slurm state (job ids restart at 1) and logs.
set -uo pipefail
STATE="${JOBMAN_CLUSTERS_STATE:-/var/lib/jobman-testclusters}/slurm"
PURGE=0
[[ "${1:-}" == --purge ]] && PURGE=1
log() { printf '[slurm-down %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

STOP_TIMEOUT=20
# shellcheck source=deploy/clusters-lib.sh
source "$(dirname "$0")/clusters-lib.sh"

if [[ -s "$STATE/slurmctld.pid" ]] && command -v scontrol >/dev/null &&
    scontrol ping 2>/dev/null | grep -q 'is UP'; then
    # cancel every job so no slurmstepd or job process is left behind
    squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null
    for _ in $(seq 100); do
        [[ -z "$(squeue -h -o %i 2>/dev/null | head -1)" ]] && break
        sleep 0.1
    done
fi
stop_recorded slurmd
stop_recorded slurmctld
stop_recorded munged
if ((PURGE)); then
    log "purging state and logs"
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
fi
log "down"
