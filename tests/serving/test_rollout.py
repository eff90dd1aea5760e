"""Gradual rollout (zeroserve/serving/rollout.py and its use by routes.reconcile_route):
Knative's step computation, every step's percents under a fake clock, a newer revision
mid-rollout, duration 0, the annotation over config-network, and status.traffic."""

from __future__ import annotations

from typing import Any

import pytest

from zeroserve.api import load
from zeroserve.serving import rollout
from zeroserve.serving.controller import Controller
from zeroserve.serving.rollout import ConfigRollout, Rollout, Share, StepParams
from zeroserve.serving.routes import next_rollout_step
from zeroserve.serving.state import ResolvedTarget

CFG = "hello"


def latest(revision: str, percent: int = 100, tag: str = "") -> ResolvedTarget:
    return ResolvedTarget(revision, percent, tag, True, CFG)


def shares(ro: Rollout, tag: str = "") -> list[tuple[str, int]]:
    c = ro.find(tag, CFG)
    assert c is not None
    return [(s.revision, s.percent) for s in c.revisions]


# ----- Knative's step parameters (rollout.go computeProperties, via ObserveReady) ---------


@pytest.mark.parametrize(
    ("percent", "elapsed", "duration", "size", "step"),
    [
        # programming took under a second: min step 1 s; 119 s over 99 steps of 1 %
        (100, 2e-6, 120.0, 1, 119 / 99),
        # it took 2.4 s: min step 3 s -> 39 steps of 3 s, 99/39 rounds to 3
        (100, 2.4, 120.0, 3, 3.0),
        (75, 2.4, 120.0, 2, 3.0),  # 74/39 = 1.9 rounds up
        (50, 2.4, 120.0, 1, 3.0),  # 49/39 = 1.26 rounds down
        # a step longer than the whole rollout: everything in one final step of 1 s
        (13, 200.6, 120.0, 12, 1.0),
        # the 4 s rollout of the process test: 3 steps of 33 % a second
        (100, 0.0, 4.0, 33, 1.0),
        # 1 s: one step of 99 % after 1 s
        (100, 0.0, 1.0, 99, 1.0),
    ],
)
def test_step_parameters_follow_knative(
    percent: int, elapsed: float, duration: float, size: int, step: float
) -> None:
    start, now = 1000.0, 1000.0 + elapsed
    ro = Rollout(
        (
            ConfigRollout(
                CFG, "", percent, (Share("a", percent - 1), Share("b", 1)), StepParams(start)
            ),
        )
    )
    [c] = rollout.observe_ready(ro, now, duration).configurations
    assert c.params.step_size == size
    assert c.params.step_duration == pytest.approx(step)
    assert c.params.next_step == pytest.approx(now + step)
    assert c.params.start == start


def test_parameters_once_computed_are_kept() -> None:
    params = StepParams(start=5.0, next_step=9.0, step_duration=4.0, step_size=10)
    ro = Rollout((ConfigRollout(CFG, "", 100, (Share("a", 90), Share("b", 10)), params),))
    assert rollout.observe_ready(ro, 50.0, 120.0) == ro


# ----- stepping with a fake clock ----------------------------------------------------------


def test_a_4s_rollout_moves_in_steps_of_33_percent_each_second() -> None:
    ro = rollout.advance([latest("v1")], None, 0.0, 4.0)
    assert shares(ro) == [("v1", 100)] and ro.done and ro.next_step() is None
    # v2 becomes ready at t=10: it starts with 1 %.
    ro = rollout.advance([latest("v2")], ro, 10.0, 4.0)
    assert shares(ro) == [("v1", 99), ("v2", 1)]
    assert ro.next_step() == 11.0
    # A reconcile before the step is due changes nothing.
    assert rollout.advance([latest("v2")], ro, 10.5, 4.0) == ro
    seen = []
    t = 10.0
    while not ro.done:
        t = ro.next_step() or t
        ro = rollout.advance([latest("v2")], ro, t, 4.0)
        seen.append((t, shares(ro)))
    assert seen == [
        (11.0, [("v1", 66), ("v2", 34)]),
        (12.0, [("v1", 33), ("v2", 67)]),
        (13.0, [("v2", 100)]),
    ]
    assert ro.next_step() is None
    assert ro.configurations[0].params == StepParams()


