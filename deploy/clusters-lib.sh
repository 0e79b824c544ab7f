# clusters-lib.sh -- sourced by deploy/{slurm,sge}-down.sh.  The caller sets
# STATE (its directory of recorded PIDs) and STOP_TIMEOUT (seconds), and
# defines log().

# stop_recorded NAME: stop the daemon whose PID deploy/*-up.sh recorded in
# $STATE/NAME.pid -- only if that PID still is NAME (PIDs get reused) --
# with SIGTERM, then SIGKILL after $STOP_TIMEOUT s; forget the PID file.
stop_recorded() {
    local name=$1 t=$STOP_TIMEOUT f="$STATE/$1.pid" pid
    [[ -s "$f" ]] || return 0
    pid="$(cat "$f")"
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
