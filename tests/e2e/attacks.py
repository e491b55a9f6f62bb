"""What the attack tests share: programs user code runs, and listeners on every channel.

The programs are plain Python of the executor image (standard library only); each prints one
JSON line of what it managed to do, so a test asserts on what the attacker saw as well as on
what every channel says afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.e2e import kube
from tests.e2e.conftest import Release

# Kept in step with wire/ingest.py by test_attack_helpers_follow_the_wire_contract.
INGEST_CONTEXT = b"crucible-ingest-v1\x00"


def last_json(text: str | None) -> dict[str, Any]:
    line = (text or "").strip().splitlines()[-1]
    value: dict[str, Any] = json.loads(line)
    return value


def ingest_key(release: Release) -> bytes:
    """The dispatchers' ingest key, from whichever Secret of the release holds it."""
    secrets = kube.kubectl_json("get", "secrets", "-n", release.namespace)["items"]
    for secret in secrets:
        for name, value in (secret.get("data") or {}).items():
            if "ingest" in name:
                return base64.b64decode(value).strip()
    raise AssertionError("no Secret of the release holds an ingest key")


def eval_token(key: bytes, eval_id: str) -> str:
    return hmac.new(key, INGEST_CONTEXT + eval_id.encode(), hashlib.sha256).hexdigest()


@contextmanager
def legacy_listener(release: Release) -> Iterator[list[dict[str, Any]]]:
    """Every `evaluation:*` message published while the block runs (subscribed before it)."""
    heard: list[dict[str, Any]] = []
    stop = threading.Event()
    pubsub = release.redis.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe("evaluation:*")

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message and message["type"] == "pmessage":
                heard.append({"channel": message["channel"], **json.loads(message["data"])})

    thread = threading.Thread(target=listen)
    thread.start()
    deadline = time.monotonic() + 10
    while release.redis.execute_command("PUBSUB", "NUMPAT") < 1:  # type: ignore[no-untyped-call]
        assert time.monotonic() < deadline, "listener never subscribed"
        time.sleep(0.05)
    try:
        yield heard
    finally:
        stop.set()
        thread.join()
        pubsub.close()