def test_a_late_reconcile_takes_one_step_and_schedules_the_next_from_then() -> None:
    ro = rollout.advance([latest("v1")], None, 0.0, 4.0)
    ro = rollout.advance([latest("v2")], ro, 10.0, 4.0)
    ro = rollout.advance([latest("v2")], ro, 11.7, 4.0)
    assert shares(ro) == [("v1", 66), ("v2", 34)]
    assert ro.next_step() == pytest.approx(12.7)


def test_a_newer_revision_mid_rollout_takes_1_percent_from_the_one_rolling_in() -> None:
    ro = rollout.advance([latest("v1")], None, 0.0, 4.0)
    ro = rollout.advance([latest("v2")], ro, 10.0, 4.0)
    ro = rollout.advance([latest("v2")], ro, 11.0, 4.0)
    assert shares(ro) == [("v1", 66), ("v2", 34)]
    # v3 becomes ready: a new rollout from the current split, timing restarted.
    ro = rollout.advance([latest("v3")], ro, 11.5, 4.0)
    assert shares(ro) == [("v1", 66), ("v2", 33), ("v3", 1)]
    assert ro.configurations[0].params.start == 11.5
    assert ro.next_step() == 12.5
    # Its steps drain the older revisions newest first.
    ro = rollout.advance([latest("v3")], ro, 12.5, 4.0)
    assert shares(ro) == [("v1", 66), ("v3", 34)]
    ro = rollout.advance([latest("v3")], ro, 13.5, 4.0)
    assert shares(ro) == [("v1", 33), ("v3", 67)]
    ro = rollout.advance([latest("v3")], ro, 14.5, 4.0)
    assert shares(ro) == [("v3", 100)] and ro.done


def test_duration_0_moves_everything_at_once_but_keeps_the_baseline() -> None:
    ro = rollout.advance([latest("v1")], None, 0.0, 0.0)
    ro = rollout.advance([latest("v2")], ro, 10.0, 0.0)
    assert shares(ro) == [("v2", 100)] and ro.done
    # Switching rollouts off mid-rollout finishes it at once too.
    ro = rollout.advance([latest("v3")], ro, 20.0, 60.0)
    assert shares(ro) == [("v2", 99), ("v3", 1)]
    assert shares(rollout.advance([latest("v3")], ro, 21.0, 0.0)) == [("v3", 100)]


def test_nothing_serving_before_means_no_rollout() -> None:
    ro = rollout.advance([latest("v2")], None, 10.0, 60.0)
    assert shares(ro) == [("v2", 100)] and ro.done


def test_a_1_percent_target_never_rolls_and_pinned_targets_are_not_rolled() -> None:
    pinned = ResolvedTarget("v0", 99, "", False, CFG)
    ro = rollout.advance([pinned, latest("v1", 1)], None, 0.0, 60.0)
    ro = rollout.advance([pinned, latest("v2", 1)], ro, 10.0, 60.0)
    assert shares(ro) == [("v2", 1)] and ro.done


def test_a_percent_change_mid_rollout_goes_to_the_newest_or_comes_from_the_oldest() -> None:
    pinned = ResolvedTarget("p", 50, "", False, CFG)
    ro = rollout.advance([latest("v1")], None, 0.0, 60.0)
    ro = rollout.advance([latest("v2")], ro, 10.0, 60.0)
    assert shares(ro) == [("v1", 99), ("v2", 1)]
    ro = rollout.advance([pinned, latest("v2", 50)], ro, 10.5, 60.0)
    assert shares(ro) == [("v1", 49), ("v2", 1)]
    ro = rollout.advance([latest("v2")], ro, 10.6, 60.0)
    assert shares(ro) == [("v1", 49), ("v2", 51)]


def test_a_tagged_latest_target_rolls_under_its_tag_too() -> None:
    ro = rollout.advance([latest("v1", tag="cur")], None, 0.0, 4.0)
    ro = rollout.advance([latest("v2", tag="cur")], ro, 10.0, 4.0)
    assert shares(ro, "") == shares(ro, "cur") == [("v1", 99), ("v2", 1)]
    [(_, split)] = rollout.apply([latest("v2", tag="cur")], ro)
    assert [(s.revision, s.percent) for s in split] == [("v1", 99), ("v2", 1)]


# ----- through the controller: annotation, config-network, status.traffic ----------------

SERVICE = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
{annotations}spec:
  template:
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "examples/helloworld/app.py"]
          env:
            - name: TARGET
              value: "{target}"
