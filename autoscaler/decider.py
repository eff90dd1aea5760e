"""The KPA decider: turns one revision's metric totals into a desired pod count."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

# The delay window uses buckets as wide as the decider's tick interval.
_DELAY_BUCKET_SECONDS = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class DeciderSpec:
    """Everything the decider needs to know about one revision's scaling policy."""

    target: float
    """Desired metric value per pod (concurrency or requests per second); > 0."""

    total_value: float
    """Largest metric value one pod can take; used only for excess burst capacity."""

    target_burst_capacity: float
    """Headroom wanted above the panic value: -1 unlimited, 0 none, > 0 that much."""

    panic_threshold: float
    """Panic when the panic want is at least this ratio of ready pods (2.0 = 200 %)."""

    stable_window: float
    """Seconds panic lasts after the last over-threshold tick."""

    max_scale_up_rate: float
    """One tick may grow the revision to at most this ratio of its ready pods; > 1."""

    max_scale_down_rate: float
    """One tick may shrink the revision to no less than ready pods over this ratio; > 1."""

    activation_scale: int = 1
    """Smallest non-zero scale; only values above 1 have an effect."""

    scale_down_delay: float = 0.0
    """Seconds to hold the highest recent desired scale before scaling down; 0 disables."""

    reachable: bool = True
    """False when no route references the revision; it may then drop to zero at once."""

    scaling_metric: str = "concurrency"
    """Which metric the caller feeds: "rps", or concurrency for any other value."""

    activator_capacity: float = 100.0
    """Concurrency one activator can absorb; carried for the reconciler, unused here."""

    initial_scale: int = 1
    """Pods a new revision starts with; carried for the multiscaler, unused here."""

    def __post_init__(self) -> None:
        # Only the values that would break the arithmetic are checked here; the
        # configuration layer validates the full allowed ranges.
        if not self.target > 0:
            raise ValueError(f"target={self.target!r}: must be > 0")
        if not self.max_scale_up_rate > 1:
            raise ValueError(f"max_scale_up_rate={self.max_scale_up_rate!r}: must be > 1")
        if not self.max_scale_down_rate > 1:
            raise ValueError(f"max_scale_down_rate={self.max_scale_down_rate!r}: must be > 1")
        if not self.stable_window >= 0:
            raise ValueError(f"stable_window={self.stable_window!r}: must be >= 0")
        if not self.scale_down_delay >= 0:
            raise ValueError(f"scale_down_delay={self.scale_down_delay!r}: must be >= 0")


class ScaleResult(NamedTuple):
    """The outcome of one decider evaluation; callers ignore it when not valid."""

    desired_pods: int
    excess_burst_capacity: int
    valid: bool


_INVALID = ScaleResult(0, 0, False)


