"""Hostile applies and random operation sequences against a live controller.

A junk apply raises ``ManifestErrors`` and changes nothing; whatever sequence of
applies, runtime reports and deletes happens, the controller's outputs stay
consistent: every routed revision exists, every route's split adds up to 100,
``version`` never goes back, and every view renders.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.manifests import (
    CONFIG_DOMAIN_SELECTORS,
    CONTAINER,
    HELLO_V1,
    HELLO_V2,
    doc,
    dump,
    edit,
    snapshot,
)
from tests.api.test_fuzz import mutated
from zeroserve.api import ManifestErrors, load
from zeroserve.serving.controller import Controller
from zeroserve.serving.kinds import ControllerError
from zeroserve.topology import RevisionKey

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def started() -> Controller:
    c = Controller(0.0)
    c.apply(load(HELLO_V1, "v1.yaml"), now=1.0)
    c.set_revision_state(RevisionKey("default", "hello-00001"), ready=True, now=2.0)
    c.apply(load(HELLO_V2, "v2.yaml"), now=3.0)
    return c


@FUZZ
@given(mutated())
def test_junk_apply_raises_manifest_errors_and_changes_nothing(document: dict[str, Any]) -> None:
    c = started()
    before = snapshot(c)
    try:
        c.apply(load(dump(document), "fuzz.yaml"), now=10.0)
    except ManifestErrors as e:
        assert e.errors
        assert snapshot(c) == before
    else:
        check_consistent(c)


def check_consistent(c: Controller) -> None:
    revisions = c.revisions()
    for route in c.routing_table():
        assert sum(t.percent for t in route.targets) == 100, route
        assert all(t.revision in revisions for t in route.targets), route
        assert all(t.revision in revisions for t in route.tags.values()), route
        assert len(set(route.hosts)) == len(route.hosts)
    for kind in ("ksvc", "config", "rev", "route", "cm"):
        c.table(kind)
    for svc in c.get("ksvc"):
        c.tree(svc["metadata"]["namespace"], svc["metadata"]["name"])


def _variant(i: int) -> str:
    """One of a few valid documents touching the same objects."""
    base = doc(HELLO_V2 if i % 2 else HELLO_V1)
    if i >= 2:
        base = edit(base, (*CONTAINER, "env", 0, "value"), f"v{i}")
    if i == 4:
        base = edit(base, ("spec", "traffic"), [{"revisionName": "hello-00002", "percent": 100}])
    if i == 5:
        return CONFIG_DOMAIN_SELECTORS
    return dump(base)


OPERATIONS = st.one_of(
    st.tuples(st.just("apply"), st.integers(0, 5)),
    st.tuples(
        st.just("report"),
        st.integers(1, 6),
        st.sampled_from([True, False, None]),
        st.sampled_from([None, 0, 1, 3]),
    ),
    st.tuples(st.just("delete"), st.sampled_from(["ksvc", "route", "config", "rev", "cm", "pods"])),
)


@FUZZ
@given(st.lists(OPERATIONS, max_size=25))
def test_any_sequence_of_operations_keeps_outputs_consistent(ops: list[tuple[Any, ...]]) -> None:
    c = Controller(0.0)
    now, version = 1.0, c.version
    for op in ops:
        now += 1
        if op[0] == "apply":
            # Valid documents: never refused, whatever the state (a pinned revision that does
            # not exist only makes the route not ready).
            c.apply(load(_variant(op[1]), "seq.yaml"), now=now)
        elif op[0] == "report":
            c.set_revision_state(
                RevisionKey("default", f"hello-{op[1]:05d}"),
                ready=op[2],
                reason="" if op[2] is not False else "ExitCode1",
                message="boom",
                actual_replicas=op[3],
                desired_replicas=op[3],
                now=now,
            )
        else:
            name = "config-domain" if op[1] == "cm" else "hello"
            namespace = "knative-serving" if op[1] == "cm" else "default"
            # Refused deletes (missing, owned, a revision, unknown kind) change nothing.
            with contextlib.suppress(ControllerError):
                c.delete(op[1], namespace, name, now=now)
        assert c.version >= version
        version = c.version
        check_consistent(c)
