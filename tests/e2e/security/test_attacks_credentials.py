"""Attacks on credentials and on other evaluations, on real pods (docs/security.md).

No credential of any container is readable from the main container, and whatever a pod's
sidecar holds can write only that evaluation's data: the worst case hands user code its own
sidecar's credential and checks that another evaluation, the global stream and the legacy
channels stay untouched, and that Redis refuses the pod outright.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.e2e import attacks, kube
from tests.e2e.conftest import Release

CAP = 8 * 1024 * 1024  # wire/channel.py DEFAULT_OUTPUT_CAP_BYTES
MIB = 1024 * 1024


def sidecar_env(release: Release, job_name: str) -> dict[str, str]:
    pod = release.job(job_name)["spec"]["template"]["spec"]
    containers = pod.get("initContainers", []) + pod["containers"]
    sidecar = next(c for c in containers if c["name"] == "crucible-sidecar")
    return {e["name"]: e.get("value", "") for e in sidecar.get("env", [])}


def test_no_credential_is_readable_from_the_main_container(release: Release) -> None:
    record = release.api.submit_ok(code=attacks.SNOOP)
    done = release.api.wait_verified(record["eval_id"])
    assert done["status"] == "completed", done
    found = attacks.last_json(release.api.output(record["eval_id"])["stdout"])
    pod = release.job(done["job_name"])["spec"]["template"]["spec"]
    assert not [v for v in pod.get("volumes", []) if "secret" in v or "projected" in v]
    credentials = {
        "ingest token": sidecar_env(release, done["job_name"])["CRUCIBLE_SIDECAR_INGEST_TOKEN"],
        "redis password": kube.secret_value(
            release.namespace, f"{release.name}-redis", "dispatcher-password"
        ),
        "ingest key": attacks.ingest_key(release).decode(),
    }
    text = repr(found)
    for name, value in credentials.items():
        assert len(value) >= 16, name
        assert value not in text, name
    assert found["token"] is False
    assert "/crucible/spool" in found["errors"], found["errors"]
    assert not any("secret" in line for line in found["files"]["/proc/self/mountinfo"].split("\n"))


def test_a_pod_with_its_own_credential_cannot_touch_another_evaluation(release: Release) -> None:
    victim = release.api.submit_ok(
        code="import time\nprint('victim start', flush=True)\ntime.sleep(12)\nprint('victim done')"
    )["eval_id"]
    release.api.wait(victim, lambda r: r["status"] == "running", 120, "running")
    attacker = f"attacker-{secrets.token_hex(4)}"
    token = attacks.eval_token(attacks.ingest_key(release), attacker)
    env = {
        "ATTACK_DISPATCHER": attacks.service_url(release, "dispatcher", 8080),
        "ATTACK_REDIS_HOST": f"{release.name}-redis.{release.namespace}.svc",
        "ATTACK_TOKEN": token,
        "ATTACK_SELF": attacker,
        "ATTACK_VICTIM": victim,
        "ATTACK_FLOOD_MIB": "80",
    }
    with attacks.legacy_listener(release) as heard:
        release.api.submit_ok(
            code=attacks.FORGE_ANOTHER, eval_id=attacker, env=env, timeout_seconds=240
        )
        done = release.api.wait_verified(attacker, timeout=300)
        untouched = release.api.wait_verified(victim, timeout=120)
        attacks.wait_heard(heard, victim, "evaluation:completed")
        attacks.wait_heard(heard, attacker, "evaluation:failed")
    seen = attacks.last_json(release.api.output(attacker)["stderr"])

    # What the attacker got: refusals everywhere but its own evaluation.
    assert seen["victim_with_my_token"] == 401, seen
    for claim in ("victim_event_on_my_path", "dispatcher_event", "verified_claim", "cancel_claim"):
        assert seen[claim] == 422, (claim, seen)
    assert seen["no_token"] == 401, seen
    assert seen["my_own_end"] == 200, seen  # its own evaluation: the worst case, see below
    for command, answer in seen["redis"].items():
        assert answer.startswith(("-NOAUTH", "-WRONGPASS", "-NOPERM")), (command, answer)

    # The victim: its own verdict and output, on every channel, and nothing forged anywhere.
    assert (untouched["status"], untouched["exit_code"]) == ("completed", 0), untouched
    assert "victim done" in untouched["output"]
    assert "forged" not in untouched["output"]
    victim_events = attacks.stream_events(release, f"crucible:events:{victim}")
    assert not any("forged" in repr(e) for e in victim_events), victim_events
    global_events = attacks.stream_events(release, "crucible:events")
    assert not any(e.get("eval_id") == victim and "forged" in repr(e) for e in global_events)
    legacy = [h for h in heard if h["eval_id"] == victim and h["channel"] != "evaluation:running"]
    assert [(h["channel"], h["exit_code"]) for h in legacy] == [("evaluation:completed", 0)]

    # The attacker's own claim of success was the first end, and the kubelet's verdict corrects
    # it on every channel, the legacy one included (a second message with "corrects").
    assert (done["status"], done["exit_code"], done["verified"]) == ("failed", 3, True), done
    assert done["correction"], done
    own = [h for h in heard if h["eval_id"] == attacker and h["channel"] != "evaluation:running"]
    assert [(h["channel"], h["exit_code"]) for h in own] == [
        ("evaluation:completed", 0),
        ("evaluation:failed", 3),
    ], own
    assert own[1]["corrects"] == "completed:0"

    # Bounded: of 80 MiB posted with its own credential, at most the budget was stored.
    assert seen["flood_dropped"] > 0, seen
    stored = _memory(release, f"crucible:events:{attacker}")
    assert stored < 80 * MIB, stored


def _memory(release: Release, key: str) -> int:
    return int(release.redis.memory_usage(key, samples=0) or 0)


def test_output_is_capped_where_it_leaves_the_pod(release: Release) -> None:
    record = release.api.submit_ok(code=attacks.FLOOD_OUTPUT, env={"ATTACK_MIB": "48"})
    done = release.api.wait_verified(record["eval_id"], timeout=240)
    assert (done["status"], done["truncated"]) == ("completed", True), done
    output: dict[str, Any] = release.api.output(record["eval_id"])
    assert CAP <= len(output["stdout"].encode()) <= CAP + 100, len(output["stdout"])
    assert output["stdout"].endswith("[crucible: output truncated at the cap]\n")
    assert "done" in output["stderr"]
    stored = _memory(release, f"crucible:events:{record['eval_id']}")
    assert stored < 3 * CAP, stored


PROGRAM_ATTACK = r"""
import json, os, sys, urllib.error, urllib.request
seen = {}
try:
    with open("/crucible/run/program.py", "a") as f:  # its own program: change it?
        f.write("print('rewritten')\n")
    seen["rewrite"] = "written"
