"""A real Redis-compatible server configured by the chart: the rendered redis.conf and ACL file,
paths rewritten for a temporary directory, loopback only."""

import contextlib
import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests import redisproc
from tests.chart import render

REDIS_SECRET = f"{render.FULLNAME}-redis"
# A user the tests add to their copy of the ACL file, after the chart's lines, to ask the server
# which users it has (ACL USERS, ACL GETUSER): the chart's users may not run ACL commands.
INSPECTOR = "chart-test-inspector"
INSPECTOR_PASSWORD = "inspector-password-for-tests-only"


class AclServer:
    """Where the server listens, the rendered files, the dispatcher's password."""

    def __init__(self, port: int, passwords: dict[str, str], acl: str, conf: str) -> None:
        self.port = port
        self.passwords = passwords
        self.acl = acl
        self.conf = conf

    def client(self, user: str | None) -> Any:
        password = self.passwords.get(user or "")
        return self.connect(user, password)

    def inspector(self) -> Any:
        return self.connect(INSPECTOR, INSPECTOR_PASSWORD)

    def connect(self, user: str | None, password: str | None) -> Any:
        # No retries: a refused AUTH is a ConnectionError to redis-py, retried with backoff.
        return redis.asyncio.Redis(
            host="127.0.0.1",
            port=self.port,
            username=user,
            password=password,
            retry=Retry(NoBackoff(), 0),
        )


@contextlib.contextmanager
def running(directory: pathlib.Path, sets: Sequence[str] = ()) -> Iterator[AclServer]:
    """Starts the server in ``directory`` from the chart rendered with ``sets``; stops it on
    exit."""
    manifests = render.template(sets=sets)
    directory.mkdir(parents=True, exist_ok=True)
    rendered_acl = render.secret_value(manifests, REDIS_SECRET, "users.acl")
    acl = directory / "users.acl"
    acl.write_text(
        rendered_acl
        + f"user {INSPECTOR} on >{INSPECTOR_PASSWORD} -@all +acl|users +acl|getuser +ping\n"
    )
    port = redisproc.free_port()
    rendered_conf = render.one(manifests, "ConfigMap", "-redis")["data"]["redis.conf"]
    conf = (
        rendered_conf.replace("aclfile /etc/redis/acl/users.acl", f"aclfile {acl}")
        .replace("dir /data", f"dir {directory}")
        .replace("port 6379", f"port {port}")
        .replace("bind * -::*", "bind 127.0.0.1")
    )
    (directory / "redis.conf").write_text(conf)
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [redisproc.server_binary(), str(directory / "redis.conf")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, (directory / "server.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "server did not open its port"
            time.sleep(0.02)
    passwords = {
        "dispatcher": render.secret_value(manifests, REDIS_SECRET, "dispatcher-password"),
    }
    try:
        yield AclServer(port, passwords, rendered_acl, rendered_conf)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
