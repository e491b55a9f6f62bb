# shellcheck shell=bash
# Kueue (kueue.sigs.k8s.io), the batch-queueing engine crucible can hand admission to
# (`evaluation.kueue.localQueueName`). Its controller manager (built by build-tools.sh) runs on the
# host like CoreDNS, with a client certificate of its own from the cluster's CA, the CRDs and
# RBAC of its Go module, and only the batch/job integration. Its webhooks are served on loopback
# with a certificate from the same CA and registered by URL (the apiserver runs on the host); the
# Job webhooks only see Jobs labelled for a queue, so a stopped Kueue blocks no other Job.
# Sourced by up.sh, which provides log, start, running, wait_for and write_config. Idempotent.
# shellcheck disable=SC2034  # KUEUE is read by up.sh
KUEUE=$CRUCIBLE_BIN/kueue-$KUEUE_VERSION
KUEUE_DIR=$CLUSTER_DIR/kueue
KUEUE_USER=crucible:kueue
KUEUE_HEALTH=127.0.0.1:18081   # private ports: nothing else on the machine uses them
KUEUE_METRICS=127.0.0.1:18443
KUEUE_WEBHOOK_PORT=19443
# Kueue reads its metrics certificate from this fixed path when it does not manage its own
# certificates (cmd/kueue/main.go); down.sh removes the link.
KUEUE_METRICS_LINK=/etc/kueue

kueue_module_dir() {
  go mod download -json "sigs.k8s.io/kueue@v$KUEUE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

# kueue_cert NAME SUBJECT EXTENSIONS: a leaf certificate from the cluster's CA, issued once.
kueue_cert() {
  [ -e "$KUEUE_DIR/$1.crt" ] && return 0
  openssl req -new -nodes -newkey rsa:2048 -keyout "$KUEUE_DIR/$1.key" -out "$KUEUE_DIR/$1.csr" \
    -subj "$2" 2>/dev/null
  openssl x509 -req -sha256 -days 365 -in "$KUEUE_DIR/$1.csr" -CA "$PKI/ca.crt" \
    -CAkey "$PKI/ca.key" -CAcreateserial -out "$KUEUE_DIR/$1.crt" \
    -extfile <(printf '%b' "$3") 2>/dev/null
  rm -f "$KUEUE_DIR/$1.csr"
  chmod 600 "$KUEUE_DIR/$1.key"
}

kueue_identity() {
  local leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
  local kc=$KUEUE_DIR/kueue.kubeconfig
  kueue_cert client "/CN=$KUEUE_USER" "${leaf}extendedKeyUsage=clientAuth\n"
  kueue_cert serving "/CN=kueue-webhook" \
    "${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
  mkdir -p "$KUEUE_DIR/certs/metrics/certs"
  ln -sf ../serving.crt "$KUEUE_DIR/certs/tls.crt"
  ln -sf ../serving.key "$KUEUE_DIR/certs/tls.key"
  ln -sf ../../../serving.crt "$KUEUE_DIR/certs/metrics/certs/tls.crt"
  ln -sf ../../../serving.key "$KUEUE_DIR/certs/metrics/certs/tls.key"
  if [ -L "$KUEUE_METRICS_LINK" ] || [ ! -e "$KUEUE_METRICS_LINK" ]; then
    ln -sfn "$KUEUE_DIR/certs" "$KUEUE_METRICS_LINK"
  else
    log "$KUEUE_METRICS_LINK exists and is not ours: not starting Kueue"
    return 1
  fi
  [ -e "$kc" ] && return 0
  kubectl config set-cluster crucible --server="https://$NODE_IP:$API_PORT" \
    --certificate-authority="$PKI/ca.crt" --embed-certs --kubeconfig="$kc.tmp" >/dev/null
  kubectl config set-credentials kueue --client-certificate="$KUEUE_DIR/client.crt" \
    --client-key="$KUEUE_DIR/client.key" --embed-certs --kubeconfig="$kc.tmp" >/dev/null
  kubectl config set-context crucible --cluster=crucible --user=kueue --kubeconfig="$kc.tmp" \
    >/dev/null
  kubectl config use-context crucible --kubeconfig="$kc.tmp" >/dev/null
  chmod 600 "$kc.tmp"
  mv "$kc.tmp" "$kc"
}

# The namespace Kueue keeps its own objects in, and upstream's roles (the manager's, the metrics
# endpoint's token reviews, its Secrets there), renamed and bound to the host process's user.
kueue_rbac() {
  local module=$1 rbac=$1/config/components/rbac
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: kueue-system}\n'
  echo ---
  sed 's/^  name: manager-role$/  name: "crucible:kueue-manager"/' "$rbac/role.yaml"
  echo ---
  sed 's/^  name: metrics-auth-role$/  name: "crucible:kueue-metrics-auth"/' \
    "$rbac/metrics_auth_role.yaml"
  echo ---
  sed -e 's/^  name: manager-secrets-role$/  name: "crucible:kueue-secrets"/' \
    -e 's/^  namespace: system$/  namespace: kueue-system/' "$rbac/manager_secrets_role.yaml"
  for role in manager metrics-auth; do
    cat <<EOF
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "crucible:kueue-$role"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "crucible:kueue-$role"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$KUEUE_USER"}
EOF
  done
  cat <<EOF
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "crucible:kueue-secrets", namespace: kueue-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "crucible:kueue-secrets"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$KUEUE_USER"}
EOF
}

