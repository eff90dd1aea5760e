"""Table tests for the PodAutoscaler scale step: bounds, scale-to-zero gate, Active condition."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from autoscaler.scaler import (
    NO_TRAFFIC,
    QUEUED,
    TIMED_OUT,
    ActiveCondition,
    Activity,
    PodAutoscalerState,
    ScaleDecision,
    min_ready,
    next_condition,
    scale_step,
)
from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import AutoscalerConfig

A = "autoscaling.knative.dev/"
ACTIVATING, ACTIVE, INACTIVE = Activity.ACTIVATING, Activity.ACTIVE, Activity.INACTIVE
DEFAULT = AutoscalerConfig()  # stable window 60 s, grace 30 s, retention 0
NOW = 1000.0
# progress-deadline 600 s + 30 s.
TIMEOUT = 630.0


def pa(
    status: Activity,
    since: float,
    reason: str = "",
    *,
    reachable: bool = True,
    initialized: bool = True,
    desired: int = -1,
) -> PodAutoscalerState:
    return PodAutoscalerState(
        condition=ActiveCondition(status, since, reason),
        reachable=reachable,
        scale_target_initialized=initialized,
        desired_scale=desired,
    )


class Case(NamedTuple):
    state: PodAutoscalerState
    desired: int
    ready: int
    replicas: int | None
    # Expected:
    patch: int | None
    want: int
    condition: ActiveCondition
    recheck_at: float | None
    annotations: dict[str, str] = {}
    config: AutoscalerConfig = DEFAULT


def run(case: Case, now: float = NOW) -> ScaleDecision:
    revision = RevisionAutoscaling.parse(case.annotations, case.config)
    return scale_step(
        case.state,
        now,
        desired=case.desired,
        ready=case.ready,
        replicas=case.replicas,
        revision=revision,
        config=case.config,
    )


RETAIN_2M = {A + "scale-to-zero-pod-retention-period": "2m"}
NO_SCALE_TO_ZERO = replace(DEFAULT, enable_scale_to_zero=False)

CASES = {
    # Active at desired 0: first a stable window at one pod, then Inactive.
    "active-long-enough-marks-inactive": Case(
        pa(ACTIVE, 900.0), 0, 1, 1, None, 0, ActiveCondition(INACTIVE, NOW, NO_TRAFFIC), 1030.0
    ),
    "active-exactly-stable-window-is-enough": Case(
        pa(ACTIVE, 940.0), 0, 1, 1, None, 0, ActiveCondition(INACTIVE, NOW, NO_TRAFFIC), 1030.0
    ),
    "active-too-short-scales-to-1-rechecks-after-remainder": Case(
        pa(ACTIVE, 980.0), 0, 3, 3, 1, 1, ActiveCondition(ACTIVE, 980.0), 1040.0
    ),
    "active-too-short-already-at-1": Case(
        pa(ACTIVE, 980.0), 0, 1, 1, None, 1, ActiveCondition(ACTIVE, 980.0), 1040.0
    ),
    "active-window-annotation": Case(
        pa(ACTIVE, 985.0),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
        1030.0,
        {A + "window": "10s"},
    ),
    "active-to-inactive-recheck-waits-for-retention": Case(
        pa(ACTIVE, 900.0),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
        1120.0,
        RETAIN_2M,
    ),
    "active-to-inactive-unreachable-ignores-retention": Case(
        pa(ACTIVE, 900.0, reachable=False),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
        1030.0,
        RETAIN_2M,
    ),
    # Inactive: zero once the grace period and the retention have passed.
    "inactive-within-grace-0-not-applied": Case(
        pa(INACTIVE, 990.0, NO_TRAFFIC),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, 990.0, NO_TRAFFIC),
        1020.0,
    ),
    "inactive-grace-elapsed-0-applied": Case(
        pa(INACTIVE, 970.0, NO_TRAFFIC),
        0,
        1,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, 970.0, NO_TRAFFIC),
        None,
    ),
    "inactive-already-at-zero": Case(
        pa(INACTIVE, 900.0, NO_TRAFFIC),
        0,
        0,
        0,
        None,
        0,
        ActiveCondition(INACTIVE, 900.0, NO_TRAFFIC),
        None,
    ),
    "retention-longer-than-grace-waits": Case(
        pa(INACTIVE, 950.0, NO_TRAFFIC),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, 950.0, NO_TRAFFIC),
        1070.0,
        RETAIN_2M,
    ),
    "retention-elapsed-0-applied": Case(
        pa(INACTIVE, 880.0, NO_TRAFFIC),
        0,
        1,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, 880.0, NO_TRAFFIC),
        None,
        RETAIN_2M,
    ),
    "retention-shorter-than-grace-grace-wins": Case(
        pa(INACTIVE, 985.0, NO_TRAFFIC),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, 985.0, NO_TRAFFIC),
        1015.0,
        {A + "scale-to-zero-pod-retention-period": "10s"},
    ),
    "retention-from-config": Case(
        pa(INACTIVE, 950.0, NO_TRAFFIC),
        0,
        1,
        1,
        None,
        0,
        ActiveCondition(INACTIVE, 950.0, NO_TRAFFIC),
        1010.0,
        config=replace(DEFAULT, scale_to_zero_pod_retention_period=60.0),
    ),
    "grace-from-config": Case(
        pa(INACTIVE, 950.0, NO_TRAFFIC),
        0,
        1,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, 950.0, NO_TRAFFIC),
        None,
        config=replace(DEFAULT, scale_to_zero_grace_period=45.0),
    ),
    "unreachable-drops-retention": Case(
        pa(INACTIVE, 960.0, NO_TRAFFIC, reachable=False),
        0,
        1,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, 960.0, NO_TRAFFIC),
        None,
        RETAIN_2M,
    ),
    "unreachable-drops-min-scale": Case(
        pa(INACTIVE, 900.0, NO_TRAFFIC, reachable=False),
        0,
        2,
        2,
        0,
        0,
        ActiveCondition(INACTIVE, 900.0, NO_TRAFFIC),
        None,
        {A + "min-scale": "2"},
    ),
    "scale-from-zero-activates": Case(
        pa(INACTIVE, 900.0, NO_TRAFFIC),
        3,
        0,
        0,
        3,
        3,
        ActiveCondition(ACTIVATING, NOW, QUEUED),
        None,
    ),
    # enable-scale-to-zero: false turns a 0 into 1.
    "scale-to-zero-disabled-active": Case(
        pa(ACTIVE, 900.0),
        0,
        3,
        3,
        1,
        1,
        ActiveCondition(ACTIVE, 900.0),
        None,
        config=NO_SCALE_TO_ZERO,
    ),
    "scale-to-zero-disabled-activating-never-times-out": Case(
        pa(ACTIVATING, 0.0, QUEUED),
        -1,
        0,
        1,
        None,
        1,
        ActiveCondition(ACTIVATING, 0.0, QUEUED),
        None,
        config=NO_SCALE_TO_ZERO,
    ),
    # Activating: an unknown desired still goes through bounds and the gate.
    "activating-timed-out": Case(
        pa(ACTIVATING, NOW - TIMEOUT - 1, QUEUED),
        0,
        0,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, NOW, TIMED_OUT),
        None,
    ),
    "activating-timed-out-desired-unknown": Case(
        pa(ACTIVATING, NOW - TIMEOUT - 1, QUEUED),
        -1,
        0,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, NOW, TIMED_OUT),
        None,
    ),
    "activating-exactly-timeout-not-yet": Case(
        pa(ACTIVATING, NOW - TIMEOUT, QUEUED),
        0,
        0,
        1,
        None,
        -1,
        ActiveCondition(ACTIVATING, NOW - TIMEOUT, QUEUED),
        NOW + TIMEOUT,
    ),
    "activating-desired-unknown-waits-a-whole-timeout": Case(
        pa(ACTIVATING, 990.0),
        -1,
        0,
        1,
        None,
        -1,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        NOW + TIMEOUT,
    ),
    "activating-progress-deadline-annotation": Case(
        pa(ACTIVATING, 905.0, QUEUED),
        0,
        0,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, NOW, TIMED_OUT),
        None,
        {"serving.knative.dev/progress-deadline": "60s"},
    ),
    "activating-timeout-with-nothing-required-is-no-traffic": Case(
        pa(ACTIVATING, 0.0, initialized=False),
        -1,
        0,
        1,
        0,
        0,
        ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
        None,
        {A + "initial-scale": "0"},
        replace(DEFAULT, allow_zero_initial_scale=True),
    ),
    "activating-unknown-desired-gets-initial-scale": Case(
        pa(ACTIVATING, 990.0, initialized=False),
        -1,
        0,
        1,
        3,
        3,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        {A + "initial-scale": "3"},
    ),
    "activating-unknown-desired-gets-min-scale": Case(
        pa(ACTIVATING, 990.0),
        -1,
        0,
        1,
        2,
        2,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        {A + "min-scale": "2"},
    ),
    # Unknown desired outside activation: nothing at all.
    "unknown-desired-active-does-nothing": Case(
        pa(ACTIVE, 900.0), -1, 2, 2, None, -1, ActiveCondition(ACTIVE, 900.0), None
    ),
    "unknown-desired-applies-no-bounds": Case(
        pa(ACTIVE, 900.0),
        -1,
        2,
        2,
        None,
        -1,
        ActiveCondition(ACTIVATING, NOW, QUEUED),
        None,
        {A + "min-scale": "5"},
    ),
    "unknown-desired-inactive-does-nothing": Case(
        pa(INACTIVE, 900.0, NO_TRAFFIC),
        -1,
        0,
        0,
        None,
        -1,
        ActiveCondition(INACTIVE, 900.0, NO_TRAFFIC),
        None,
        {A + "min-scale": "2"},
    ),
    # Bounds.
    "min-clamp": Case(
        pa(ACTIVE, 900.0),
        1,
        1,
        1,
        2,
        2,
        ActiveCondition(ACTIVATING, NOW, QUEUED),
        None,
        {A + "min-scale": "2"},
    ),
    "min-scale-keeps-an-idle-revision-up": Case(
        pa(ACTIVE, 900.0),
        0,
        2,
        2,
        None,
        2,
        ActiveCondition(ACTIVE, 900.0),
        None,
        {A + "min-scale": "2"},
    ),
    "max-clamp": Case(
        pa(ACTIVE, 900.0),
        9,
        5,
        5,
        None,
        5,
        ActiveCondition(ACTIVE, 900.0),
        None,
        {A + "max-scale": "5"},
    ),
    "max-from-config": Case(
        pa(ACTIVE, 900.0),
        9,
        5,
        5,
        4,
        4,
        ActiveCondition(ACTIVE, 900.0),
        None,
        config=replace(DEFAULT, max_scale=4),
    ),
    "max-0-unbounded": Case(
        pa(ACTIVE, 900.0), 500, 5, 5, 500, 500, ActiveCondition(ACTIVE, 900.0), None
    ),
    "unreachable-min-ignored-for-nonzero": Case(
        pa(ACTIVE, 900.0, reachable=False),
        1,
        3,
        3,
        1,
        1,
        ActiveCondition(ACTIVE, 900.0),
        None,
        {A + "min-scale": "3"},
    ),
    "initial-scale-before-initialization": Case(
        pa(ACTIVATING, 990.0, QUEUED, initialized=False),
        1,
        0,
        1,
        3,
        3,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        {A + "initial-scale": "3"},
    ),
    "initial-scale-after-initialization": Case(
        pa(ACTIVE, 900.0),
        1,
        3,
        3,
        1,
        1,
        ActiveCondition(ACTIVE, 900.0),
        None,
        {A + "initial-scale": "3"},
    ),
    "initial-scale-ignored-when-unreachable": Case(
        pa(ACTIVATING, 990.0, QUEUED, initialized=False, reachable=False),
        1,
        0,
        0,
        1,
        1,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        {A + "initial-scale": "3"},
    ),
    "min-scale-above-initial-scale": Case(
        pa(ACTIVATING, 990.0, QUEUED, initialized=False),
        1,
        0,
        1,
        4,
        4,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        {A + "initial-scale": "3", A + "min-scale": "4"},
    ),
    "initial-scale-from-config": Case(
        pa(ACTIVATING, 990.0, QUEUED, initialized=False),
        0,
        0,
        1,
        2,
        2,
        ActiveCondition(ACTIVATING, 990.0, QUEUED),
        None,
        config=replace(DEFAULT, initial_scale=2),
    ),
    "unset-replicas-count-as-one": Case(
        pa(ACTIVE, 900.0), 1, 1, None, None, 1, ActiveCondition(ACTIVE, 900.0), None
    ),
    "unset-replicas-scale-up": Case(
        pa(ACTIVE, 900.0), 2, 1, None, 2, 2, ActiveCondition(ACTIVE, 900.0), None
    ),
    "lost-pods-reactivate": Case(
        pa(ACTIVE, 900.0), 2, 0, 2, None, 2, ActiveCondition(ACTIVATING, NOW, QUEUED), None
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_scale_step(case: Case) -> None:
    decision = run(case)
    assert (decision.replicas, decision.want, decision.state.condition, decision.recheck_at) == (
        case.patch,
        case.want,
        case.condition,
        case.recheck_at,
    )
    assert decision.state.reachable == case.state.reachable


@pytest.mark.parametrize(
    ("want", "ready", "needed", "prev", "expected"),
    [
        # Upstream's Active condition (pkg/apis/autoscaling/v1alpha1/pa_lifecycle.go), one
        # row per case (and its variants).
        pytest.param(
            0,
            0,
            1,
            ActiveCondition(ACTIVATING, 1.0, QUEUED),
            ActiveCondition(INACTIVE, NOW, TIMED_OUT),
            id="want0-activating-timed-out",
        ),
        pytest.param(
            0,
            5,
            1,
            ActiveCondition(ACTIVE, 1.0),
            ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
            id="want0-active-no-traffic",
        ),
        pytest.param(
            0,
            0,
            1,
            ActiveCondition(INACTIVE, 1.0, TIMED_OUT),
            ActiveCondition(INACTIVE, 1.0, NO_TRAFFIC),
            id="want0-inactive-keeps-time",
        ),
        pytest.param(
            3,
            0,
            0,
            ActiveCondition(ACTIVATING, 1.0),
            ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
            id="min-ready0-activating",
        ),
        pytest.param(
            3,
            0,
            0,
            ActiveCondition(ACTIVE, 1.0),
            ActiveCondition(INACTIVE, NOW, NO_TRAFFIC),
            id="min-ready0-active",
        ),
        pytest.param(
            2,
            1,
            2,
            ActiveCondition(INACTIVE, 1.0, NO_TRAFFIC),
            ActiveCondition(ACTIVATING, NOW, QUEUED),
            id="want-short-from-inactive",
        ),
        pytest.param(
            2,
            1,
            2,
            ActiveCondition(ACTIVE, 1.0),
            ActiveCondition(ACTIVATING, NOW, QUEUED),
            id="want-short-from-active",
        ),
        pytest.param(
            -1,
            0,
            1,
            ActiveCondition(ACTIVE, 1.0),
            ActiveCondition(ACTIVATING, NOW, QUEUED),
            id="unknown-short-from-active",
        ),
        pytest.param(
            -1,
            0,
            1,
            ActiveCondition(ACTIVATING, 1.0),
            ActiveCondition(ACTIVATING, 1.0, QUEUED),
            id="unknown-short-activating",
        ),
        pytest.param(
            -1,
            0,
            1,
            ActiveCondition(INACTIVE, 1.0, TIMED_OUT),
            ActiveCondition(INACTIVE, 1.0, NO_TRAFFIC),
            id="unknown-short-inactive",
        ),
        pytest.param(
            2,
            2,
            2,
            ActiveCondition(ACTIVATING, 1.0, QUEUED),
            ActiveCondition(ACTIVE, NOW),
            id="want-enough-from-activating",
        ),
        pytest.param(
            2,
            3,
            2,
            ActiveCondition(INACTIVE, 1.0, NO_TRAFFIC),
            ActiveCondition(ACTIVE, NOW),
            id="want-enough-from-inactive",
        ),
        pytest.param(
            2,
            3,
            2,
            ActiveCondition(ACTIVE, 1.0),
            ActiveCondition(ACTIVE, 1.0),
            id="want-enough-stays-active",
        ),
        pytest.param(
            -1,
            1,
            1,
            ActiveCondition(ACTIVATING, 1.0, QUEUED),
            ActiveCondition(ACTIVE, NOW),
            id="unknown-enough-from-activating",
        ),
        pytest.param(
            -1,
            2,
            1,
            ActiveCondition(INACTIVE, 1.0, TIMED_OUT),
            ActiveCondition(INACTIVE, 1.0, TIMED_OUT),
            id="unknown-enough-inactive-unchanged",
        ),
    ],
)
def test_next_condition(
    want: int, ready: int, needed: int, prev: ActiveCondition, expected: ActiveCondition
) -> None:
    assert next_condition(prev, NOW, want=want, ready=ready, needed=needed) == expected


@pytest.mark.parametrize(
    ("annotations", "initialized", "reachable", "expected"),
    [
        pytest.param({}, False, True, 1, id="default-initial-1"),
        pytest.param({A + "initial-scale": "3"}, False, True, 3, id="initial-before-init"),
        pytest.param({A + "initial-scale": "3"}, True, True, 1, id="initial-after-init"),
        pytest.param(
            {A + "min-scale": "4", A + "initial-scale": "3"}, False, True, 4, id="min-above-initial"
        ),
        pytest.param({A + "min-scale": "4"}, True, True, 4, id="min-after-init"),
        pytest.param({A + "min-scale": "4"}, True, False, 1, id="unreachable-drops-min"),
        pytest.param(
            {A + "min-scale": "4", A + "initial-scale": "3"},
            False,
            False,
            3,
            id="unreachable-keeps-initial",
        ),
    ],
)
def test_min_ready(
    annotations: dict[str, str], initialized: bool, reachable: bool, expected: int
) -> None:
    revision = RevisionAutoscaling.parse(annotations, DEFAULT)
    state = pa(ACTIVE, 0.0, initialized=initialized, reachable=reachable)
    assert min_ready(state, revision) == expected


def step(state: PodAutoscalerState, now: float, **kwargs: Any) -> ScaleDecision:
    annotations = kwargs.pop("annotations", {})
    revision = RevisionAutoscaling.parse(annotations, DEFAULT)
    return scale_step(state, now, revision=revision, config=DEFAULT, **kwargs)


def test_scale_target_initialized_once_initial_scale_is_ready() -> None:
    annotations = {A + "initial-scale": "3"}
    state = PodAutoscalerState.new(0.0)
    first = step(state, 1.0, desired=-1, ready=2, replicas=3, annotations=annotations)
    assert not first.state.scale_target_initialized
    second = step(first.state, 2.0, desired=-1, ready=3, replicas=3, annotations=annotations)
    assert second.state.scale_target_initialized
    assert second.state.condition == ActiveCondition(ACTIVE, 2.0)
    # Initialized: the initial scale no longer holds the revision up.
    third = step(second.state, 3.0, desired=1, ready=3, replicas=3, annotations=annotations)
    assert (third.replicas, third.want) == (1, 1)


@pytest.mark.parametrize(
    ("previous", "want", "expected"),
    [(-1, -1, -1), (-1, 0, 0), (4, -1, 4), (4, 0, 0), (4, 2, 2)],
    ids=[
        "unknown-stays-unknown",
        "first-known",
        "unknown-keeps-known",
        "zero-replaces",
        "new-value",
    ],
)
def test_reported_desired_scale(previous: int, want: int, expected: int) -> None:
    # Inactive with an unknown desired yields want -1; Active for longer than
    # the window yields the desired value itself (0 marks it Inactive).
    state = pa(INACTIVE if want < 0 else ACTIVE, 0.0, desired=previous)
    decision = step(state, NOW, desired=want, ready=1, replicas=1)
    assert decision.want == want
    assert decision.state.desired_scale == expected


def test_scale_to_zero_timeline() -> None:
    # Traffic stops at t=0: held at one pod for a stable window, marked
    # Inactive at 60, scaled to zero at 60 + grace, then woken by a request.
    d = step(pa(ACTIVE, 0.0), 10.0, desired=0, ready=2, replicas=2)
    assert (d.replicas, d.want, d.recheck_at) == (1, 1, 60.0)
    d = step(d.state, 60.0, desired=0, ready=1, replicas=1)
    assert (d.replicas, d.want, d.recheck_at) == (None, 0, 90.0)
    assert d.state.condition == ActiveCondition(INACTIVE, 60.0, NO_TRAFFIC)
    d = step(d.state, 89.0, desired=0, ready=1, replicas=1)
    assert (d.replicas, d.recheck_at) == (None, 90.0)
    d = step(d.state, 90.0, desired=0, ready=1, replicas=1)
    assert (d.replicas, d.want, d.recheck_at) == (0, 0, None)
    d = step(d.state, 100.0, desired=2, ready=0, replicas=0)
    assert (d.replicas, d.state.condition) == (2, ActiveCondition(ACTIVATING, 100.0, QUEUED))
    d = step(d.state, 104.0, desired=2, ready=2, replicas=2)
    assert (d.replicas, d.state.condition) == (None, ActiveCondition(ACTIVE, 104.0))


def test_never_ready_revision_times_out_to_zero() -> None:
    state = PodAutoscalerState.new(0.0)
    d = step(state, 0.0, desired=-1, ready=0, replicas=1)
    assert (d.replicas, d.want, d.recheck_at) == (None, -1, TIMEOUT)
    assert d.state.condition == ActiveCondition(ACTIVATING, 0.0, QUEUED)
    d = step(d.state, TIMEOUT, desired=-1, ready=0, replicas=1)
    assert (d.replicas, d.recheck_at) == (None, 2 * TIMEOUT)
    d = step(d.state, TIMEOUT + 1, desired=-1, ready=0, replicas=1)
    assert (d.replicas, d.want) == (0, 0)
    assert d.state.condition == ActiveCondition(INACTIVE, TIMEOUT + 1, TIMED_OUT)
    assert d.state.desired_scale == 0
