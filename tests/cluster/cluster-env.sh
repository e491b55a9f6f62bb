# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the sourcing scripts
# Paths and addresses of the single-node test cluster; sourced by up.sh, down.sh and images.sh.
# Everything the cluster writes lives under CLUSTER_DIR, so down.sh knows exactly what to remove,
# and containerd gets its own socket, so a containerd/Docker already on the machine is untouched.
CLUSTER_DIR=${CRUCIBLE_CLUSTER_DIR:-/var/lib/crucible-cluster}
PKI=$CLUSTER_DIR/pki
LOGS=$CLUSTER_DIR/logs
PIDS=$CLUSTER_DIR/pids
ETC=$CLUSTER_DIR/etc
CONTAINERD_ROOT=$CLUSTER_DIR/containerd
CONTAINERD_STATE=$CLUSTER_DIR/run/containerd
CONTAINERD_SOCK=$CLUSTER_DIR/run/containerd.sock
KUBELET_ROOT=$CLUSTER_DIR/kubelet
CNI_CONF_DIR=$ETC/cni
CNI_DATA_DIR=$CLUSTER_DIR/cni
ADMIN_KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig

NODE_NAME=${CRUCIBLE_NODE_NAME:-crucible-node}
NODE_IP=10.88.0.1           # the cni0 bridge: nothing depends on the machine's own interfaces
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=$NODE_IP             # CoreDNS runs on the host, bound to the bridge address
API_PORT=6443
ETCD_CLIENT=127.0.0.1:23790  # private ports: a developer's own etcd keeps 2379/2380
ETCD_PEER=127.0.0.1:23800

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
