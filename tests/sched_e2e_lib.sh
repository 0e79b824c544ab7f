# sched_e2e_lib.sh - sourced by tests/e2e_{slurm,sge,pbs,lsf}.sh after
# e2e_lib.sh: the submissions and checks the scheduler backend tests share.
# (Not named e2e_*.sh: CMake makes every tests/e2e_*.sh a test of its own.)
#
# Any backend:
#   task_field JSON PATH FIELD      a field of task PATH in 'status --json'
#   check_wait_rc WHAT ID WANT      jobman-submit wait ID exits WANT
#   wait_ended ID...                jobman-submit wait of each exits 0 or 1
#   check_failed_with WHAT JSON PATH WORD   task FAILED, reason has WORD
#   start_clock, elapsed            seconds since start_clock ("12.3")
#
# Real clusters (e2e_slurm, e2e_sge): submission $T/PART.yml runs in
# $W/PART; its jobs are named $PFX<PART> (PART upper case) in queue $QUEUE.
#   sub_header FILE PART JOB_ARRAY [CUSTOM_FLAG [GROUP_SIZE [PARA_DEG]]]
#   gen_part_c, gen_part_h, gen_part_f, gen_part_p N   write c/h/f/p.yml
#   submit_part part                prints the submission id
#   submit_parts part...            submits each, its id in ID_<PART>
#   cancel_leftovers_on_exit AGENT CANCEL-CMD...   the EXIT trap: stop
#                                   agent AGENT, CANCEL-CMD the ids the
#                                   script's our_leftover_ids prints
#   check_part_c ID, check_part_h ID, check_part_f ID, check_part_p ID N
#   check_array_split WHAT P_JOBS F_JOBS   arrays for P, plain jobs for F
# The check_part_c test uses the script's our_jobs PART (our jobs in the
# queue, one a line), our_active_jobs PART (those not ended) and
# queue_dump (the scheduler's whole queue, for messages); $SCHED names the
# scheduler in messages.
#
# Fakes (e2e_pbs, e2e_lsf): submission DIR/sub.yml runs in DIR/w; TAG
# (the first argument) starts every message.
#   sub_file FILE RESOURCES, add_task FILE DIR COMMAND
#   submit_dir DIR                  prints the submission id
#   gen_mixed_parts S LIMIT_FLAG    S/s1 (array, failing t4), S/s2 (plain),
#                                   S/s3 ('limited', LIMIT_FLAG), S/s4 ('handkill')
#   check_array_part TAG ID DIR, check_plain_part TAG ID DIR
#   check_all_failed_with TAG ID WORD PATH...
#   gen_cancel_part DIR N           N sleepers (job name 'tocancel'),
#                                   each 'sleep $SLEEP_MARK'
#   check_no_sleepers TAG           no 'sleep $SLEEP_MARK' left
#   run_refused_part TAG DIR LOG REFUSAL   3 tasks all run although the
#                                   scheduler refused submissions (LOG has REFUSAL)
#   run_200_part TAG DIR            200 tasks, every result checked

# ---- any backend ----------------------------------------------------------

# task_field JSON PATH FIELD: FIELD of task PATH in a 'status --json' answer
# ("null" when missing).
task_field() {
    echo "$1" | jq -r --arg p "$2" --arg f "$3" \
        '.submissions[0].tasks[] | select(.path == $p) | .[$f] | tostring'
}

# check_wait_rc WHAT ID WANT: jobman-submit wait ID (its output in
# $T/wait_ID.out) must exit WANT.
check_wait_rc() {
    local rc=0
    jm_submit_to "$T/wait_$2.out" wait "$2" || rc=$?
    [ "$rc" = "$3" ] || fail "exit code of $1: got '$rc', want '$3': $(tail -n 5 "$T/wait_$2.out")"
    ok "exit code of $1 = $3"
}

# wait_ended ID...: jobman-submit wait each ID; it must exit 0 (all done) or
# 1 (some failed or cancelled), nothing else.
wait_ended() {
    local id rc
    for id in "$@"; do
        rc=0
        jm_submit_to "$T/wait_$id.out" wait "$id" || rc=$?
        [ $rc -le 1 ] || fail "wait $id exited $rc: $(cat "$T/wait_$id.out")"
    done
}

