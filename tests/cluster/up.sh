#!/usr/bin/env bash
# Starts a real single-node Kubernetes on this machine as plain processes: containerd (CRI),
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables),
# and on the host CoreDNS, the default StorageClass's provisioner (storage.sh) and Kueue's
# controller manager (kueue.sh). Idempotent: what already runs (recorded PID, same binary) is
# kept.
# State, logs and PIDs live in CLUSTER_DIR (cluster-env.sh); down.sh undoes all of it.
#   usage: tests/cluster/up.sh                 start (or confirm) the cluster, print the env
#          tests/cluster/up.sh --print-env     only print `export KUBECONFIG=...`
# Needs root, tests/cluster/prereqs.sh and the binaries from build-tools.sh (built if missing).
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$here/versions.sh"
# shellcheck source=tests/cluster/cluster-env.sh
. "$here/cluster-env.sh"
# shellcheck source=tests/cluster/storage.sh
. "$here/storage.sh"
# shellcheck source=tests/cluster/kueue.sh
. "$here/kueue.sh"

print_env() { echo "export KUBECONFIG=$ADMIN_KUBECONFIG"; }
if [ "${1:-}" = --print-env ]; then
  print_env
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "up.sh must run as root" >&2; exit 1; }

KUBE_BIN=$CRUCIBLE_BIN/kubernetes-$KUBE_VERSION
COREDNS=$CRUCIBLE_BIN/coredns-$COREDNS_VERSION
t0=$(date +%s)
phase_start=$t0
log() { printf '[up %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
phase_done() {
  local now
  now=$(date +%s)
  printf '[up %4ss] phase %-22s %4ss\n' "$(( now - t0 ))" "$1" "$(( now - phase_start ))" >&2
  phase_start=$now
}

# wait_for SECONDS WHAT CMD...: retry CMD until it succeeds; on timeout show the log and fail.
wait_for() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${limit}s waiting for $what"
      [ -e "$LOGS/$what.log" ] && tail -30 "$LOGS/$what.log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# running NAME: the recorded PID is alive and is still the binary we started.
running() {
  local pid
  [ -e "$PIDS/$1.pid" ] || return 1
  pid=$(cat "$PIDS/$1.pid")
  [ -e "/proc/$pid/cmdline" ] || return 1
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$2"* ]]
}

# write_config FILE < CONTENT: replace FILE only if the content differs; kube-proxy exits when
# its config file changes, and a rerun of up.sh must leave running components alone.
write_config() {
  local new
  new=$(cat)
  [ -e "$1" ] && [ "$(cat "$1")" = "$new" ] && return 0
  printf '%s\n' "$new" >"$1"
}

# start NAME BINARY ARGS...: start a daemon in its own session unless it already runs.
start() {
  local name=$1
  if running "$name" "$2"; then
    log "$name already running (pid $(cat "$PIDS/$name.pid"))"
    return 0
  fi
  setsid "${@:2}" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!)"
}

need_binaries() {
  local missing=()
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [ -x "$KUBE_BIN/$b" ] || missing+=(kubernetes)
  done
  [ -x "$COREDNS" ] || missing+=(coredns)
  [ -x "$LOCAL_PATH_PROVISIONER" ] || missing+=(local-path-provisioner)
  [ -x "$KUEUE" ] || missing+=(kueue)
  if [ ! -x "$CRUCIBLE_BIN/etcd-$ETCD_VERSION" ] && ! command -v etcd >/dev/null; then
    missing+=(etcd)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "building missing tools: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
    # shellcheck disable=SC2046
    "$here/build-tools.sh" $(printf '%s\n' "${missing[@]}" | sort -u)
  fi
}

host_setup() {
  mkdir -p "$PKI" "$LOGS" "$PIDS" "$ETC" "$CNI_CONF_DIR" "$CNI_DATA_DIR" "$KUBELET_ROOT" \
    "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$CLUSTER_DIR/etcd"
  # down.sh puts back what the machine had before the first up.
  [ -e "$CLUSTER_DIR/host.before" ] || printf 'ip_forward=%s\nroot_propagation=%s\n' \
    "$(sysctl -n net.ipv4.ip_forward)" "$(findmnt -no PROPAGATION /)" >"$CLUSTER_DIR/host.before"
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  # Volume mount propagation (HostToContainer) needs a shared root, as kind sets it.
  mount --make-rshared /
  if ! ip link show cni0 >/dev/null 2>&1; then
    ip link add cni0 type bridge
  fi
  ip addr show dev cni0 | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/16" dev cni0
  ip link set cni0 up
  # Pods get no upstream resolver: nothing they look up may leave the machine.
  echo "options ndots:5" >"$ETC/resolv.conf"
}

