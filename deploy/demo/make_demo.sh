#!/usr/bin/env bash
# make_demo.sh DIR [N] - write a demo submission into DIR: DIR/submission.yml
# and DIR/demo/ (work_base) with a common file and N task directories.
# Each task multiplies the number in its input.txt by the common factor,
# writes result.txt and sleeps a fraction of a second.
set -euo pipefail
DIR=${1:?usage: make_demo.sh DIR [N]}
N=${2:-20}
mkdir -p "$DIR/demo"
echo 7 >"$DIR/demo/factor.txt"
{
    echo "# jobman demo submission (dpdispatcher layout)"
    echo "work_base: demo"
    echo "forward_common_files: [factor.txt]"
    echo "backward_common_files: []"
    echo "resources: {group_size: 2, para_deg: 2}"
    echo "task_list:"
    for i in $(seq 1 "$N"); do
        d=$(printf 'task%02d' "$i")
        mkdir -p "$DIR/demo/$d"
        echo $((i * i)) >"$DIR/demo/$d/input.txt"
        cat <<EOT
  - command: 'sleep 0.$((3 + i % 6)); n=\$(cat input.txt); k=\$(cat ../factor.txt); echo "\$n x \$k = \$((n * k))" > result.txt; echo "$d on \$(hostname)"'
    task_work_path: $d
    forward_files: [input.txt]
    backward_files: [result.txt]
    outlog: log
    errlog: err
EOT
    done
} >"$DIR/submission.yml"
echo "$DIR/submission.yml"
