# fleet_lib.sh - sourced by tests/e2e_fleet.sh and tests/bench_fleet.sh
# after e2e_lib.sh and netns_lib.sh: the multi-site fleet scenario.
# (Not named e2e_*.sh: CMake makes every tests/e2e_*.sh a test of its own.)
#
# The fleet: one jobman-coord in the host namespace bound to the test
# bridge's address ($NETNS_HOST_IP), heartbeat_ms $FLEET_HB_MS and
# requeue_after_ms $FLEET_REQUEUE_MS; three agents dialling it:
#   siteA  namespace a, Shell, 4 slots; entry fleet_a: 'sleep 0.2; echo A'
#   siteB  namespace b, Shell, 2 slots; entry fleet_b: 'sleep 0.6; echo B'
#   siteC  host namespace (slurmctld listens on the host's loopback), the
#          real Slurm with --max-jobs 2 --poll-ms 1000 when it is up, else
#          Shell with 2 slots (said in the output; JM_REQUIRE_CLUSTERS=1
#          makes a missing Slurm a failure); entry fleet_c: 'sleep 0.4;
#          echo C'; JM_FLEET_SITEC=shell forces Shell
#
#   fleet_start               network, coordinator, agents; waits until
#                             'jobman-submit sites --json' shows all three up
#   fleet_machine_file FILE [RATIO]   the thkit MACHINE.yml (entries
#                             fleet_a/b/c, each with site, command,
#                             batch_type, remote_root = the agent's root,
#                             group_size $FLEET_GROUP; RATIO: the same
#                             work_load_ratio on each entry)
#   fleet_gen_sub FILE DIR N  a submission of N tasks in DIR (t000...):
#                             each writes t0.txt/t1.txt (date +%s.%N at
#                             start/end), runs {command} > ran_by.txt and
#                             writes out.txt = i*i
#   fleet_submit SUB MACHINE  jobman-submit submit --machine --prefix fleet;
#                             prints the submission id
#   fleet_wait ID SECS [1]    jobman-submit wait ID (exit 0 wanted; with
#                             1 also exit 1: some task failed)
#   fleet_collect ID DIR N TSV   checks every task (DONE, out.txt, ran_by.txt
#                             = letter of its site), writes "path site t0 t1"
#                             lines to TSV; returns the number of bad tasks
#                             in FLEET_BAD (messages on stderr)
#   fleet_stats TSV N         prints the per-site and overall figures and
#                             a last line "RESULT makespan ideal ratio nA nB nC"
#   start_clock, elapsed      seconds since start_clock ("12.3")
#   fleet_sites_json          'jobman-submit sites --json' as a JSON array
#   fleet_site_field NAME F   field F of site NAME from fleet_sites_json

FLEET_HB_MS=${FLEET_HB_MS:-300}
FLEET_REQUEUE_MS=${FLEET_REQUEUE_MS:-2000}
FLEET_GROUP=${FLEET_GROUP:-2}
FLEET_PFX="jmfl$$r$RANDOM" # Slurm job names of this run
FLEET_SITES="siteA siteB siteC"
declare -A FLEET_LETTER=([siteA]=A [siteB]=B [siteC]=C)
declare -A FLEET_SLEEP=([siteA]=0.2 [siteB]=0.6 [siteC]=0.4)

_fleet_slurm_up() {
    command -v sbatch >/dev/null && command -v squeue >/dev/null || return 1
    timeout 10 sinfo -h -o '%a' 2>/dev/null | grep -qx up
}

if [ "${JM_FLEET_SITEC:-}" = shell ]; then
    FLEET_C_SCHED=shell
    FLEET_C_BATCH=Shell
    echo "fleet: NOTE: JM_FLEET_SITEC=shell: siteC runs the Shell backend"
elif _fleet_slurm_up; then
    FLEET_C_SCHED=slurm
    FLEET_C_BATCH=Slurm
    echo "fleet: siteC runs on the real Slurm (job names $FLEET_PFX*)"
else
    if [ "${JM_REQUIRE_CLUSTERS:-0}" = 1 ]; then
        echo "FAIL: ${JM_TEST_NAME}: Slurm is not up (run deploy/slurm-up.sh)" >&2
        exit 1
    fi
    FLEET_C_SCHED=shell
    FLEET_C_BATCH=Shell
    echo "fleet: NOTE: Slurm is not up (deploy/slurm-up.sh starts it): siteC runs" \
        "the Shell backend instead"
