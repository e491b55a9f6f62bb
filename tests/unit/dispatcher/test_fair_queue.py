"""The local backend's waiting line: FIFO within a tenant, round robin across tenants."""

from dispatcher.backends.fair_queue import FairQueue


def test_a_burst_of_one_tenant_waits_its_turns_behind_another_tenants_single_item() -> None:
    line: FairQueue[int] = FairQueue()
    for i in range(1000):
        line.put(f"acme~burst-{i}", i)
    line.put("globex~one", -1)
    served = [line.pop_next()[0] for _ in range(3)]
    assert served == ["acme~burst-0", "globex~one", "acme~burst-1"]
    assert len(line) == 998


def test_within_a_tenant_first_in_first_out_and_operators_are_a_tenant_too() -> None:
    line: FairQueue[str] = FairQueue()
    for eval_id in ["a", "b", "t~x", "c", "t~y"]:
        line.put(eval_id, eval_id)
    assert [line.pop_next()[0] for _ in range(5)] == ["a", "t~x", "b", "t~y", "c"]
    assert len(line) == 0
    assert not line


def test_pop_takes_a_waiting_item_out_and_membership_follows() -> None:
    line: FairQueue[str] = FairQueue()
    line.put("t~x", "x")
    line.put("t~y", "y")
    line.put("t~x", "x2")  # the same id again replaces, it does not queue twice
    assert len(line) == 2
    assert "t~x" in line
    assert sorted(line) == ["t~x", "t~y"]
    assert line.pop("t~x") == "x2"
    assert line.pop("t~x") is None
    assert "t~x" not in line
    assert 5 not in line
    assert line.pop_next() == ("t~y", "y")
