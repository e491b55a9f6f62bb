#!/usr/bin/env bash
# chart-testing against the running test cluster: `ct lint` and `ct install` of charts/crucible,
# one install (helm install --wait, rollout checks, helm test, uninstall) per
# charts/crucible/ci/*-values.yaml, as the chart-testing GitHub action does on kind.
#   usage: tests/cluster/chart-test.sh [lint|install|all]      (default: all)
# --charts names the chart explicitly, which switches off ct's git change detection: a CI
# checkout need not have an origin/main to diff against.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$here/versions.sh"
# shellcheck source=tests/cluster/cluster-env.sh
. "$here/cluster-env.sh"
what=${1:-all}
t0=$(date +%s)
log() { printf '[chart-test %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

"$here/build-tools.sh" helm ct
# ct calls `helm`, `kubectl`, `git`, `yamllint` and `yamale` by those names.
tools=$CRUCIBLE_CACHE/bin/path
mkdir -p "$tools"
ln -sf "$CRUCIBLE_BIN/helm-$HELM_VERSION" "$tools/helm"
ln -sf "$CRUCIBLE_BIN/ct-$CT_VERSION" "$tools/ct"
venv=${CRUCIBLE_VENV:-$CRUCIBLE_CACHE/venv}
export PATH=$tools:$venv/bin:$PATH
export KUBECONFIG=${KUBECONFIG:-$ADMIN_KUBECONFIG}
cd "$repo"

ct_args=(--config ct.yaml --charts charts/crucible)
lint_args=()
# Without origin/main ct cannot compare chart versions; CI clones have it, a local tree may not.
if ! git rev-parse --verify -q "origin/main" >/dev/null; then
  lint_args+=(--check-version-increment=false)
fi

if [ "$what" = lint ] || [ "$what" = all ]; then
  ct lint "${ct_args[@]}" "${lint_args[@]}"
  log "ct lint passed"
fi
if [ "$what" = install ] || [ "$what" = all ]; then
  kubectl get --raw /readyz >/dev/null || { log "no cluster at $KUBECONFIG"; exit 1; }
  # ct creates plain namespaces; the e2e suite installs into one enforcing Pod Security
  # "restricted" instead.
  ct install "${ct_args[@]}"
  log "ct install passed for: $(cd charts/crucible/ci && echo ./*-values.yaml)"
fi
