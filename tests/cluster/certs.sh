#!/usr/bin/env bash
# Creates the test cluster's CA, serving and client certificates, service-account keys and one
# kubeconfig per client, in the style of kubeadm. Runs once: an existing CA is kept, so restarts
# of the cluster keep every issued credential valid.
#   usage: tests/cluster/certs.sh   (paths from cluster-env.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/cluster-env.sh
. "$here/cluster-env.sh"
mkdir -p "$PKI"
chmod 700 "$PKI"
cd "$PKI"
if [ -e ca.crt ] && [ -e admin.kubeconfig ]; then
  install -m 600 admin.kubeconfig "$ADMIN_KUBECONFIG"
  exit 0
fi

openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 -keyout ca.key -out ca.crt \
  -subj "/CN=crucible-test-ca" 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

# issue NAME SUBJECT EXTENSIONS: a leaf certificate signed by the CA.
issue() {
  openssl req -new -nodes -newkey rsa:2048 -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -sha256 -days 365 -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$1.crt" -extfile <(printf '%b' "$3") 2>/dev/null
  rm -f "$1.csr"
}
leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
client="${leaf}extendedKeyUsage=clientAuth\n"
server="${leaf}extendedKeyUsage=serverAuth\n"

issue apiserver "/CN=kube-apiserver" "${server}subjectAltName=DNS:kubernetes,\
DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,\
DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP\n"
issue kubelet-serving "/CN=$NODE_NAME" \
  "${server}subjectAltName=DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP\n"
# system:masters keeps the apiserver->kubelet and admin paths free of extra RBAC objects.
issue admin "/O=system:masters/CN=crucible-admin" "$client"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
issue controller-manager "/CN=system:kube-controller-manager" "$client"
issue scheduler "/CN=system:kube-scheduler" "$client"
issue kube-proxy "/CN=system:kube-proxy" "$client"
# The Node authorizer and NodeRestriction recognise a kubelet only by exactly this identity.
issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
issue coredns "/CN=crucible:coredns" "$client"

for who in admin controller-manager scheduler kube-proxy kubelet coredns; do
  kc=$who.kubeconfig
  kubectl config set-cluster crucible --server="https://$NODE_IP:$API_PORT" \
    --certificate-authority=ca.crt --embed-certs --kubeconfig="$kc" >/dev/null
  kubectl config set-credentials "$who" --client-certificate="$who.crt" \
    --client-key="$who.key" --embed-certs --kubeconfig="$kc" >/dev/null
  kubectl config set-context crucible --cluster=crucible --user="$who" --kubeconfig="$kc" >/dev/null
  kubectl config use-context crucible --kubeconfig="$kc" >/dev/null
done
chmod 600 ./*.key ./*.kubeconfig
install -m 600 admin.kubeconfig "$ADMIN_KUBECONFIG"
