#!/usr/bin/env bash
# Packages charts/crucible and pushes it as an OCI artifact; prints the pushed reference/digest.
#   [IMAGE_REPOSITORY=REGISTRY/OWNER/crucible-platform] \
#     .github/scripts/push-chart.sh oci://REGISTRY/OWNER/charts [HELM-OPTION...]
# The release workflow pushes to ghcr.io after `helm registry login`; tests/release pushes to a
# registry on loopback with --plain-http. helm names the artifact after the chart
# (…/charts/crucible) and tags it with the chart's version. IMAGE_REPOSITORY, when set, becomes
# the packaged chart's default image.repository: a fork's chart then pulls the fork's image.
set -euo pipefail
repo=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r charts/crucible "$work/crucible"
if [ -n "${IMAGE_REPOSITORY:-}" ]; then
  values=$work/crucible/values.yaml
  grep -q '^  repository: ghcr.io/crucible-dev/crucible-platform$' "$values" ||
    { echo "values.yaml: image.repository is not the line this script rewrites" >&2; exit 1; }
  sed -i "s|^  repository: ghcr.io/crucible-dev/crucible-platform$|  repository: $IMAGE_REPOSITORY|" \
    "$values"
fi
helm package "$work/crucible" --destination "$work/dist" >/dev/null
chart=$(echo "$work"/dist/crucible-*.tgz)
version=$(basename "$chart" .tgz)
version=${version#crucible-}
# A registry tag is overwritten by a second push: a released chart version is never replaced.
if helm show chart "$repo/crucible" --version "$version" "$@" >/dev/null 2>&1; then
  echo "::error::$repo/crucible:$version is already published: bump the chart's version" >&2
  exit 1
fi
out=$(helm push "$chart" "$repo" "$@" 2>&1) || { echo "$out" >&2; exit 1; }
# helm push reports "Pushed: REF" and "Digest: sha256:…" (on stderr, hence 2>&1 above).
ref=$(sed -n 's/^Pushed: //p' <<<"$out")
digest=$(sed -n 's/^Digest: //p' <<<"$out")
[ -n "$ref" ] && [ -n "$digest" ] || { echo "unexpected helm push output: $out" >&2; exit 1; }
printf 'chart_ref=%s\nchart_digest=%s\n' "$ref" "$digest" | tee -a "${GITHUB_OUTPUT:-/dev/null}"