kueue_config() {
  write_config "$ETC/kueue.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health: {healthProbeBindAddress: "$KUEUE_HEALTH"}
metrics: {bindAddress: "$KUEUE_METRICS"}
webhook: {host: 127.0.0.1, port: $KUEUE_WEBHOOK_PORT, certDir: "$KUEUE_DIR/certs"}
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}   # it would wait for a Secret mounted by a kubelet
manageJobsWithoutQueueName: false
integrations: {frameworks: [batch/job]}
# The on-demand visibility API would write its certificates to /visibility and need an
# APIService; nothing here reads it.
featureGates: {VisibilityOnDemand: false}
EOF
}

start_kueue() {
  local module before
  mkdir -p "$KUEUE_DIR"
  module=$(kueue_module_dir)
  kueue_identity
  # The Workload CRD is larger than client-side apply's annotation allows.
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply --server-side --force-conflicts \
    -f "$module/config/components/crd/bases/" >/dev/null
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" wait --for condition=Established --timeout 60s \
    -f "$module/config/components/crd/bases/" >/dev/null
  kueue_rbac "$module" | kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null
  before=$(cat "$ETC/kueue.yaml" 2>/dev/null || true)
  kueue_config
  # It reads its configuration once, at start.
  if [ "$before" != "$(cat "$ETC/kueue.yaml")" ] && running kueue "$KUEUE"; then
    log "kueue.yaml changed: restarting kueue"
    kill "$(cat "$PIDS/kueue.pid")"
    wait_for 30 kueue kueue_gone "$(cat "$PIDS/kueue.pid")"
  fi
  start kueue "$KUEUE" --config="$ETC/kueue.yaml" --kubeconfig="$KUEUE_DIR/kueue.kubeconfig"
  wait_for 120 kueue curl -fsS "http://$KUEUE_HEALTH/readyz"
  # Registered once the server answers: with failurePolicy Fail, earlier would refuse Kueue's
  # own objects.
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" create --dry-run=client -o json \
    -f "$module/config/components/webhook/manifests.yaml" |
    python3 "$here/kueue_webhooks.py" "$PKI/ca.crt" "https://127.0.0.1:$KUEUE_WEBHOOK_PORT" |
    kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply -f - >/dev/null
}

kueue_gone() { [ ! -e "/proc/$1" ]; }