start_containerd() {
  write_config "$CNI_CONF_DIR/10-crucible.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "crucible", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$CNI_DATA_DIR", "ranges": [[{"subnet": "$POD_CIDR"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
  write_config "$ETC/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  # This machine lacks CAP_SYS_RESOURCE: runc could not set the negative OOM scores kubelet asks for.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
  start containerd containerd --config "$ETC/containerd.toml"
  wait_for 60 containerd ctr --address "$CONTAINERD_SOCK" version
}

start_etcd() {
  local etcd=$CRUCIBLE_BIN/etcd-$ETCD_VERSION extra=()
  if [ -x "$etcd" ]; then
    extra=(--unsafe-no-fsync)  # a throwaway cluster: durability costs time, buys nothing
  else
    etcd=$(command -v etcd)
    log "etcd $ETCD_VERSION not built; falling back to Debian's $($etcd --version | head -1)"
  fi
  start etcd "$etcd" --name crucible --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "crucible=http://$ETCD_PEER" "${extra[@]}"
  wait_for 60 etcd curl -fsS "http://$ETCD_CLIENT/health"
}

start_control_plane() {
  start kube-apiserver "$KUBE_BIN/kube-apiserver" --etcd-servers="http://$ETCD_CLIENT" \
    --bind-address="$NODE_IP" --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_for 120 kube-apiserver kubectl --kubeconfig "$ADMIN_KUBECONFIG" get --raw /readyz
  phase_done kube-apiserver
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --controllers='*' --leader-elect=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --bind-address=127.0.0.1 --profiling=false --v=1
  start kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig="$PKI/scheduler.kubeconfig" \
    --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --profiling=false --v=1
  # The service-account token controller must have run before pods with tokens can start.
  wait_for 60 kube-controller-manager \
    kubectl --kubeconfig "$ADMIN_KUBECONFIG" get configmap kube-root-ca.crt -n default
}

start_kubelet() {
  write_config "$ETC/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs          # containerd 1.6 cannot tell kubelet its driver (no RuntimeConfig)
failCgroupV1: false             # this machine has cgroup v1; 1.35+ would refuse without it
failSwapOn: false
oomScoreAdj: 0                  # no CAP_SYS_RESOURCE here: negative scores are refused
protectKernelDefaults: false
address: $NODE_IP
port: 10250
readOnlyPort: 0
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $ETC/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100  # the local images cannot be pulled again: never collect them
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
  local since
  since=$(date -u +%s)
  start kubelet "$KUBE_BIN/kubelet" --config="$ETC/kubelet.yaml" \
    --kubeconfig="$PKI/kubelet.kubeconfig" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --root-dir="$KUBELET_ROOT" --v=1
  # After a restart the Node object still says Ready from last time: only a heartbeat from
  # this kubelet counts (or any, when it was already running).
  running kubelet kubelet && [ "$(cat "$PIDS/kubelet.pid")" != "${!:-none}" ] && since=0
  wait_for 120 kubelet node_ready "$since"
}

# node_ready SINCE: the node's Ready condition is True and was reported after SINCE (epoch s).
node_ready() {
  local ready beat
  ready=$(kubectl --kubeconfig "$ADMIN_KUBECONFIG" get node "$NODE_NAME" -o \
    jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}')
  beat=${ready#* }
  [ "${ready%% *}" = True ] && [ "$(date -u -d "$beat" +%s)" -ge "$1" ]
}

start_proxy_and_dns() {
  write_config "$ETC/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
clientConnection: {kubeconfig: $PKI/kube-proxy.kubeconfig}
oomScoreAdj: 0
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$NODE_IP/32"]   # not on the machine's other interfaces
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  start kube-proxy "$KUBE_BIN/kube-proxy" --config="$ETC/kube-proxy.yaml"
  # CoreDNS reads Services and EndpointSlices with its own identity, not the admin's.
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "crucible:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "crucible:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "crucible:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "crucible:coredns"}
EOF
  # No forward plugin: names outside the cluster get no answer instead of leaving the machine.
  write_config "$ETC/Corefile" <<EOF
.:53 {
    bind $DNS_IP
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $PKI/coredns.kubeconfig crucible
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
  start coredns "$COREDNS" -conf "$ETC/Corefile"
  wait_for 60 coredns python3 "$here/dnsquery.py" "$DNS_IP" kubernetes.default.svc.cluster.local
  # kube-proxy's rules are in place once the kubernetes Service answers on its ClusterIP.
  wait_for 60 kube-proxy curl -sk -o /dev/null "https://$API_SERVICE_IP/readyz"
}

need_binaries;            phase_done binaries
host_setup;               phase_done host
start_containerd;         phase_done containerd
"$here/images.sh" --import; phase_done images
"$here/certs.sh";         phase_done certs
start_etcd;               phase_done etcd
start_control_plane;      phase_done controllers
start_kubelet;            phase_done kubelet
start_proxy_and_dns;      phase_done proxy+dns
start_storage;            phase_done storage
start_kueue;              phase_done kueue
log "cluster up in $(( $(date +%s) - t0 ))s: node $NODE_NAME Ready, DNS answers, default StorageClass, Kueue"
print_env
