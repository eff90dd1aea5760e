"""Admission, bounded queues, load balancing and activator shares, as tables."""

from __future__ import annotations

import random

import pytest

from activator.throttler import BUDGET_FULL, QUEUE_FULL, QUEUED, Budget, Throttler, Tracker, assign


def trackers(n: int, cc: int) -> list[Tracker]:
    return [Tracker((f"10.0.0.{i}", 8012), f"pool-{i}", cc) for i in range(n)]


def make(cc: int, n: int, depth: int = 100, budget: int = 1000) -> Throttler[str]:
    t: Throttler[str] = Throttler(cc, depth, Budget(budget), random.Random(3))
    t.set_trackers(trackers(n, cc))
    return t


def test_no_replica_means_everything_waits() -> None:
    t = make(cc=10, n=0)
    assert t.capacity == 0
    assert [t.acquire(f"r{i}") for i in range(3)] == [QUEUED] * 3
    assert t.queued == 3


def test_replicas_appearing_release_waiters_in_order_at_their_capacity() -> None:
    t = make(cc=2, n=0)
    for i in range(5):
        assert t.acquire(f"r{i}") == QUEUED
    granted = t.set_trackers(trackers(2, 2))
    assert [w for w, _ in granted] == ["r0", "r1", "r2", "r3"]  # 2 replicas x CC 2
    assert all(tr.in_flight <= 2 for _, tr in granted)
    assert t.queued == 1
    # one finishes: the last waiter takes its slot on the same replica
    _w, tr = granted[0]
    nxt = t.release(tr)
    assert nxt == ("r4", tr)


def test_cc_is_never_exceeded_on_any_replica() -> None:
    t = make(cc=3, n=4)
    held = []
    for i in range(12):
        r = t.acquire(f"r{i}")
        assert isinstance(r, Tracker)
        held.append(r)
    assert t.acquire("over") == QUEUED
    assert max(tr.in_flight for tr in t.assigned) == 3


def test_queue_depth_and_global_budget() -> None:
    budget = Budget(5)
    a: Throttler[str] = Throttler(1, 3, budget)
    b: Throttler[str] = Throttler(1, 3, budget)
    assert [a.acquire(f"a{i}") for i in range(4)] == [QUEUED, QUEUED, QUEUED, QUEUE_FULL]
    assert [b.acquire(f"b{i}") for i in range(3)] == [QUEUED, QUEUED, BUDGET_FULL]
    assert budget.used == 5
    assert a.cancel("a0") and not a.cancel("a0")
    assert b.acquire("b9") == QUEUED  # the cancelled place is free again
    assert a.take_waiters() == ["a1", "a2"]
    assert budget.used == 3


@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        (1, ["10.0.0.0", "10.0.0.1", "10.0.0.2"]),
        (3, ["10.0.0.0"] * 3),
        (10, ["10.0.0.0", "10.0.0.1", "10.0.0.2"]),
    ],
    ids=["cc1-first-available", "cc3-fills-first-replica", "cc10-round-robin"],
)
def test_load_balancing_policy_by_cc(cc: int, expected: list[str]) -> None:
    t = make(cc=cc, n=3)
    picks = []
    for i in range(3):
        r = t.acquire(f"r{i}")
        assert isinstance(r, Tracker)
        picks.append(r.address[0])
    assert picks == expected


def test_cc0_is_unlimited_and_balances_by_in_flight() -> None:
    t = make(cc=0, n=4)
    counts: dict[str, int] = {}
    for i in range(400):
        r = t.acquire(f"r{i}")
        assert isinstance(r, Tracker)
        counts[r.address[0]] = counts.get(r.address[0], 0) + 1
    # power of two choices keeps in-flight even
    assert max(counts.values()) - min(counts.values()) <= 2


def test_requeue_front_goes_ahead_of_the_queue() -> None:
    t = make(cc=1, n=1)
    first = t.acquire("first")
    assert isinstance(first, Tracker)
    t.acquire("second")
    t.requeue_front("retry")
    assert t.release(first) == ("retry", first)


@pytest.mark.parametrize(
    ("n", "index", "count", "expected"),
    [
        (5, -1, 3, [0, 1, 2, 3, 4]),
        (5, 0, 1, [0, 1, 2, 3, 4]),
        (1, 2, 3, [0]),
        (2, 2, 3, [0]),
        (2, 1, 3, [1]),
        (6, 0, 3, [0, 1]),
        (6, 2, 3, [4, 5]),
        (7, 0, 3, [0, 1, 6]),
        (7, 1, 3, [2, 3]),
        (8, 1, 3, [2, 3, 7]),
        (8, 2, 3, [4, 5]),
    ],
    ids=[
        "not-listed",
        "alone",
        "one-replica",
        "more-activators-wrap",
        "more-activators",
        "even-0",
        "even-2",
        "remainder-to-0",
        "no-remainder-1",
        "remainder-to-1",
        "no-remainder-2",
    ],
)
def test_assignment_of_replicas_to_activators(
    n: int, index: int, count: int, expected: list[int]
) -> None:
    ts = trackers(n, 10)
    assert [ts.index(t) for t in assign(ts, index, count)] == expected


def test_each_activator_uses_only_its_share_of_capacity() -> None:
    t = make(cc=10, n=4)
    assert t.capacity == 40
    t.set_peers(0, 2)
    assert t.capacity == 20
    assert {tr.address[0] for tr in t.assigned} == {"10.0.0.0", "10.0.0.1"}