except OSError as e:
    seen["rewrite"] = type(e).__name__
victim = os.environ["ATTACK_VICTIM"]
url = os.environ["ATTACK_DISPATCHER"] + "/ingest/v1/evaluations/%s/code" % victim
made_up = {"Authorization": "Bearer " + "0" * 64}
for name, headers in (("no_token", {}), ("made_up_token", made_up)):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            seen[name] = [r.status, r.read().decode(errors="replace")[:200]]
    except urllib.error.HTTPError as e:
        seen[name] = [e.code, e.read().decode(errors="replace")[:200]]
    except OSError as e:
        seen[name] = [0, type(e).__name__]
print(json.dumps(seen), file=sys.stderr)
"""


def test_code_cannot_rewrite_its_program_or_fetch_anothers(release: Release) -> None:
    """The program file is in a volume the main container mounts read-only, and a program is
    served only for its own evaluation's token, which user code does not hold."""
    secret = f"victim-secret-{secrets.token_hex(4)}"
    victim = release.api.submit_ok(code=f"import time\nprint({secret!r})\ntime.sleep(8)")
    env = {
        "ATTACK_DISPATCHER": attacks.service_url(release, "dispatcher", 8080),
        "ATTACK_VICTIM": victim["eval_id"],
    }
    attacker = release.api.submit_ok(code=PROGRAM_ATTACK, env=env)
    done = release.api.wait_verified(attacker["eval_id"])
    seen = attacks.last_json(release.api.output(attacker["eval_id"])["stderr"])
    assert done["status"] == "completed", done
    assert seen["rewrite"] == "OSError", seen  # EROFS: the run volume is read-only here
    for attempt in ("no_token", "made_up_token"):
        status, body = seen[attempt]
        assert status in (0, 401), (attempt, seen)  # refused, or not even reachable
        assert secret not in body
    assert "rewritten" not in done["output"]
    assert release.api.wait_verified(victim["eval_id"])["output"] == f"{secret}\n"
