"""A throwaway OCI registry on loopback: Debian's ``docker-registry`` (distribution 2.8) as a
child process, its storage and config in a temporary directory, plain HTTP."""

import contextlib
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

BINARY = pathlib.Path("/usr/bin/docker-registry")  # tests/cluster/prereqs.sh installs it
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(root: pathlib.Path, port: int) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


@contextlib.contextmanager
def running(directory: pathlib.Path) -> Iterator[str]:
    """Yields the registry's ``HOST:PORT`` once its v2 API answers; stops it after."""
    port = _free_port()
    config = directory / "config.yml"
    config.write_text(_config(directory / "storage", port))
    log = (directory / "registry.log").open("w")
    process = subprocess.Popen([str(BINARY), "serve", str(config)], stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "docker-registry did not start: " + (directory / "registry.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def manifest(address: str, name: str, reference: str) -> tuple[bytes, str]:
    """The manifest's bytes as the registry serves them and its Docker-Content-Digest."""
    request = urllib.request.Request(
        f"http://{address}/v2/{name}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers["Docker-Content-Digest"]
