#!/usr/bin/env bash
# e2e_bad_paths: submissions naming paths outside their directories are
# refused by 'submit' (exit 2, message naming the field) and leave nothing
# behind: no submission, no new files in the work dir or the store.
source "$(dirname "$0")/e2e_lib.sh"

W=$T/work
mkdir -p "$W/base/t0" "$W/base/t1"
echo in >"$W/base/t0/in.dat"
echo c >"$W/base/c.dat"
echo secret >"$T/outside.txt"
ln -s "$T/outside.txt" "$W/base/t1/link.dat"

start_coord
start_agent a1 2

snapshot() {
    (cd "$W" && find . | LC_ALL=C sort) >"$1.work"
    (cd "$JOBMAN_HOME" && find store 2>/dev/null | LC_ALL=C sort) >"$1.store"
}
snapshot "$T/before"

try_bad() { # NAME FIELD-TEXT YAML
    local name=$1 want=$2 rc=0
    printf '%s\n' "$3" >"$T/$name.yml"
    jm_submit submit "$T/$name.yml" --work-dir "$W" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    [ "$rc" = 2 ] || { cat "$T/$name.err" >&2; fail "$name: submit exited $rc, want 2"; }
    grep -q -- "$want" "$T/$name.err" || fail "$name: error does not name '$want': $(cat "$T/$name.err")"
    [ ! -s "$T/$name.out" ] || fail "$name: submit printed an id: $(cat "$T/$name.out")"
    ok "$name refused: $(head -n1 "$T/$name.err")"
}

try_bad work_path task_work_path 'work_base: base
task_list:
  - {command: "true", task_work_path: "../x"}'
try_bad abs_forward forward_files 'work_base: base
task_list:
  - {command: "true", task_work_path: t0, forward_files: [/etc/passwd]}'
try_bad dotdot_common forward_common_files 'work_base: base
forward_common_files: [../../etc/hosts]
task_list:
  - {command: "true", task_work_path: t0}'
try_bad backward_glob backward_files 'work_base: base
task_list:
  - {command: "true", task_work_path: t0, backward_files: ["../*"]}'
try_bad symlink_forward forward_files 'work_base: base
task_list:
  - {command: "true", task_work_path: t1, forward_files: [link.dat]}'

check_eq "submissions listed" "$(jm_submit list | wc -l)" 0
snapshot "$T/after"
cmp -s "$T/before.work" "$T/after.work" || fail "work dir changed: $(diff "$T/before.work" "$T/after.work")"
ok "work dir unchanged"
cmp -s "$T/before.store" "$T/after.store" || fail "store changed: $(diff "$T/before.store" "$T/after.store")"
ok "coordinator store unchanged"
n=$(root_entries a1)
check_eq "entries under the agent's root" "$n" 0
echo "PASS: e2e_bad_paths"
