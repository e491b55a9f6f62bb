"""A thin async wrapper around the official (blocking) ``kubernetes`` client.

Every call runs in a small thread pool, so the event loop never blocks; bodies go in and come
out as plain dicts in the API's own JSON shape (``_preload_content=False``), never as model
objects. Client errors are translated here into ``dispatcher.errors`` with bounded text:

    404 -> None / False (callers ask "is it there")   409 on create -> False (already exists)
    400, 422 -> InvalidRequestError (the API rejected the Job we built)
    403 "exceeded quota", 429 -> QueueFullError
    401, 403, 5xx, connection and timeout errors -> BackendUnavailableError
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from dispatcher import errors
from dispatcher.backends.kube import config as kube_config

log = logging.getLogger(__name__)

Kind = Literal["jobs", "pods"]
T = TypeVar("T")
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)
_QUOTA_RETRY_SECONDS = 10


class WatchExpiredError(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch."""


@dataclasses.dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    resource_version: str


def translate(e: ApiException) -> errors.DispatcherError:
    """Our error for a client ``ApiException``; the caller chains it with ``from``."""
    message = errors.upstream_text(_api_message(e))
    status = int(e.status or 0)
    if status in (400, 422):
        return errors.InvalidRequestError(f"Kubernetes rejected the Job: {message}")
    if status == 429 or (status == 403 and "exceeded quota" in message):
        retry = (e.headers or {}).get("Retry-After", "")
        seconds = int(retry) if str(retry).isdigit() else _QUOTA_RETRY_SECONDS
        return errors.QueueFullError(
            f"Kubernetes is at capacity: {message}", retry_after_seconds=seconds
        )
    return errors.BackendUnavailableError(f"Kubernetes API error {status}: {message}")


def _api_message(e: ApiException) -> str:
    try:
        body = json.loads(e.body or "")
    except (TypeError, ValueError):
        return f"{e.reason}: {e.body or ''}"
    return str(body.get("message") or e.reason) if isinstance(body, dict) else str(e.reason)


def _api_client(config: kube_config.KubernetesConfig) -> kubernetes.client.ApiClient:
    """In-cluster config inside a pod unless a kubeconfig is named; else KUBECONFIG or ~/.kube."""
    configuration = kubernetes.client.Configuration()
    try:
        if config.kubeconfig_path is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            path = config.kubeconfig_path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.path.expanduser(path),
                context=config.kubeconfig_context,
                client_configuration=configuration,
            )
    except (kubernetes.config.ConfigException, OSError, ValueError) as e:
        raise errors.BackendUnavailableError(
            f"no Kubernetes configuration: {errors.upstream_text(e)}"
        ) from e
    # One connection per API thread, the two long-lived watches and the Lease's thread.
    configuration.connection_pool_maxsize = config.api_threads + 3
    return kubernetes.client.ApiClient(configuration)


