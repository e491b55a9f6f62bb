#!/usr/bin/env bash
# Builds the platform image from ./Dockerfile with buildah, on a python root filesystem layer as
# BASE, and writes it as an OCI archive that `ctr images import` tags as NAME:
#   tests/cluster/platform-image.sh BASE-LAYER.tar OUT.oci.tar [NAME]   (prints the manifest digest)
# buildah keeps its storage in ~/.cache/crucible/buildah (CRUCIBLE_BUILDAH_DIR overrides it, e.g.
# a fresh directory to show that a build from nothing gives the same digest): no daemon, nothing
# under /var/lib/containers, and its layer cache keeps the stages whose inputs did not change.
# The build is offline: pip installs from wheels downloaded once per pyproject.toml and mounted.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/cluster/versions.sh
. "$here/versions.sh"
base_layer=$1 out=$2 name=${3:-localhost/crucible-platform:ci}
BUILDAH_DIR=${CRUCIBLE_BUILDAH_DIR:-$CRUCIBLE_CACHE/buildah}
PY=${CRUCIBLE_IMAGE_PYTHON:-$CRUCIBLE_CACHE/venv/bin/python}
[ -x "$PY" ] || PY=python3
# Fixed timestamps (files, history, byte-code): the same inputs give the same image.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

bh() {
  buildah --root "$BUILDAH_DIR/root" --runroot "$BUILDAH_DIR/run" --storage-driver overlay "$@"
}
key_of() { sha256sum | cut -c1-16; }

# The Dockerfile's BASE: the layer as a local image in buildah's storage, named by its content.
base_image() {
  local base archive
  base=localhost/crucible-base:python-$(cat "$base_layer" "$here/mkoci.py" | key_of)
  if ! bh inspect --type image "$base" >/dev/null 2>&1; then
    archive=$(mktemp -u "$BUILDAH_DIR/base-XXXXXX.oci.tar")
    mkdir -p "$BUILDAH_DIR"
    "$PY" "$here/mkoci.py" image "$base" "$archive" --layer "$base_layer" >/dev/null
    bh pull --quiet "oci-archive:$archive" >/dev/null
    rm -f "$archive"
  fi
  echo "$base"
}

# Wheels of crucible's dependencies and of its build backend, downloaded by the host's Debian
# python (3.11.2, the image's: environment markers are judged by the downloading interpreter).
wheels() {
  local dir work
  dir=$CRUCIBLE_CACHE/wheels/$( (cat "$repo/pyproject.toml"; sed -n '/^wheels()/,/^}/p' "$0") |
    key_of)
  if [ ! -e "$dir/.done" ]; then
    work=$(mktemp -d)
    (cd "$repo" && cp -r pyproject.toml README.md wire wrapper sidecar dispatcher crucible "$work/")
    rm -rf "$dir" && mkdir -p "$dir"
    PIP_FIND_LINKS='' /usr/bin/python3 -m pip download --quiet --no-cache-dir --only-binary :all: \
      --dest "$dir" "$work[dispatcher,sidecar]" pip 'setuptools>=68' wheel >"$dir.log" 2>&1 ||
      { cat "$dir.log" >&2; exit 1; }
    rm -rf "$work" "$dir.log" "$dir"/crucible-*
    touch "$dir/.done"
  fi
  echo "$dir"
}

base=$(base_image)
# buildah annotates the base it built on, but from its layer cache's records when it reuses
# them (an equal base of another name, or read at another time): state it, from the base itself.
base_digest=$(bh inspect --type image --format '{{.FromImageDigest}}' "$base")
wheel_dir=$(wheels)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")
log=$(mktemp)
# chroot isolation: no user or network namespaces, which this VM's runtime lacks; the build
# needs no network but for the launcher stage's apt (deb.debian.org). --omit-history: with
# --layers, buildah's history names the layer cache's intermediate images, which differ from one
# storage to the next; without it a cached build and one from nothing differ in that alone.
bh bud --isolation chroot --layers --omit-history --pull=never --timestamp "$SOURCE_DATE_EPOCH" \
  --build-arg BASE="$base" --build-arg SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
  --annotation org.opencontainers.image.base.name="$base" \
  --annotation org.opencontainers.image.base.digest="$base_digest" \
  --build-arg PIP_OPTIONS="--no-index --find-links /wheels" --volume "$wheel_dir:/wheels:ro" \
  --build-arg VERSION="$version" --build-arg REVISION="${CRUCIBLE_REVISION:-unknown}" \
  --tag "$name" --file "$repo/Dockerfile" "$repo" >"$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }
rm -f "$log"
# Each source edit leaves the last build's layers behind, untagged (~200 MB): drop them. The
# layer cache goes with them, which costs little: the pip step reruns anyway (it has a volume).
bh rmi --prune >/dev/null 2>&1 || true
# buildah 1.28 gzips the layers whatever --disable-compression says, so the manifest containerd
# gets is the pushed one; its config (the image ID) is the one buildah built.
bh push --quiet "$name" "oci-archive:$out.partial:$name" >/dev/null
tar -xOf "$out.partial" index.json |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'
mv "$out.partial" "$out"
