#!/usr/bin/env bash
# Builds every Go tool the chart checks and the test cluster need, from the Go module proxy, into
# a cache outside the repo. A tool already in the cache is reused, so a warm run costs seconds.
#   usage: tests/cluster/build-tools.sh [TOOL...]     (default: all, in the order below)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$here/versions.sh"
mkdir -p "$CRUCIBLE_BIN" "$GOMODCACHE" "$GOCACHE"

stamp() { date +%s; }
log() { printf '[build-tools] %s\n' "$*" >&2; }

# A throwaway module that requires MODULE@VERSION; replace/exclude directives of a dependency
# are ignored by Go, which is why `go install` fails for kubernetes and etcd and this works.
wrapper_module() {
  local dir=$1
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init crucible.invalid/toolbuild >/dev/null 2>&1
}

# A go-installed helm assumes Kubernetes 1.20 for `helm template`/`lint` without a cluster, which
# fails the chart's kubeVersion constraint; release builds set these to the current minor.
HELM_KUBE_LDFLAGS=""
kube_minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  HELM_KUBE_LDFLAGS+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kube_minor"
done

# `go install PACKAGE@VERSION` into OUT, linked with "-s -w" and EXTRA_LDFLAGS; go install
# names the binary after the package, so it is built in a directory of its own and moved.
go_install() {
  local out=$1 extra_ldflags=$2 package=$3 tmp
  tmp=$(mktemp -d "$CRUCIBLE_BIN/tmp-XXXXXX")
  GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $extra_ldflags" "$package"
  mv "$tmp"/* "$out" && rmdir "$tmp"
}

build_helm() {
  go_install "$1" "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION $HELM_KUBE_LDFLAGS" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
}

build_ct() {
  local out=$1 work="$CRUCIBLE_CACHE/work/ct"
  # go install reads the proxy's version list, which answers 403 for chart-testing; go get of a
  # pinned version does not.
  wrapper_module "$work"
  go get "github.com/helm/chart-testing/v3/ct@v$CT_VERSION" >/dev/null
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/helm/chart-testing/v3/ct/cmd.Version=v$CT_VERSION" \
    -o "$out" github.com/helm/chart-testing/v3/ct
}

build_actionlint() {
  go_install "$1" "" "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
}

# The release workflow's signing and SBOM steps, run on the platform image by tests/release.
build_cosign() {
  go_install "$1" "-X sigs.k8s.io/release-utils/version.gitVersion=v$COSIGN_VERSION" \
    "github.com/sigstore/cosign/v2/cmd/cosign@v$COSIGN_VERSION"
}

build_syft() {
  go_install "$1" "-X main.version=$SYFT_VERSION" "github.com/anchore/syft/cmd/syft@v$SYFT_VERSION"
}

build_coredns() {
  go_install "$1" "" "github.com/coredns/coredns@v$COREDNS_VERSION"
}

build_local-path-provisioner() {
  go_install "$1" "-X main.VERSION=v$LOCAL_PATH_VERSION" \
    "github.com/rancher/local-path-provisioner@v$LOCAL_PATH_VERSION"
}

build_kueue() {
  go_install "$1" "-X sigs.k8s.io/kueue/pkg/version.GitVersion=v$KUEUE_VERSION" \
    "sigs.k8s.io/kueue/cmd/kueue@v$KUEUE_VERSION"
}

build_crictl() {
  go_install "$1" "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION"
}

build_etcd() {
  local out=$1 work="$CRUCIBLE_CACHE/work/etcd"
  wrapper_module "$work"
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" go.etcd.io/etcd/server/v3
}

build_kubernetes() {
  local out=$1 work="$CRUCIBLE_CACHE/work/kubernetes" minor=${KUBE_VERSION#1.} gomod m p ld
  wrapper_module "$work"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # Pin every staging module to the matching v0.x tag, derived from upstream's own go.mod.
  for m in $(awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@v0.$minor"
  done
  go mod edit -require="k8s.io/kubernetes@v$KUBE_VERSION" -go=1.24.0
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*}"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld+=" -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy
  rm -rf "$out" && mv "$out.tmp" "$out"
}

target_path() {
  case $1 in
    helm) echo "$CRUCIBLE_BIN/helm-$HELM_VERSION" ;;
    ct) echo "$CRUCIBLE_BIN/ct-$CT_VERSION" ;;
    actionlint) echo "$CRUCIBLE_BIN/actionlint-$ACTIONLINT_VERSION" ;;
    cosign) echo "$CRUCIBLE_BIN/cosign-$COSIGN_VERSION" ;;
    syft) echo "$CRUCIBLE_BIN/syft-$SYFT_VERSION" ;;
    coredns) echo "$CRUCIBLE_BIN/coredns-$COREDNS_VERSION" ;;
    etcd) echo "$CRUCIBLE_BIN/etcd-$ETCD_VERSION" ;;
    kubernetes) echo "$CRUCIBLE_BIN/kubernetes-$KUBE_VERSION" ;;
    local-path-provisioner) echo "$CRUCIBLE_BIN/local-path-provisioner-$LOCAL_PATH_VERSION" ;;
    kueue) echo "$CRUCIBLE_BIN/kueue-$KUEUE_VERSION" ;;
    crictl) echo "$CRUCIBLE_BIN/crictl-$CRICTL_VERSION" ;;
    *) log "unknown tool $1"; exit 2 ;;
  esac
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] ||
  tools=(helm ct actionlint kubernetes etcd coredns local-path-provisioner kueue cosign syft)
for tool in "${tools[@]}"; do
  out=$(target_path "$tool")
  if [ -e "$out" ]; then
    log "$tool: cached at $out"
    continue
  fi
  start=$(stamp)
  log "$tool: building into $out"
  ( "build_$tool" "$out" )
  log "$tool: built in $(( $(stamp) - start )) s"
done
