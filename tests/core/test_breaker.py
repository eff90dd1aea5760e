"""The breaker's arithmetic, as tables."""

from __future__ import annotations

import pytest

from zeroserve.breaker import Breaker


def test_fast_path_takes_free_slots_then_refuses() -> None:
    b: Breaker[str] = Breaker(2, 20)
    assert b.try_acquire() and b.try_acquire()
    assert not b.try_acquire()
    assert b.in_flight == 2 and b.queued == 0


def test_queue_is_bounded_so_at_most_capacity_plus_depth_are_admitted() -> None:
    cc = 3
    b: Breaker[int] = Breaker(cc, 10 * cc)
    admitted = sum(b.try_acquire() or b.enqueue(i) for i in range(100))
    assert admitted == 11 * cc
    assert b.admitted == 33


def test_release_hands_the_slot_to_the_oldest_waiter() -> None:
    b: Breaker[str] = Breaker(1, 10)
    assert b.try_acquire()
    for w in "abc":
        assert b.enqueue(w)
    assert b.release() == "a"
    assert b.in_flight == 1  # handed over, never observable as free
    assert not b.try_acquire()  # a newcomer cannot overtake the queue
    assert b.release() == "b"
    assert b.release() == "c"
    assert b.release() is None
    assert b.in_flight == 0


def test_cancelled_waiter_leaves_the_queue() -> None:
    b: Breaker[str] = Breaker(1, 2)
    b.try_acquire()
    b.enqueue("a")
    b.enqueue("b")
    assert not b.enqueue("c")
    assert b.cancel("a")
    assert not b.cancel("a")
    assert b.enqueue("c")
    assert b.release() == "b"


@pytest.mark.parametrize(
    ("start", "holders", "waiting", "new_cap", "granted", "in_flight_after"),
    [
        (1, 1, 3, 3, 2, 3),
        (2, 2, 0, 5, 0, 2),
        (4, 4, 2, 1, 0, 4),  # shrinking never interrupts holders
        (0, 0, 2, 1, 1, 1),
    ],
    ids=["grow-grants-waiters", "grow-empty-queue", "shrink-keeps-holders", "from-zero"],
)
def test_set_capacity(
    start: int, holders: int, waiting: int, new_cap: int, granted: int, in_flight_after: int
) -> None:
    b: Breaker[int] = Breaker(start, 100)
    for _ in range(holders):
        assert b.try_acquire()
    for i in range(waiting):
        b.enqueue(i)
    assert b.set_capacity(new_cap) == list(range(granted))
    assert b.in_flight == in_flight_after


def test_after_shrinking_releases_do_not_hand_over_until_under_capacity() -> None:
    b: Breaker[str] = Breaker(3, 10)
    for _ in range(3):
        b.try_acquire()
    b.enqueue("w")
    b.set_capacity(1)
    assert b.release() is None  # 3 -> 2 holders, still over capacity 1
    assert b.release() is None  # 2 -> 1
    assert b.release() == "w"  # 1 -> 0, the waiter takes the freed slot
    assert b.in_flight == 1


@pytest.mark.parametrize(
    ("cap", "depth"), [(-1, 0), (0, -1)], ids=["negative-capacity", "negative-depth"]
)
def test_invalid_sizes(cap: int, depth: int) -> None:
    with pytest.raises(ValueError):
        Breaker(cap, depth)
