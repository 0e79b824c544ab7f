#!/usr/bin/env bash
# e2e_common_dedup: a common file the site already holds is not sent again.
source "$(dirname "$0")/e2e_lib.sh"

W=$T/work
mkdir -p "$W/one" "$W/two"
rand_file "$T/big.dat" $((4 * 1024 * 1024))
cp "$T/big.dat" "$W/one/big.dat"
cp "$T/big.dat" "$W/two/big.dat"
mk_sub() { # FILE BASE PREFIX N WITH-FORWARD
    {
        echo "work_base: $2"
        echo "forward_common_files: [big.dat]"
        echo "resources: {group_size: 2, para_deg: 2}"
        echo "task_list:"
        for i in $(seq 0 $(($4 - 1))); do
            mkdir -p "$W/$2/$3$i"
            if [ "$5" = 1 ]; then
                echo "x$i" >"$W/$2/$3$i/in.txt"
                echo "  - {command: 'cat in.txt > r.txt; sha256sum < ../big.dat >> r.txt', task_work_path: $3$i, forward_files: [in.txt], backward_files: [r.txt]}"
            else
                echo "  - {command: 'echo $3$i > r.txt; sha256sum < ../big.dat >> r.txt', task_work_path: $3$i, backward_files: [r.txt]}"
            fi
        done
    } >"$1"
}
mk_sub "$T/s1.yml" one a 4 1
mk_sub "$T/s2.yml" two b 5 0
H=$(sha256sum <"$T/big.dat")

start_coord
start_agent a1 2

out=$(jm_submit submit "$T/s1.yml" --work-dir "$W" --wait) || fail "submission 1 did not succeed"
ID1=$(echo "$out" | head -n1)
out=$(jm_submit submit "$T/s2.yml" --work-dir "$W" --wait) || fail "submission 2 did not succeed"
ID2=$(echo "$out" | head -n1)
for i in 0 1 2 3; do
    [ "$(cat "$W/one/a$i/r.txt")" = "$(printf 'x%s\n%s' $i "$H")" ] || fail "one/a$i/r.txt wrong"
done
for i in 0 1 2 3 4; do
    [ "$(cat "$W/two/b$i/r.txt")" = "$(printf 'b%s\n%s' $i "$H")" ] || fail "two/b$i/r.txt wrong"
done
ok "results of both submissions correct"
b1=$(status_json "$ID1" | jq '.submissions[0].bytes_sent')
b2=$(status_json "$ID2" | jq '.submissions[0].bytes_sent')
echo "bytes sent: submission 1 $b1, submission 2 $b2"
[ "$b1" -gt $((4 * 1024 * 1024)) ] || fail "submission 1 sent $b1 bytes, want > 4 MiB"
ok "submission 1 sent the common file ($b1 bytes)"
check_eq "bytes sent for submission 2" "$b2" 0
echo "PASS: e2e_common_dedup"
