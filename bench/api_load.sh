#!/usr/bin/env bash
# Load benchmark of the leaderboard route: one search of $TRIALS finished
# trials (synthetic results, real architectures) on PostgreSQL, then wrk at 64
# connections for 20 s against `GET /searches/{id}/leaderboard?limit=50`.
# Needs psql, curl and wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER_DB=${SERVER_DB:-postgres://postgres@127.0.0.1:5432/postgres}
TRIALS=${TRIALS:-10000}
PORT=${PORT:-8282}

cargo build --release -p server
psql "$SERVER_DB" -qc "DROP DATABASE IF EXISTS nas_load" -c "CREATE DATABASE nas_load"
url="${SERVER_DB%/*}/nas_load"
id=$(target/release/nas bench seed --database-url "$url" --trials "$TRIALS")
psql "$url" -qc "VACUUM ANALYZE trials"
target/release/nas serve --database-url "$url" --bind "127.0.0.1:$PORT" 2>/dev/null &
pid=$!
trap 'kill $pid' EXIT
until curl -sf "http://127.0.0.1:$PORT/api/v1/readyz" >/dev/null; do sleep 0.2; done
echo "search $id: $(curl -s "http://127.0.0.1:$PORT/api/v1/searches/$id/leaderboard?limit=1" | head -c 120)..."
wrk -t2 -c64 -d20s --latency "http://127.0.0.1:$PORT/api/v1/searches/$id/leaderboard?limit=50"
