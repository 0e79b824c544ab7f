#!/usr/bin/env bash
# e2e_slurm: the real jobman-agent --scheduler slurm on the real Slurm of
# deploy/slurm-up.sh (2 CPUs: at most 2 of our jobs run at once, so the
# parts below are submitted together and checked as they finish):
#   TO    a task that outlives "#SBATCH -t 0:01:00": FAILED, reason TIMEOUT
#   H     a job scancel'ed by hand while its first task runs: its tasks
#         FAILED, reason CANCELLED
#   C     jobman-submit cancel: none of its jobs left pending/running in
#         squeue
#   F     plain jobs (job_array false), 4 tasks each one after the other;
#         the 2nd task of each exits 3, the later ones still succeed
#   P     200 tasks as arrays (job_array true), forward files and results
#         compared byte for byte
# Every Slurm job of this run carries the name prefix $PFX (kwargs.job_name)
# so the test finds, checks and finally cancels only its own jobs (by id).
# Skips (77) when Slurm is not up, unless JM_REQUIRE_CLUSTERS=1.

slurm_up() {
    command -v sbatch >/dev/null && command -v squeue >/dev/null || return 1
    timeout 10 sinfo -h -o '%a' 2>/dev/null | grep -qx up
}
if ! slurm_up; then
    if [ "${JM_REQUIRE_CLUSTERS:-0}" = 1 ]; then
        echo "FAIL: e2e_slurm: Slurm is not up (run deploy/slurm-up.sh)" >&2
        exit 1
    fi
    echo "SKIP: e2e_slurm: Slurm is not up (deploy/slurm-up.sh starts it)" >&2
    exit 77
fi

JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-280}
source "$(dirname "$0")/e2e_lib.sh"
source "$(dirname "$0")/sched_e2e_lib.sh"

PFX="jme2e$$r$RANDOM"
ROOT=$(agent_root slurm1)
POLL_MS=1000
SCHED=Slurm
QUEUE=debug

# Our jobs: "ID|STATE|NAME" lines of jobs whose script lies under our
# agent's root and whose name starts with $PFX$1 (-t all: also jobs that
# ended in the last MinJobAge seconds).
our_jobs() { # PART [squeue -t states]
    squeue -h -r -t "${2:-all}" -o '%i|%T|%j|%o' 2>/dev/null \
        | awk -F'|' -v p="$PFX$1" -v r="$ROOT/" 'index($3, p) == 1 && index($4, r) == 1 { print $1 "|" $2 "|" $3 }'
}

# every job whose script lies under our agent's root, whatever its name:
# scancel'ed on exit
our_leftover_ids() { PFX="" our_jobs "" pending,running,suspended,configuring | cut -d'|' -f1; }
cancel_leftovers_on_exit slurm1 scancel

# A sampler records every job of ours squeue shows (also the finished ones,
# kept MinJobAge s), to tell arrays from plain jobs afterwards.
(
    while :; do
        our_jobs "" >>"$T/squeue.samples" || true
        sleep 1
    done
) </dev/null >/dev/null 2>&1 &
_jm_record_pid $!

# for check_part_c (sched_e2e_lib.sh)
our_active_jobs() { our_jobs "$1" pending,running,suspended,configuring,completing; }
queue_dump() { squeue -h -r -t all -o '%i|%T|%j'; }

W=$T/work
mkdir -p "$W"/{to,h,c,f,p}

# TO: one task sleeping past its 1-minute limit.
sub_header "$T/to.yml" TO false "#SBATCH -t 0:01:00"
mkdir -p "$W/to/t0"
echo "  - {command: 'echo started > started.txt; sleep 170', task_work_path: t0}" >>"$T/to.yml"
gen_part_h
gen_part_c
gen_part_f
N=200
gen_part_p $N
ok "generated submissions (job name prefix $PFX)"

start_coord
start_agent slurm1 30 --scheduler slurm --poll-ms $POLL_MS
start_clock

submit_parts to h c f p

# --- C: jobman-submit cancel takes its jobs out of the queue -------------
check_part_c "$ID_C"

# --- H: scancel by hand while its first task runs ------------------------
h_running() { [ "$(count_state "$ID_H" RUNNING)" -ge 1 ] && [ -n "$(our_jobs H running)" ]; }
wait_until 120 h_running || fail "H's first task did not run within 120 s: $(our_jobs H)"
HJOB=$(our_jobs H running | head -n1 | cut -d'|' -f1)
scancel "$HJOB" || fail "scancel $HJOB failed"
ok "scancel'ed H's Slurm job $HJOB by hand ($(elapsed) s)"

# --- F: a failing task does not stop the later tasks of its job ----------
check_part_f "$ID_F"

# --- P: 200 tasks, byte for byte ------------------------------------------
check_part_p "$ID_P" $N

# arrays vs plain jobs, from what squeue showed ("123_4": element 4 of
# array 123)
jobs_seen() { # PART
    awk -F'|' -v p="$PFX$1" 'index($3, p) == 1 { print $1 }' "$T/squeue.samples" | sort -u | sed 's/_/ /'
}
check_array_split squeue "$(jobs_seen P)" "$(jobs_seen F)"

# --- H: the hand-cancelled job's tasks ------------------------------------
check_part_h "$ID_H"

# --- TO: the time limit ---------------------------------------------------
check_wait_rc "wait TO" "$ID_TO" 1
js=$(status_json "$ID_TO")
check_failed_with "TO task" "$js" t0 TIMEOUT
ok "TO ended ($(elapsed) s)"

check_eq "our jobs still pending/running" "$(our_jobs "" pending,running,suspended,configuring | wc -l)" 0
echo "PASS: e2e_slurm ($(elapsed) s after the agent started)"
