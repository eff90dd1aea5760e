"""The PodAutoscaler scale step: scale bounds, the scale-to-zero gate and the Active condition.

One call of :func:`scale_step` is one reconcile of one revision's
PodAutoscaler (docs/autoscaling.md, "The scale step"): it takes the decider's desired scale,
applies the revision's bounds, lets a scale to zero through only after the
revision has been idle long enough, and moves the Active condition.

Where we differ from upstream, on purpose: our activator is always in the
request path (upstream's behaviour with target-burst-capacity -1), so there is
no ServerlessService and no Serve/Proxy switch. The gate therefore never
probes an activator and never waits for activator endpoints: an inactive
revision goes to zero once it has been inactive for
``max(scale-to-zero-grace-period, retention)``. The stage before that stays:
a revision at desired 0 is first held at one pod until it has been Active for
a stable window, and is then marked Inactive. The excess burst capacity only
chooses between Serve and Proxy upstream, so the step does not take it; and
"scale target initialized" needs no ServerlessService service name here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import AutoscalerConfig

ACTIVATION_TIMEOUT_MARGIN = 30.0
"""Seconds added to the progress deadline before a stuck activation gives up."""

# Reasons of the Active condition.
QUEUED = "Queued"
NO_TRAFFIC = "NoTraffic"
TIMED_OUT = "TimedOut"


class Activity(enum.Enum):
    """Status of the PodAutoscaler's Active condition."""

    ACTIVATING = "Activating"
    """Unknown: pods are being brought up; requests wait in the activator."""
    ACTIVE = "Active"
    """True: enough pods are ready."""
    INACTIVE = "Inactive"
    """False: the revision is idle, at or on its way to zero."""


@dataclass(frozen=True, slots=True)
class ActiveCondition:
    """The Active condition and the time it entered its current status."""

    status: Activity
    since: float
    """When the status last changed; a new reason alone keeps the time."""
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class PodAutoscalerState:
    """What the scale step remembers about one revision between calls."""

    condition: ActiveCondition
    """The Active condition."""

    reachable: bool = True
    """False only when no route references the revision (upstream Unreachable)."""

    scale_target_initialized: bool = False
    """Set once the revision first had as many ready pods as it must start with."""

    desired_scale: int = -1
    """Last known desired scale for status reporting; -1 = not known yet."""

    @classmethod
    def new(cls, now: float, *, reachable: bool = True) -> PodAutoscalerState:
        """A new PodAutoscaler: Activating since ``now``, nothing known yet."""
        return cls(condition=ActiveCondition(Activity.ACTIVATING, now), reachable=reachable)


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """What one scale step decided."""

    replicas: int | None
    """Replica count to apply to the scale target; None = leave it as it is."""

    want: int
    """Scale after bounds and the gate (-1 = unknown); what the condition was judged on."""

    state: PodAutoscalerState
    """The state to pass to the next step."""

    recheck_at: float | None
    """Run the step again at this time even if the decider reports nothing new."""


def scale_bounds(revision: RevisionAutoscaling, *, reachable: bool) -> tuple[int, int]:
    """``(min, max)`` scale; min is 0 while unreachable, max 0 means unbounded."""
    return (revision.min_scale if reachable else 0), revision.max_scale


def min_ready(state: PodAutoscalerState, revision: RevisionAutoscaling) -> int:
    """Ready pods needed to count as Active (at least the initial scale until initialized)."""
    low, _ = scale_bounds(revision, reachable=state.reachable)
    if not state.scale_target_initialized:
        return max(low, revision.initial_scale)
    return max(low, 1)


def next_condition(
    prev: ActiveCondition, now: float, *, want: int, ready: int, needed: int
) -> ActiveCondition:
    """The Active condition after a step (knative/serving
    ``pkg/apis/autoscaling/v1alpha1/pa_lifecycle.go``)."""
    if want == 0 or needed == 0:
        # An activation that never got its pods up ended in the gate's timeout.
        timed_out = prev.status is Activity.ACTIVATING and needed > 0
        return _move(prev, now, Activity.INACTIVE, TIMED_OUT if timed_out else NO_TRAFFIC)
    if want < 0 and prev.status is Activity.INACTIVE:
        # Without a decision an idle revision stays idle, however many pods
        # are ready (for example min-scale pods).
        return prev if ready >= needed else _move(prev, now, Activity.INACTIVE, NO_TRAFFIC)
    if ready < needed:
        return _move(prev, now, Activity.ACTIVATING, QUEUED)
    return _move(prev, now, Activity.ACTIVE, "")


