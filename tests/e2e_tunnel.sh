#!/usr/bin/env bash
# e2e_tunnel: the coordinator reaches a "login node" only through ssh.
#
# The login node is a network namespace made here (veth pair, host end
# 10.231.X.1, namespace end 10.231.X.2) running a REAL sshd started by this
# test (own config, host key, authorized key, port 2222).  The coordinator
# (host namespace, bound to 127.0.0.1 only) gets tunnel_machines: a
# MACHINE.yml whose entry has remote_profile {hostname: 10.231.X.2, port:
# 2222, username: root, key_filename: ~/id_tunnel} and site: login1, so it
# keeps 'ssh -N -R 127.0.0.1:PORT:127.0.0.1:PORT' up; agents run INSIDE the
# namespace and dial tcp://127.0.0.1:PORT there: the tunnel is their only
# way to the coordinator.  CURVE stays on inside it.
#
# Asserts: an agent whose key is not allowed gets nothing through the
# tunnel; an allowed one completes a submission through it; the ssh killed
# by hand is restarted by the coordinator (logged) and a second submission
# completes; 'jobman-submit sites' shows the tunnel's state; the other
# direction: an agent started with --bind in the namespace and the
# coordinator's 'connect:' completes a submission.
#
# ssh reads ~/.ssh/config from the passwd entry's home, not from $HOME, so
# the coordinator gets JOBMAN_SSH=<wrapper running 'ssh -F <temp config>'>
# (StrictHostKeyChecking no, known_hosts in the temp dir) and HOME=<temp
# dir> (so the entry's key_filename ~/id_tunnel is expanded to the test's
# key by the coordinator).  Skipped (77) without root or 'ip netns'.
set -euo pipefail

_skip() {
    echo "SKIP: e2e_tunnel: $*" >&2
    exit 77
}
[ "$(id -u)" = 0 ] || _skip "needs root for a network namespace (ip netns)"
command -v ip >/dev/null || _skip "the 'ip' command (iproute2) is missing"
[ -x /usr/sbin/sshd ] || _skip "/usr/sbin/sshd is missing (deploy/install-deps.sh installs openssh-server)"
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null \
    || _skip "ssh/ssh-keygen missing (openssh-client)"
_probe="jmtunprobe$$"
if ! { ip netns add "$_probe" && ip netns exec "$_probe" ip link set lo up; } >/dev/null 2>&1; then
    ip netns del "$_probe" >/dev/null 2>&1 || true
    _skip "'ip netns' is not usable here (no CAP_SYS_ADMIN/CAP_NET_ADMIN?)"
fi
ip netns del "$_probe" >/dev/null 2>&1 || true

source "$(dirname "$0")/e2e_lib.sh"

NS="jmtun$$"
VH="jmtv${$}h" # <= 15 bytes
VN="jmtv${$}n"
NS_MADE=0
VETH_MADE=0
RUN_SSHD_MADE=0
SSH_PIDS=() # ssh clients seen (children of the coordinator), killed at exit if left

# Cleanup, also on failure and on the watchdog: our recorded daemons (agents,
# sshd, coordinator - which ends its ssh), ssh clients left behind, whatever
# still runs in the namespace, the namespace and veth; then e2e_lib's.
_tun_exit() {
    local rc=$? p i
    trap - EXIT
    set +e # (exit $rc) below must not end the shell before _jm_cleanup
    _jm_kill_all
    for p in "${SSH_PIDS[@]}"; do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = ssh ] && kill -KILL "$p" 2>/dev/null || true
    done
    if [ $NS_MADE = 1 ]; then
        for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        for i in $(seq 50); do
            [ -z "$(ip netns pids "$NS" 2>/dev/null)" ] && break
            sleep 0.1
        done
        ip netns del "$NS" 2>/dev/null || true
    fi
    [ $VETH_MADE = 1 ] && ip link del "$VH" 2>/dev/null || true
    [ $RUN_SSHD_MADE = 1 ] && rmdir /run/sshd 2>/dev/null || true
    (exit $rc)
    _jm_cleanup
}
trap _tun_exit EXIT

# A /24 no interface uses yet, from our PID.
k=$(($$ % 200 + 20))
for _ in $(seq 200); do
    ip -o -4 addr show | grep -q " 10\.231\.$k\." || break
    k=$(((k - 20 + 1) % 200 + 20))
