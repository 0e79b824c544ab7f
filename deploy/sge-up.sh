#!/usr/bin/env bash
# sge-up.sh -- bring up a single-node Son of Grid Engine 8.1.9 test cluster
# (Debian 12 gridengine-* packages): sge_qmaster + sge_execd, queue all.q,
# parallel environment smp, as root, without systemd. Root may run jobs
# (min_uid/min_gid 0). Idempotent: a second run only starts what is not
# running and re-applies the (idempotent) configuration. See deploy/CLUSTERS.md.
#
# Clients need:  export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
# (printed on stdout at the end, so `eval "$(deploy/sge-up.sh)"` works; also
# written to /etc/profile.d/jobman-gridengine.sh).
#
# Knobs: SGE_SLOTS (default: nproc) job slots on all.q;
#        JOBMAN_CLUSTERS_STATE (default /var/lib/jobman-testclusters).
# The PIDs of the daemons this script started are recorded in
# $STATE/sge/*.pid; deploy/sge-down.sh stops exactly those.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SGE_SLOTS="${SGE_SLOTS:-$(nproc --all)}"
SPOOL=/var/spool/gridengine
STATE="${JOBMAN_CLUSTERS_STATE:-/var/lib/jobman-testclusters}/sge"
T0=$(date +%s.%N)
install -d -m 0755 "$STATE"
COMMON=$SGE_ROOT/$SGE_CELL/common
log() { printf '[sge-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

HN="$(hostname -s)"
if ! getent hosts "$HN" >/dev/null; then
  log "adding $HN to /etc/hosts"
  echo "127.0.0.1 $HN" >>/etc/hosts
fi

# ---------------------------------------------------------------- packages
need_pkgs=()
for p in gridengine-master gridengine-exec gridengine-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  log "installing: ${need_pkgs[*]}"
  # The three debconf questions (all 'shared/', owned by gridengine-common).
  debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridenginemaster string $HN
EOF
  apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >"$STATE/apt.log" 2>&1 || {
    apt-get update -q >>"$STATE/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >>"$STATE/apt.log" 2>&1
  }
fi

# If the packages were installed earlier without auto-configuration, make the cell now.
if [[ ! -f $COMMON/bootstrap ]] || [[ -z "$(ls -A $SPOOL/spooldb 2>/dev/null)" ]]; then
  log "initialising cell $SGE_CELL"
  install -d -o sgeadmin -g sgeadmin $SGE_ROOT $SGE_ROOT/$SGE_CELL $COMMON $SPOOL/qmaster $SPOOL/qmaster/job_scripts $SPOOL/spooldb $SPOOL/execd
  [[ -f $COMMON/bootstrap ]] || install -m0644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap $COMMON/bootstrap
  runuser -u sgeadmin -- /usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL $SPOOL/spooldb sgeadmin >"$STATE/init.log" 2>&1
fi

# ---------------------------------------------------------------- host names
# SGE resolves the peer IP (127.0.0.1) back to a name and insists that it is
# the name the client claims (gethostname). 127.0.0.1 reverse-resolves to
# "localhost", so without an alias every client gets:
#   access denied (client IP resolved to host name "localhost". This is not
#   identical to clients host name "vm")
# host_aliases makes all loopback names one host.
rev="$(getent hosts "$(getent hosts "$HN" | awk '{print $1; exit}')" | awk '{print $2; exit}')"
aliases="$HN localhost"
[[ -n "$rev" && "$rev" != "$HN" && "$rev" != localhost ]] && aliases="$aliases $rev"
restart_master=0
if [[ "$(cat $COMMON/host_aliases 2>/dev/null)" != "$aliases" ]]; then
  echo "$aliases" >$COMMON/host_aliases; chown sgeadmin:sgeadmin $COMMON/host_aliases
  restart_master=1
fi
if [[ "$(cat $COMMON/act_qmaster 2>/dev/null)" != "$HN" ]]; then
  echo "$HN" >$COMMON/act_qmaster; chown sgeadmin:sgeadmin $COMMON/act_qmaster
  restart_master=1
fi
printf 'export SGE_ROOT=%s SGE_CELL=%s\n' "$SGE_ROOT" "$SGE_CELL" >/etc/profile.d/jobman-gridengine.sh

# ---------------------------------------------------------------- daemons
QPID=$SPOOL/qmaster/qmaster.pid
stop_pid() { local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$pid" 2>/dev/null || true; }
if ((restart_master)) && alive $QPID; then
  log "host names changed: restarting sge_qmaster"; stop_pid $QPID
fi
install -d -o sgeadmin -g sgeadmin -m 0755 /run/gridengine
if ! alive $QPID; then
  log "starting sge_qmaster"
  /usr/sbin/sge_qmaster        # daemonizes, drops to admin_user sgeadmin
  for _ in $(seq 100); do alive $QPID && break; sleep 0.1; done
  cp $QPID "$STATE/sge_qmaster.pid"
fi
for _ in $(seq 100); do qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
qconf -sh >/dev/null || { tail -5 $SPOOL/qmaster/messages >&2; exit 1; }

# ---------------------------------------------------------------- configuration
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
# Global: let root (uid 0) run jobs; write accounting (qacct) within 1 s.
# login_shells none: SGE starts a job's -S shell as a login shell when it is
# listed there (default sh,bash,ksh,csh,tcsh), so every test job sourced the
# machine's root profile. Here that profile runs `pyenv rehash`, which takes a
# lock file; a job killed inside it (the tests cancel and time out jobs) left
# the lock behind and every later job then waited 60 s for it.
qconf -sconf global >"$tmp/global"
sed -i -e 's/^min_uid .*/min_uid                      0/' \
       -e 's/^login_shells .*/login_shells                 none/' \
       -e 's/^min_gid .*/min_gid                      0/' \
       -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' \
       -e 's/^load_report_time .*/load_report_time             00:00:10/' "$tmp/global"
qconf -Mconf "$tmp/global" >/dev/null

# Scheduler: run every second and right after submit/finish (default 15 s).
qconf -ssconf >"$tmp/sconf"
sed -i -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
       -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
       -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
       -e 's/^job_load_adjustments .*/job_load_adjustments              NONE/' \
       -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time        0:0:0/' \
       -e 's/^schedd_job_info .*/schedd_job_info                   false/' \
       -e 's/^max_pending_tasks_per_job .*/max_pending_tasks_per_job         1000/' "$tmp/sconf"
qconf -Msconf "$tmp/sconf" >/dev/null

qconf -sh | grep -qx "$HN" || qconf -ah "$HN" >/dev/null
qconf -ss | grep -qx "$HN" || qconf -as "$HN" >/dev/null

# Parallel environment for multi-slot jobs (qsub -pe smp N).
cat >"$tmp/smp" <<EOF
pe_name            smp
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
if qconf -spl 2>/dev/null | grep -qx smp; then qconf -Mp "$tmp/smp" >/dev/null; else qconf -Ap "$tmp/smp" >/dev/null; fi

# ---------------------------------------------------------------- execd
shopt -s nullglob; EPID_GLOB=("$SPOOL"/execd/*/execd.pid)
epid=""; for f in "${EPID_GLOB[@]}"; do alive "$f" && epid=$f; done
if [[ -z "$epid" ]]; then
  log "starting sge_execd"
  /usr/sbin/sge_execd          # registers itself as exec host (we are an admin host)
  # The spool dir is named after the name execd resolves for itself, which
  # may be "localhost" rather than $HN: find the pid file by glob.
  for _ in $(seq 100); do
    epid=""; for f in $SPOOL/execd/*/execd.pid; do alive "$f" && epid=$f; done
    [[ -n "$epid" ]] && break; sleep 0.1
  done
  [[ -n "$epid" ]] || { echo "sge_execd did not start" >&2; exit 1; }
  cp "$epid" "$STATE/sge_execd.pid"
fi
for _ in $(seq 100); do qconf -sel 2>/dev/null | grep -qx "$HN" && break; sleep 0.2; done
qconf -sel | grep -qx "$HN" || { echo "execd did not register" >&2; exit 1; }

# Queue all.q: one host, N slots, no load threshold (a busy 2-core CI box
# would otherwise put the queue into alarm state and stop dispatching).
cat >"$tmp/all.q" <<EOF
qname                 all.q
hostlist              $HN
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SGE_SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
if qconf -sql 2>/dev/null | grep -qx all.q; then qconf -Mq "$tmp/all.q" >/dev/null; else qconf -Aq "$tmp/all.q" >/dev/null; fi

# Clear any error/disabled state left from an earlier run (e.g. 'E' after a
# job failed to start) and wait for the queue instance to be usable.
qmod -c "all.q@$HN" >/dev/null 2>&1 || true
qmod -e "all.q@$HN" >/dev/null 2>&1 || true
st=""
for _ in $(seq 150); do
  st="$(qstat -f -q "all.q@$HN" 2>/dev/null | awk -v q="all.q@$HN" '$1==q{print $6; exit}')"
  line="$(qstat -f -q "all.q@$HN" 2>/dev/null | awk -v q="all.q@$HN" '$1==q{print; exit}')"
  # states column is empty when healthy; load column is -NA- until execd's first report
  [[ -n "$line" ]] && ! grep -q -- '-NA-' <<<"$line" && [[ -z "$st" ]] && break
  sleep 0.2
done
log "cluster up in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $(qstat -f | awk -v q="all.q@$HN" '$1==q')"
# what clients need (eval "$(deploy/sge-up.sh)")
printf 'export SGE_ROOT=%s SGE_CELL=%s\n' "$SGE_ROOT" "$SGE_CELL"