fi

# Our Slurm jobs still queued or running at exit (their script lies under
# siteC's root, their name starts with $FLEET_PFX): scancel'ed by id after
# the agents were killed.
_fleet_cancel_slurm() {
    [ "$FLEET_C_SCHED" = slurm ] || return 0
    local root ids
    root=$(agent_root siteC)
    ids=$(squeue -h -r -o '%i|%j|%o' 2>/dev/null \
        | awk -F'|' -v p="$FLEET_PFX" -v r="$root/" \
            'index($2, p) == 1 && index($3, r) == 1 { print $1 }')
    [ -z "$ids" ] && return 0
    echo "fleet: scancel leftover Slurm jobs:" $ids >&2
    # shellcheck disable=SC2086
    scancel $ids 2>/dev/null || true
}
netns_on_exit _fleet_cancel_slurm

fleet_start_coord() {
    timeout 30 "$COORD" init --home "$JOBMAN_HOME" --bind "tcp://$NETNS_HOST_IP:*" \
        >>"$T/coord_init.log" 2>&1 || fail "jobman-coord init failed: $(tail -n 3 "$T/coord_init.log")"
    local cfg=$JOBMAN_HOME/config.yml
    grep -q '^heartbeat_ms:' "$cfg" || fail "$cfg has no heartbeat_ms line"
    grep -q '^requeue_after_ms:' "$cfg" || fail "$cfg has no requeue_after_ms line (jm_config too old?)"
    sed -i -e "s/^heartbeat_ms:.*/heartbeat_ms: $FLEET_HB_MS/" \
        -e "s/^requeue_after_ms:.*/requeue_after_ms: $FLEET_REQUEUE_MS/" "$cfg"
    rm -f "$JOBMAN_HOME/coord.endpoint"
    "$COORD" run --home "$JOBMAN_HOME" --bind "tcp://$NETNS_HOST_IP:*" >>"$T/coord.log" 2>&1 &
    COORD_PID=$!
    _jm_record_pid "$COORD_PID"
    wait_for_file "$JOBMAN_HOME/coord.endpoint" 15
    COORD_EP=$(head -n1 "$JOBMAN_HOME/coord.endpoint")
    case "$COORD_EP" in
    "tcp://$NETNS_HOST_IP:"[0-9]*) ;;
    *) fail "coordinator endpoint '$COORD_EP' is not on the bridge address $NETNS_HOST_IP" ;;
    esac
    kill -0 "$COORD_PID" 2>/dev/null || fail "jobman-coord run exited at start"
    echo "coordinator pid $COORD_PID at $COORD_EP (heartbeat_ms $FLEET_HB_MS," \
        "requeue_after_ms $FLEET_REQUEUE_MS)"
}

# fleet_start_agent NAME NS ARGS...: init, allow and run agent NAME (site
# NAME, root agent_root NAME) in namespace NS ("" = the host's).
fleet_start_agent() {
    local name=$1 ns=$2 home root pid
    shift 2
    _jm_agent_init "$name"
    home=$(agent_home "$name")
    root=$(agent_root "$name")
    timeout 30 "$COORD" allow "$home/agent.cert" --name "$name" --home "$JOBMAN_HOME" \
        >>"$T/coord_init.log" 2>&1 || fail "jobman-coord allow $name failed"
    local cmd=("$AGENT" run --home "$home" --coordinator "$COORD_EP"
        --coordinator-cert "$JOBMAN_HOME/coord.cert" --site "$name" --root "$root"
        --heartbeat-ms "$FLEET_HB_MS" "$@")
    if [ -n "$ns" ]; then
        netns_exec "$ns" "${cmd[@]}" >>"$T/agent_$name.log" 2>&1 &
    else
        "${cmd[@]}" >>"$T/agent_$name.log" 2>&1 &
    fi
    pid=$!
    _jm_record_pid "$pid"
    eval "AGENT_PID_$name=$pid"
    local where="the host namespace"
    [ -n "$ns" ] && where="namespace $ns ($(netns_ip "$ns"))"
    echo "agent $name pid $pid in $where ($*)"
}

