"""Revision garbage collection: Knative's rules (knative/serving ``pkg/reconciler/gc``)
as pure tables over a hand-built state and a fake clock, then through the Controller."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import yaml

from tests.api.manifests import HELLO_V1, doc, dump, edit
from zeroserve.api import load
from zeroserve.api.configs import Configs
from zeroserve.api.network import DISABLED, GCConfig
from zeroserve.api.objects import ObjectMeta, RevisionTemplate, TrafficTarget
from zeroserve.api.validate import NO_GC
from zeroserve.serving import gc
from zeroserve.serving.controller import Controller
from zeroserve.serving.state import (
    ConfigurationRecord,
    RevisionRecord,
    RouteRecord,
    State,
)
from zeroserve.topology import RevisionKey

H = 3600.0
NOW = 1000 * H
TEMPLATE: RevisionTemplate = load(HELLO_V1, "v1.yaml")[0].template  # type: ignore[union-attr]


@dataclass(frozen=True)
class Rev:
    """One revision of configuration ``hello`` in the table: ages in hours before NOW."""

    name: str
    created_ago: float
    inactive_ago: float | None = None
    """Hours since its routing state last changed; None: never changed (creation)."""
    state: str = "reserve"
    no_gc: str = ""


def state_of(revs: list[Rev], *, latest_ready: str = "", latest_created: str = "") -> State:
    st = State(configs=Configs())
    names = [r.name for r in revs]
    cfg = ConfigurationRecord(
        namespace="default",
        name="hello",
        meta=ObjectMeta(name="hello", namespace="default"),
        template=TEMPLATE,
        service="hello",
        created=0.0,
        revisions=names,
        latest_created=latest_created,
        latest_ready=latest_ready,
    )
    st.configurations[("default", "hello")] = cfg
    for i, r in enumerate(revs):
        template = TEMPLATE
        if r.no_gc:
            template = replace(TEMPLATE, annotations={NO_GC: r.no_gc})
        key = RevisionKey("default", r.name)
        st.revisions[key] = RevisionRecord(
            key=key,
            configuration="hello",
            service="hello",
            generation=i + 1,
            created=NOW - r.created_ago * H,
            template=template,
            container_concurrency=0,
            timeout_seconds=300,
            response_start_timeout_seconds=0,
            idle_timeout_seconds=0,
            container_name="user-container",
            routing_state=r.state,
            routing_state_modified=None if r.inactive_ago is None else NOW - r.inactive_ago * H,
        )
    return st


def names(keys: list[RevisionKey]) -> list[str]:
    return [k.name for k in keys]


DEFAULT = GCConfig()  # 48h since creation, 15h since last active, min 20, max 1000
SMALL = GCConfig(
    retain_since_create_time=10 * H,
    retain_since_last_active_time=5 * H,
    min_non_active_revisions=1,
    max_non_active_revisions=1000,
)


def old(name: str, state: str = "reserve", no_gc: str = "") -> Rev:
    """Created 100h and inactive 50h ago: stale under SMALL."""
    return Rev(name, 100, 50, state=state, no_gc=no_gc)


@pytest.mark.parametrize(
    ("cfg", "revs", "expected"),
    [
        pytest.param(
            DEFAULT,
            [Rev(f"r{i}", 100, 50) for i in range(20)],
            [],
            id="default-min-20-keeps-twenty-stale-ones",
        ),
        pytest.param(
            DEFAULT,
            [Rev(f"r{i:02}", 100, 50 - i) for i in range(22)],
            ["r00", "r01"],
            id="default-collects-the-two-oldest-beyond-twenty",
        ),
        pytest.param(
            SMALL,
            [old("a"), old("b"), old("c")],
            ["a", "b"],
            id="stale-beyond-min",
        ),
        pytest.param(
            SMALL,
            [Rev("a", 100, 2), Rev("b", 100, 3), old("c")],
            ["c"],
            id="recently-active-is-kept",
        ),
        pytest.param(
            SMALL,
            [Rev("a", 8, 8), Rev("b", 9, 9), old("c")],
            ["c"],
            id="recently-created-is-kept",
        ),
        pytest.param(
            SMALL,
            [Rev("a", 100), Rev("b", 100, 1), Rev("c", 1)],
            ["a"],
            id="never-modified-counts-from-creation",
        ),
        pytest.param(
            replace(SMALL, retain_since_create_time=DISABLED),
            [Rev("a", 8, 8), Rev("b", 9, 9), Rev("c", 9, 1)],
            ["a", "b"],
            id="create-bound-disabled-only-inactivity-counts",
        ),
        pytest.param(
            replace(SMALL, retain_since_last_active_time=DISABLED),
            [Rev("a", 100, 1), Rev("b", 100, 2), Rev("c", 9, 9)],
            ["a", "b"],
            id="active-bound-disabled-only-age-counts",
        ),
        pytest.param(
            replace(
                SMALL, retain_since_create_time=DISABLED, retain_since_last_active_time=DISABLED
            ),
            [old("a"), old("b"), old("c")],
            [],
            id="both-time-bounds-disabled-nothing-is-stale",
        ),
        pytest.param(
            replace(
                SMALL,
                retain_since_create_time=DISABLED,
                retain_since_last_active_time=DISABLED,
                max_non_active_revisions=1,
            ),
            [Rev("a", 1, 0.3), Rev("b", 1, 0.2), Rev("c", 1, 0.1)],
            ["a", "b"],
            id="time-disabled-max-still-applies",
        ),
        pytest.param(
            replace(SMALL, max_non_active_revisions=2),
            [Rev("a", 1, 0.3), Rev("b", 1, 0.2), Rev("c", 1, 0.1), Rev("d", 1, 0.05)],
            ["a", "b"],
            id="beyond-max-collected-whatever-the-age",
        ),
        pytest.param(
            replace(SMALL, max_non_active_revisions=2),
            [Rev("a", 1, 0.3), old("b"), Rev("c", 1, 0.1), Rev("d", 1, 0.05)],
            ["a", "b"],
            id="stale-first-then-oldest-beyond-max",
        ),
        pytest.param(
            replace(SMALL, max_non_active_revisions=DISABLED),
            [Rev(f"r{i}", 1, 0.5) for i in range(30)],
            [],
            id="max-disabled-no-cap",
        ),
        pytest.param(
            replace(SMALL, max_non_active_revisions=DISABLED),
            [old("a"), old("b"), Rev("c", 1, 0.5)],
            ["a", "b"],
            id="max-disabled-stale-still-collected",
        ),
        pytest.param(
            GCConfig(DISABLED, DISABLED, 0, DISABLED),
            [old("a"), old("b")],
            [],
            id="all-disabled",
        ),
        pytest.param(
            replace(SMALL, min_non_active_revisions=0, max_non_active_revisions=0),
            [old("a", no_gc="true"), Rev("b", 1, 0.5, no_gc="TRUE"), Rev("c", 1, 0.5)],
            ["c"],
            id="no-gc-annotation-is-never-collected",
        ),
        pytest.param(
            replace(SMALL, min_non_active_revisions=0, max_non_active_revisions=0),
            [old("a", no_gc="false"), old("b")],
            ["a", "b"],
            id="no-gc-false-is-collected",
        ),
        pytest.param(
            replace(SMALL, min_non_active_revisions=0, max_non_active_revisions=0),
            [
                old("a", state="active"),
                old("b", state="pending"),
                old("c"),
            ],
            ["c"],
            id="active-and-pending-are-not-candidates",
        ),
        pytest.param(
            SMALL,
            [Rev("a", 100, 10), Rev("b", 100, 40), Rev("c", 100, 20)],
            ["b", "c"],
            id="ordered-by-last-active-not-creation",
        ),
    ],
)
def test_collectable(cfg: GCConfig, revs: list[Rev], expected: list[str]) -> None:
    assert names(gc.collectable(state_of(revs), cfg, NOW)) == expected


def test_min_keeps_at_least_that_many_candidates() -> None:
    """Stale or not, ``min`` non-active revisions stay."""
    cfg = replace(SMALL, min_non_active_revisions=2)
    revs = [old("a"), old("b"), Rev("live", 1, 1, state="active")]
    assert gc.collectable(state_of(revs), cfg, NOW) == []
    revs.insert(0, Rev("z", 100, 60))
    assert names(gc.collectable(state_of(revs), cfg, NOW)) == ["z"]


def test_latest_ready_and_latest_created_are_never_collected() -> None:
    cfg = replace(SMALL, min_non_active_revisions=0, max_non_active_revisions=0)
    revs = [old("a"), old("b"), old("c")]
    st = state_of(revs, latest_ready="a", latest_created="c")
    assert names(gc.collectable(st, cfg, NOW)) == ["b"]


@pytest.mark.parametrize(
    "target",
    [
        TrafficTarget(revision_name="a", percent=100),
        TrafficTarget(revision_name="a", percent=0, tag="old"),
        TrafficTarget(revision_name="a", tag="pinned"),
    ],
    ids=["percent", "zero-percent-tag", "tag-only"],
)
def test_a_revision_a_route_names_is_never_collected(target: TrafficTarget) -> None:
    cfg = replace(SMALL, min_non_active_revisions=0, max_non_active_revisions=0)
    st = state_of([old("a"), old("b")])
    st.routes[("default", "other")] = RouteRecord(
        namespace="default",
        name="other",
        meta=ObjectMeta(name="other", namespace="default"),
        traffic=(target,),
        service="",
        created=0.0,
    )
    assert names(gc.collectable(st, cfg, NOW)) == ["b"]


def test_next_deadline_is_when_the_first_candidate_turns_stale() -> None:
    # b: created 8h ago (create bound 10h: in 2h), inactive 1h (active bound 5h: in 4h);
    # a and c: due in 4.5h.
    st = state_of([Rev("a", 100, 0.5), Rev("b", 8, 1), Rev("c", 100, 0.5)])
    assert gc.next_deadline(st, SMALL, NOW) == NOW + 4 * H
    no_create = replace(SMALL, retain_since_create_time=DISABLED)
    assert gc.next_deadline(st, no_create, NOW) == NOW + 4 * H
    st = state_of([Rev("a", 100, 4.5), Rev("b", 8, 1), Rev("c", 100, 4.5)])
    assert gc.next_deadline(st, SMALL, NOW) == NOW + 0.5 * H
    # Collectable already: due now.
    st = state_of([old("a"), old("b")])
    assert gc.next_deadline(st, SMALL, NOW) == NOW
    # Only the minimum of candidates: time alone changes nothing.
    assert gc.next_deadline(state_of([Rev("a", 100, 1)]), SMALL, NOW) is None
    # Stale ones kept by the minimum are no deadline (no busy loop).
    kept = [old("a"), old("b"), Rev("c", 1, 1, state="active")]
    assert gc.next_deadline(state_of(kept), replace(SMALL, min_non_active_revisions=2), NOW) is None
    # Only the age bound: each candidate is due 10h after its creation.
    st = state_of([Rev("a", 8, 0.1), Rev("b", 9, 0.1), Rev("c", 9.5, 0.1)])
    no_active = replace(SMALL, retain_since_last_active_time=DISABLED)
    assert gc.next_deadline(st, no_active, NOW) == NOW + 0.5 * H
    both_off = replace(no_active, retain_since_create_time=DISABLED)
    assert gc.next_deadline(st, both_off, NOW) is None


GC_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-gc, namespace: knative-serving}
data:
  retain-since-create-time: "1h"
  retain-since-last-active-time: "30m"
  min-non-active-revisions: "0"
"""


