"""The live event stream a client sees, end to end."""

import pathlib
from typing import Any

import pytest

from tests.integration.pipeline.harness import TERMINAL, DispatcherFactory, sse_events

pytestmark = pytest.mark.integration

# Prints, then waits until the test has seen that output live before it ends.
CODE = """
import os, time
print('first', flush=True)
while not os.path.exists('go'):
    time.sleep(0.01)
print('second')
"""


async def test_sse_delivers_running_then_output_then_the_end(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path))
    created = await dispatcher.submit(code=CODE, timeout_seconds=60)
    eval_id = created["eval_id"]
    seen: list[tuple[str, str, dict[str, Any]]] = []
    async for entry_id, kind, event in sse_events(dispatcher, eval_id):
        seen.append((entry_id, kind, event))
        if kind == "output" and event["data"] == "first\n":
            assert (await dispatcher.record(eval_id))["status"] == "running"
            # The evaluation's cwd is its work dir under the work root: let it finish.
            (work_dir,) = (tmp_path / "runs").glob(f"{eval_id}-*")
            (work_dir / "go").touch()

    kinds = [kind for _, kind, _ in seen]
    assert kinds[0] in ("accepted", "scheduled")
    assert kinds.index("running") < kinds.index("output")
    assert kinds[-1] == "completed"  # the response ends after the first terminal event
    assert [e["seq"] for _, _, e in seen] == sorted(e["seq"] for _, _, e in seen)
    assert "".join(e["data"] for _, k, e in seen if k == "output") == "first\nsecond\n"
    assert all(e["eval_id"] == eval_id for _, _, e in seen)

    # Resuming after the running event replays only what followed it.
    running_id = next(i for i, kind, _ in seen if kind == "running")
    await dispatcher.wait_ended(eval_id)
    resumed = [kind async for _, kind, _ in sse_events(dispatcher, eval_id, running_id)]
    assert resumed[0] == "output"
    assert "running" not in resumed
    assert TERMINAL & set(resumed)
