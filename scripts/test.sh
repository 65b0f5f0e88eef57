#!/usr/bin/env bash
# The test command: the README's and docs' links, every Rust test of the
# workspace, then the Python client's tests against the nas binary those built, with what they need
# installed or started first (scripts/with-test-services.sh: Chromium,
# onnxruntime, and PostgreSQL at DATABASE_URL or a throwaway cluster).
# Ends with a count of passed and failed tests; exits non-zero if any failed.
# Usage: scripts/test.sh [EXTRA CARGO TEST ARGUMENTS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -z "${NAS_TEST_SERVICES_UP:-}" ]; then
  NAS_TEST_SERVICES_UP=1 exec scripts/with-test-services.sh "$0" "$@"
fi

echo "== links in the README and docs/"
python3 scripts/check-links.py
echo
echo "== Rust tests (DATABASE_URL=$DATABASE_URL)"
log=$(mktemp)
pylog=$(mktemp)
trap 'rm -f "$log" "$pylog"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
echo
echo "== Python client tests"
clients/python/test.sh target/debug/nas | tee "$pylog"

# The sum of the numbers in the matches of pattern $1 in file $2. grep finds
# nothing when nothing failed; under pipefail that must not end the run.
sum_of() {
  { grep -Eo "$1" "$2" || true; } | { grep -Eo '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}'
}
tail -n 3 "$pylog" >"$pylog.tail"
passed=$(sum_of 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log")
failed=$(sum_of '[0-9]+ failed' "$log")
py_passed=$(sum_of '[0-9]+ passed' "$pylog.tail")
py_failed=$(sum_of '[0-9]+ failed' "$pylog.tail")
rm -f "$pylog.tail"
echo
echo "Rust: $passed passed, $failed failed; Python: $py_passed passed, $py_failed failed"
echo "$((passed + py_passed)) passed, $((failed + py_failed)) failed"
[ $((failed + py_failed)) -eq 0 ]
