"""Publishing through the ingest contract when the dispatcher is slow, away or refusing:
retried in order, each event stored once; a refusal is final."""

import time

from sidecar import service
from tests.integration.sidecar.conftest import (
    Paths,
    StartSidecar,
    assert_well_formed,
    make_settings,
    reassemble,
)
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest


async def run_evaluation(peer: WrapperPeer, lines: int = 5) -> str:
    await peer.started()
    text = "".join(f"line {i}\n" for i in range(lines))
    await peer.output("stdout", text.encode())
    await peer.exit(0)
    return text


async def test_503_then_success_publishes_each_token_once_in_order(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.answer_next(503, times=3, Retry_After="0")
    sidecar = await start_sidecar(make_settings(ingest, paths))
    text = await run_evaluation(await WrapperPeer.hold(paths.socket))

    assert await sidecar.result() == service.EXIT_OK
    assert [status for status, _ in ingest.requests][:3] == [503, 503, 503]
    assert_well_formed(ingest)
    assert [e.type for e in ingest.published] == ["running", "output", "completed"]
    assert reassemble(ingest.published, "stdout") == text
    # The first batch was retried as it was: the same tokens, in the same order.
    bodies = [[item["token"] for item in body["events"]] for _, body in ingest.requests if body]
    assert bodies[0] == bodies[1] == bodies[2] == bodies[3]


async def test_retry_after_is_honoured(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.answer_next(503, Retry_After="1")
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    began = time.monotonic()
    await run_evaluation(peer)
    assert await sidecar.result() == service.EXIT_OK
    assert time.monotonic() - began >= 1.0
    assert [e.type for e in ingest.published] == ["running", "output", "completed"]


async def test_a_reply_lost_after_storing_is_not_a_duplicate(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.store_then_reply_late(1.0)  # past the sidecar's request timeout
    ingest.store_then_drop()
    config = make_settings(ingest, paths, ingest_timeout_seconds=0.3)
    sidecar = await start_sidecar(config)
    text = await run_evaluation(await WrapperPeer.hold(paths.socket))

    assert await sidecar.result() == service.EXIT_OK
    assert len(ingest.requests) >= 3
    assert_well_formed(ingest)
    assert [e.type for e in ingest.published] == ["running", "output", "completed"]
    assert reassemble(ingest.published, "stdout") == text


async def test_401_is_final_and_the_sidecar_exits_non_zero(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    config = make_settings(ingest, paths, ingest_token="not-the-credential")
    sidecar = await start_sidecar(config)
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()

    assert await sidecar.result() == service.EXIT_REJECTED
    assert [status for status, _ in ingest.requests] == [401]
    assert ingest.published == []
    assert await peer.closed_by_sidecar()
    await peer.close()


async def test_422_is_final(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.answer_next(422)
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    assert await sidecar.result() == service.EXIT_REJECTED
    await peer.close()


async def test_many_output_chunks_go_in_few_batches_within_the_limits(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.answer_next(503, Retry_After="0.5")  # output piles up in the spool meanwhile
    config = make_settings(ingest, paths, batch_bytes=1024)
    sidecar = await start_sidecar(config)
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    text = "".join(f"{i:07d}\n" for i in range(40_000))  # 320 KB: 313 output events
    await peer.output("stdout", text.encode())
    await peer.exit(0)

    assert await sidecar.result() == service.EXIT_OK
    assert_well_formed(ingest)
    assert reassemble(ingest.published, "stdout") == text
    assert all(len(batch) <= 64 for batch in ingest.batches)
    assert len(ingest.batches) < 20
    assert ingest.batches[-1][-1] == "terminal"
