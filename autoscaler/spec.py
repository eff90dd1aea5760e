"""The KPA decider spec derived from a revision's settings (docs/autoscaling.md, "Decider spec")."""

from __future__ import annotations

from zeroserve.autoscaling.annotations import RevisionAutoscaling
from zeroserve.autoscaling.config import (
    CONCURRENCY,
    RPS,
    RPS_TARGET_UTILIZATION,
    TARGET_MIN,
    AutoscalerConfig,
)

from .decider import DeciderSpec


def decider_spec(
    revision: RevisionAutoscaling, config: AutoscalerConfig, *, reachable: bool
) -> DeciderSpec:
    """The decider's spec for a revision (knative/serving
    ``pkg/reconciler/autoscaling/kpa/resources/decider.go``).

    ``reachable`` is False only when the PodAutoscaler is Unreachable; an
    unknown reachability counts as reachable.
    """
    cc = revision.container_concurrency
    if revision.metric == RPS:
        total = config.rps_target_default
        utilization = RPS_TARGET_UTILIZATION
    else:
        total = float(cc) if cc > 0 else config.container_concurrency_target_default
        utilization = config.container_concurrency_target_fraction
    if revision.target is not None:
        # The annotation replaces the per-pod total, so utilization still
        # applies on top; a hard concurrency limit caps it.
        total = revision.target
        if revision.metric == CONCURRENCY and cc > 0:
            total = min(total, float(cc))
    if revision.target_utilization is not None:
        utilization = revision.target_utilization
    return DeciderSpec(
        target=max(TARGET_MIN, total * utilization),
        total_value=total,
        target_burst_capacity=revision.target_burst_capacity,
        panic_threshold=revision.panic_threshold_percentage / 100,
        stable_window=revision.stable_window,
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        activation_scale=revision.activation_scale,
        scale_down_delay=revision.scale_down_delay,
        reachable=reachable,
        scaling_metric=revision.metric,
        activator_capacity=config.activator_capacity,
        initial_scale=revision.initial_scale,
    )
