# shellcheck shell=bash
# The cluster's default StorageClass, the way kind provides one: rancher's local-path-provisioner
# (built by build-tools.sh) runs on the host like CoreDNS, with a client certificate of its own,
# and makes or removes each volume's directory under LOCAL_PATH_DIR through a short helper pod on
# the executor image (its sh, mkdir and rm; no image of its own is needed).
# Sourced by up.sh, which provides log, start, running and wait_for. Idempotent: the manifest is
# applied again, and the provisioner is restarted only when its ConfigMap changed (it reads the
# ConfigMap once, at start).
# shellcheck disable=SC2034  # LOCAL_PATH_PROVISIONER is read by up.sh
LOCAL_PATH_PROVISIONER=$CRUCIBLE_BIN/local-path-provisioner-$LOCAL_PATH_VERSION
# One directory per volume. Kept by a plain down.sh, like etcd whose PVs point into it;
# `down.sh --purge` removes both with the rest of CLUSTER_DIR.
LOCAL_PATH_DIR=$CLUSTER_DIR/local-path
LOCAL_PATH_USER=crucible:local-path-provisioner
LOCAL_PATH_HELPER_IMAGE=localhost/crucible-executor-python:ci

# A client certificate from the cluster's CA, as certs.sh issues them (which runs only once per CA).
local_path_identity() {
  local name=local-path-provisioner kc=$PKI/local-path-provisioner.kubeconfig
  local ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
  ext+='extendedKeyUsage=clientAuth\n'
  [ -e "$kc" ] && return 0
  (
    cd "$PKI"
    openssl req -new -nodes -newkey rsa:2048 -keyout "$name.key" -out "$name.csr" \
      -subj "/CN=$LOCAL_PATH_USER" 2>/dev/null
    openssl x509 -req -sha256 -days 365 -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out "$name.crt" -extfile <(printf '%b' "$ext") 2>/dev/null
    rm -f "$name.csr"
    kubectl config set-cluster crucible --server="https://$NODE_IP:$API_PORT" \
      --certificate-authority=ca.crt --embed-certs --kubeconfig="$kc.tmp" >/dev/null
    kubectl config set-credentials "$name" --client-certificate="$name.crt" \
      --client-key="$name.key" --embed-certs --kubeconfig="$kc.tmp" >/dev/null
    kubectl config set-context crucible --cluster=crucible --user="$name" \
      --kubeconfig="$kc.tmp" >/dev/null
    kubectl config use-context crucible --kubeconfig="$kc.tmp" >/dev/null
    chmod 600 "$name.key" "$kc.tmp"
    mv "$kc.tmp" "$kc"
  )
}

# Upstream's deploy/local-path-storage.yaml, minus the Deployment, bound to the host process's
# user; helper pods run as root (the volume root is root's) with no service-account token.
local_path_manifest() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: local-path-storage
  labels: {pod-security.kubernetes.io/enforce: privileged}  # helper pods: hostPath, root
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-helper, namespace: local-path-storage}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "$LOCAL_PATH_USER"}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "$LOCAL_PATH_USER"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "$LOCAL_PATH_USER"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$LOCAL_PATH_USER"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: "$LOCAL_PATH_USER", namespace: local-path-storage}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "$LOCAL_PATH_USER", namespace: local-path-storage}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "$LOCAL_PATH_USER"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$LOCAL_PATH_USER"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  config.json: |-
    {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$LOCAL_PATH_DIR"]}]}
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      enableServiceLinks: false
      tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
      containers:
      - name: helper-pod
        image: $LOCAL_PATH_HELPER_IMAGE
        imagePullPolicy: IfNotPresent
        securityContext: {runAsUser: 0, runAsGroup: 0}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
}

start_storage() {
  local applied from log=$LOGS/local-path-provisioner.log
  # Only root on the host can reach the volumes: runc bind-mounts each one where it belongs.
  install -d -m 0700 "$LOCAL_PATH_DIR"
  local_path_identity
  applied=$(local_path_manifest | kubectl --kubeconfig "$ADMIN_KUBECONFIG" apply -f -)
  if [[ $applied == *"configmap/local-path-config configured"* ]] &&
    running local-path-provisioner "$LOCAL_PATH_PROVISIONER"; then
    log "local-path-config changed: restarting local-path-provisioner"
    kill "$(cat "$PIDS/local-path-provisioner.pid")"
    wait_for 30 local-path-provisioner provisioner_gone "$(cat "$PIDS/local-path-provisioner.pid")"
  fi
  if running local-path-provisioner "$LOCAL_PATH_PROVISIONER"; then
    log "local-path-provisioner already running (pid $(cat "$PIDS/local-path-provisioner.pid"))"
    return 0
  fi
  from=$(stat -c %s "$log" 2>/dev/null || echo 0)
  start local-path-provisioner "$LOCAL_PATH_PROVISIONER" start \
    --kubeconfig "$PKI/local-path-provisioner.kubeconfig" --namespace local-path-storage \
    --provisioner-name rancher.io/local-path --configmap-name local-path-config \
    --service-account-name local-path-helper --helper-image "$LOCAL_PATH_HELPER_IMAGE"
  # Its informers have synced and it is claiming volumes once it says so in this run's log.
  # (Its "failed to save helper-pod logs" errors are harmless: that step wants in-cluster config.)
  wait_for 60 local-path-provisioner provisioner_started "$log" "$from"
}

provisioner_gone() { [ ! -e "/proc/$1" ]; }
provisioner_started() { tail -c +"$(($2 + 1))" "$1" | grep -q 'Started provisioner controller'; }
