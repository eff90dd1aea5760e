"""Host normalisation, the routing table and the exact percent split."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activator.routing import Route, RoutingTable, Split, TagRoute, Target, normalize_host
from zeroserve.topology import RevisionKey

V1 = RevisionKey("default", "hello-00001")
V2 = RevisionKey("default", "hello-00002")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (b"hello.default.example.com", b"hello.default.example.com"),
        (b"Hello.Default.Example.COM", b"hello.default.example.com"),
        (b"hello.default.example.com:8080", b"hello.default.example.com"),
        (b"hello.default.example.com.", b"hello.default.example.com"),
        (b"hello.default.example.com.:80", b"hello.default.example.com"),
        (b"127.0.0.1:8080", b"127.0.0.1"),
        (b"[::1]:8080", b"[::1]"),
        (b"[::1]", b"[::1]"),
        (b"  spaced.example.com ", b"spaced.example.com"),
    ],
    ids=[
        "plain",
        "mixed-case",
        "port",
        "trailing-dot",
        "dot-and-port",
        "ipv4",
        "ipv6-port",
        "ipv6",
        "spaces",
    ],
)
def test_normalize_host(raw: bytes, normal: bytes) -> None:
    assert normalize_host(raw) == normal


def test_split_20_80_is_exact_every_100_requests() -> None:
    split = Split([Target(V1, 20), Target(V2, 80)])
    picks = [split.choose() for _ in range(10_000)]
    assert Counter(picks) == {V1: 2000, V2: 8000}
    for i in range(0, 10_000, 100):
        assert Counter(picks[i : i + 100])[V1] == 20
    # spread out: the 20 % revision never gets two in a row
    assert all(not (a == V1 and b == V1) for a, b in itertools.pairwise(picks))


@pytest.mark.parametrize(
    ("weights", "n"),
    [((1, 99), 1000), ((33, 33, 34), 3000), ((50, 50), 10), ((7, 0, 93), 1000)],
    ids=["1-99", "thirds", "halves", "zero-percent-target"],
)
def test_split_long_run_ratios(weights: tuple[int, ...], n: int) -> None:
    keys = [RevisionKey("ns", f"r{i}") for i in range(len(weights))]
    split = Split([Target(k, w) for k, w in zip(keys, weights, strict=True)])
    counts = Counter(split.choose() for _ in range(n))
    total = sum(weights)
    for k, w in zip(keys, weights, strict=True):
        assert counts.get(k, 0) == n * w // total


@given(weights=st.lists(st.integers(0, 100), min_size=1, max_size=5), n=st.integers(1, 60))
def test_peek_is_the_next_choice_and_changes_nothing(weights: list[int], n: int) -> None:
    """The activator's fast path looks at the split's choice before it knows the request
    stays on its path (activator/fastpath.py): looking must not move the split."""
    if not any(weights):
        weights[0] = 1
    targets = [Target(RevisionKey("ns", f"r{i}"), w) for i, w in enumerate(weights)]
    looked, plain = Split(targets), Split(targets)
    for _ in range(n):
        peeked = looked.peek()
        assert looked.peek() == peeked
        assert looked.choose() == peeked == plain.choose()


def test_same_revision_targets_merge_and_empty_split_is_refused() -> None:
    assert Split([Target(V1, 30), Target(V1, 70)]).targets == (Target(V1, 100),)
    with pytest.raises(ValueError, match="at least one target"):
        Split([Target(V1, 0)])
    with pytest.raises(ValueError, match="percent must be >= 0"):
        Split([Target(V1, -1)])


def test_table_routes_default_and_tag_hosts() -> None:
    route = Route(
        namespace="default",
        name="hello",
        hosts=("hello.default.example.com",),
        targets=(Target(V1, 20), Target(V2, 80)),
        tags={
            "current": TagRoute(("current-hello.default.example.com",), (), V1),
            "latest": TagRoute(("latest-hello.default.example.com",), (), V2),
        },
        local_hosts=("hello.default.svc.cluster.local",),
    )
    table = RoutingTable([route])
    assert table.lookup(b"current-hello.default.example.com:8080").choose() == V1  # type: ignore[union-attr]
    assert table.lookup(b"LATEST-hello.default.example.com.").choose() == V2  # type: ignore[union-attr]
    default = table.lookup(b"hello.default.svc.cluster.local")
    assert default is not None
    assert Counter(default.choose() for _ in range(100)) == {V1: 20, V2: 80}
    assert table.lookup(b"other.default.example.com") is None
    assert table.lookup(b"127.0.0.1") is None  # an IP is not a route: 404, no open proxy
    assert table.revisions() == {V1, V2}


def test_route_with_only_tags_has_no_default_host() -> None:
    route = Route(
        namespace="default",
        name="hello",
        hosts=("hello.default.example.com",),
        targets=(Target(V1, 0),),
        tags={"v1": TagRoute(("v1-hello.default.example.com",), (), V1)},
    )
    table = RoutingTable([route])
    assert table.lookup(b"hello.default.example.com") is None
    assert table.lookup(b"v1-hello.default.example.com") is not None
