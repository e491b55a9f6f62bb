"""A fake Kubernetes API server (aiohttp) for Jobs and Pods: just enough for the real client.

It keeps objects and an event log with resourceVersions, answers list and watch (chunked JSON
lines, from a resourceVersion, 410 Gone when asked for one it has compacted), create (409 when
the name exists), get and delete. Tests drive the "kubelet" side with ``put_pod`` and
``set_job_status``. Not a test module.
"""

import asyncio
import contextlib
import dataclasses
import functools
import json
import pathlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


@dataclasses.dataclass
class Change:
    version: int
    kind: str
    type: str
    obj: dict[str, Any]


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKubeAPI:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"jobs": {}, "pods": {}}
        self.leases: dict[str, dict[str, Any]] = {}
        self.lease_version = 0  # apart from ``version``: a Lease write must not wake watches
        self.log: list[Change] = []
        self.version = 100
        self.compacted_below = 0
        self.generation = 0
        self.lists = {"jobs": 0, "pods": 0}
        self.watches = {"jobs": 0, "pods": 0}
        self.open_watches = {"jobs": 0, "pods": 0}
        self.fail_with: tuple[int, dict[str, Any]] | None = None
        self.on_create: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- the server ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(JOBS, self._list_or_watch("jobs"))
        app.router.add_get(PODS, self._list_or_watch("pods"))
        app.router.add_post(JOBS, self._create_job)
        app.router.add_get(JOBS + "/{name}", self._get_job)
        app.router.add_delete(JOBS + "/{name}", self._delete_job)
        app.router.add_get(LEASES + "/{name}", self._get_lease)
        app.router.add_post(LEASES, self._create_lease)
        app.router.add_put(LEASES + "/{name}", self._replace_lease)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.expire_watches()  # ends open watches
        if self._runner is not None:
            await self._runner.cleanup()

    def kubeconfig(self, directory: pathlib.Path) -> pathlib.Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests call ----------------------------------------------------------------------

    async def put(self, kind: str, obj: dict[str, Any], change: str = "") -> None:
        name = obj["metadata"]["name"]
        change = change or ("MODIFIED" if name in self.objects[kind] else "ADDED")
        await self._record(kind, change, obj)

    async def put_pod(self, job: dict[str, Any], status: dict[str, Any], **meta: Any) -> None:
        """The pod the Job controller would create, with the status the kubelet reports."""
        template = job["spec"]["template"]
        metadata = {
            "name": job["metadata"]["name"] + "-x7k2p",
            "namespace": job["metadata"]["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": dict(template["metadata"]["annotations"]),
            "creationTimestamp": job["metadata"]["creationTimestamp"],
        }
        metadata.update(meta)
        await self.put("pods", {"metadata": metadata, "spec": template["spec"], "status": status})

    async def set_job_status(self, name: str, status: dict[str, Any]) -> None:
        job = dict(self.objects["jobs"][name])
        job["status"] = status
        await self.put("jobs", job)

    async def remove(self, kind: str, name: str) -> None:
        obj = self.objects[kind].get(name)
        if obj is not None:
            await self._record(kind, "DELETED", obj)

    async def expire_watches(self) -> None:
        """Compact the log: open watches get 410 Gone and clients must list again."""
        async with self._changed:
            self.compacted_below = self.version
            self.generation += 1
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    # -- internals ----------------------------------------------------------------------------

    async def _record(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        async with self._changed:
            self.version += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.version)
            name = obj["metadata"]["name"]
            if change == "DELETED":
                self.objects[kind].pop(name, None)
            else:
                self.objects[kind][name] = obj
            self.log.append(Change(self.version, kind, change, obj))
            self._changed.notify_all()

    def _failure(self) -> web.Response | None:
        if self.fail_with is None:
            return None
        status, body = self.fail_with
        return web.json_response(body, status=status)

    def _list_or_watch(self, kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            failure = self._failure()
            if failure is not None:
                return failure
            selector = request.query.get("labelSelector", "")
            if request.query.get("watch") in ("true", "1", "True"):
                return await self._watch(request, kind, selector)
            async with self._changed:
                self.lists[kind] += 1
                self._changed.notify_all()
            items = [o for o in self.objects[kind].values() if _matches(o, selector)]
            return web.json_response(
                {"kind": "List", "metadata": {"resourceVersion": str(self.version)}, "items": items}
            )

        return handle

    async def _watch(self, request: web.Request, kind: str, selector: str) -> web.StreamResponse:
        async with self._changed:
            self.watches[kind] += 1
            self.open_watches[kind] += 1
            self._changed.notify_all()
        try:
            return await self._serve_watch(request, kind, selector)
        finally:
            self.open_watches[kind] -= 1

    async def _serve_watch(
        self, request: web.Request, kind: str, selector: str
    ) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.version)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        timeout = float(request.query.get("timeoutSeconds") or 60)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._stream(response, kind, selector, since)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        return response

    async def _stream(
        self, response: web.StreamResponse, kind: str, selector: str, since: int
    ) -> None:
        sent = since
        generation = self.generation

        def expired() -> bool:
            return since < self.compacted_below or generation != self.generation

        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._news, sent, expired))
                if expired():
                    gone = {"kind": "Status", "code": 410, "reason": "Expired",
                            "message": f"too old resource version: {since}"}  # fmt: skip
                    await response.write(
                        json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n"
                    )
                    return
                fresh = [c for c in self.log if c.version > sent]
            for change in fresh:
                sent = change.version
                if change.kind == kind and _matches(change.obj, selector):
                    line = json.dumps({"type": change.type, "object": change.obj})
                    await response.write(line.encode() + b"\n")

    def _news(self, sent: int, expired: Callable[[], bool]) -> bool:
        return self.version > sent or expired()

    async def _create_job(self, request: web.Request) -> web.Response:
        failure = self._failure()
        if failure is not None:
            return failure
        body = await request.json()
        name = body["metadata"]["name"]
        if name in self.objects["jobs"]:
            return web.json_response(
                {
                    "kind": "Status",
                    "code": 409,
                    "reason": "AlreadyExists",
                    "message": f'jobs.batch "{name}" already exists',
                },
                status=409,
            )
        body["metadata"].setdefault("creationTimestamp", _now_rfc3339())
        body["metadata"]["uid"] = f"uid-{self.version}"
        await self.put("jobs", body, "ADDED")
        if self.on_create is not None:
            await self.on_create(body)
        return web.json_response(self.objects["jobs"][name], status=201)

    async def _get_job(self, request: web.Request) -> web.Response:
        job = self.objects["jobs"].get(request.match_info["name"])
        if job is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response(job)

    async def _delete_job(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.objects["jobs"]:
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound"}, status=404
            )
        await self.remove("jobs", name)
        return web.json_response({"kind": "Status", "status": "Success"})

    # -- Leases: get, create, replace with the resourceVersion as precondition (leader election)

    async def _get_lease(self, request: web.Request) -> web.Response:
        lease = self.leases.get(request.match_info["name"])
        if lease is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response(lease)

    async def _create_lease(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["metadata"]["name"] in self.leases:
            return web.json_response({"kind": "Status", "code": 409}, status=409)
        return web.json_response(self._store_lease(body), status=201)

    async def _replace_lease(self, request: web.Request) -> web.Response:
        body = await request.json()
        current = self.leases.get(request.match_info["name"])
        if current is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return web.json_response({"kind": "Status", "code": 409}, status=409)
        return web.json_response(self._store_lease(body))

    def _store_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        self.lease_version += 1
        body["metadata"]["resourceVersion"] = f"lease-{self.lease_version}"
        self.leases[body["metadata"]["name"]] = body
        return body


def _now_rfc3339() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
