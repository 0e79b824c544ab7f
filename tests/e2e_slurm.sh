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

PFX="jme2e$$r$RANDOM"
ROOT=$(agent_root slurm1)
POLL_MS=1000

# Our jobs: "ID|STATE|NAME" lines of jobs whose script lies under our
# agent's root and whose name starts with $PFX$1 (-t all: also jobs that
# ended in the last MinJobAge seconds).
our_jobs() { # PART [squeue -t states]
    squeue -h -r -t "${2:-all}" -o '%i|%T|%j|%o' 2>/dev/null \
        | awk -F'|' -v p="$PFX$1" -v r="$ROOT/" 'index($3, p) == 1 && index($4, r) == 1 { print $1 "|" $2 "|" $3 }'
}

# Cancel whatever is left of our jobs, by id; then the usual cleanup.
slurm_cleanup() {
    local rc=$? ids
    # the agent first, so that it submits nothing more
    [ -n "${AGENT_PID_slurm1:-}" ] && kill -TERM "$AGENT_PID_slurm1" 2>/dev/null && sleep 0.5
    # every job whose script lies under our agent's root, whatever its name
    ids=$(PFX="" our_jobs "" pending,running,suspended,configuring | cut -d'|' -f1 | tr '\n' ' ') || true
    if [ -n "${ids// /}" ]; then
        echo "cancelling our leftover Slurm jobs: $ids" >&2
        # shellcheck disable=SC2086
        scancel $ids 2>/dev/null || true
    fi
    (exit $rc)
    _jm_cleanup
}
trap slurm_cleanup EXIT

# A sampler records every job of ours squeue shows (also the finished ones,
# kept MinJobAge s), to tell arrays from plain jobs afterwards.
(
    while :; do
        our_jobs "" >>"$T/squeue.samples" || true
        sleep 1
    done
) </dev/null >/dev/null 2>&1 &
_jm_record_pid $!

# sub_header FILE PART JOB_ARRAY [custom flag]
sub_header() {
    local flags=""
    [ -n "${4:-}" ] && flags=", custom_flags: [\"$4\"]"
    {
        echo "work_base: ."
        echo "resources: {group_size: ${5:-1}, para_deg: ${6:-1}, queue_name: debug,"
        echo "  job_array: $3, kwargs: {job_name: $PFX$2}$flags}"
        echo "task_list:"
    } >"$1"
}

W=$T/work
mkdir -p "$W"/{to,h,c,f,p}

# TO: one task sleeping past its 1-minute limit.
sub_header "$T/to.yml" TO false "#SBATCH -t 0:01:00"
mkdir -p "$W/to/t0"
echo "  - {command: 'echo started > started.txt; sleep 170', task_work_path: t0}" >>"$T/to.yml"

# H: one job of two tasks, one after the other; the first sleeps.
sub_header "$T/h.yml" H true "" 2 1
mkdir -p "$W/h/h0" "$W/h/h1"
echo "  - {command: 'sleep 150', task_work_path: h0}" >>"$T/h.yml"
echo "  - {command: 'echo never > r.txt', task_work_path: h1}" >>"$T/h.yml"

# C: three sleepers, one per job (one array).
sub_header "$T/c.yml" C true
for i in 0 1 2; do
    mkdir -p "$W/c/c$i"
    echo "  - {command: 'sleep 150', task_work_path: c$i}" >>"$T/c.yml"
done

# F: 8 tasks, 2 plain jobs of 4 run one after the other; every 2nd of 4 fails.
sub_header "$T/f.yml" F false "" 4 1
for i in $(seq 0 7); do
    mkdir -p "$W/f/f$i"
    if [ $((i % 4)) = 1 ]; then cmd="echo partial $i > r.txt; exit 3"; else cmd="echo result $i > r.txt"; fi
    echo "  - {command: '$cmd', task_work_path: f$i, backward_files: [r.txt]}" >>"$T/f.yml"
done