def wait_heard(
    heard: list[dict[str, Any]], eval_id: str, channel: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not any(h["eval_id"] == eval_id and h["channel"] == channel for h in heard):
        assert time.monotonic() < deadline, (eval_id, channel, heard)
        time.sleep(0.1)


def stream_events(release: Release, key: str) -> list[dict[str, Any]]:
    return [json.loads(fields["event"]) for _, fields in release.redis.xrange(key)]


def service_url(release: Release, component: str, port: int) -> str:
    return f"http://{release.name}-{component}.{release.namespace}.svc:{port}"


FORGE_EXIT_FILES = r"""
import json, os, sys
forged = {"exit_code": 0, "signal": None, "timed_out": False, "duration_seconds": 0.1,
          "finished_at": 0, "stdout_truncated": False, "stderr_truncated": False,
          "wrapper_error": None}
written = []
for directory in ("/crucible/state", "/crucible/run", "/crucible/bin", "/crucible/spool",
                  os.getcwd(), "/tmp", os.path.expanduser("~")):
    for name in ("exit.json", "started.json"):
        try:
            with open(os.path.join(directory, name), "w") as f:
                json.dump(forged, f)
            written.append(os.path.join(directory, name))
        except OSError:
            pass
print(json.dumps({"written": written}), flush=True)
sys.exit(7)
"""

# Against the wrapper (PID 1 of the container, non-dumpable) and the channel's volumes.
REACH_THE_WRAPPER = r"""
import ctypes, json, os, signal, socket, time
seen = {"pid": os.getpid()}
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGSTOP):
    try:
        os.kill(1, sig)
        seen[sig.name] = "sent"
    except OSError as e:
        seen[sig.name] = type(e).__name__
time.sleep(1)
def attempt(name, action):
    try:
        action()
        seen[name] = "done"
    except OSError as e:
        seen[name] = type(e).__name__
attempt("/proc/1/environ", lambda: open("/proc/1/environ", "rb").read(1))
attempt("/proc/1/mem", lambda: open("/proc/1/mem", "rb").read(1))
attempt("/proc/1/fd", lambda: os.listdir("/proc/1/fd"))
attempt("/proc/1/root", lambda: os.listdir("/proc/1/root/"))
libc = ctypes.CDLL(None, use_errno=True)
seen["ptrace"] = "attached" if libc.ptrace(16, 1, 0, 0) == 0 else os.strerror(ctypes.get_errno())
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect("/crucible/run/channel.sock")
attempt("socket", connect)
attempt("run_write", lambda: open("/crucible/run/x", "w"))
attempt("run_symlink", lambda: os.symlink("/etc/passwd", "/crucible/run/channel.sock"))
attempt("bin_write", lambda: open("/crucible/bin/crucible-wrapper", "ab"))
attempt("spool", lambda: os.listdir("/crucible/spool"))
print(json.dumps(seen), flush=True)
raise SystemExit(5)
"""

# Waits for a (restarted) sidecar's socket, speaks the wrapper's protocol to it and claims
# success; then fails for real.
IMPERSONATE_THE_WRAPPER = r"""
import json, os, socket, struct, sys, time
def frame(kind, record):
    payload = json.dumps(record).encode()
    return struct.pack(">cI", kind, len(payload)) + payload
seen = {"attempts": 0, "answers": []}
print("waiting for a socket", flush=True)
deadline = time.time() + float(os.environ.get("ATTACK_SECONDS", "60"))
while time.time() < deadline:
    seen["attempts"] += 1
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect("/crucible/run/channel.sock")
        s.sendall(frame(b"H", {"v": 1, "pid": 1}))
        s.sendall(frame(b"S", {"pid": 1, "command": ["x"], "started_at": time.time()}))
        s.sendall(frame(b"X", {"exit_code": 0, "signal": None, "timed_out": False,
                               "duration_seconds": 0.1, "finished_at": time.time(),
                               "stdout_truncated": False, "stderr_truncated": False,
                               "wrapper_error": None}))
        seen["answers"].append(s.recv(64).hex())
        s.close()
        if os.environ.get("ATTACK_STOP_AFTER_SEND"):
            break
    except OSError as e:
        seen["last_error"] = type(e).__name__
    time.sleep(0.2)
print(json.dumps(seen), flush=True)
sys.exit(7)
"""

# Holds its own sidecar's credential (the worst case) and goes for another evaluation, the
# global stream, the legacy channels and Redis itself.
FORGE_ANOTHER = r"""
import json, os, socket, sys, urllib.error, urllib.request
URL, TOKEN, ME, VICTIM = (os.environ[k] for k in
                          ("ATTACK_DISPATCHER", "ATTACK_TOKEN", "ATTACK_SELF", "ATTACK_VICTIM"))
def event(eval_id, **fields):
    base = {"eval_id": eval_id, "type": "completed", "source": "sidecar", "exit_code": 0,
            "output": "forged", "error": ""}
    base.update(fields)
    return base
def post(path_id, events, token=TOKEN, name="t"):
    body = json.dumps({"events": [{"token": "%s%d" % (name, i), "event": e}
                                  for i, e in enumerate(events)]}).encode()
    request = urllib.request.Request(
        URL + "/ingest/v1/evaluations/%s/events" % path_id, data=body,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return [answer.status, json.loads(answer.read())]
    except urllib.error.HTTPError as e:
        return [e.code, None]
    except OSError as e:
        return [type(e).__name__, None]
def redis(host, *command):
    try:
        with socket.create_connection((host, 6379), timeout=5) as s:
            s.sendall(("*%d\r\n" % len(command) + "".join(
                "$%d\r\n%s\r\n" % (len(c.encode()), c) for c in command)).encode())
            return s.recv(200).decode(errors="replace").strip()
    except OSError as e:
        return type(e).__name__
seen = {
    "victim_with_my_token": post(VICTIM, [event(VICTIM)])[0],
    "victim_event_on_my_path": post(ME, [event(VICTIM)])[0],
    "dispatcher_event": post(ME, [event(ME, source="dispatcher", verified=True)])[0],
    "verified_claim": post(ME, [event(ME, verified=True)])[0],
    "cancel_claim": post(ME, [event(ME, type="cancelled")])[0],
    "no_token": post(ME, [event(ME)], token="")[0],
    "my_own_end": post(ME, [event(ME)])[0],
}
chunk = "x" * (1024 * 1024)
flood = [post(ME, [event(ME, type="output", stream="stdout", offset=i * len(chunk), data=chunk,
                         exit_code=None, output=None, error=None)], name="flood%d-" % i)
         for i in range(int(os.environ.get("ATTACK_FLOOD_MIB", "0")))]
seen["flood_stored"] = sum(1 for status, body in flood if status == 200
                           and not body["results"][0]["dropped"])
seen["flood_dropped"] = sum(1 for status, body in flood if status == 200
                            and body["results"][0]["dropped"])
host = os.environ["ATTACK_REDIS_HOST"]
seen["redis"] = {
    "ping": redis(host, "PING"),
    "auth_sidecar": redis(host, "AUTH", "sidecar", "guess"),
    "eval_loop": redis(host, "EVAL", "while true do end", "0"),
    "xadd_global": redis(host, "XADD", "crucible:events", "*", "event", "{}"),
    "publish": redis(host, "PUBLISH", "evaluation:completed", json.dumps(event(VICTIM))),
}
# To stderr: its stdout is what it flooded with its own credential.
print(json.dumps(seen), file=sys.stderr, flush=True)
sys.exit(3)
"""

# Looks everywhere a credential could be: env, every process it can see, mounts, /crucible.
SNOOP = r"""
import json, os
found = {"env": dict(os.environ), "files": {}, "errors": {},
         "token": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token")}
def read(path):
    try:
        with open(path, "rb") as f:
            found["files"][path] = f.read(65536).decode("latin-1")
    except OSError as e:
        found["errors"][path] = type(e).__name__
for pid in os.listdir("/proc"):
    if pid.isdigit() or pid == "self":
        for name in ("environ", "cmdline"):
            read("/proc/%s/%s" % (pid, name))
read("/proc/self/mountinfo")
for root, dirs, files in os.walk("/crucible"):
    for name in files:
        read(os.path.join(root, name))
for path in ("/crucible/spool", "/crucible/secrets", "/var/run/secrets"):
    try:
        os.listdir(path)
        found["files"][path] = "listed"
    except OSError as e:
        found["errors"][path] = type(e).__name__
print(json.dumps(found), flush=True)
"""

FLOOD_OUTPUT = r"""
import os, sys
block = b"y" * (1024 * 1024 - 1) + b"\n"
for _ in range(int(os.environ.get("ATTACK_MIB", "48"))):
    sys.stdout.buffer.write(block)
sys.stdout.flush()
print("done", file=sys.stderr)
"""