# check_failed_with WHAT JSON PATH WORD: task PATH is FAILED and its reason
# contains WORD.
check_failed_with() {
    local r
    check_eq "$1 state" "$(task_field "$2" "$3" state)" FAILED
    r=$(task_field "$2" "$3" reason)
    case "$r" in
    *"$4"*) ok "$1 reason: $r" ;;
    *) fail "$1 reason '$r' lacks $4" ;;
    esac
}

start_clock() { JM_T0=$(date +%s.%N); }
elapsed() { awk -v a="$JM_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- real clusters (e2e_slurm, e2e_sge) -------------------------------------

# sub_header FILE PART JOB_ARRAY [CUSTOM_FLAG [GROUP_SIZE [PARA_DEG]]]:
# the head of a submission file whose jobs are named $PFX$PART in $QUEUE.
sub_header() {
    local flags=""
    [ -n "${4:-}" ] && flags=", custom_flags: [\"$4\"]"
    {
        echo "work_base: ."
        echo "resources: {group_size: ${5:-1}, para_deg: ${6:-1}, queue_name: $QUEUE,"
        echo "  job_array: $3, kwargs: {job_name: $PFX$2}$flags}"
        echo "task_list:"
    } >"$1"
}

# gen_part_c: C, three sleepers, one per job (one array).
gen_part_c() {
    local i
    sub_header "$T/c.yml" C true
    for i in 0 1 2; do
        mkdir -p "$W/c/c$i"
        echo "  - {command: 'sleep 150', task_work_path: c$i}" >>"$T/c.yml"
    done
}

# gen_part_h: H, one job of two tasks, one after the other; the first sleeps.
gen_part_h() {
    sub_header "$T/h.yml" H true "" 2 1
    mkdir -p "$W/h/h0" "$W/h/h1"
    echo "  - {command: 'sleep 150', task_work_path: h0}" >>"$T/h.yml"
    echo "  - {command: 'echo never > r.txt', task_work_path: h1}" >>"$T/h.yml"
}

# gen_part_f: F, 8 tasks, 2 plain jobs of 4 run one after the other; every
# 2nd of 4 fails.
gen_part_f() {
    local i cmd
    sub_header "$T/f.yml" F false "" 4 1
    for i in $(seq 0 7); do
        mkdir -p "$W/f/f$i"
        if [ $((i % 4)) = 1 ]; then cmd="echo partial $i > r.txt; exit 3"; else cmd="echo result $i > r.txt"; fi
        echo "  - {command: '$cmd', task_work_path: f$i, backward_files: [r.txt]}" >>"$T/f.yml"
    done
}

# gen_part_p N: P, N tasks, 10 per job, 2 at once in a job, as arrays; every
# 10th input is random binary data.
gen_part_p() {
    local i d
    sub_header "$T/p.yml" P true "" 10 2
    for i in $(seq 0 $(($1 - 1))); do
        d=$(printf 'p%03d' "$i")
        mkdir -p "$W/p/$d"
        if [ $((i % 10)) = 0 ]; then
            rand_file "$W/p/$d/in.dat" $((1024 * (3 + i % 5)))
        else
            echo "input of task $i" >"$W/p/$d/in.dat"
        fi
        echo "  - {command: 'sha256sum in.dat > out.sha; cp in.dat copy.bin', task_work_path: $d, forward_files: [in.dat], backward_files: [out.sha, copy.bin]}" >>"$T/p.yml"
    done
}

# submit_part part: submit $T/part.yml in $W/part; prints the id.
submit_part() { jm_submit submit "$T/$1.yml" --work-dir "$W/$1" || fail "submit of $1.yml failed"; }

# submit_parts part...: submit_part each; the ids in ID_<PART> (ID_TO for
# to, ...).
submit_parts() {
    local p id msg=""
    for p in "$@"; do
        id=$(submit_part "$p")
        printf -v "ID_${p^^}" '%s' "$id"
        msg+=" ${p^^}=$id"
    done
    ok "submitted$msg"
}

# cancel_leftovers_on_exit AGENT CANCEL-CMD...: on exit, stop agent AGENT
# first (so that it submits nothing more), then CANCEL-CMD whatever is left
# of our jobs, by the ids the script's our_leftover_ids prints; then the
# usual cleanup.
cancel_leftovers_on_exit() {
    JM_LEFTOVER_AGENT=$1
    shift
    JM_LEFTOVER_CANCEL=("$@")
    trap _jm_cancel_leftovers EXIT
}
_jm_cancel_leftovers() {
    local rc=$? ids pid_var=AGENT_PID_$JM_LEFTOVER_AGENT
    [ -n "${!pid_var:-}" ] && _jm_ours "${!pid_var}" && kill -TERM "${!pid_var}" 2>/dev/null && sleep 0.5
    ids=$(our_leftover_ids | sort -u | tr '\n' ' ') || true
    if [ -n "${ids// /}" ]; then
        echo "$SCHED: ${JM_LEFTOVER_CANCEL[*]} our leftover jobs: $ids" >&2
        # shellcheck disable=SC2086
        "${JM_LEFTOVER_CANCEL[@]}" $ids >/dev/null 2>&1 || true
    fi
    (exit $rc)
    _jm_cleanup
}

# check_part_c ID: C's jobs reach the queue; jobman-submit cancel takes them
# out within 20 s and its 3 tasks are CANCELLED.
check_part_c() {
    local out
    _has_c_jobs() { [ -n "$(our_jobs C)" ]; }
    _no_active_c() { [ -z "$(our_active_jobs C)" ]; }
    wait_until 60 _has_c_jobs || fail "no $SCHED job of C within 60 s: $(queue_dump)"
    ok "C is in $SCHED: $(our_jobs C | tr '\n' ' ') ($(elapsed) s)"
    out=$(jm_submit cancel "$1") || fail "jobman-submit cancel $1 failed"
    echo "$out"
    wait_until 20 _no_active_c || fail "C's jobs still active in $SCHED 20 s after cancel: $(our_jobs C)"
    ok "no job of C active 20 s after jobman-submit cancel ($(elapsed) s): $(our_jobs C | tr '\n' ' ')"
    check_eq "C tasks CANCELLED" "$(count_state "$1" CANCELLED)" 3
}

# check_part_h ID: H's job was killed by hand while h0 ran: wait exits 1,
# h0 FAILED (killed with its job, maybe after writing its exit code), h1
# never ran and FAILED with reason CANCELLED.
check_part_h() {
    local js
    check_wait_rc "wait H" "$1" 1
    js=$(status_json "$1")
    check_eq "H task h0 state" "$(task_field "$js" h0 state)" FAILED
    ok "H task h0: exit $(task_field "$js" h0 exit_code), reason '$(task_field "$js" h0 reason)'"
    check_failed_with "H task h1" "$js" h1 CANCELLED
    [ ! -e "$W/h/h1/r.txt" ] || fail "H's second task ran although its job was killed by hand"
}

# check_part_f ID: a failing task does not stop the later tasks of its job:
# wait exits 1, every 2nd of 4 FAILED with exit code 3, the others DONE
# with their r.txt back.
check_part_f() {
    local js i t
    check_wait_rc "wait F" "$1" 1
    js=$(status_json "$1")
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
}

# check_part_p ID N: wait exits 0, all N tasks DONE, every copy.bin equal
# to its in.dat byte for byte and every out.sha its sha256sum.
check_part_p() {
    local i d bad=0
    check_wait_rc "wait P" "$1" 0
    tail -n 2 "$T/wait_$1.out"
    for i in $(seq 0 $(($2 - 1))); do
        d=$W/p/$(printf 'p%03d' "$i")
        cmp -s "$d/in.dat" "$d/copy.bin" || { echo "copy.bin of $d differs" >&2; bad=$((bad + 1)); }
        [ "$(cat "$d/out.sha" 2>/dev/null)" = "$(cd "$d" && sha256sum in.dat)" ] \
            || { echo "out.sha of $d wrong" >&2; bad=$((bad + 1)); }
    done
    check_eq "P: bad result files" "$bad" 0
    check_eq "P: DONE count" "$(count_state "$1" DONE)" "$2"
    ok "P: $2 tasks done, results byte for byte ($(elapsed) s)"
}

# check_array_split WHERE P_JOBS F_JOBS: the jobs the scheduler ran for P and
# F (seen in WHERE), one a line: "JOBID ELEMENT" for an array element,
# "JOBID" for a plain job.  P's 20 jobs of 10 tasks: those that reach the
# agent together go out as one array, so most are array elements (one
# that came alone is a plain job); F (job_array false): 2 plain jobs.
check_array_split() {
    local p_elems
    [ -n "$2" ] && [ -n "$3" ] || fail "$1 shows no job of P or F"
    check_eq "P: $SCHED jobs in $1" "$(echo "$2" | wc -l)" 20
    p_elems=$(echo "$2" | grep -c ' ' || true)
    [ "$p_elems" -ge 2 ] || fail "P (job_array true) ran as $p_elems array elements: $2"
    ok "P ran as $p_elems array elements in $(echo "$2" | grep ' ' | cut -d' ' -f1 | sort -u | wc -l) arrays"
    check_eq "F: plain jobs in $1 (job_array false)" "$(echo "$3" | grep -vc ' ' || true)" 2
    check_eq "F: array elements in $1" "$(echo "$3" | grep -c ' ' || true)" 0
}

# ---- fakes (e2e_pbs, e2e_lsf) ---------------------------------------------

# sub_file FILE RESOURCES: the head of a submission file.
sub_file() {
    { echo "work_base: ."; echo "resources: $2"; echo "task_list:"; } >"$1"
}

# add_task FILE DIR COMMAND: a task in DIR (made under FILE's dir/w) that
# sends back out.txt.
add_task() {
    mkdir -p "$(dirname "$1")/w/$2"
    printf '  - {command: %s, task_work_path: %s, backward_files: [out.txt]}\n' \
        "$(jq -Rn --arg c "$3" '$c')" "$2" >>"$1"
}

# submit_dir DIR: submit DIR/sub.yml in DIR/w; prints the id.
submit_dir() { jm_submit submit "$1/sub.yml" --work-dir "$1/w" || fail "submit of $1/sub.yml failed"; }

# gen_mixed_parts S LIMIT_FLAG: four submissions to run side by side:
#   S/s1  9 tasks t0..t8 in 3 jobs of 3 (an array) in queue short; t4
#         exits 3, the others write i*i
#   S/s2  4 tasks p0..p3, 2 jobs of 2, job_array false
#   S/s3  job 'limited' with custom flag LIMIT_FLAG: l0 sleeps 40 s, then l1
#   S/s4  job 'handkill': k0 and k1 sleep 40 s side by side
gen_mixed_parts() {
    local S=$1 i
    mkdir -p "$S/s1" "$S/s2" "$S/s3" "$S/s4"
    sub_file "$S/s1/sub.yml" "{group_size: 3, para_deg: 1, queue_name: short}"
    for i in $(seq 0 8); do
        if [ "$i" = 4 ]; then
            add_task "$S/s1/sub.yml" "t$i" "echo partial > out.txt; exit 3"
        else
            add_task "$S/s1/sub.yml" "t$i" "echo \$((${i} * ${i})) > out.txt"
        fi
    done
    sub_file "$S/s2/sub.yml" "{group_size: 2, para_deg: 2, job_array: false}"
    for i in 0 1 2 3; do add_task "$S/s2/sub.yml" "p$i" "echo plain $i > out.txt"; done
    sub_file "$S/s3/sub.yml" \
        "{group_size: 2, para_deg: 1, custom_flags: ['$2'], kwargs: {job_name: limited}}"
    add_task "$S/s3/sub.yml" l0 "sleep 40; echo late > out.txt"
    add_task "$S/s3/sub.yml" l1 "echo never > out.txt"
    sub_file "$S/s4/sub.yml" "{group_size: 2, para_deg: 2, kwargs: {job_name: handkill}}"
    add_task "$S/s4/sub.yml" k0 "sleep 40; echo late > out.txt"
    add_task "$S/s4/sub.yml" k1 "sleep 40; echo late > out.txt"
}

# check_array_part TAG ID DIR (s1 of gen_mixed_parts): t4 FAILED with exit
# code 3, all others (t5 after it in the same job too) DONE with i*i.
check_array_part() {
    local js i st
    js=$(status_json "$2")
    for i in $(seq 0 8); do
        st=$(task_field "$js" "t$i" state)
        if [ "$i" = 4 ]; then
            check_eq "$1 t4 state" "$st" FAILED
            check_eq "$1 t4 exit code" "$(task_field "$js" t4 exit_code)" 3
        else
            [ "$st" = DONE ] || fail "$1: task t$i: $st ($(task_field "$js" "t$i" reason))"
            check_eq "$1 t$i result" "$(cat "$3/w/t$i/out.txt")" "$((i * i))"
        fi
    done
    ok "$1: t5 (after the failing t4 in the same job) ran: DONE"
}

# check_plain_part TAG ID DIR (s2 of gen_mixed_parts): p0..p3 DONE with
# their results.
check_plain_part() {
    local js i
    js=$(status_json "$2")
    for i in 0 1 2 3; do
        check_eq "$1 p$i state" "$(task_field "$js" "p$i" state)" DONE
        check_eq "$1 p$i result" "$(cat "$3/w/p$i/out.txt")" "plain $i"
    done
}

# check_all_failed_with TAG ID WORD PATH...: each task PATH of ID FAILED with
# WORD in its reason.
check_all_failed_with() {
    local tag=$1 word=$3 js t
    js=$(status_json "$2")
    shift 3
    for t in "$@"; do check_failed_with "$tag $t" "$js" "$t" "$word"; done
}

# gen_cancel_part DIR N: N tasks, one per job named 'tocancel', each running
# 'sleep $SLEEP_MARK' (a number unique to this run, to find the processes).
gen_cancel_part() {
    local i
    mkdir -p "$1"
    sub_file "$1/sub.yml" "{group_size: 1, para_deg: 1, kwargs: {job_name: tocancel}}"
    SLEEP_MARK="45.$$$RANDOM"
    for i in $(seq 0 $(($2 - 1))); do add_task "$1/sub.yml" "c$i" "sleep $SLEEP_MARK"; done
}

# check_no_sleepers TAG: within 10 s no process of gen_cancel_part is left.
check_no_sleepers() {
    _no_sleepers() { ! pgrep -f "sleep $SLEEP_MARK" >/dev/null; }
    wait_until 10 _no_sleepers || fail "$1: task processes alive after cancel: $(pgrep -af "sleep $SLEEP_MARK")"
    ok "$1: no task process left after cancel"
}

# run_refused_part TAG DIR LOG REFUSAL: while the scheduler refuses some
# submissions (configured by the caller), 3 plain jobs q0..q2 submitted
# with --wait all run (exit 0, results back): the agent retried; LOG (the
# agent's) shows REFUSAL.
run_refused_part() {
    local i rc=0
    mkdir -p "$2"
    sub_file "$2/sub.yml" "{group_size: 1, para_deg: 1, job_array: false}"
    for i in 0 1 2; do add_task "$2/sub.yml" "q$i" "echo queued $i > out.txt"; done
    jm_submit_to "$2/wait.out" submit "$2/sub.yml" --work-dir "$2/w" --wait || rc=$?
    check_eq "$1 exit code of submit --wait while submissions are refused" "$rc" 0
    for i in 0 1 2; do check_eq "$1 q$i result" "$(cat "$2/w/q$i/out.txt")" "queued $i"; done
    grep -q "$4" "$3" || fail "$1: the agent never met the refusal (log lacks '$4')"
    ok "$1 agent log: $(grep -m1 "$4" "$3")"
}

# run_200_part TAG DIR: 200 tasks, 10 per job, 2 at once; each gets its
# number forward and sends back 3 times it: exit 0, all 200 results right.
run_200_part() {
    local n=200 i d rc=0 bad=0
    mkdir -p "$2"
    sub_file "$2/sub.yml" "{group_size: 10, para_deg: 2}"
    for i in $(seq 0 $((n - 1))); do
        d=$(printf 'b%03d' "$i")
        mkdir -p "$2/w/$d"
        echo "$i" >"$2/w/$d/in.txt"
        printf '  - {command: "echo $(( $(cat in.txt) * 3 )) > out.txt", task_work_path: %s, forward_files: [in.txt], backward_files: [out.txt]}\n' \
            "$d" >>"$2/sub.yml"
    done
    jm_submit_to "$2/wait.out" submit "$2/sub.yml" --work-dir "$2/w" --wait || rc=$?
    tail -n 2 "$2/wait.out"
    check_eq "$1 exit code of the 200-task submit --wait" "$rc" 0
    for i in $(seq 0 $((n - 1))); do
        d=$(printf 'b%03d' "$i")
        [ "$(cat "$2/w/$d/out.txt" 2>/dev/null)" = "$((i * 3))" ] || bad=$((bad + 1))
    done
    check_eq "$1 wrong or missing results of 200 tasks" "$bad" 0
}