class DelayWindow:
    """Running maximum of the values recorded in the most recent 2 s buckets.

    A record at time ``t`` lands in bucket ``floor(t) // 2``. ``current()`` is the
    largest value among the last ``size`` bucket indices counted back from the
    newest record; entries expire only when a newer record arrives, never by the
    passage of time alone (upstream behaviour the decider relies on).
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, delay: float) -> None:
        if not delay > 0:
            raise ValueError(f"delay={delay!r}: must be > 0")
        self._size = math.ceil(delay / _DELAY_BUCKET_SECONDS)
        # (bucket index, value) pairs with increasing indices and strictly
        # decreasing values: the front is the maximum, and an older value not
        # larger than a newer one could never become the maximum again.
        self._entries: deque[tuple[int, int]] = deque()

    @property
    def size(self) -> int:
        """Number of 2 s buckets the window spans."""
        return self._size

    def record(self, now: float, value: int) -> None:
        """Record ``value`` at time ``now`` (seconds) and expire stale buckets."""
        entries = self._entries
        index = math.floor(now) // _DELAY_BUCKET_SECONDS
        # The decider ticks on a forward-moving clock. Should the clock step back,
        # the record joins the newest bucket instead, which keeps the deque
        # ordered by index (upstream leaves this case open).
        if entries and index < entries[-1][0]:
            index = entries[-1][0]
        while entries and entries[-1][1] <= value:
            entries.pop()
        # A surviving entry in the same bucket is larger; it already stands for
        # this bucket and expires together with it, so the new value is merged.
        if not entries or entries[-1][0] != index:
            entries.append((index, value))
        while index - entries[0][0] >= self._size:
            entries.popleft()

    def current(self) -> int:
        """Largest value still in the window, or 0 before the first record."""
        return self._entries[0][1] if self._entries else 0


class Decider:
    """Per-revision KPA decider; pure, with time passed in by the caller."""

    __slots__ = ("_delay_window", "_max_panic_pods", "_panic_time", "_spec")

    def __init__(self, spec: DeciderSpec, *, ready_pods: int, now: float) -> None:
        """Build a decider; pass ``ready_pods=0`` when the count could not be read."""
        self._spec = spec
        # After an autoscaler restart the metric history is gone. Starting in
        # panic with the current ready count as the running maximum keeps the
        # revision at its present scale until fresh data has accumulated.
        self._panic_time: float | None = now if ready_pods > 1 else None
        # Upstream quirk: seeded with the ready count even when not panicking.
        self._max_panic_pods = ready_pods
        # Upstream quirk: the window exists only if a delay is configured now;
        # later update() calls neither create, resize nor remove it.
        self._delay_window = (
            DelayWindow(spec.scale_down_delay) if spec.scale_down_delay > 0 else None
        )

    def update(self, spec: DeciderSpec) -> None:
        """Replace the spec; the next ``scale()`` uses it."""
        self._spec = spec

    @property
    def in_panic(self) -> bool:
        """True while the decider is in panic mode."""
        return self._panic_time is not None

    def scale(
        self,
        now: float,
        *,
        ready_pods: int | None,
        stable: float | None,
        panic: float | None,
    ) -> ScaleResult:
        """Evaluate the decider at ``now`` (seconds).

        ``ready_pods`` is the revision's ready pod count (0 when the revision's
        endpoints were not found); ``stable`` and ``panic`` are the revision-wide
        metric totals over the stable and panic windows. ``None`` for any of
        them means its source failed: the result is invalid and nothing changes.
        """
        if ready_pods is None or stable is None or panic is None:
            return _INVALID
        spec = self._spec
        target = spec.target

        # Rates and the panic ratio behave as if one pod were ready when none is,
        # so a revision at zero can still scale up.
        ready = float(ready_pods) if ready_pods > 1 else 1.0
        max_up = math.ceil(spec.max_scale_up_rate * ready)
        # Ceiling above: a small rate still allows growth by at least one pod.
        # An unreachable revision may drop to zero in one step.
        max_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0

        want_stable = math.ceil(stable / target)
        want_panic = math.ceil(panic / target)
        # Clamp against max_down first, then max_up (upstream order).
        desired_stable = min(max(want_stable, max_down), max_up)
        desired_panic = min(max(want_panic, max_down), max_up)

        # Activation scale is applied after the rate clamps (so it may exceed
        # max_up) and only to non-zero wants, so scale to zero still works.
        activation = spec.activation_scale
        if activation > 1:
            if want_stable > 0 and activation > desired_stable:
                desired_stable = activation
            if want_panic > 0 and activation > desired_panic:
                desired_panic = activation

        # The ratio uses the raw panic want, not the clamped one: a surge larger
        # than one tick's rate limit must still trigger panic.
        if want_panic / ready >= spec.panic_threshold:
            # Entering and extending panic are the same move: every tick over
            # the threshold restarts the stable-window countdown.
            self._panic_time = now
        elif self._panic_time is not None and self._panic_time + spec.stable_window < now:
            # Strictly older than the stable window, and only on a calm tick.
            self._panic_time = None
            self._max_panic_pods = 0

        desired = desired_stable
        if self._panic_time is not None:
            # The stable want may be the larger one; while panicking the result
            # never goes below the highest count since panic began.
            if desired_panic > desired:
                desired = desired_panic
            if desired > self._max_panic_pods:
                self._max_panic_pods = desired
            desired = self._max_panic_pods

        window = self._delay_window
        if window is not None and spec.reachable:
            window.record(now, desired)
            desired = window.current()

        tbc = spec.target_burst_capacity
        if tbc == 0:
            excess = 0
        elif tbc > 0:
            # The real ready count, not the "at least one" used for rates: with
            # no pods there is no capacity at all.
            excess = math.floor(ready_pods * spec.total_value - tbc - panic)
        else:
            excess = -1
        return ScaleResult(desired, excess, True)