def _v(n: int, *, tag_first: bool = False) -> str:
    d = edit(
        doc(HELLO_V1), ("spec", "template", "spec", "containers", 0, "env", 0, "value"), f"v{n}"
    )
    if tag_first:
        d["spec"]["traffic"] = [
            {"latestRevision": True, "percent": 100},
            {"revisionName": "hello-00001", "tag": "first"},
        ]
    return dump(d)


def test_an_old_revision_disappears_from_revisions_and_get() -> None:
    c = Controller(0.0)
    c.apply(load(GC_MAP + "---\n" + _v(1), "a.yaml"), now=0.0)
    v1, v2 = RevisionKey("default", "hello-00001"), RevisionKey("default", "hello-00002")
    assert c.set_revision_state(v1, ready=True, now=10.0)
    assert c.next_wakeup(20.0) is None  # the only revision is the latest: nothing to collect
    c.apply(load(_v(2), "b.yaml"), now=100.0)
    assert c.set_revision_state(v2, ready=True, now=200.0)  # v1 leaves the route at 200
    [rev] = c.get("revisions", "default", "hello-00001")
    assert rev["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
    assert rev["metadata"]["annotations"]["serving.knative.dev/routingStateModified"] == (
        "1970-01-01T00:03:20Z"
    )
    # Stale once 1h old (3600) and 30m inactive (200 + 1800): the later of the two.
    assert c.next_wakeup(300.0) == 3600.0
    c.tick(3599.0)
    assert v1 in c.revisions()
    version = c.version
    c.tick(3600.0)
    assert v1 not in c.revisions() and v2 in c.revisions()
    assert c.version > version  # the runtime sees the change and stops v1's replicas
    assert [r["metadata"]["name"] for r in c.get("revisions")] == ["hello-00002"]
    _, rows = c.table("revisions")
    assert [r[0] for r in rows] == ["hello-00002"]
    assert c.next_wakeup(3600.0) is None


def test_a_tagged_old_revision_is_never_collected_through_the_controller() -> None:
    c = Controller(0.0)
    c.apply(load(GC_MAP + "---\n" + _v(1), "a.yaml"), now=0.0)
    v1, v2 = RevisionKey("default", "hello-00001"), RevisionKey("default", "hello-00002")
    assert c.set_revision_state(v1, ready=True, now=10.0)
    c.apply(load(_v(2, tag_first=True), "b.yaml"), now=100.0)
    assert c.set_revision_state(v2, ready=True, now=200.0)
    c.tick(100 * H)
    assert v1 in c.revisions()
    [rev] = c.get("revisions", "default", "hello-00001")
    assert rev["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"
    assert c.next_wakeup(100 * H) is None


def test_next_wakeup_is_the_earliest_of_gc_and_a_rollout_step() -> None:
    def rolled(n: int) -> str:
        d = yaml.safe_load(_v(n))
        d["metadata"]["annotations"] = {"serving.knative.dev/rollout-duration": "100s"}
        return dump(d)

    c = Controller(0.0)
    c.apply(load(GC_MAP + "---\n" + rolled(1), "a.yaml"), now=0.0)
    v1, v2 = RevisionKey("default", "hello-00001"), RevisionKey("default", "hello-00002")
    assert c.set_revision_state(v1, ready=True, now=10.0)
    c.apply(load(rolled(2), "b.yaml"), now=100.0)
    assert c.set_revision_state(v2, ready=True, now=200.0)
    # v1 still serves during the rollout: no GC deadline, the next step is due.
    step = c.next_wakeup(200.0)
    assert step is not None and 200.0 < step < 300.0
    before = c.routing_table()[0].targets
    c.tick(step)
    assert c.routing_table()[0].targets != before
    while (t := c.next_wakeup(step)) is not None and t < 3600.0:
        step = t
        c.tick(t)
    # The rollout is over (v1 left the routes at its end); GC is next, at 1h.
    assert c.routing_table()[0].targets[0].revision == v2
    assert t == 3600.0