"""
ANNOTATED = "  annotations:\n    serving.knative.dev/rollout-duration: {}\n"
NETWORK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config-network
  namespace: knative-serving
data:
  rollout-duration: "{}"
"""


def service(target: str, duration: str = "") -> str:
    return SERVICE.format(target=target, annotations=ANNOTATED.format(duration) if duration else "")


def new_revision(c: Controller, text: str, now: float) -> None:
    c.apply(load(text, "svc.yaml"), now=now)
    for key in c.revisions():
        c.set_revision_state(key, ready=True, now=now)


def traffic(c: Controller) -> list[dict[str, Any]]:
    [svc] = c.get("ksvc")
    return list(svc["status"]["traffic"])


def split_of(c: Controller) -> dict[str, int]:
    [route] = c.routing_table()
    return {t.revision.name: t.percent for t in route.targets}


def route_ready(c: Controller) -> tuple[str, str]:
    [route] = c.get("route")
    cond = {x["type"]: x for x in route["status"]["conditions"]}
    return cond["Ready"]["status"], cond["IngressReady"].get("reason", "")


def test_status_traffic_and_the_routing_table_move_in_steps() -> None:
    c = Controller(0.0)
    new_revision(c, service("v1", "4s"), 1.0)
    assert split_of(c) == {"hello-00001": 100}
    assert next_rollout_step(c._state, 2.0) is None
    new_revision(c, service("v2", "4s"), 10.0)
    assert traffic(c) == [
        {"revisionName": "hello-00001", "latestRevision": True, "percent": 99},
        {"revisionName": "hello-00002", "latestRevision": True, "percent": 1},
    ]
    assert split_of(c) == {"hello-00001": 99, "hello-00002": 1}
    assert route_ready(c) == ("Unknown", "RolloutInProgress")
    assert c.next_wakeup(10.0) == 11.0
    version = c.version
    c.tick(11.0)
    assert c.version == version + 1
    assert split_of(c) == {"hello-00001": 66, "hello-00002": 34}
    c.tick(12.0)
    assert [t["percent"] for t in traffic(c)] == [33, 67]
    c.tick(13.0)
    assert traffic(c) == [{"revisionName": "hello-00002", "latestRevision": True, "percent": 100}]
    assert split_of(c) == {"hello-00002": 100}
    assert route_ready(c) == ("True", "")
    assert next_rollout_step(c._state, 14.0) is None


@pytest.mark.parametrize(
    ("annotation", "network", "first_step"),
    [
        ("", "0", None),  # off by default
        ("", "4", 11.0),  # config-network alone
        ("1s", "120", 11.0),  # the annotation wins: one step of 99 % after 1 s
        ("0s", "4", 11.0),  # an annotation of 0 falls back to config-network (as Knative)
    ],
)
def test_the_annotation_wins_over_config_network(
    annotation: str, network: str, first_step: float | None
) -> None:
    c = Controller(0.0)
    c.apply(load(NETWORK.format(network), "network.yaml"), now=0.5)
    new_revision(c, service("v1", annotation), 1.0)
    new_revision(c, service("v2", annotation), 10.0)
    if first_step is None:
        assert split_of(c) == {"hello-00002": 100}
        assert next_rollout_step(c._state, 10.0) is None
        return
    assert split_of(c) == {"hello-00001": 99, "hello-00002": 1}
    assert next_rollout_step(c._state, 10.0) == first_step
    c.tick(first_step)
    expected = (
        {"hello-00002": 100} if annotation == "1s" else {"hello-00001": 66, "hello-00002": 34}
    )
    assert split_of(c) == expected


def test_the_state_round_trips_through_knatives_json_and_bad_json_is_no_history() -> None:
    ro = rollout.advance([latest("v1", tag="cur")], None, 0.0, 4.0)
    ro = rollout.advance([latest("v2", tag="cur")], ro, 10.0, 4.0)
    text = rollout.to_json(ro)
    assert '"stepParams":{"starttime":10000000000' in text
    assert rollout.from_json(text) == ro
    assert rollout.from_json(rollout.to_json(Rollout())) == Rollout()
    for bad in (
        "",
        None,
        "{",
        '{"configurations":[{"configurationName":"a","percent":100,'
        '"revisions":[{"revisionName":"x","percent":50}]}]}',  # shares do not add up
        '{"configurations":[{"percent":100}]}',
    ):
        assert rollout.from_json(bad) is None
