#!/usr/bin/env bash
# The same search on the built-in Fashion-MNIST and on the same images
# uploaded as a zipped folder of 70,000 PNG files: examples/fashion-1ms.json
# as it is, then with "dataset": "fashion-png" (same seed, same spec
# otherwise), one after the other on PostgreSQL with one worker process of
# two agents. Prints each search's final model (test accuracy, latency).
# DATASETS="fashion-png" runs only the second.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
#     bench/datasets/same_search.sh [target/release/nas] [../shared/datasets]
set -euo pipefail
NAS=${1:-target/release/nas}
SHARED=$(realpath "${2:-../shared/datasets}")
WORK=$(mktemp -d /tmp/nas-same-search.XXXX)
DB="nas_same_search_$$"
URL="${DATABASE_URL%/*}/$DB"
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
psql "$DATABASE_URL" -qc "CREATE DATABASE $DB" >/dev/null
python3 "$(dirname "$0")/make_png_folder.py" "$SHARED/fashion-mnist" "$WORK/fashion-png.zip"
mkdir -p "$WORK/data" && ln -s "$SHARED/fashion-mnist" "$WORK/data/fashion-mnist"
PORT=$((20000 + RANDOM % 20000))
export NAS_SERVER=http://127.0.0.1:$PORT
"$NAS" serve --database-url "$URL" --bind 127.0.0.1:$PORT >"$WORK/serve.log" 2>&1 &
sleep 2
"$NAS" dataset add "$WORK/fashion-png.zip" --name fashion-png 2>/dev/null | head -2
"$NAS" worker --database-url "$URL" --concurrency 2 --data-dir "$WORK/data" >"$WORK/worker.log" 2>&1 &
SPEC=examples/fashion-1ms.json
for dataset in ${DATASETS:-fashion-mnist fashion-png}; do
  python3 -c "import json,sys; s=json.load(open('$SPEC')); s['dataset']='$dataset'; s['name']+=' on $dataset'; print(json.dumps(s))" >"$WORK/spec-$dataset.json"
  start=$(date +%s)
  "$NAS" submit --wait "$WORK/spec-$dataset.json" 2>/dev/null >"$WORK/out-$dataset.txt"
  echo "== $dataset: $(( $(date +%s) - start )) s"
  sed -n '1,6p' "$WORK/out-$dataset.txt"
  id=$(head -1 "$WORK/out-$dataset.txt")
  "$NAS" leaderboard "$id" --final
done
echo "fetches from the store: $(grep -c 'dataset fetched from the store' "$WORK/worker.log" || true)"
echo "worker log: $WORK/worker.log"
