# fake_pbs_lib.sh - shared code of the fake PBS commands (qsub, qstat, qdel)
# for both flavours, PBS Pro/OpenPBS and Torque.  See README.md here for
# what is reproduced and from which document.  Sourced by the commands;
# also run directly:
#   bash fake_pbs_lib.sh run KEY     (one job or subjob: started by qsub)
#   bash fake_pbs_lib.sh shutdown    (tests: kill every running job by the
#                                     process group recorded for it)
#
# Knobs (environment, or lines in $FAKE_PBS_STATE/config, which is sourced
# by every command so a test can change them while jobs run):
#   FAKE_PBS_FLAVOR=pbspro|torque   which qsub/qstat/qdel to be
#   FAKE_PBS_STATE=DIR              state (default ${TMPDIR:-/tmp}/fake_pbs.UID)
#   FAKE_PBS_SERVER=fakesrv         the ".server" part of job ids
#   FAKE_PBS_MAX_QUEUED=            per-user limit on unfinished jobs (each
#                                   subjob counts); empty = none
#   FAKE_PBS_QUEUE_DELAY=0          seconds every job stays Q before it runs
#   FAKE_PBS_KILL_DELAY=2           seconds between SIGTERM and SIGKILL
#                                   (kill_delay; 10 s on real servers)
#   FAKE_PBS_KEEP_COMPLETED=300     Torque: seconds a C job stays visible
#                                   (keep_completed); PBS Pro keeps history
#
# State: $FAKE_PBS_STATE/
#   lock, seq                 the job number counter (flock)
#   jobs/KEY/                 KEY = 17 (plain job), 17[] (array), 17[3]
#     id name queue owner script workdir out err resources (one per line)
#     walltime                limit in seconds, empty if none
#     n                       arrays: number of subjobs
#     state substate          letter and number (PBS Pro substates)
#     start end exit          set as the job runs and ends
#     pgid                    process group of the running job
#     deleted                 qdel was here
#     lock                    flock for state changes

FAKE_PBS_LIB=${BASH_SOURCE[0]}
FAKE_PBS_STATE=${FAKE_PBS_STATE:-${TMPDIR:-/tmp}/fake_pbs.$(id -u)}
export FAKE_PBS_STATE
mkdir -p "$FAKE_PBS_STATE/jobs"
[ -f "$FAKE_PBS_STATE/config" ] && . "$FAKE_PBS_STATE/config"
FAKE_PBS_FLAVOR=${FAKE_PBS_FLAVOR:-pbspro}
FAKE_PBS_SERVER=${FAKE_PBS_SERVER:-fakesrv}
FAKE_PBS_MAX_QUEUED=${FAKE_PBS_MAX_QUEUED:-}
FAKE_PBS_QUEUE_DELAY=${FAKE_PBS_QUEUE_DELAY:-0}
FAKE_PBS_KILL_DELAY=${FAKE_PBS_KILL_DELAY:-2}
FAKE_PBS_KEEP_COMPLETED=${FAKE_PBS_KEEP_COMPLETED:-300}
case "$FAKE_PBS_FLAVOR" in
pbspro | torque) ;;
*) echo "fake_pbs: FAKE_PBS_FLAVOR must be pbspro or torque, not '$FAKE_PBS_FLAVOR'" >&2; exit 2 ;;
esac
FAKE_PBS_JOBS=$FAKE_PBS_STATE/jobs
FAKE_PBS_USER=${USER:-$(id -un)}

pbs_torque() { [ "$FAKE_PBS_FLAVOR" = torque ]; }
pbs_get() { cat "$FAKE_PBS_JOBS/$1/$2" 2>/dev/null || true; } # KEY FIELD
pbs_set() { # KEY FIELD VALUE (atomic: readers never see a half-written file)
    printf '%s\n' "$3" >"$FAKE_PBS_JOBS/$1/.$2.$$" && mv -f "$FAKE_PBS_JOBS/$1/.$2.$$" "$FAKE_PBS_JOBS/$1/$2"
}
pbs_now() { date +%s; }

# Finished states: PBS Pro F (jobs) and X (subjobs), Torque C.
pbs_finished() { case "$(pbs_get "$1" state)" in F | X | C) return 0 ;; esac; return 1; }

# "17", "17.fakesrv", "17[]", "17[3].fakesrv" -> KEY, or "" if malformed.
pbs_key() {
    local id=$1 srv
    case "$id" in *.*) srv=${id#*.}; id=${id%%.*}; [ "$srv" = "$FAKE_PBS_SERVER" ] || return 0 ;; esac
    [[ "$id" =~ ^[0-9]+(\[[0-9]*\])?$ ]] && echo "$id"
    return 0
}

# Torque forgets completed jobs after keep_completed; PBS Pro keeps history.
pbs_known() {
    [ -d "$FAKE_PBS_JOBS/$1" ] || return 1
    if pbs_torque && pbs_finished "$1"; then
        local end
        end=$(pbs_get "$1" end)
        [ -n "$end" ] && [ $(($(pbs_now) - end)) -ge "$FAKE_PBS_KEEP_COMPLETED" ] && return 1
    fi
    return 0
}

pbs_hms() { printf '%02d:%02d:%02d' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }

