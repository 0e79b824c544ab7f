# fake_lsf_lib.sh - shared code of the fake LSF commands (bsub, bjobs, bkill)
# and of the fake "mbatchd" that starts, times and ends their jobs.
# See README.md in this directory for what is reproduced and from which
# document.  Sourced by the commands; also run directly:
#   bash fake_lsf_lib.sh mbatchd        (started by bsub, in the background)
#   bash fake_lsf_lib.sh run ID IDX      (one job element, started by mbatchd)
#   bash fake_lsf_lib.sh shutdown        (tests: stop mbatchd and every running
#                                         element, by their recorded PIDs)
#
# State: $FAKE_LSF_STATE (default ${TMPDIR:-/tmp}/fake_lsf.$UID):
#   lock                 flock(1) for every change
#   config               optional, sourced on every command (tests change
#                        the knobs below while jobs run)
#   next_id              last job id handed out
#   mbatchd.pid
#   jobs/ID/meta         name queue n runlimit_secs out err cwd user submit
#   jobs/ID/script       the script read from bsub's stdin
#   jobs/ID/env          the submission environment (NUL-separated)
#   jobs/ID/e.IDX        one line: STAT|EXIT_CODE|EXIT_REASON|PGID|START|ELIGIBLE|END|KILL_AT
#                        (IDX 0 for a plain job); "-" for empty fields
#   jobs/ID/over         all elements finished
#
# Knobs (environment or config file):
#   FAKE_LSF_SLOTS=4          elements running at once (the "cluster")
#   FAKE_LSF_PEND_SECS=0      every element stays PEND at least this long
#   FAKE_LSF_MAX_PEND=        per-user pending job threshold (MAX_PEND_JOBS);
#                             empty = no limit; array elements count one each
#   FAKE_LSF_SUB_TRY_SECS=60  bsub's wait between tries (SUB_TRY_INTERVAL)
#   FAKE_LSF_MINUTE_SECS=60   length of a "minute" of -W run limits
#   FAKE_LSF_TERM_SECS=1      grace between signals when killing
#                             (JOB_TERMINATE_INTERVAL, 10 s in LSF)
#   FAKE_LSF_CLEAN_SECS=3600  finished jobs stay visible (CLEAN_PERIOD)
#   FAKE_LSF_IDLE_EXIT=10     mbatchd exits after this long with nothing to do
#   FAKE_LSF_TICK=0.3         mbatchd's scheduling interval

FAKE_LSF_LIB=${BASH_SOURCE[0]}
FAKE_LSF_STATE=${FAKE_LSF_STATE:-${TMPDIR:-/tmp}/fake_lsf.$(id -u)}
mkdir -p "$FAKE_LSF_STATE/jobs"
export FAKE_LSF_STATE

fake_lsf_config() {
    FAKE_LSF_SLOTS=${FAKE_LSF_SLOTS:-4}
    FAKE_LSF_PEND_SECS=${FAKE_LSF_PEND_SECS:-0}
    FAKE_LSF_MAX_PEND=${FAKE_LSF_MAX_PEND:-}
    FAKE_LSF_SUB_TRY_SECS=${FAKE_LSF_SUB_TRY_SECS:-60}
    FAKE_LSF_MINUTE_SECS=${FAKE_LSF_MINUTE_SECS:-60}
    FAKE_LSF_TERM_SECS=${FAKE_LSF_TERM_SECS:-1}
    FAKE_LSF_CLEAN_SECS=${FAKE_LSF_CLEAN_SECS:-3600}
    FAKE_LSF_IDLE_EXIT=${FAKE_LSF_IDLE_EXIT:-10}
    FAKE_LSF_TICK=${FAKE_LSF_TICK:-0.3}
    if [ -f "$FAKE_LSF_STATE/config" ]; then
        # shellcheck disable=SC1091
        . "$FAKE_LSF_STATE/config"
    fi
}
fake_lsf_config

fake_lsf_now() { printf '%(%s)T' -1; }

# fake_lsf_locked CMD...: run CMD holding the state lock.
fake_lsf_locked() {
    local rc=0
    exec {_fl_fd}>>"$FAKE_LSF_STATE/lock"
    flock "$_fl_fd"
    "$@" || rc=$?
    flock -u "$_fl_fd"
    exec {_fl_fd}>&-
    return $rc
}

# Element records ----------------------------------------------------------
# fake_lsf_read ID IDX: sets E_STAT E_CODE E_REASON E_PGID E_START E_ELIG E_END E_KILL
fake_lsf_read() {
    IFS='|' read -r E_STAT E_CODE E_REASON E_PGID E_START E_ELIG E_END E_KILL \
        <"$FAKE_LSF_STATE/jobs/$1/e.$2" || return 1
}

# fake_lsf_write ID IDX: writes the E_* variables back (atomically).
fake_lsf_write() {
    local f=$FAKE_LSF_STATE/jobs/$1/e.$2
    printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$E_STAT" "$E_CODE" "$E_REASON" "$E_PGID" \
        "$E_START" "$E_ELIG" "$E_END" "$E_KILL" >"$f.tmp"
    mv -f "$f.tmp" "$f"
}

