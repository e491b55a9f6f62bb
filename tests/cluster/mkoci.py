"""Write OCI image archives from plain directories, so images need neither a registry nor Docker.

    mkoci.py layer ROOTFS OUT.tar
        pack a directory into a reproducible, uncompressed layer tar (owner root, mtime 0)
    mkoci.py image NAME OUT.tar --layer L1.tar [--layer L2.tar ...] [--entrypoint JSON]
                  [--cmd JSON] [--env K=V ...] [--workdir DIR] [--user UID]
        write an oci-layout archive; `ctr -n k8s.io images import OUT.tar` tags it as NAME
        (the io.containerd.image.name annotation) and prints nothing else to configure

Layers stay uncompressed: the archive only travels to the local containerd, where gzip would
cost more time than it saves.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 1 << 20
EPOCH = "1970-01-01T00:00:00Z"


def digest_of_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def walk_sorted(root: Path) -> Iterator[Path]:
    """Every path below root in a stable order; symlinks to directories are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same bytes for the same tree, so the layer digest works as a cache key. Numeric owners
    # stay: packages own some paths as their service users.
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def write_layer(rootfs: Path, out: Path) -> str:
    """Pack rootfs into out; returns the layer's digest (for an uncompressed layer, its diff_id)."""
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in walk_sorted(rootfs):
            mode = path.lstat().st_mode
            if stat.S_ISSOCK(mode):
                continue  # sockets cannot be archived and mean nothing in an image
            arcname = path.relative_to(rootfs).as_posix()
            tar.add(path, arcname=arcname, recursive=False, filter=normalise)
    tmp.replace(out)
    return digest_of_file(out)


def tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def tar_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def image_config(args: argparse.Namespace, diff_ids: list[str]) -> dict[str, object]:
    config: dict[str, object] = {"Env": [DEFAULT_PATH, *args.env], "WorkingDir": args.workdir}
    if args.entrypoint:
        config["Entrypoint"] = json.loads(args.entrypoint)
    if args.cmd:
        config["Cmd"] = json.loads(args.cmd)
    if args.user:
        config["User"] = args.user
    return {
        # Fixed: a builder that finds none fills in the time it reads the image (buildah does,
        # into the base-image annotation of what it builds on it).
        "created": EPOCH,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "tests/cluster/mkoci.py"} for _ in diff_ids],
    }


def write_image(args: argparse.Namespace) -> str:
    layers = [Path(p) for p in args.layer]
    digests = [digest_of_file(p) for p in layers]
    config = json.dumps(image_config(args, digests), sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest_of(config), "size": len(config)},
            "layers": [
                {"mediaType": LAYER_TYPE, "digest": d, "size": p.stat().st_size}
                for d, p in zip(digests, layers, strict=True)
            ],
        },
        sort_keys=True,
    ).encode()
    name: str = args.name
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                "digest": digest_of(manifest),
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    out = Path(args.out)
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        tar_member(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        tar_member(tar, "index.json", json.dumps(index).encode())
        tar_dir(tar, "blobs")
        tar_dir(tar, "blobs/sha256")
        for digest, path in zip(digests, layers, strict=True):
            if f"blobs/sha256/{digest[7:]}" not in tar.getnames():
                tar.add(path, arcname=f"blobs/sha256/{digest[7:]}", filter=normalise)
        tar_member(tar, f"blobs/sha256/{digest_of(config)[7:]}", config)
        tar_member(tar, f"blobs/sha256/{digest_of(manifest)[7:]}", manifest)
    tmp.replace(out)
    return digest_of(manifest)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    layer = sub.add_parser("layer", help="pack a directory into a layer tar")
    layer.add_argument("rootfs", type=Path)
    layer.add_argument("out", type=Path)
    image = sub.add_parser("image", help="write an OCI archive from layer tars")
    image.add_argument("name")
    image.add_argument("out")
    image.add_argument("--layer", action="append", required=True)
    image.add_argument("--entrypoint")
    image.add_argument("--cmd")
    image.add_argument("--env", action="append", default=[])
    image.add_argument("--workdir", default="/")
    image.add_argument("--user")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "layer":
        print(write_layer(args.rootfs, args.out))
    else:
        print(write_image(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
