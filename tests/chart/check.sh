#!/usr/bin/env bash
# Offline checks of the Helm chart (`make chart-check`); no cluster, no network beyond a first
# install of checkov from PyPI into the cache. For every values scenario (the defaults,
# charts/crucible/ci/*-values.yaml for ct, tests/chart/scenarios/*-values.yaml render-only):
#   helm lint --strict, helm template -> Kubernetes schemas 1.29..1.34 (kubernetes-validate,
#   strict), checkov; then yamllint, ct lint, and the README's values table.
# The pytest chart tests (tests/chart, marker `chart`) run with the rest of `make test`.
# Needs yamllint, yamale and kubernetes-validate on PATH (the Makefile puts the venv first).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$repo/tests/cluster/versions.sh"
cd "$repo"

chart=charts/crucible
helm=${CRUCIBLE_HELM:-$CRUCIBLE_BIN/helm-$HELM_VERSION}
ct=${CRUCIBLE_CT:-$CRUCIBLE_BIN/ct-$CT_VERSION}
kube_versions=(1.29.0 1.30.0 1.31.0 1.32.0 1.33.0 1.34.0)
# A go-installed helm believes the cluster is 1.20; say which one to render for.
render_version=${kube_versions[-1]}
checkov_version=3.3.30
checkov_venv=$CRUCIBLE_CACHE/checkov-$checkov_version
# Checks skipped for every object, each for a reason (per-object exceptions are checkov.io/skip
# annotations in the templates, with theirs):
#   CKV_K8S_21  default namespace: rendered manifests carry none; Helm sets the release's.
#   CKV_K8S_15  pullPolicy Always: Helm's advice is IfNotPresent with immutable tags.
#   CKV_K8S_43  image digests: supported (image.digest); tags are the default, digests opt-in.
#   CKV_K8S_11  CPU limits: CPU is throttled, not killed, and throttling delays every event;
#               requests are set, memory limits too (a memory overrun does kill).
checkov_skips=CKV_K8S_21,CKV_K8S_15,CKV_K8S_43,CKV_K8S_11

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; failures=$((failures + 1)); }

[ -x "$helm" ] || { echo "no helm at $helm: run tests/cluster/build-tools.sh helm" >&2; exit 2; }
"$helm" version --short

scenarios=(defaults)
for f in "$chart"/ci/*-values.yaml tests/chart/scenarios/*-values.yaml; do scenarios+=("$f"); done

for scenario in "${scenarios[@]}"; do
  name=$(basename "$scenario" .yaml)
  args=()
  [ "$scenario" = defaults ] || args=(-f "$scenario")
  step "$name: helm lint --strict"
  "$helm" lint --strict "$chart" --kube-version "$render_version" "${args[@]}" || fail "$name: helm lint"
  step "$name: helm template -> Kubernetes ${kube_versions[0]}..${kube_versions[-1]} schemas"
  if "$helm" template crucible "$chart" --namespace crucible --kube-version "$render_version" \
      "${args[@]}" > "$out/$name.yaml"; then
    for version in "${kube_versions[@]}"; do
      kubernetes-validate --strict --quiet -k "$version" "$out/$name.yaml" \
        || fail "$name: schema $version"
    done
    echo "valid for ${kube_versions[*]}"
  else
    fail "$name: helm template"
  fi
done

step "yamllint (tests/chart/ct/lintconf.yaml)"
yamllint --strict -c tests/chart/ct/lintconf.yaml "$chart/Chart.yaml" "$chart/values.yaml" \
  "$chart"/ci/ tests/chart/scenarios/ tests/chart/ct/ ct.yaml && echo "clean" || fail yamllint

step "ct lint --all"
if [ -x "$ct" ]; then
  # ct calls `helm`, `yamllint` and `yamale` from PATH.
  mkdir -p "$out/bin" && ln -s "$helm" "$out/bin/helm"
  PATH="$out/bin:$PATH" "$ct" lint --config ct.yaml --all \
    --helm-lint-extra-args "--strict --kube-version $render_version" || fail "ct lint"
else
  fail "no ct at $ct: run tests/cluster/build-tools.sh ct"
fi

step "checkov $checkov_version (security lint of the rendered manifests)"
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  # Its own venv: checkov pins many libraries that must not meet the project's.
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install --quiet --no-cache-dir "checkov==$checkov_version"
fi
( cd "$out" && "$checkov_venv/bin/checkov" --directory "$out" --framework kubernetes \
    --skip-download --compact --quiet --skip-check "$checkov_skips" ) || fail checkov

step "README values table"
python3 -m tests.chart.values_table --check && echo "current" || fail "values table"

if [ "$failures" -gt 0 ]; then
  printf '\n%d chart check(s) failed\n' "$failures" >&2
  exit 1
fi
printf '\nall chart checks passed\n'
