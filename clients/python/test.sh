#!/usr/bin/env bash
# The Python client's tests against a real `nas up`: builds the client's wheel,
# installs it with its test dependencies in a virtualenv, and runs pytest.
# Usage: clients/python/test.sh [NAS_BINARY]   (default: target/debug/nas,
# what `cargo test` builds). The virtualenv is kept in target/python-client.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export NAS_BINARY="$(realpath "${1:-$root/target/debug/nas}")"
venv="${NAS_PYTHON_VENV:-$root/target/python-client}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
# From a built wheel, as a user installs a release.
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
"$venv/bin/pip" wheel -q --no-deps --wheel-dir "$dist" "$here"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$dist"/nas_client-*.whl
"$venv/bin/pip" install -q "$(ls "$dist"/nas_client-*.whl)[test]"
cd "$here"
"$venv/bin/python" -m pytest -q -p no:cacheprovider 2>&1
