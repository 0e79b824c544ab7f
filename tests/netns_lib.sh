# netns_lib.sh - sourced by tests/e2e_*.sh AFTER e2e_lib.sh: a private
# network for the test, made of Linux network namespaces on one bridge.
# (Not named e2e_*.sh: CMake makes every tests/e2e_*.sh a test of its own.)
#
# Sourcing it checks that we are root and that 'ip netns' works, else the
# test is SKIPPED (exit 77) with a message saying why.  Then it creates a
# bridge jmbr<pid> in the host namespace with address $NETNS_HOST_IP
# (10.232.<k>.1/24, <k> chosen from the test's PID and not used by any
# interface yet), so concurrent tests do not clash.
#
#   netns_add NAME       a namespace with lo up and a veth on the bridge
#                        (eth0 inside) with the next address; sets
#                        NETNS_IP_<NAME> (NAME: [A-Za-z0-9_]); says so
#   netns_ip NAME        that address
#   netns_exec NAME CMD...   CMD inside NAME's namespace ('ip netns exec'
#                        execs CMD: '$!' of 'netns_exec NAME CMD &' is
#                        CMD's own PID)
#   netns_pids NAME      PIDs of every process inside NAME's namespace
#   netns_on_exit CMD    run CMD (one word: a function) at exit, after
#                        the recorded PIDs were killed and before the
#                        network goes (e.g. cancel leftover batch jobs)
#   netns_kill NAME [SIG]    signal (default KILL) every process inside
#                        NAME's namespace, by PID, and wait until they are
#                        gone (at most 5 s); returns 1 if some survived
#
# Cleanup runs on every exit (success, failure, watchdog): first the test's
# recorded PIDs are killed (e2e_lib's _jm_kill_all), then every process
# left inside our namespaces (by PID, e.g. task processes of a killed
# agent), then the namespaces, veths and the bridge are deleted; then
# e2e_lib's own cleanup runs with the test's exit code.

_netns_skip() {
    echo "SKIP: ${JM_TEST_NAME:-$(basename "$0" .sh)}: $*" >&2
    exit 77
}

[ "$(id -u)" = 0 ] || _netns_skip "needs root for network namespaces (ip netns)"
command -v ip >/dev/null || _netns_skip "the 'ip' command (iproute2) is missing"

NETNS_TAG="jm$$"         # prefix of our namespace names
NETNS_BR="jmbr$$"        # bridge (<= 15 bytes: pids have <= 7 digits)
NETNS_NAMES=()           # our namespaces (full names), for cleanup
NETNS_VETHS=()           # host ends of our veths, for cleanup
NETNS_NEXT=2             # next host number on the bridge's /24
NETNS_BR_MADE=0
NETNS_EXIT_HOOKS=()      # netns_on_exit

# Probe: a throw-away namespace with lo up (fails in containers without
# CAP_SYS_ADMIN or without /var/run/netns support).
_netns_probe="${NETNS_TAG}probe"
if ! { ip netns add "$_netns_probe" && ip netns exec "$_netns_probe" ip link set lo up; } \
    >/dev/null 2>&1; then
    ip netns del "$_netns_probe" >/dev/null 2>&1 || true
    _netns_skip "'ip netns' is not usable here (no CAP_SYS_ADMIN/CAP_NET_ADMIN?)"
fi
ip netns del "$_netns_probe" >/dev/null 2>&1 || true
ip link add "${NETNS_TAG}probe" type bridge >/dev/null 2>&1 \
    || _netns_skip "cannot create a bridge ('ip link add ... type bridge' failed)"
ip link del "${NETNS_TAG}probe" >/dev/null 2>&1 || true