done
HOST_IP=10.231.$k.1
NS_IP=10.231.$k.2

ip netns add "$NS" || fail "cannot create namespace $NS"
NS_MADE=1
ip link add "$VH" type veth peer name "$VN" || fail "cannot create veth $VH/$VN"
VETH_MADE=1
ip link set "$VN" netns "$NS"
ip addr add "$HOST_IP/24" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip addr add "$NS_IP/24" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip link set lo up
ok "namespace $NS at $NS_IP (host end $HOST_IP)"

# --- sshd in the namespace -------------------------------------------------
S=$T/sshd
U=$T/userhome
mkdir -p "$S" "$U/.ssh"
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key" -C e2e_tunnel_host >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$U/id_tunnel" -C e2e_tunnel_user >/dev/null
cp "$U/id_tunnel.pub" "$S/authorized_keys"
cat >"$S/sshd_config" <<EOF
ListenAddress $NS_IP
Port 2222
HostKey $S/host_key
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AllowTcpForwarding yes
PidFile $S/sshd.pid
LogLevel VERBOSE
EOF
if [ ! -d /run/sshd ]; then # sshd's privilege separation directory
    mkdir -m 0755 /run/sshd
    RUN_SSHD_MADE=1
fi
ip netns exec "$NS" /usr/sbin/sshd -t -f "$S/sshd_config" >"$T/sshd_check.log" 2>&1 \
    || fail "sshd -t refuses the test's config: $(cat "$T/sshd_check.log")"
ip netns exec "$NS" /usr/sbin/sshd -D -e -f "$S/sshd_config" >>"$T/sshd.log" 2>&1 &
SSHD_PID=$!
_jm_record_pid "$SSHD_PID"
wait_until 10 bash -c "echo >/dev/tcp/$NS_IP/2222" || fail "sshd did not listen on $NS_IP:2222"
ok "sshd (pid $SSHD_PID) listens on $NS_IP:2222 inside $NS"

# The coordinator's ssh: a wrapper giving it the test's client config.
cat >"$U/.ssh/config" <<EOF
Host *
    StrictHostKeyChecking no
    UserKnownHostsFile $U/.ssh/known_hosts
    ConnectTimeout 5
EOF
mkdir -p "$T/bin"
printf '#!/bin/sh\nexec ssh -F %q "$@"\n' "$U/.ssh/config" >"$T/bin/ssh"
chmod 755 "$T/bin/ssh"

# --- coordinator with tunnel_machines ---------------------------------------
cat >"$T/MACHINE.yml" <<EOF
login1_dft:
  machine:
    batch_type: Shell
    context_type: SSHContext
    remote_root: /tmp
    remote_profile:
      hostname: $NS_IP
      port: 2222
      username: root
      key_filename: ~/id_tunnel
  site: login1
  command: "echo"
EOF
timeout 30 "$COORD" init --home "$JOBMAN_HOME" --bind 'tcp://127.0.0.1:*' \
    >>"$T/coord_init.log" 2>&1 || fail "jobman-coord init failed"
