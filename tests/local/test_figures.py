"""The autoscaler's figures on the wire and the control API's bounded, numbered history of
them (``zeroserve.local.figures``)."""

from __future__ import annotations

from typing import Any

import pytest

from zeroserve.local.figures import (
    MAX_BATCH,
    FigureHistory,
    Figures,
    decode_batch,
    encode_batch,
)
from zeroserve.topology import RevisionKey

A = RevisionKey("default", "a-00001")
B = RevisionKey("default", "b-00001")


def fig(t: float, conc: float = 1.0, **kw: Any) -> Figures:
    base: dict[str, Any] = dict(
        time=t,
        stable_concurrency=conc,
        panic_concurrency=conc * 2,
        stable_rps=conc * 10,
        panic_rps=conc * 20,
        desired=1,
        ready=1,
        panic=False,
    )
    base.update(kw)
    return Figures(**base)


def test_a_batch_round_trips() -> None:
    items = [(A, fig(10.0, 3.5, desired=-1, panic=True, metric="rps", target=150.0)), (B, fig(11))]
    assert decode_batch(encode_batch(items)) == items


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], 'expected {"figures": [...]}'),
        ({"figures": "x"}, 'expected {"figures": [...]}'),
        ({"figures": [1]}, "figures[0]: expected an object, not int"),
        ({"figures": [{"revision": "r"}]}, "figures[0]: namespace and revision"),
        ({"figures": [{"namespace": "d", "revision": ""}]}, "namespace and revision"),
        ({"figures": [{"namespace": "d", "revision": "r", "panic": False}]}, "time: expected"),
        (
            {"figures": [{"namespace": "d", "revision": "r", "stable_concurrency": "1"}]},
            "panic: expected true or false",
        ),
    ],
    ids=["not-an-object", "not-a-list", "entry", "no-namespace", "empty-name", "time", "panic"],
)
def test_a_bad_batch_names_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(ValueError) as e:
        decode_batch(body)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stable_rps", float("nan"), "stable_rps: expected a finite number"),
        ("panic_rps", True, "panic_rps: expected a finite number"),
        ("desired", -2, "desired: expected an integer >= -1"),
        ("ready", 1.5, "ready: expected an integer >= -1"),
        ("metric", "cpu", "metric: expected 'concurrency' or 'rps', got 'cpu'"),
    ],
    ids=["nan", "bool", "desired", "ready", "metric"],
)
def test_a_bad_field_is_named(field: str, value: Any, message: str) -> None:
    body = encode_batch([(A, fig(1))])
    body["figures"][0][field] = value
    with pytest.raises(ValueError, match=r"figures\[0\]: ") as e:
        decode_batch(body)
    assert message in str(e.value)


def test_a_batch_is_bounded() -> None:
    body = {"figures": [{}] * (MAX_BATCH + 1)}
    with pytest.raises(ValueError, match=f"at most {MAX_BATCH}"):
        decode_batch(body)


def test_points_are_numbered_and_since_returns_only_newer_ones() -> None:
    h = FigureHistory(window=300)
    assert h.since(0, now=0) == {}
    assert [h.add(A, fig(1)), h.add(B, fig(1)), h.add(A, fig(3))] == [1, 2, 3]
    assert h.seq == 3
    assert h.since(0, now=3) == {A: [(1, fig(1)), (3, fig(3))], B: [(2, fig(1))]}
    assert h.since(2, now=3) == {A: [(3, fig(3))]}
    assert h.since(3, now=3) == {}


def test_history_keeps_the_window_only() -> None:
    h = FigureHistory(window=10)
    for t in range(0, 30, 2):
        h.add(A, fig(t))
    # on add: nothing older than the newest time minus the window
    assert [f.time for _, f in h.since(0, now=28)[A]] == [18, 20, 22, 24, 26, 28]
    # on read: nothing older than now minus the window; a revision with none left goes
    assert [f.time for _, f in h.since(0, now=36)[A]] == [26, 28]
    assert h.since(0, now=100) == {}
    assert h.add(A, fig(100)) == 16  # numbers keep growing


def test_history_keeps_at_most_max_points_per_revision() -> None:
    h = FigureHistory(window=1000, max_points=3)
    for t in range(5):
        h.add(A, fig(t))
    h.add(B, fig(5))
    assert [s for s, _ in h.since(0, now=5)[A]] == [3, 4, 5]
    assert [s for s, _ in h.since(0, now=5)[B]] == [6]


def test_retain_forgets_deleted_revisions() -> None:
    h = FigureHistory()
    h.add(A, fig(1))
    h.add(B, fig(1))
    h.retain([B])
    assert list(h.since(0, now=1)) == [B]


@pytest.mark.parametrize(
    ("window", "points"), [(0, 1), (-1, 1), (10, 0)], ids=["0s", "-1s", "0pts"]
)
def test_history_bounds_must_make_sense(window: float, points: int) -> None:
    with pytest.raises(ValueError):
        FigureHistory(window=window, max_points=points)
