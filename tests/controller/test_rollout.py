"""Gradual rollout on the cluster, against the fake API server: the controller rebuilds
its state from the watch caches on every pass, so the rollout state must survive between
passes on the route's VirtualService (``networking.internal.knative.dev/rollout``, as
Knative keeps it on the route's Ingress), and the timer must bring the steps when nothing
else changes."""

from __future__ import annotations

import asyncio
import time

from controller.app import KubeController
from controller.ingress import ROLLOUT_ANNOTATION
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj
from zeroserve.serving import rollout

from .helpers import HELLO_V1, put_manifest
from .test_edges import ready

ROLLING_V1 = HELLO_V1.replace(
    "  namespace: default\n",
    '  namespace: default\n  annotations:\n    serving.knative.dev/rollout-duration: "4s"\n',
)
ROLLING_V2 = ROLLING_V1.replace('value: "World"', 'value: "Knative"')

Split = tuple[tuple[str, int], ...]


def split_of(route: Obj | None) -> Split:
    """The Route's ``status.traffic`` as (revision, percent) pairs."""
    traffic = ((route or {}).get("status") or {}).get("traffic") or []
    return tuple((t["revisionName"], t["percent"]) for t in traffic)


def rollout_on(vs: Obj | None) -> rollout.Rollout | None:
    text = ((vs or {}).get("metadata") or {}).get("annotations", {}).get(ROLLOUT_ANNOTATION)
    return rollout.from_json(text)


async def test_a_new_revision_takes_its_traffic_in_knatives_steps_kept_on_the_virtual_service(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    put_manifest(cluster, ROLLING_V1)
    await ready(cluster, "hello-00001")
    # The first revision takes everything at once (nothing served before); its split is
    # the baseline a later rollout starts from, kept on the VirtualService.
    vs = await cluster.wait_for(
        "virtualservices",
        "default",
        "hello-ingress",
        lambda o: (ro := rollout_on(o)) is not None and ro.done and bool(ro.configurations),
        within=5,
    )
    baseline = rollout_on(vs)
    assert baseline is not None
    assert [(s.revision, s.percent) for s in baseline.configurations[0].revisions] == [
        ("hello-00001", 100)
    ]
    await cluster.wait_for(
        "routes.serving.knative.dev",
        "default",
        "hello",
        lambda o: split_of(o) == (("hello-00001", 100),),
        within=5,
    )

    put_manifest(cluster, ROLLING_V2)
    await ready(cluster, "hello-00002")

    # Watch status.traffic (and the VirtualService next to it) until v2 has it all.
    seen: list[tuple[float, Split]] = []
    rolling_states: list[rollout.Rollout] = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        split = split_of(cluster.get("routes.serving.knative.dev", "default", "hello"))
        if not seen or seen[-1][1] != split:
            seen.append((time.monotonic(), split))
        ro = rollout_on(cluster.get("virtualservices", "default", "hello-ingress"))
        if ro is not None and not ro.done:
            rolling_states.append(ro)
        if split == (("hello-00002", 100),):
            break
        await asyncio.sleep(0.02)
    splits = [s for _, s in seen]
    # 4 s with a first programming under a second: min step 1 s, 3 steps of 33 % a second
    # (Knative's rollout.go), the newest revision listed last.
    assert splits[-4:] == [
        (("hello-00001", 99), ("hello-00002", 1)),
        (("hello-00001", 66), ("hello-00002", 34)),
        (("hello-00001", 33), ("hello-00002", 67)),
        (("hello-00002", 100),),
    ], splits
    assert set(splits[:-4]) <= {(("hello-00001", 100),)}
    started = next(t for t, s in seen if s == (("hello-00001", 99), ("hello-00002", 1)))
    assert seen[-1][0] - started >= 2.5  # three steps a second apart, not at once

    # During the rollout the VirtualService carried the state, in Knative's JSON shape.
    assert rolling_states
    during = rolling_states[0].configurations[0]
    assert [s.revision for s in during.revisions] == ["hello-00001", "hello-00002"]
    assert during.params.step_size == 33
    assert during.params.step_duration == 1.0

    # After it: no rollout in progress, only the new baseline (v2 at 100 %, no steps).
    vs = await cluster.wait_for(
        "virtualservices",
        "default",
        "hello-ingress",
        lambda o: (ro := rollout_on(o)) is not None and ro.done,
        within=5,
    )
    assert vs is not None
    after = rollout_on(vs)
    assert after is not None and after.next_step() is None
    assert [(s.revision, s.percent) for s in after.configurations[0].revisions] == [
        ("hello-00002", 100)
    ]
    assert '"stepParams":{}' in vs["metadata"]["annotations"][ROLLOUT_ANNOTATION]

    # The state settles: no pass keeps rewriting the VirtualService.
    version = vs["metadata"]["resourceVersion"]
    controller._wake.set()
    await asyncio.sleep(0.5)
    now = cluster.get("virtualservices", "default", "hello-ingress")
    assert now is not None and now["metadata"]["resourceVersion"] == version


async def test_an_unreadable_rollout_annotation_is_no_history(
    cluster: FakeKubeAPI, controller: KubeController
) -> None:
    """A damaged annotation is not an error: the route's traffic takes effect at once, and
    the controller writes a good state back."""
    put_manifest(cluster, ROLLING_V1)
    await ready(cluster, "hello-00001")
    vs = await cluster.wait_for(
        "virtualservices", "default", "hello-ingress", lambda o: rollout_on(o) is not None, within=5
    )
    assert vs is not None
    vs["metadata"]["annotations"][ROLLOUT_ANNOTATION] = "{not json"
    cluster.put(vs)
    put_manifest(cluster, ROLLING_V2)
    await ready(cluster, "hello-00002")
    route = await cluster.wait_for(
        "routes.serving.knative.dev",
        "default",
        "hello",
        lambda o: split_of(o) == (("hello-00002", 100),),
        within=5,
    )
    assert route is not None
    fixed = await cluster.wait_for(
        "virtualservices",
        "default",
        "hello-ingress",
        lambda o: (
            (ro := rollout_on(o)) is not None
            and [s.revision for c in ro.configurations for s in c.revisions] == ["hello-00002"]
        ),
        within=5,
    )
    assert fixed is not None
