"""``crucible serve`` hides what it built from the collector and collects young garbage less
often (the figures are in ``dispatcher.serve.tune_gc``)."""

import gc
from collections.abc import Iterator

import pytest

from dispatcher import serve


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_what_exists_is_frozen_and_young_collections_come_less_often() -> None:
    kept = {"built": ["before the serving starts"]}
    _, middle, oldest = gc.get_threshold()
    serve.tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (serve.GC_YOUNG_THRESHOLD, middle, oldest)
    assert gc.is_tracked(kept)
    assert not any(o is kept for o in gc.get_objects())  # frozen: no collection walks it


@pytest.mark.usefixtures("restored_gc")
def test_garbage_in_cycles_is_still_collected() -> None:
    serve.tune_gc()
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