# P: 200 tasks, 10 per job, 2 at once in a job, as arrays.
N=200
sub_header "$T/p.yml" P true "" 10 2
for i in $(seq 0 $((N - 1))); do
    d=$(printf 'p%03d' "$i")
    mkdir -p "$W/p/$d"
    if [ $((i % 10)) = 0 ]; then
        rand_file "$W/p/$d/in.dat" $((1024 * (3 + i % 5)))
    else
        echo "input of task $i" >"$W/p/$d/in.dat"
    fi
    echo "  - {command: 'sha256sum in.dat > out.sha; cp in.dat copy.bin', task_work_path: $d, forward_files: [in.dat], backward_files: [out.sha, copy.bin]}" >>"$T/p.yml"
done
ok "generated submissions (job name prefix $PFX)"

start_coord
start_agent slurm1 30 --scheduler slurm --poll-ms $POLL_MS
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

submit() { jm_submit submit "$T/$1.yml" --work-dir "$W/$1" || fail "submit of $1.yml failed"; }
ID_TO=$(submit to)
ID_H=$(submit h)
ID_C=$(submit c)
ID_F=$(submit f)
ID_P=$(submit p)
ok "submitted TO=$ID_TO H=$ID_H C=$ID_C F=$ID_F P=$ID_P"

task_field() { # ID PATH FIELD
    status_json "$1" | jq -r --arg p "$2" --arg f "$3" '.submissions[0].tasks[] | select(.path == $p) | .[$f]'
}

# --- C: jobman-submit cancel takes its jobs out of the queue -------------
has_c_jobs() { [ -n "$(our_jobs C)" ]; }
wait_until 60 has_c_jobs || fail "no Slurm job of C within 60 s: $(squeue -h -r -t all -o '%i|%T|%j')"
ok "C is in Slurm: $(our_jobs C | tr '\n' ' ') ($(elapsed) s)"
out=$(jm_submit cancel "$ID_C") || fail "jobman-submit cancel $ID_C failed"
echo "$out"
no_active_c() { [ -z "$(our_jobs C pending,running,suspended,configuring,completing)" ]; }
wait_until 20 no_active_c || fail "C's jobs still in squeue 20 s after cancel: $(our_jobs C)"
ok "no job of C pending/running 20 s after jobman-submit cancel ($(elapsed) s): $(our_jobs C | tr '\n' ' ')"
check_eq "C tasks CANCELLED" "$(count_state "$ID_C" CANCELLED)" 3

# --- H: scancel by hand while its first task runs ------------------------
h_running() { [ "$(count_state "$ID_H" RUNNING)" -ge 1 ] && [ -n "$(our_jobs H running)" ]; }
wait_until 120 h_running || fail "H's first task did not run within 120 s: $(our_jobs H)"
HJOB=$(our_jobs H running | head -n1 | cut -d'|' -f1)
scancel "$HJOB" || fail "scancel $HJOB failed"
ok "scancel'ed H's Slurm job $HJOB by hand ($(elapsed) s)"

# --- F: a failing task does not stop the later tasks of its job ----------
rc=0
jm_submit wait "$ID_F" >"$T/wait_f.out" || rc=$?
check_eq "exit code of wait F" "$rc" 1
js=$(status_json "$ID_F")
for i in $(seq 0 7); do
    t=$(echo "$js" | jq -c --arg p "f$i" '.submissions[0].tasks[] | select(.path == $p) | [.state, .exit_code]')
    if [ $((i % 4)) = 1 ]; then
        [ "$t" = '["FAILED",3]' ] || fail "F task f$i: got $t, want FAILED 3"
    else
        [ "$t" = '["DONE",0]' ] || fail "F task f$i: got $t, want DONE 0"
        [ "$(cat "$W/f/f$i/r.txt" 2>/dev/null)" = "result $i" ] || fail "F task f$i: r.txt missing or wrong"
    fi
done
ok "F: tasks after a failed one in the same job ran and succeeded ($(elapsed) s)"

