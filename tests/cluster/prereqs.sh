#!/usr/bin/env bash
# Installs the Debian packages the single-node test cluster, the image builds and the browser
# tests need.
# Idempotent: packages already installed are not fetched again, and apt-get update runs only
# when something is missing.
#   usage: tests/cluster/prereqs.sh
set -euo pipefail

packages=(
  containerd runc containernetworking-plugins  # container runtime and bridge CNI plugins
  iptables conntrack socat ethtool ebtables     # what kubelet and kube-proxy shell out to
  iproute2 util-linux mount kmod openssl        # ip, nsenter/mount, cert generation
  debootstrap gcc libc6-dev python3-pip         # image rootfs, static pause, platform wheels
  buildah                                       # builds ./Dockerfile (the platform image)
  busybox-static                                # the python-less executor image
  git yamllint                                  # chart-testing runs git and yamllint
  redis-server                                  # the tests' local Redis (and the Redis image)
  chromium chromium-driver fonts-dejavu-core    # the web page's browser tests (tests/browser)
  docker-registry skopeo                        # the release steps' loopback registry (tests/release)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[prereqs] all ${#packages[@]} packages present"
  exit 0
fi

echo "[prereqs] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another engineer's apt run may hold the lock; wait for it rather than fail.
apt_opts=(-o DPkg::Lock::Timeout=600 -y --no-install-recommends)
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get "${apt_opts[@]}" install -qq "${missing[@]}" >/dev/null
# Debian starts services through policy-rc.d-less invoke-rc.d only with an init system; on
# machines with one, the packaged containerd/redis/registry would compete with ours: stop them.
for svc in containerd redis-server docker-registry; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "[prereqs] done"
