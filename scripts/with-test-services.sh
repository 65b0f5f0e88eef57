#!/usr/bin/env bash
# Runs a command with what the tests need, on a Debian or Ubuntu machine that
# has only the Rust toolchain and Python:
#   - Chromium and ChromeDriver (Debian's packages; the dashboard tests);
#   - the onnxruntime shared library (from its PyPI wheel, in a virtualenv
#     under target/; exported as NAS_ONNXRUNTIME) unless NAS_ONNXRUNTIME is set;
#   - PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
#     When nothing answers there, a throwaway cluster of its own is started
#     (initdb and pg_ctl from Debian's postgresql package, installed if
#     missing) on a free port in a temporary folder, DATABASE_URL points at
#     it, and it is stopped and deleted when the command ends.
# Usage: scripts/with-test-services.sh COMMAND [ARGS...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq "$@" >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "$@" >/dev/null; }
}

# -- browser
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "test services: installing chromium and chromium-driver" >&2
  apt_install chromium chromium-driver
fi

# -- onnxruntime
if [ -z "${NAS_ONNXRUNTIME:-}" ]; then
  ort_venv="$root/target/ci-onnxruntime"
  if [ ! -x "$ort_venv/bin/python" ]; then
    python3 -m venv "$ort_venv"
  fi
  "$ort_venv/bin/pip" install -q "onnxruntime==1.32.0"
  NAS_ONNXRUNTIME=$(ls "$ort_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n1)
  export NAS_ONNXRUNTIME
fi

# -- PostgreSQL
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_bin() {
  local tool=$1
  if command -v "$tool" >/dev/null; then command -v "$tool"; return; fi
  ls /usr/lib/postgresql/*/bin/"$tool" 2>/dev/null | sort -V | tail -n1
}
answers() {
  local psql
  psql=$(pg_bin psql)
  [ -n "$psql" ] && "$psql" "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1
}
if ! answers; then
  if [ -z "$(pg_bin initdb)" ]; then
    echo "test services: installing postgresql (for a throwaway cluster)" >&2
    apt_install postgresql
  fi
  initdb=$(pg_bin initdb)
  pg_ctl=$(pg_bin pg_ctl)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cluster=$(mktemp -d "${TMPDIR:-/tmp}/nas-test-pg.XXXXXX")
  # PostgreSQL refuses to run as root: as root, the cluster belongs to the
  # postgres user Debian's package creates.
  as_owner=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$cluster"
    as_owner=(runuser -u postgres --)
  fi
  stop_cluster() {
    "${as_owner[@]}" "$pg_ctl" -D "$cluster/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$cluster"
  }
  trap stop_cluster EXIT
  "${as_owner[@]}" "$initdb" -D "$cluster/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${as_owner[@]}" "$pg_ctl" -D "$cluster/data" -l "$cluster/log" -w \
    -o "-p $port -k $cluster -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  "$(pg_bin createdb)" -h 127.0.0.1 -p "$port" -U postgres test
  echo "test services: nothing answered at $DATABASE_URL; started a throwaway PostgreSQL on port $port" >&2
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
fi

"$@"