# --- P: 200 tasks, byte for byte ------------------------------------------
rc=0
jm_submit wait "$ID_P" >"$T/wait_p.out" || rc=$?
tail -n 2 "$T/wait_p.out"
check_eq "exit code of wait P" "$rc" 0
bad=0
for i in $(seq 0 $((N - 1))); do
    d=$W/p/$(printf 'p%03d' "$i")
    cmp -s "$d/in.dat" "$d/copy.bin" || { echo "copy.bin of $d differs" >&2; bad=$((bad + 1)); }
    [ "$(cat "$d/out.sha" 2>/dev/null)" = "$(cd "$d" && sha256sum in.dat)" ] \
        || { echo "out.sha of $d wrong" >&2; bad=$((bad + 1)); }
done
check_eq "P: bad result files" "$bad" 0
check_eq "P: DONE count" "$(count_state "$ID_P" DONE)" $N
ok "P: 200 tasks done, results byte for byte ($(elapsed) s)"

# arrays vs plain jobs, from what squeue showed
p_ids=$(awk -F'|' -v p="${PFX}P" 'index($3, p) == 1 { print $1 }' "$T/squeue.samples" | sort -u)
f_ids=$(awk -F'|' -v p="${PFX}F" 'index($3, p) == 1 { print $1 }' "$T/squeue.samples" | sort -u)
[ -n "$p_ids" ] && [ -n "$f_ids" ] || fail "the squeue sampler saw no job of P or F"
# 20 jobs of 10 tasks; those that reach the agent together go out as one
# array, so most are array elements (one that came alone is a plain job)
check_eq "P: Slurm jobs seen" "$(echo "$p_ids" | wc -l)" 20
p_elems=$(echo "$p_ids" | grep -c '_' || true)
[ "$p_elems" -ge 2 ] || fail "P (job_array true) ran as $p_elems array elements: $p_ids"
ok "P ran as $p_elems array elements in $(echo "$p_ids" | grep '_' | cut -d_ -f1 | sort -u | wc -l) arrays"
check_eq "F: plain jobs seen (job_array false)" "$(echo "$f_ids" | grep -vc '_' || true)" 2
check_eq "F: array elements" "$(echo "$f_ids" | grep -c '_' || true)" 0

# --- H: the hand-cancelled job's tasks ------------------------------------
rc=0
jm_submit wait "$ID_H" >"$T/wait_h.out" || rc=$?
check_eq "exit code of wait H" "$rc" 1
# the running task was killed with its job (maybe it wrote its exit code
# first); the one that never started says why
check_eq "H task h0 state" "$(task_field "$ID_H" h0 state)" FAILED
ok "H task h0: exit $(task_field "$ID_H" h0 exit_code), reason '$(task_field "$ID_H" h0 reason)'"
check_eq "H task h1 state" "$(task_field "$ID_H" h1 state)" FAILED
r=$(task_field "$ID_H" h1 reason)
case "$r" in *CANCELLED*) ok "H task h1 reason: $r" ;; *) fail "H task h1 reason '$r' lacks CANCELLED" ;; esac
[ ! -e "$W/h/h1/r.txt" ] || fail "H's second task ran although its job was cancelled"

# --- TO: the time limit ---------------------------------------------------
rc=0
jm_submit wait "$ID_TO" >"$T/wait_to.out" || rc=$?
check_eq "exit code of wait TO" "$rc" 1
check_eq "TO task state" "$(task_field "$ID_TO" t0 state)" FAILED
r=$(task_field "$ID_TO" t0 reason)
case "$r" in *TIMEOUT*) ok "TO reason: $r ($(elapsed) s)" ;; *) fail "TO reason '$r' lacks TIMEOUT" ;; esac

check_eq "our jobs still pending/running" "$(our_jobs "" pending,running,suspended,configuring | wc -l)" 0
echo "PASS: e2e_slurm ($(elapsed) s after the agent started)"
