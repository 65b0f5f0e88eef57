#!/usr/bin/env bash
# Upload benchmark: Fashion-MNIST as an image folder of 70,000 PNG files
# (zipped; made from the IDX files by make_png_folder.py) uploaded with
# `nas dataset add` to a fresh `nas serve` on SQLite (and PostgreSQL when
# DATABASE_URL is set): the wall time to a stored, searchable dataset and
# the server's resident-memory growth (peak RSS, VmHWM, minus RSS before).
#
#   bench/datasets/upload.sh [target/release/nas] [../shared/datasets/fashion-mnist]
set -euo pipefail
NAS=${1:-target/release/nas}
IDX=${2:-../shared/datasets/fashion-mnist}
WORK=$(mktemp -d /tmp/nas-upload-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 "$(dirname "$0")/make_png_folder.py" "$IDX" "$WORK/fashion-png.zip"
ZIP_MIB=$(du -m "$WORK/fashion-png.zip" | cut -f1)

run() { # $1: label, $2: database URL
  local port=$((20000 + RANDOM % 20000))
  "$NAS" serve --database-url "$2" --bind 127.0.0.1:$port >"$WORK/serve-$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  local before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  local start=$(date +%s.%N)
  NAS_SERVER=http://127.0.0.1:$port "$NAS" dataset add "$WORK/fashion-png.zip" --name fashion-png >"$WORK/add-$1.txt" 2>/dev/null
  local end=$(date +%s.%N)
  # Searchable: a spec naming it is accepted.
  local search=$(echo '{"name": "on the upload", "dataset": "fashion-png", "budget": {"max_trials": 1}}' \
    | NAS_SERVER=http://127.0.0.1:$port "$NAS" submit -)
  local peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null || true
  printf '{"backend": "%s", "zip_mib": %s, "seconds": %.1f, "rss_before_mib": %.0f, "rss_peak_mib": %.0f, "rss_growth_mib": %.0f, "search_id": %s}\n' \
    "$1" "$ZIP_MIB" "$(echo "$end - $start" | bc)" "$(echo "$before/1024" | bc -l)" "$(echo "$peak/1024" | bc -l)" "$(echo "($peak-$before)/1024" | bc -l)" "$search"
  sed -n 1,6p "$WORK/add-$1.txt" >&2
}

run sqlite "sqlite://$WORK/nas.db"
if [ -n "${DATABASE_URL:-}" ]; then
  db="nas_upload_bench_$$"
  psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
  run postgres "${DATABASE_URL%/*}/$db"
  psql "$DATABASE_URL" -qc "DROP DATABASE $db" >/dev/null
fi