_netns_cleanup() {
    local n p pids i v
    for n in "${NETNS_NAMES[@]}"; do
        pids=$(ip netns pids "$n" 2>/dev/null || true)
        for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    done
    for n in "${NETNS_NAMES[@]}"; do
        for i in $(seq 50); do
            [ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$n" 2>/dev/null || true
    done
    for v in "${NETNS_VETHS[@]}"; do ip link del "$v" 2>/dev/null || true; done
    if [ "$NETNS_BR_MADE" = 1 ]; then ip link del "$NETNS_BR" 2>/dev/null || true; fi
    NETNS_NAMES=()
    NETNS_VETHS=()
    NETNS_BR_MADE=0
}

# Replaces e2e_lib's EXIT trap: our recorded daemons die first (they may
# sit inside the namespaces), then the network goes, then e2e_lib's cleanup
# (which kills the - already dead - PIDs again and removes $T) runs with
# the test's exit code.
_netns_exit() {
    local rc=$?
    trap - EXIT
    _jm_kill_all
    local h
    for h in "${NETNS_EXIT_HOOKS[@]}"; do "$h" || true; done
    _netns_cleanup
    set +e # else '(exit $rc)' would end the shell here
    (exit $rc)
    _jm_cleanup
}
trap _netns_exit EXIT

# k: from our PID, skipping /24s some interface already uses.
_netns_pick_k() {
    local k=$(($$ % 200 + 20)) _
    for _ in $(seq 200); do
        if ! ip -o -4 addr show 2>/dev/null | grep -q " 10\.232\.$k\."; then
            echo "$k"
            return 0
        fi
        k=$(((k - 20 + 1) % 200 + 20))
    done
    return 1
}
NETNS_K=$(_netns_pick_k) || _netns_skip "no free 10.232.x.0/24 for the test bridge"
NETNS_NET="10.232.$NETNS_K"
NETNS_HOST_IP="$NETNS_NET.1"

ip link add "$NETNS_BR" type bridge || fail "cannot create bridge $NETNS_BR"
NETNS_BR_MADE=1
ip addr add "$NETNS_HOST_IP/24" dev "$NETNS_BR" || fail "cannot give $NETNS_BR $NETNS_HOST_IP/24"
ip link set "$NETNS_BR" up || fail "cannot bring $NETNS_BR up"
echo "netns: bridge $NETNS_BR at $NETNS_HOST_IP/24"

netns_on_exit() { NETNS_EXIT_HOOKS+=("$1"); }

netns_name() { echo "${NETNS_TAG}_$1"; }

netns_add() { # NAME
    local name=$1 ns veth peer ip i
    case "$name" in
    *[!A-Za-z0-9_]* | "") fail "netns_add: bad name '$name' (want [A-Za-z0-9_])" ;;
    esac
    [ "$NETNS_NEXT" -le 254 ] || fail "netns_add: no address left on $NETNS_NET.0/24"
    ns=$(netns_name "$name")
    i=$((NETNS_NEXT - 2))
    veth="jmv$$h$i"
    peer="jmv$$n$i"
    ip="$NETNS_NET.$NETNS_NEXT"
    NETNS_NEXT=$((NETNS_NEXT + 1))
    ip netns add "$ns" || fail "ip netns add $ns failed"
    NETNS_NAMES+=("$ns")
    ip link add "$veth" type veth peer name "$peer" || fail "cannot create veth $veth"
    NETNS_VETHS+=("$veth")
    ip link set "$peer" netns "$ns" || fail "cannot move $peer into $ns"
    ip link set "$veth" master "$NETNS_BR" || fail "cannot put $veth on $NETNS_BR"
    ip link set "$veth" up || fail "cannot bring $veth up"
    ip netns exec "$ns" ip link set lo up || fail "cannot bring lo up in $ns"
    ip netns exec "$ns" ip link set "$peer" name eth0 || fail "cannot rename $peer in $ns"
    ip netns exec "$ns" ip addr add "$ip/24" dev eth0 || fail "cannot give eth0 $ip in $ns"
    ip netns exec "$ns" ip link set eth0 up || fail "cannot bring eth0 up in $ns"
    eval "NETNS_IP_$name=$ip"
    # the bridge forwards once the port leaves the learning states
    # (immediately without STP); wait for it (at most 10 s)
    for i in $(seq 100); do
        [ "$(cat "/sys/class/net/$veth/brport/state" 2>/dev/null)" = 3 ] && break
        [ "$i" = 100 ] && fail "bridge port $veth of $ns never reached the forwarding state"
        sleep 0.1
    done
    echo "netns: $name = namespace $ns at $ip"
}

netns_ip() { eval "echo \"\${NETNS_IP_$1:-}\""; }

netns_exec() { # NAME CMD...
    local ns
    ns=$(netns_name "$1")
    shift
    ip netns exec "$ns" "$@"
}

netns_pids() { ip netns pids "$(netns_name "$1")" 2>/dev/null || true; }

netns_kill() { # NAME [SIG]
    local name=$1 sig=${2:-KILL} p i
    for p in $(netns_pids "$name"); do kill -"$sig" "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        [ -z "$(netns_pids "$name")" ] && return 0
        sleep 0.1
    done
    return 1
}
