#!/usr/bin/env bash
# Training throughput of two or more nas builds, interleaved: ROUNDS rounds,
# each running `nas bench train ARGS... --no-latency` once per build in turn,
# then the max, median and every value per build. On a VM whose speed drifts
# minute to minute, alternating keeps the builds in the same time windows.
#   bench/ab_train.sh 10 "/tmp/nas-before target/release/nas" \
#     --arch examples/fashion-1ms-2h-final.json --data-dir ../shared/datasets --steps 30 --warmup 5
set -euo pipefail
rounds=$1; builds=$2; shift 2
for _ in $(seq "$rounds"); do
  for b in $builds; do
    v=$("$b" bench train "$@" --no-latency |
      python3 -c "import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])['train_images_per_second'],1))")
    echo "$b $v"
  done
done | python3 -c "
import statistics, sys
runs = {}
for line in sys.stdin:
    build, value = line.split()
    runs.setdefault(build, []).append(float(value))
for build, values in runs.items():
    print(f'{build}: max {max(values)} median {statistics.median(values)} img/s over {len(values)} runs {sorted(values)}')
"