sed -i 's/^heartbeat_ms:.*/heartbeat_ms: 500/' "$JOBMAN_HOME/config.yml"
echo "tunnel_machines: '$T/MACHINE.yml'" >>"$JOBMAN_HOME/config.yml"
HOME=$U JOBMAN_SSH=$T/bin/ssh start_coord
PORT=${COORD_EP##*:}

# ssh_pid: the coordinator's ssh child (the wrapper execs ssh: same PID).
ssh_pid() { pgrep -P "$COORD_PID" -x ssh | head -n1; }
tunnel_up() { # PID: the coordinator logged that ssh PID's tunnel is up
    grep -q "tunnel to $NS_IP (site login1) up: ssh pid $1\$" "$T/coord.log"
}
wait_until 15 bash -c "pgrep -P $COORD_PID -x ssh" || fail "the coordinator started no ssh"
SSH1=$(ssh_pid)
SSH_PIDS+=("$SSH1")
grep -q -- "-R 127.0.0.1:$PORT:127.0.0.1:$PORT -p 2222 -l root -i $U/id_tunnel" "$T/coord.log" \
    || fail "ssh command line (port, user, key with ~ expanded) not in the coordinator's log"
wait_until 20 tunnel_up "$SSH1" || fail "tunnel (ssh pid $SSH1) not up within 20 s"
ok "tunnel up: ssh pid $SSH1, child of the coordinator $COORD_PID"
ns_listens() { ip netns exec "$NS" bash -c "echo >/dev/tcp/127.0.0.1/$PORT"; }
wait_until 10 ns_listens || fail "nothing listens on 127.0.0.1:$PORT inside $NS"
ok "127.0.0.1:$PORT inside the namespace leads to the coordinator"
! ip netns exec "$NS" timeout 3 bash -c "echo >/dev/tcp/$HOST_IP/$PORT" 2>/dev/null \
    || fail "the coordinator is reachable from $NS without the tunnel"
ok "without the tunnel the namespace cannot reach the coordinator"

# start_ns_agent NAME ALLOW [AGENT ARGS...]: an agent inside the namespace
# (site NAME), its key allowed if ALLOW=1; default: dial the tunnel.
start_ns_agent() {
    local name=$1 allow=$2 pid
    shift 2
    _jm_agent_init "$name"
    if [ "$allow" = 1 ]; then
        timeout 30 "$COORD" allow "$(agent_home "$name")/agent.cert" --name "$name" \
            --home "$JOBMAN_HOME" >>"$T/coord_init.log" 2>&1 || fail "jobman-coord allow $name"
    fi
    [ $# -gt 0 ] || set -- --coordinator "tcp://127.0.0.1:$PORT"
    ip netns exec "$NS" "$AGENT" run --home "$(agent_home "$name")" "$@" \
        --coordinator-cert "$JOBMAN_HOME/coord.cert" --site "$name" --root "$(agent_root "$name")" \
        --scheduler shell --slots 2 --heartbeat-ms 500 >>"$T/agent_$name.log" 2>&1 &
    pid=$!
    _jm_record_pid "$pid"
    eval "AGENT_PID_$name=$pid"
    echo "agent $name pid $pid inside $NS ($*)"
}

W=$T/work
# make_sub FILE TAG N: N tasks writing "TAG i" into u<TAG>_<i>/o.txt
make_sub() {
    local f=$1 tag=$2 n=$3 i
    {
        echo "work_base: in"
        echo "resources: {group_size: 2, para_deg: 1}"
        echo "task_list:"
        for i in $(seq 0 $((n - 1))); do
            mkdir -p "$W/in/u${tag}_$i"
            echo "  - {command: 'echo $tag $i > o.txt', task_work_path: u${tag}_$i, backward_files: [o.txt]}"
        done
    } >"$f"
}
# run_sub TAG N SITE: submit N tasks, wait, check their results and that
# SITE alone ran them
run_sub() {
    local id
    make_sub "$T/$1.yml" "$1" "$2"
    id=$(jm_submit submit "$T/$1.yml" --work-dir "$W") || fail "submit $1 failed"
    jm_submit_to "$T/wait_$1.out" wait "$id" || fail "wait $id failed: $(cat "$T/wait_$1.out")"
    check_results "$1" "$2"
    check_eq "sites that ran $id" \
        "$(status_json "$id" | jq -r '[.submissions[0].tasks[].site] | unique | join(",")')" "$3"
}

check_results() { # TAG N
    local i
    for i in $(seq 0 $(($2 - 1))); do
        [ "$(cat "$W/in/u${1}_$i/o.txt" 2>/dev/null)" = "$1 $i" ] || fail "u${1}_$i/o.txt wrong or missing"
    done
    ok "results of all $2 tasks of $1 present"
}
mkdir -p "$W/in"

# --- an unallowed agent through the tunnel gets nothing --------------------
start_ns_agent intruder 0
make_sub "$T/a.yml" a 6
A=$(jm_submit submit "$T/a.yml" --work-dir "$W") || fail "submit a failed"
jm_submit_bg "$T/wait_a.out" wait "$A"
WAIT_A=$JM_BG_PID
# it does dial through the tunnel: a connection to sshd's listener inside
# the namespace (ESTAB while the handshake lasts, then TIME-WAIT for a
# minute; nothing else in the namespace dials that port yet)
intruder_dials() {
    [ -n "$(ip netns exec "$NS" ss -tanH "( dport = :$PORT )")" ]
}
wait_until 5 intruder_dials || fail "the unallowed agent never connected to the tunnel's port: $(ip netns exec "$NS" ss -tanp)"
ok "the unallowed agent connects through the tunnel"
sleep 5
check_eq "PENDING tasks of $A with only the unallowed agent" "$(count_state "$A" PENDING)" 6
check_eq "entries under the unallowed agent's root" "$(root_entries intruder)" 0
! grep -q "site intruder" "$T/coord.log" || fail "the coordinator let the unallowed agent in"
ok "the unallowed agent was refused (CURVE) through the tunnel"
kill -0 "$WAIT_A" 2>/dev/null || fail "wait $A ended although nothing ran"

# --- an allowed agent completes it through the tunnel ------------------------
start_ns_agent login1 1
rc=0
wait "$WAIT_A" || rc=$?
check_eq "exit code of wait $A" "$rc" 0
check_results a 6
check_eq "sites that ran $A" \
    "$(status_json "$A" | jq -r '[.submissions[0].tasks[].site] | unique | join(",")')" login1

# --- sites shows the tunnel's state ------------------------------------------
sites=$(jm_submit sites --json 2>"$T/sites.err") || fail "jobman-submit sites --json failed: $(cat "$T/sites.err")"
t=$(echo "$sites" | jq -r '.[] | select(.name == "login1") | .tunnel')
case "$t" in
"up (pid $SSH1) since "*) ok "sites: login1 tunnel '$t'" ;;
*) fail "sites --json: login1's tunnel is '$t', want 'up (pid $SSH1) since ...' ($sites)" ;;
esac
jm_submit sites >"$T/sites.out" 2>&1 || fail "jobman-submit sites failed: $(cat "$T/sites.out")"
grep -q "up (pid $SSH1)" "$T/sites.out" || fail "sites table lacks the tunnel state: $(cat "$T/sites.out")"
ok "sites table shows the tunnel state"

