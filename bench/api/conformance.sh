#!/usr/bin/env bash
# The API against its own OpenAPI document: starts `nas serve` on a fresh
# SQLite file and runs schemathesis (pinned) with every check on every
# operation but the event stream. Usage: bench/api/conformance.sh [NAS_BINARY]
# Needs python3 (schemathesis from PyPI, into a cached virtualenv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
nas="${1:-$here/../../target/debug/nas}"
venv="${TMPDIR:-/tmp}/nas-schemathesis"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis==4.32.5
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Limits high enough that every zoo baseline fits: the limits have tests of
# their own, and here a schema-valid spec should be accepted.
"$nas" serve --database-url "sqlite://$work/nas.db" --bind "127.0.0.1:$port" \
  --max-training-mib 65536 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/api/v1/healthz" 2>/dev/null && break
  sleep 0.1
done
cd "$here"
"$venv/bin/st" --config-file "$here/schemathesis.toml" run \
  "http://127.0.0.1:$port/api/v1/openapi.json" \
  --checks all --exclude-path-regex '/events$' --no-color