# fake_lsf_meta ID: sets M_NAME M_QUEUE M_N M_RUNLIMIT M_OUT M_ERR M_CWD M_USER M_SUBMIT
fake_lsf_meta() {
    local f=$FAKE_LSF_STATE/jobs/$1/meta
    [ -f "$f" ] || return 1
    { IFS= read -r M_NAME; IFS= read -r M_QUEUE; IFS= read -r M_N; IFS= read -r M_RUNLIMIT
      IFS= read -r M_OUT; IFS= read -r M_ERR; IFS= read -r M_CWD; IFS= read -r M_USER
      IFS= read -r M_SUBMIT; } <"$f"
}

# fake_lsf_indices ID: the element indices of job ID (0 for a plain job).
fake_lsf_indices() {
    local n
    n=$(sed -n 3p "$FAKE_LSF_STATE/jobs/$1/meta")
    if [ "$n" = 0 ]; then echo 0; else seq 1 "$n"; fi
}

# Job ids known to the fake, ascending, dropping jobs older than CLEAN_PERIOD.
fake_lsf_job_ids() {
    local d id now end
    now=$(fake_lsf_now)
    for d in "$FAKE_LSF_STATE"/jobs/*/; do
        id=${d%/}
        id=${id##*/}
        [[ $id =~ ^[0-9]+$ ]] || continue
        if [ -f "$d/over" ]; then
            read -r end <"$d/over" || end=$now
            [ $((now - end)) -le "$FAKE_LSF_CLEAN_SECS" ] || continue
        fi
        echo "$id"
    done | sort -n
}

# Signals the process group of a running element (records nothing).
fake_lsf_signal() { # SIG PGID
    [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 1 ] || return 0
    kill -s "$1" -- "-$2" 2>/dev/null || true
}

# mbatchd ---------------------------------------------------------------------
# Starts pending elements when a slot is free and their queue delay is over,
# enforces -W run limits (SIGUSR2, SIGKILL after the grace), sends the second
# signal of bkill's sequence, exits when idle.
fake_lsf_tick() {
    local now id idx running=0 busy=0
    now=$(fake_lsf_now)
    local -a pend=()
    for id in $(fake_lsf_job_ids); do
        [ -f "$FAKE_LSF_STATE/jobs/$id/over" ] && continue
        fake_lsf_meta "$id" || continue
        local left=0
        for idx in $(fake_lsf_indices "$id"); do
            fake_lsf_read "$id" "$idx" || continue
            case $E_STAT in
            PEND)
                left=1
                busy=1
                [ "$E_ELIG" -le "$now" ] && pend+=("$id:$idx")
                ;;
            RUN | STARTING)
                left=1
                busy=1
                running=$((running + 1))
                if [ "$E_STAT" = RUN ] && [ "$M_RUNLIMIT" != - ] && [ "$E_REASON" = - ] &&
                    [ $((now - E_START)) -ge "$M_RUNLIMIT" ]; then
                    # bsub -W: "the job is sent a SIGUSR2 signal, and is killed
                    # if it does not terminate within ten minutes"
                    E_REASON="TERM_RUNLIMIT: job killed after reaching LSF run time limit"
                    E_KILL=$((now + FAKE_LSF_TERM_SECS))
                    fake_lsf_write "$id" "$idx"
                    fake_lsf_signal USR2 "$E_PGID"
                elif [ "$E_KILL" != - ] && [ "$now" -ge "$E_KILL" ]; then
                    E_KILL=-
                    fake_lsf_write "$id" "$idx"
                    fake_lsf_signal KILL "$E_PGID"
                fi
                ;;
            *) ;;
            esac
        done
        [ $left = 1 ] || echo "$now" >"$FAKE_LSF_STATE/jobs/$id/over"
    done
    local p
    for p in "${pend[@]}"; do
        [ "$running" -lt "$FAKE_LSF_SLOTS" ] || break
        id=${p%%:*}
        idx=${p##*:}
        fake_lsf_read "$id" "$idx" || continue
        E_STAT=STARTING
        E_START=$now
        fake_lsf_write "$id" "$idx"
        running=$((running + 1))
        setsid bash "$FAKE_LSF_LIB" run "$id" "$idx" </dev/null >/dev/null 2>&1 &
    done
    [ $busy = 1 ]
}

fake_lsf_mbatchd() {
    echo $$ >"$FAKE_LSF_STATE/mbatchd.pid"
    local idle_since
    idle_since=$(fake_lsf_now)
    while :; do
        fake_lsf_config
        if fake_lsf_locked fake_lsf_tick; then
            idle_since=$(fake_lsf_now)
        elif [ $(($(fake_lsf_now) - idle_since)) -ge "$FAKE_LSF_IDLE_EXIT" ]; then
            # exit only if no bsub came in meanwhile (checked under the lock)
            if fake_lsf_locked fake_lsf_idle_exit; then
                exit 0
            fi
            idle_since=$(fake_lsf_now)
        fi
        sleep "$FAKE_LSF_TICK"
    done
}