# --- ssh killed: restarted by the coordinator, work goes on ------------------
kill -KILL "$SSH1"
wait_until 10 grep -q "ssh (pid $SSH1) killed by signal 9" "$T/coord.log" \
    || fail "the coordinator did not notice its ssh (pid $SSH1) was killed"
wait_until 15 grep -q "tunnel to $NS_IP (site login1): restarting ssh" "$T/coord.log" \
    || fail "no restart of the tunnel logged"
new_ssh() { local p; p=$(ssh_pid) && [ -n "$p" ] && [ "$p" != "$SSH1" ]; }
wait_until 15 new_ssh || fail "no new ssh child of the coordinator"
SSH2=$(ssh_pid)
SSH_PIDS+=("$SSH2")
wait_until 30 tunnel_up "$SSH2" || fail "restarted tunnel (ssh pid $SSH2) not up"
ok "ssh $SSH1 killed; the coordinator restarted it as $SSH2 and it is up"
run_sub b 6 login1

# --- the other direction: agent --bind, coordinator connect: ------------------
stop_coord
_jm_kill_child TERM "$AGENT_PID_login1"
_jm_kill_child TERM "$AGENT_PID_intruder"
wait "$AGENT_PID_login1" "$AGENT_PID_intruder" 2>/dev/null || true
BIND_EP="tcp://$NS_IP:7300"
echo "connect: ['$BIND_EP']" >>"$JOBMAN_HOME/config.yml"
start_ns_agent direct 1 --bind "$BIND_EP"
HOME=$U JOBMAN_SSH=$T/bin/ssh start_coord
wait_until 10 grep -q "connecting to the agent at $BIND_EP" "$T/coord.log" \
    || fail "the coordinator did not connect to $BIND_EP"
run_sub c 4 direct

# --- the coordinator ends its ssh when it stops --------------------------------
SSH3=$(ssh_pid)
[ -n "$SSH3" ] || fail "no ssh child of the coordinator before stopping it"
SSH_PIDS+=("$SSH3")
stop_coord
wait_until 5 bash -c "! kill -0 $SSH3 2>/dev/null" || fail "ssh $SSH3 outlived the coordinator"
ok "the stopped coordinator's ssh $SSH3 is gone"
echo "PASS: e2e_tunnel"