# 'jobman-submit sites --json' as an array of site records ([] on error).
start_clock() { FLEET_T0=$(date +%s.%N); }
elapsed() { awk -v a="$FLEET_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

fleet_sites_json() {
    jm_submit sites --json 2>>"$T/sites.err" | jq -c 'if type == "array" then . else .sites end' \
        2>>"$T/sites.err" || echo '[]'
}

fleet_site_field() { # NAME FIELD
    fleet_sites_json | jq -r --arg n "$1" --arg f "$2" \
        '.[] | select(.name == $n) | .[$f] | tostring'
}

_fleet_all_up() {
    local js s
    js=$(fleet_sites_json)
    for s in $FLEET_SITES; do
        [ "$(echo "$js" | jq -r --arg n "$s" '.[] | select(.name == $n) | .state')" = up ] || return 1
    done
}

fleet_start() {
    netns_add a
    netns_add b
    fleet_start_coord
    fleet_start_agent siteA a --scheduler shell --slots 4
    fleet_start_agent siteB b --scheduler shell --slots 2
    if [ "$FLEET_C_SCHED" = slurm ]; then
        fleet_start_agent siteC "" --scheduler slurm --max-jobs 2 --poll-ms 1000
    else
        fleet_start_agent siteC "" --scheduler shell --slots 2
    fi
    wait_until 30 _fleet_all_up \
        || fail "not all of $FLEET_SITES are up after 30 s: $(jm_submit sites 2>&1 | head -n 10)"
    ok "sites up: $(fleet_sites_json | jq -r '[.[] | "\(.name) \(.state) slots \(.slots) max_jobs \(.max_jobs)"] | join("; ")')"
}

fleet_machine_file() { # FILE [RATIO]
    local f=$1 ratio=${2:-} s e res
    : >"$f"
    for s in $FLEET_SITES; do
        e="fleet_${FLEET_LETTER[$s],,}"
        res="{group_size: $FLEET_GROUP, para_deg: 1}"
        local batch=Shell
        if [ "$s" = siteC ]; then
            batch=$FLEET_C_BATCH
            [ "$FLEET_C_SCHED" = slurm ] \
                && res="{group_size: $FLEET_GROUP, para_deg: 1, queue_name: debug, kwargs: {job_name: $FLEET_PFX}}"
        fi
        cat >>"$f" <<EOT
$e:
  machine:
    batch_type: $batch
    context_type: LocalContext
    remote_root: $(agent_root "$s")
  resources: $res
  command: "sleep ${FLEET_SLEEP[$s]}; echo ${FLEET_LETTER[$s]}"
  site: $s
EOT
        [ -n "$ratio" ] && echo "  work_load_ratio: $ratio" >>"$f"
    done
    # an entry of another prefix, which --prefix fleet must leave out
    cat >>"$f" <<EOT
other_1:
  machine: {batch_type: Shell, remote_root: /nonexistent}
  command: "echo WRONG"
  site: siteA
EOT
}

fleet_gen_sub() { # FILE DIR N
    local f=$1 dir=$2 n=$3 i d
    mkdir -p "$dir"
    {
        echo "work_base: $(basename "$dir")"
        echo "resources: {group_size: $FLEET_GROUP, para_deg: 1}"
        echo "task_list:"
        for i in $(seq 0 $((n - 1))); do
            d=$(printf 't%03d' "$i")
            mkdir -p "$dir/$d"
            echo "  - command: 'date +%s.%N > t0.txt && ( {command} ) > ran_by.txt && echo \$(($i*$i)) > out.txt && date +%s.%N > t1.txt'"
            echo "    task_work_path: $d"
            echo "    backward_files: [out.txt, ran_by.txt, t0.txt, t1.txt]"
        done
    } >"$f"
}

fleet_submit() { # SUB MACHINE -> id
    local base id rc=0
    base=$T/submit_$(basename "$1" .yml)
    timeout --kill-after=5 "$JM_CMD_TIMEOUT" "$SUBMIT" submit "$1" --work-dir "$(dirname "$1")" \
        --machine "$2" --prefix fleet --json >"$base.out" 2>"$base.err" || rc=$?
    [ $rc = 0 ] || fail "jobman-submit submit $1 --machine $2 exited $rc: $(cat "$base.out" "$base.err")"
    id=$(jq -r '.id // empty' "$base.out" 2>/dev/null || true)
    [ -n "$id" ] || fail "submit --json printed no id: $(cat "$base.out" "$base.err")"
    if [ -s "$base.err" ]; then sed 's/^/  submit: /' "$base.err" >&2; fi
    echo "$id"
}

fleet_wait() { # ID SECS [1: a failed task is no failure (exit 1 accepted)]
    local rc=0
    JM_CMD_TIMEOUT=$2 jm_submit_to "$T/wait_$1.out" wait "$1" || rc=$?
    [ $rc = 0 ] || { [ $rc = 1 ] && [ "${3:-0}" = 1 ]; } || fail "jobman-submit wait $1 exited $rc: $(tail -n 5 "$T/wait_$1.out");" \
        "counts: $(status_json "$1" | jq -c '.submissions[0].counts')"
}

fleet_collect() { # ID DIR N TSV
    local id=$1 dir=$2 n=$3 tsv=$4 path state site d t0 t1 rb out i want bad=0 seen=0
    status_json "$id" >"$T/status_$id.json"
    : >"$tsv"
    while IFS=$'\t' read -r path state site; do
        seen=$((seen + 1))
        d=$dir/$path
        i=$((10#${path#t}))
        want=$((i * i))
        if [ "$state" != DONE ]; then
            echo "task $path: state $state at '$site'" >&2
            bad=$((bad + 1))
            continue
        fi
        t0="" t1="" rb="" out=""
        read -r t0 <"$d/t0.txt" 2>/dev/null || true
        read -r t1 <"$d/t1.txt" 2>/dev/null || true
        read -r rb <"$d/ran_by.txt" 2>/dev/null || true
        read -r out <"$d/out.txt" 2>/dev/null || true
        if [ "$out" != "$want" ]; then
            echo "task $path: out.txt '$out', want '$want'" >&2
            bad=$((bad + 1))
        elif [ -z "${FLEET_LETTER[$site]:-}" ] || [ "$rb" != "${FLEET_LETTER[$site]}" ]; then
            echo "task $path: ran at '$site' but ran_by.txt says '$rb' (want the command of its entry)" >&2
            bad=$((bad + 1))
        elif [ -z "$t0" ] || [ -z "$t1" ]; then
            echo "task $path: no t0.txt/t1.txt" >&2
            bad=$((bad + 1))
        else
            printf '%s\t%s\t%s\t%s\n' "$path" "$site" "$t0" "$t1" >>"$tsv"
        fi
    done < <(jq -r '.submissions[0].tasks[] | [.path, .state, (.site // "")] | @tsv' "$T/status_$id.json")
    if [ "$seen" != "$n" ]; then
        echo "status lists $seen tasks, want $n" >&2
        bad=$((bad + 1))
    fi
    FLEET_BAD=$bad
}

fleet_stats() { # TSV N
    awk -F'\t' -v N="$2" '
        { site = $2; t0 = $3 + 0; t1 = $4 + 0
          n[site]++
          if (!(site in first) || t0 < first[site]) first[site] = t0
          if (!(site in last) || t1 > last[site]) last[site] = t1
          if (NR == 1 || t0 < gfirst) gfirst = t0
          if (NR == 1 || t1 > glast) glast = t1 }
        END {
          sum = 0
          for (s in n) {
              span = last[s] - first[s]
              c = span > 0 ? n[s] / span : 0
              sum += c
              printf "  %-6s %4d tasks  first start +%6.2f s  last end +%6.2f s  capacity %6.2f tasks/s\n", \
                  s, n[s], first[s] - gfirst, last[s] - gfirst, c
          }
          mk = glast - gfirst
          ideal = sum > 0 ? NR / sum : 0 # NR = N when every task is good
          ratio = ideal > 0 ? mk / ideal : 0
          printf "  makespan %.2f s, ideal %.2f s (%d / sum of capacities), ratio %.3f\n", mk, ideal, NR, ratio
          printf "RESULT %.3f %.3f %.3f %d %d %d\n", mk, ideal, ratio, n["siteA"], n["siteB"], n["siteC"]
        }' "$1"
}
