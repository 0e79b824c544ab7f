#!/usr/bin/env bash
# e2e_fleet: one coordinator and three agents in network namespaces made by
# the test (tests/fleet_lib.sh: siteA 4 slots / 0.2 s per task, siteB 2
# slots / 0.6 s, siteC on the real Slurm, 2 jobs / 0.4 s - or Shell when
# Slurm is not up), one thkit MACHINE.yml with entries fleet_a/b/c, each
# with its own {command}.
#   1  600 tasks (group_size 2): every result correct; every task ran the
#      command of the entry of the site that ran it; every site took work
#      and the fast siteA more than the slow siteB; the makespan (first
#      task start to last task end) is within 20% of the ideal makespan
#      from the sites' measured capacities (600 / sum of n_i / span_i)
#   2  'jobman-coord site drain siteB', 100 more tasks; siteA's agent and
#      its task processes are SIGKILLed mid-run: every task still ends
#      DONE, siteA's unfinished tasks at another site; no task ran at the
#      drained siteB; 'sites --json' shows siteB drained and siteA not up
#   3  'jobman-coord site resume siteB': siteB takes work again
# Needs root and ip netns (else SKIP 77).
JM_TEST_TIMEOUT=${JM_TEST_TIMEOUT:-280}
source "$(dirname "$0")/e2e_lib.sh"
source "$(dirname "$0")/netns_lib.sh"
source "$(dirname "$0")/fleet_lib.sh"

N1=600
N2=100
N3=8

fleet_start
fleet_machine_file "$T/MACHINE.yml"

# ---- 1: 600 tasks split by live capacity -------------------------------
fleet_gen_sub "$T/w/p1.yml" "$T/w/p1" $N1
start_clock
ID1=$(fleet_submit "$T/w/p1.yml" "$T/MACHINE.yml")
ok "submitted $N1 tasks: $ID1"
fleet_wait "$ID1" 170
ok "phase 1 finished after $(elapsed) s"
fleet_collect "$ID1" "$T/w/p1" $N1 "$T/p1.tsv"
check_eq "phase 1: tasks not DONE with the right out.txt and ran_by.txt" "$FLEET_BAD" 0
stats=$(fleet_stats "$T/p1.tsv" $N1)
echo "$stats" | grep -v '^RESULT'
read -r _ MK IDEAL RATIO NA NB NC <<<"$(echo "$stats" | grep '^RESULT')"
for s in A B C; do
    eval "n=\$N$s"
    [ "$n" -gt 0 ] || fail "site$s ran no task of $N1"
done
ok "every site ran tasks: siteA $NA, siteB $NB, siteC $NC"
[ "$NA" -gt "$NB" ] || fail "siteA (4 slots, 0.2 s) ran $NA tasks, not more than siteB (2 slots, 0.6 s): $NB"
ok "the fast siteA took more than the slow siteB"
awk -v r="$RATIO" 'BEGIN { exit !(r > 0 && r <= 1.20) }' \
    || fail "makespan $MK s is not within 20% of the ideal $IDEAL s (ratio $RATIO)"
ok "makespan $MK s within 20% of ideal $IDEAL s (ratio $RATIO)"

# ---- 2: drain siteB, kill siteA mid-run ----------------------------------
timeout 30 "$COORD" site drain siteB --home "$JOBMAN_HOME" >"$T/drain.out" 2>&1 \
    || fail "jobman-coord site drain siteB failed: $(cat "$T/drain.out")"
check_eq "siteB drained (sites --json)" "$(fleet_site_field siteB drained)" true

fleet_gen_sub "$T/w/p2.yml" "$T/w/p2" $N2
ID2=$(fleet_submit "$T/w/p2.yml" "$T/MACHINE.yml")
ok "submitted $N2 tasks: $ID2"

# tasks of ID2 that siteA finished
done_at() { # ID SITE
    status_json "$1" | jq --arg s "$2" '[.submissions[0].tasks[] | select(.site == $s and .state == "DONE")] | length'
}
a_has_done() { [ "$(done_at "$ID2" siteA)" -ge 10 ]; }
wait_until 60 a_has_done || fail "siteA finished no 10 tasks of $ID2 in 60 s"
netns_kill a KILL || fail "processes of namespace a survived SIGKILL: $(netns_pids a)"
ok "SIGKILLed siteA's agent and every process in its namespace ($(done_at "$ID2" siteA) tasks DONE there)"
# siteA's unfinished tasks as the coordinator sees them right after the kill
status_json "$ID2" | jq -r '.submissions[0].tasks[]
    | select(.site == "siteA" and (.state | IN("DONE", "FAILED", "CANCELLED") | not)) | .path' \
    >"$T/lost_at_a.txt"
[ -s "$T/lost_at_a.txt" ] || fail "no task of $ID2 was in flight at siteA when it was killed"
ok "$(wc -l <"$T/lost_at_a.txt") tasks were in flight at siteA"
a_not_up() { [ "$(fleet_site_field siteA state)" != up ]; }
wait_until 10 a_not_up || fail "siteA still 'up' 10 s after its agent was killed"
ok "siteA is $(fleet_site_field siteA state) after the kill"

fleet_wait "$ID2" 150
fleet_collect "$ID2" "$T/w/p2" $N2 "$T/p2.tsv"
check_eq "phase 2: tasks not DONE with the right out.txt and ran_by.txt" "$FLEET_BAD" 0
check_eq "phase 2 tasks that ran at the drained siteB" "$(awk -F'\t' '$2 == "siteB"' "$T/p2.tsv" | wc -l)" 0
moved=0
while read -r p; do
    s=$(awk -F'\t' -v p="$p" '$1 == p { print $2 }' "$T/p2.tsv")
    if [ -z "$s" ] || [ "$s" = siteA ]; then
        fail "task $p, in flight at the killed siteA, ended at '$s'"
    fi
    moved=$((moved + 1))
done <"$T/lost_at_a.txt"
ok "all $moved tasks lost with siteA ended DONE elsewhere"
fleet_stats "$T/p2.tsv" $N2 | grep "tasks  first start" # per site (the makespan of a run with a killed site says nothing)
check_eq "siteB still drained (sites --json)" "$(fleet_site_field siteB drained)" true
check_eq "siteB state (sites --json)" "$(fleet_site_field siteB state)" up

# ---- 3: resume siteB -----------------------------------------------------
timeout 30 "$COORD" site resume siteB --home "$JOBMAN_HOME" >"$T/resume.out" 2>&1 \
    || fail "jobman-coord site resume siteB failed: $(cat "$T/resume.out")"
check_eq "siteB drained after resume (sites --json)" "$(fleet_site_field siteB drained)" false
fleet_gen_sub "$T/w/p3.yml" "$T/w/p3" $N3
ID3=$(fleet_submit "$T/w/p3.yml" "$T/MACHINE.yml")
fleet_wait "$ID3" 60
fleet_collect "$ID3" "$T/w/p3" $N3 "$T/p3.tsv"
check_eq "phase 3: tasks not DONE with the right out.txt and ran_by.txt" "$FLEET_BAD" 0
n=$(awk -F'\t' '$2 == "siteB"' "$T/p3.tsv" | wc -l)
[ "$n" -gt 0 ] || fail "the resumed siteB ran none of $N3 tasks"
ok "the resumed siteB ran $n of $N3 tasks"
echo "PASS: e2e_fleet (makespan $MK s, ideal $IDEAL s, ratio $RATIO; siteC: $FLEET_C_BATCH)"