def _move(prev: ActiveCondition, now: float, status: Activity, reason: str) -> ActiveCondition:
    if prev.status is status:
        # The gate's clocks measure time in a status. Upstream also restarts
        # them when only the reason changes (a new PA getting Queued, TimedOut
        # turning into NoTraffic a reconcile later); here a timed-out
        # revision's hold counts from the timeout.
        return prev if prev.reason == reason else replace(prev, reason=reason)
    return ActiveCondition(status, now, reason)


def scale_step(
    state: PodAutoscalerState,
    now: float,
    *,
    desired: int,
    ready: int,
    replicas: int | None,
    revision: RevisionAutoscaling,
    config: AutoscalerConfig,
) -> ScaleDecision:
    """Reconcile one revision at ``now`` (seconds).

    ``desired`` is the decider's desired scale (-1 = unknown), ``ready`` the
    revision's ready pods, ``replicas`` the scale target's replica count
    (None = unset, which counts as 1).
    """
    want, apply, recheck_at = _scale(state, now, desired, revision, config)
    current = 1 if replicas is None else replicas
    patch = want if apply and want != current else None

    # The threshold is judged with the flag as it was before this step.
    needed = min_ready(state, revision)
    condition = next_condition(state.condition, now, want=want, ready=ready, needed=needed)
    new_state = replace(
        state,
        condition=condition,
        scale_target_initialized=state.scale_target_initialized or ready >= needed,
        # An unknown want never hides a desired scale already known.
        desired_scale=want if want >= 0 or state.desired_scale < 0 else state.desired_scale,
    )
    return ScaleDecision(patch, want, new_state, recheck_at)


def _scale(
    state: PodAutoscalerState,
    now: float,
    desired: int,
    revision: RevisionAutoscaling,
    config: AutoscalerConfig,
) -> tuple[int, bool, float | None]:
    """Bounds then the gate: ``(scale, apply it?, re-check time)``."""
    activating = state.condition.status is Activity.ACTIVATING
    if desired < 0 and not activating:
        # No metrics yet: nothing to decide.
        return desired, False, None
    # While activating an unknown desired still goes through the bounds: it
    # becomes min-scale or the initial scale, or 0 and the activation timeout.
    low, high = scale_bounds(revision, reachable=state.reachable)
    initial = revision.initial_scale
    if initial > 1 and not state.scale_target_initialized and state.reachable:
        low = max(low, initial)
    if desired < low:
        desired = low
    elif high and desired > high:
        desired = high
    return _gate(state, now, desired, revision, config)


def _gate(
    state: PodAutoscalerState,
    now: float,
    desired: int,
    revision: RevisionAutoscaling,
    config: AutoscalerConfig,
) -> tuple[int, bool, float | None]:
    """The scale-to-zero gate of knative/serving ``pkg/reconciler/autoscaling/kpa/scaler.go``,
    without the activator probe."""
    if desired != 0:
        return desired, True, None
    if not config.enable_scale_to_zero:
        return 1, True, None

    condition = state.condition
    elapsed = now - condition.since
    if condition.status is Activity.ACTIVATING:
        timeout = revision.progress_deadline + ACTIVATION_TIMEOUT_MARGIN
        if elapsed > timeout:
            return 0, True, None
        # Upstream waits a whole timeout again rather than the remainder; kept,
        # as a re-check exactly at the deadline would not yet be "longer than".
        return -1, False, now + timeout

    retention = revision.scale_to_zero_pod_retention if state.reachable else 0.0
    hold = max(config.scale_to_zero_grace_period, retention)
    if condition.status is Activity.ACTIVE:
        if elapsed >= revision.stable_window:
            # 0 but not applied: the condition turns Inactive in this step and
            # the inactive branch below takes over once the hold has passed
            # (upstream re-checks after 3 s and finds the remaining time then).
            return 0, False, now + hold
        # Idle, but not for a whole stable window yet: keep one pod meanwhile.
        return 1, True, condition.since + revision.stable_window

    if elapsed >= hold:
        return 0, True, None
    return 0, False, condition.since + hold