# "[[HH:]MM:]SS" -> seconds
pbs_secs() {
    local IFS=: t=0 p
    for p in $1; do t=$((t * 60 + 10#$p)); done
    echo $t
}

# Ends a job that never ran (deleted while queued): PBS Pro F substate 91
# (terminated) without Exit_status, Torque C without exit_status.
pbs_end_unrun() {
    pbs_set "$1" end "$(pbs_now)"
    if pbs_torque; then pbs_set "$1" state C; else
        pbs_set "$1" substate 91 # the state last: readers take it as final
        pbs_set "$1" state "$([[ $1 == *\[[0-9]* ]] && echo X || echo F)"
    fi
    pbs_array_update "$1"
}

# A subjob changed: its array is B (begun) once one runs, F when all ended.
pbs_array_update() {
    local key=$1 akey k all=1
    [[ $key == *\[[0-9]* ]] || return 0
    akey=${key%%\[*}[]
    pbs_torque && return 0 # Torque shows no state of its own for an array
    for k in "$FAKE_PBS_JOBS/${akey%[]}["[0-9]*; do
        pbs_finished "$(basename "$k")" || all=0
    done
    if [ $all = 1 ]; then
        pbs_set "$akey" state F; pbs_set "$akey" substate 92; pbs_set "$akey" end "$(pbs_now)"
    else
        pbs_set "$akey" state B; pbs_set "$akey" substate 70
    fi
}

# run KEY: the life of one job or subjob (own session, started by qsub).
pbs_run() {
    local key=$1 d=$FAKE_PBS_JOBS/$1 wt start rc ex idx out err
    exec 9>"$d/lock"
    sleep "$FAKE_PBS_QUEUE_DELAY"
    flock 9
    [ -e "$d/deleted" ] && return 0 # qdel ended it while queued
    start=$(pbs_now)
    pbs_set "$key" state R
    pbs_set "$key" substate 42
    pbs_set "$key" start "$start"
    pbs_array_update "$key"
    idx=
    [[ $key =~ \[([0-9]+)\] ]] && idx=${BASH_REMATCH[1]}
    out=$(pbs_get "$key" out)
    err=$(pbs_get "$key" err)
    [ -n "$err" ] || err=$out # -j oe
    wt=$(pbs_get "$key" walltime)
    local -a env=(HOME="$HOME" USER="$FAKE_PBS_USER" LOGNAME="$FAKE_PBS_USER" SHELL=/bin/bash
        PATH="$(pbs_get "$key" path)" PBS_ENVIRONMENT=PBS_BATCH PBS_JOBID="$(pbs_get "$key" id)"
        PBS_JOBNAME="$(pbs_get "$key" name)" PBS_QUEUE="$(pbs_get "$key" queue)"
        PBS_O_WORKDIR="$(pbs_get "$key" workdir)" PBS_O_HOME="$HOME" PBS_O_HOST="$(hostname)")
    if [ -n "$idx" ]; then
        if pbs_torque; then env+=(PBS_ARRAYID="$idx"); else env+=(PBS_ARRAY_INDEX="$idx"); fi
    fi
    # timeout(1) makes its own process group: qdel and the walltime kill hit
    # the job's whole group, as pbs_mom does
    cd "$HOME" 2>/dev/null || cd /
    timeout -k "$FAKE_PBS_KILL_DELAY" "${wt:-0}" env -i "${env[@]}" /bin/bash "$(pbs_get "$key" script)" \
        >>"$out" 2>>"$err" </dev/null 9>&- &
    pbs_set "$key" pgid $!
    flock -u 9
    rc=0
    wait $! || rc=$?
    flock 9
    if [ -n "$wt" ] && [ "$wt" != 0 ] && [ $(($(pbs_now) - start)) -ge "$wt" ] &&
        { [ $rc = 124 ] || [ $rc = 137 ]; } && [ ! -e "$d/deleted" ]; then
        # pbs_mom's message in the job's stderr, then the JOB_EXEC code
        echo "=>> PBS: job killed: walltime $(($(pbs_now) - start)) exceeded limit $wt" >>"$err"
        if pbs_torque; then ex=-11; else ex=-29; fi
    elif [ $rc -gt 128 ]; then
        ex=$((256 + rc - 128)) # top process killed by signal N: 256+N
    else
        ex=$rc
    fi
    pbs_set "$key" exit "$ex"
    pbs_set "$key" end "$(pbs_now)"
    if pbs_torque; then pbs_set "$key" state C; else
        pbs_set "$key" substate "$([ -e "$d/deleted" ] && echo 91 || echo 92)"
        pbs_set "$key" state "$([ -n "$idx" ] && echo X || echo F)"
    fi
    rm -f "$d/pgid"
    pbs_array_update "$key"
}

# shutdown: kill every job still running (tests' cleanup).
pbs_shutdown() {
    local f
    for f in "$FAKE_PBS_JOBS"/*/pgid; do
        [ -f "$f" ] || continue
        kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
    done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
    run) pbs_run "$2" ;;
    shutdown) pbs_shutdown ;;
    *) echo "usage: fake_pbs_lib.sh run KEY | shutdown" >&2; exit 2 ;;
    esac
fi