fake_lsf_idle_exit() {
    fake_lsf_tick && return 1
    rm -f "$FAKE_LSF_STATE/mbatchd.pid"
    return 0
}

# Called by bsub under the lock: start mbatchd unless it runs.
fake_lsf_ensure_mbatchd() {
    local pid
    if [ -f "$FAKE_LSF_STATE/mbatchd.pid" ]; then
        read -r pid <"$FAKE_LSF_STATE/mbatchd.pid" || pid=
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
    fi
    setsid bash "$FAKE_LSF_LIB" mbatchd </dev/null >/dev/null 2>&1 &
    echo $! >"$FAKE_LSF_STATE/mbatchd.pid"
}

# One element: runs the script in its own session, waits, records the end.
fake_lsf_run() {
    local id=$1 idx=$2 dir=$FAKE_LSF_STATE/jobs/$1
    fake_lsf_meta "$id" || exit 1
    local sid=$id jobname=$M_NAME
    if [ "$idx" != 0 ]; then
        sid="$id[$idx]"
        jobname="$M_NAME[$idx]"
    fi
    local out=${M_OUT//%J/$id} err=${M_ERR//%J/$id}
    out=${out//%I/$idx}
    err=${err//%I/$idx}
    [ "$out" = - ] && out=/dev/null
    [ "$err" = - ] && err=$out
    local -a envs=()
    mapfile -d '' envs <"$dir/env"
    local cwd=$M_CWD
    [ -d "$cwd" ] || cwd=/
    trap '' HUP
    (
        cd "$cwd" || exit 1
        exec env -i "${envs[@]}" LSB_JOBID="$id" LSB_JOBINDEX="$idx" LSB_JOBNAME="$jobname" \
            LSB_QUEUE="$M_QUEUE" LSB_BATCH_JID="$sid" \
            setsid bash "$dir/script" </dev/null >>"$out" 2>>"$err"
    ) &
    local child=$! code=0
    # the script's session/process group id is the pid of setsid's exec
    fake_lsf_locked fake_lsf_started "$id" "$idx" "$child"
    wait "$child" || code=$?
    fake_lsf_locked fake_lsf_finished "$id" "$idx" "$code"
    # the job report LSF appends to the output file (-o)
    if [ "$out" != /dev/null ]; then
        fake_lsf_read "$id" "$idx"
        {
            echo
            echo "Sender: LSF System <lsfadmin@$(uname -n)>"
            echo "Subject: Job $sid: <$jobname> in cluster <fake_lsf> $([ "$E_STAT" = DONE ] && echo Done || echo Exited)"
            echo
            [ "$E_REASON" != - ] && echo "$E_REASON."
            if [ "$E_STAT" = DONE ]; then echo "Successfully completed."; else echo "Exited with exit code $code."; fi
        } >>"$out" 2>/dev/null || true
    fi
}

fake_lsf_started() { # ID IDX PGID
    fake_lsf_read "$1" "$2" || return 0
    E_PGID=$3
    if [ "$E_STAT" = STARTING ]; then
        E_STAT=RUN
    elif [ "$E_STAT" = EXIT ]; then
        # bkill'ed while starting: finish the kill now
        fake_lsf_signal KILL "$3"
        return 0
    fi
    fake_lsf_write "$1" "$2"
}

fake_lsf_finished() { # ID IDX CODE
    fake_lsf_read "$1" "$2" || return 0
    E_END=$(fake_lsf_now)
    E_KILL=-
    E_PGID=-
    if [ "$E_REASON" = - ] && [ "$3" = 0 ]; then
        E_STAT=DONE
        E_CODE=-
    else
        E_STAT=EXIT
        E_CODE=$3
    fi
    fake_lsf_write "$1" "$2"
}

fake_lsf_shutdown() {
    local pid id idx
    if [ -f "$FAKE_LSF_STATE/mbatchd.pid" ]; then
        read -r pid <"$FAKE_LSF_STATE/mbatchd.pid" || pid=
        [[ $pid =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null
        rm -f "$FAKE_LSF_STATE/mbatchd.pid"
    fi
    for id in $(fake_lsf_job_ids); do
        for idx in $(fake_lsf_indices "$id"); do
            fake_lsf_read "$id" "$idx" || continue
            [ "$E_PGID" != - ] && fake_lsf_signal KILL "$E_PGID"
        done
    done
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case ${1:-} in
    mbatchd) fake_lsf_mbatchd ;;
    run) fake_lsf_run "$2" "$3" ;;
    shutdown) fake_lsf_shutdown ;;
    *)
        echo "usage: $0 mbatchd | run ID IDX | shutdown" >&2
        exit 2
        ;;
    esac
fi
