#!/usr/bin/env bash
# Stops what up.sh started and removes what it left on the machine: processes by their recorded
# PIDs (never by name), the pods' containers and shims, kubelet and containerd mounts, the cni0
# bridge, kube-proxy's and CNI's iptables chains and the /kubepods cgroups.
#   usage: tests/cluster/down.sh [--purge]   (--purge also deletes CLUSTER_DIR: certs, etcd data)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/cluster-env.sh
. "$here/cluster-env.sh"
log() { printf '[down] %s\n' "$*" >&2; }

# stop NAME: SIGTERM the recorded PID, then SIGKILL after a grace, if it is still ours.
stop() {
  local pidfile=$PIDS/$1.pid pid
  [ -e "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -e "/proc/$pid" ] && grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
      [ -e "/proc/$pid" ] || break
      sleep 0.25
    done
    [ -e "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null && log "$1 killed (pid $pid)"
    log "$1 stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

# Stop the kubelet first so it does not restart the containers removed below.
stop kubelet
stop kube-proxy
stop coredns
stop local-path-provisioner
stop kueue
# Kueue's fixed metrics-certificate path (kueue.sh), if it is still the link up.sh made.
[ "$(readlink /etc/kueue 2>/dev/null)" = "$CLUSTER_DIR/kueue/certs" ] && rm -f /etc/kueue

# Containers and sandboxes through containerd while it still runs; shims are its children in
# spirit but not in the process tree, so killing tasks is the only way to reach them by owner.
if [ -S "$CONTAINERD_SOCK" ] && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1
  done
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks delete -f "$id" >/dev/null 2>&1
  done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do
    ctr_k8s containers delete "$id" >/dev/null 2>&1
  done
  log "containers removed"
fi

stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd
stop containerd

# Mounts below our directories, deepest first (secret/projected tmpfs, overlay rootfs, shm).
grep -E " ($CLUSTER_DIR|/run/containerd/io.containerd|/run/netns/cni-)" /proc/self/mounts |
  awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null && log "unmounted $m"
  done
for ns in /run/netns/cni-*; do
  [ -e "$ns" ] && rm -f "$ns"
done

if ip link show cni0 >/dev/null 2>&1; then
  ip link delete cni0 && log "cni0 deleted"
fi
# kube-proxy's, kubelet's and the CNI plugins' chains, in IPv4 and IPv6: each table is restored
# without our chains, the rules in them and the jumps into them; other rules stay as they were.
ours='^:(KUBE-|CNI-)|^-A (KUBE-|CNI-)|-j (KUBE-|CNI-)'
for family in iptables ip6tables; do
  command -v "$family-save" >/dev/null || continue
  for table in filter nat mangle raw; do
    rules=$("$family-save" -t "$table" 2>/dev/null) || continue
    count=$(printf '%s\n' "$rules" | grep -cE "$ours")
    [ "$count" -gt 0 ] || continue
    printf '%s\n' "$rules" | grep -vE "$ours" | "$family-restore" -T "$table" &&
      log "$family $table: removed $count rules and chains"
  done
done

# cgroups kubelet created (and containerd's k8s.io parent), deepest first; only empty ones go.
for hierarchy in /sys/fs/cgroup/*/; do
  for top in kubepods k8s.io; do
    [ -d "$hierarchy$top" ] || continue
    find "$hierarchy$top" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done
[ -d /sys/fs/cgroup/systemd/kubepods ] || [ -d /sys/fs/cgroup/memory/kubepods ] &&
  log "some kubepods cgroups are still in use"

if [ -e "$CLUSTER_DIR/host.before" ]; then
  before_forward=$(sed -n 's/^ip_forward=//p' "$CLUSTER_DIR/host.before")
  before_propagation=$(sed -n 's/^root_propagation=//p' "$CLUSTER_DIR/host.before")
  sysctl -qw "net.ipv4.ip_forward=$before_forward"
  [ "$before_propagation" = private ] && mount --make-rprivate /
  rm -f "$CLUSTER_DIR/host.before"
  log "restored ip_forward=$before_forward, / propagation $before_propagation"
fi
rm -rf "$CNI_DATA_DIR" "$CONTAINERD_STATE"
if [ "${1:-}" = --purge ]; then
  rm -rf "$CLUSTER_DIR"
  log "removed $CLUSTER_DIR"
fi
log "done"
