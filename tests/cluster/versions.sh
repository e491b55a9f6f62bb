# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the sourcing scripts
# Pinned versions and cache locations of every tool built from the Go module proxy.
# Sourced by the cluster and chart scripts; a version bump here rebuilds only that tool.
KUBE_VERSION=${KUBE_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-1.14.7}
HELM_VERSION=${HELM_VERSION:-3.21.4}
CT_VERSION=${CT_VERSION:-3.14.0}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-1.7.12}
# The release workflow's signing and SBOM tools, run on the platform image by tests/release.
COSIGN_VERSION=${COSIGN_VERSION:-2.6.5}
SYFT_VERSION=${SYFT_VERSION:-1.57.2}
# The default StorageClass, as kind ships it; 0.0.30 is the newest release the proxy serves.
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-0.0.30}
# Kueue's controller manager (issue 10's optional hand-off); the only release the proxy lists.
KUEUE_VERSION=${KUEUE_VERSION:-0.17.0}
# The CRI's own client, for bench/cluster_latency.py's per-container timings (nanoseconds, where
# the API server's pod status has whole seconds); built on demand, not by CI.
CRICTL_VERSION=${CRICTL_VERSION:-1.34.0}

CRUCIBLE_CACHE=${CRUCIBLE_CACHE:-$HOME/.cache/crucible}
CRUCIBLE_BIN=$CRUCIBLE_CACHE/bin
export GOMODCACHE=${CRUCIBLE_GOMODCACHE:-$CRUCIBLE_CACHE/go/mod}
export GOCACHE=${CRUCIBLE_GOCACHE:-$CRUCIBLE_CACHE/go/build}
export GOFLAGS=${GOFLAGS:-}
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