class KubeClient:
    def __init__(self, config: kube_config.KubernetesConfig) -> None:
        self._config = config
        self._api: kubernetes.client.ApiClient | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.api_threads, thread_name_prefix="crucible-kube"
        )
        # Lease renewals get a thread of their own: a burst of Job creations queued on the pool
        # above must not delay them past the renew deadline (the leader would step down).
        self._lease_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="crucible-lease"
        )
        self._streams: set[Any] = set()
        self._lock = threading.Lock()

    async def open(self) -> None:
        self._api = await self._run(_api_client, self._config)

    async def close(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            _interrupt(stream)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lease_pool.shutdown(wait=False, cancel_futures=True)
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]

    @property
    def namespace(self) -> str:
        return self._config.namespace

    async def create_job(self, body: dict[str, Any]) -> bool:
        """Create the Job; False if one of that name already exists."""
        try:
            await self._call(self._batch().create_namespaced_job, self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise translate(e) from e
        return True

    async def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            job: dict[str, Any] = await self._call(
                self._batch().read_namespaced_job, name, self.namespace
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise translate(e) from e
        return job

    async def delete_job(self, name: str) -> bool:
        """Delete the Job and, in the background, its pods; False if it was not there.

        Background propagation: the Job disappears at once (a cancel answers fast and the name
        is free), the garbage collector deletes the pod, and the kubelet gives it its grace
        period, in which the wrapper forwards SIGTERM to the user's process group."""
        body = {"propagationPolicy": "Background"}
        try:
            await self._call(self._batch().delete_namespaced_job, name, self.namespace, body=body)
        except ApiException as e:
            if e.status == 404:
                return False
            raise translate(e) from e
        return True

    async def list_objects(self, kind: Kind, selector: str) -> Listing:
        try:
            listed = await self._call(self._lister(kind), self.namespace, label_selector=selector)
        except ApiException as e:
            raise translate(e) from e
        return Listing(listed.get("items") or [], listed["metadata"]["resourceVersion"])

    async def ping(self) -> bool:
        try:
            await self._call(self._batch().list_namespaced_job, self.namespace, limit=1)
        except (ApiException, errors.DispatcherError):
            return False
        return True

    async def get_lease(self, name: str, *, seconds: float) -> dict[str, Any] | None:
        """The ``coordination.k8s.io/v1`` Lease ``name``; None if there is none."""
        try:
            lease: dict[str, Any] = await self._lease_call(
                self._coordination().read_namespaced_lease, name, self.namespace, seconds=seconds
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise translate(e) from e
        return lease

    async def create_lease(self, body: dict[str, Any], *, seconds: float) -> dict[str, Any] | None:
        """Create the Lease; None if one of that name exists (another replica made it first)."""
        try:
            lease: dict[str, Any] = await self._lease_call(
                self._coordination().create_namespaced_lease, self.namespace, body, seconds=seconds
            )
        except ApiException as e:
            if e.status == 409:
                return None
            raise translate(e) from e
        return lease

    async def replace_lease(self, body: dict[str, Any], *, seconds: float) -> dict[str, Any] | None:
        """Replace the Lease if it still has ``body``'s resourceVersion; None (409) if someone
        wrote it since (optimistic concurrency: that writer won)."""
        name = body["metadata"]["name"]
        try:
            lease: dict[str, Any] = await self._lease_call(
                self._coordination().replace_namespaced_lease,
                name,
                self.namespace,
                body,
                seconds=seconds,
            )
        except ApiException as e:
            if e.status == 409:
                return None
            raise translate(e) from e
        return lease

    def watch(
        self, kind: Kind, selector: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[dict[str, Any]]:
        """Blocking: yield raw watch events ``{type, object}`` until the server ends the watch.

        For a thread of its own. Raises ``WatchExpiredError`` on 410 Gone, ``ApiException``
        and network errors as they come (the caller backs off and lists again)."""
        response = self._lister(kind)(
            self.namespace,
            label_selector=selector,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
        )
        with self._lock:
            self._streams.add(response)
        try:
            for line in _lines(response):
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(str(obj.get("message", "")))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                yield event
        finally:
            with self._lock:
                self._streams.discard(response)
            response.release_conn()

    def _batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self._api)

    def _coordination(self) -> kubernetes.client.CoordinationV1Api:
        return kubernetes.client.CoordinationV1Api(self._api)

    def _lister(self, kind: Kind) -> Callable[..., Any]:
        if kind == "jobs":
            return self._batch().list_namespaced_job
        return kubernetes.client.CoreV1Api(self._api).list_namespaced_pod

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an API method for its JSON body as a dict; network errors become ours."""
        kwargs.setdefault("_request_timeout", self._config.api_timeout_seconds)

        def call() -> Any:
            response = method(*args, _preload_content=False, **kwargs)
            return json.loads(response.data or b"{}")

        return await self._run(call)

    async def _lease_call(self, method: Callable[..., Any], *args: Any, seconds: float) -> Any:
        """``_call`` on the Lease's own thread, with a request timeout of ``seconds``."""

        def call() -> Any:
            response = method(*args, _preload_content=False, _request_timeout=seconds)
            return json.loads(response.data or b"{}")

        return await self._run(call, pool=self._lease_pool)

    async def _run(
        self,
        fn: Callable[..., T],
        *args: Any,
        pool: concurrent.futures.Executor | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool or self._pool, functools.partial(fn, *args))
        except _NETWORK_ERRORS as e:
            raise errors.BackendUnavailableError(
                f"Kubernetes API unreachable: {errors.upstream_text(e)}"
            ) from e


def _interrupt(response: Any) -> None:
    """Wake a thread blocked reading a watch. Shutting the socket down is the one way that
    does not wait for the reader's buffer lock (``close()`` would block until data came)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _lines(response: Any) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode("utf-8", "replace")
