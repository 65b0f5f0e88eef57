#!/usr/bin/env bash
# Batch-1 latency of every suite network in two builds of nas and in
# onnxruntime, one after the other per network (1 thread, absolute basis,
# thorough protocol p50, ms), one line per network:
#
#   NAS_ONNXRUNTIME=/path/to/libonnxruntime.so.1.32.0 \
#     bench/inference_compare.sh OLD_NAS NEW_NAS > runs.txt
#
# Columns: network, OLD p50, NEW p50, onnxruntime p50 (NEW's `--runtime
# onnxruntime`: the exported model in an onnxruntime session).
set -euo pipefail
old=$1
new=$2
here=$(cd "$(dirname "$0")" && pwd)
p50() { "$@" 2>/dev/null | tail -1 | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['p50'])"; }
for f in "$here"/suite/*.json; do
  [ "$(basename "$f")" = suite.json ] && continue
  o=$(p50 "$old" latency --arch "$f" --basis absolute)
  n=$(p50 "$new" latency --arch "$f" --basis absolute)
  r=$(p50 "$new" latency --arch "$f" --basis absolute --runtime onnxruntime)
  echo "$(basename "$f" .json) $o $n $r"
done
