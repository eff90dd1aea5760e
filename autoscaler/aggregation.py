"""Per-second metric buckets averaged over a sliding time window (linear or weighted)."""

from __future__ import annotations

import math
from functools import cache

# Averages are rounded to this many decimal places (linear averaging only).
_PRECISION = 10**6
# Weighted-exponential averaging: the weight left for data older than the
# window, and the smallest smoothing factor allowed for long windows.
_TAIL_WEIGHT = 0.9999
_MIN_ALPHA = 0.2


def _round_half_away(value: float) -> float:
    """Round to 6 decimals as ``Round(v * 1e6) / 1e6`` does (halves away from zero).

    Python's ``round`` rounds halves to even on the exact binary value, which
    can differ in the last digit from the upstream averages.
    """
    scaled = abs(value) * _PRECISION
    whole = math.floor(scaled)
    if scaled - whole >= 0.5:
        whole += 1
    return math.copysign(whole, value) / _PRECISION


class TimedBuckets:
    """Sums values per 1 s bucket and averages them over a sliding window.

    Linear averaging: the window total is divided by the number of buckets
    from the first write to the last one (interior gaps count as zeros,
    trailing seconds without data do not). A running total keeps ``average``
    and ``record`` proportional to the seconds elapsed since the last write.
    """

    __slots__ = ("_buckets", "_first_write", "_last_write", "_size", "_total", "_window")

    def __init__(self, window: float) -> None:
        if not window > 0:
            raise ValueError(f"window={window!r}: must be > 0")
        self._window = window
        self._size = math.ceil(window)
        # Ring indexed by whole unix seconds modulo its size.
        self._buckets = [0.0] * self._size
        self._total = 0.0
        # Bucket-aligned (whole) seconds; None until the first write.
        self._first_write: int | None = None
        self._last_write: int | None = None

    @property
    def window(self) -> float:
        """Length of the averaging window in seconds."""
        return self._window

    def record(self, t: float, value: float) -> None:
        """Add ``value`` to the bucket of second ``floor(t)``."""
        b = math.floor(t)
        last = self._last_write
        buckets = self._buckets
        size = self._size
        if b != last:
            if last is not None and b + self._window <= last:
                # Older than anything the window can still average.
                return
            first = self._first_write
            if first is None or first > b:
                self._first_write = b
            if last is None or b > last:
                if last is None or b - last >= self._window:
                    # No write for a whole window: everything held is stale.
                    for i in range(size):
                        buckets[i] = 0.0
                    self._total = 0.0
                    self._first_write = b
                else:
                    # Clear the slots of the seconds skipped since the last
                    # write; they still hold values from one ring turn ago.
                    total = self._total
                    for second in range(last + 1, b + 1):
                        i = second % size
                        total -= buckets[i]
                        buckets[i] = 0.0
                    self._total = total
                self._last_write = b
        buckets[b % size] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        """True when nothing was written within the window ending at ``now``.

        Strictly more than a window must have passed: at exactly one window
        since the last write the buckets are not empty although ``average``
        already returns 0 (upstream behaviour).
        """
        last = self._last_write
        return last is None or math.floor(now) - last > self._window

    def average(self, now: float) -> float:
        """Average per second over the window ending at ``now``, 6 decimals."""
        last = self._last_write
        first = self._first_write
        if last is None or first is None:
            return 0.0
        n = math.floor(now)
        elapsed = n - last
        if elapsed <= 0:
            written = last - first + 1
            count = written if written < self._size else self._size
            return _round_half_away(self._total / count)
        if elapsed >= self._window:
            return 0.0
        # Data older than the window lies in the slots of the seconds after the
        # last write up to now; take it out, and do not count those trailing
        # seconds as zeros in the divisor.
        total = self._total
        buckets = self._buckets
        size = self._size
        for second in range(last + 1, n + 1):
            total -= buckets[second % size]
        written = last - first + 1
        remaining = size - elapsed
        count = written if written < remaining else remaining
        return _round_half_away(total / count)


@cache
def _weights(buckets: int, alpha: float, skipped: int) -> tuple[float, ...]:
    """Weights for the newest-to-oldest buckets when ``skipped`` seconds have no data.

    Built by repeated multiplication from ``alpha * (1 - alpha) ** skipped``,
    the same sequence of roundings as a step-by-step walk, and shared by every
    window of the same length.
    """
    weight = alpha * math.pow(1 - alpha, skipped)
    out = []
    for _ in range(buckets - skipped):
        out.append(weight)
        weight *= 1 - alpha
    return tuple(out)


def smoothing_alpha(buckets: int) -> float:
    """Smoothing factor of weighted-exponential averaging over ``buckets`` seconds.

    Chosen so that data older than the window keeps only 0.01 % of the weight,
    but never below 0.2, so long windows still react quickly.
    """
    return max(1 - math.pow(1 - _TAIL_WEIGHT, 1 / buckets), _MIN_ALPHA)


class WeightedBuckets(TimedBuckets):
    """Per-second buckets averaged with exponentially decaying weights.

    Recording is identical to :class:`TimedBuckets`. The newest bucket weighs
    ``alpha``, each older one ``1 - alpha`` times the next newer; seconds
    without data since the last write count as zeros. The weights are not
    normalised and the result is not rounded (upstream behaviour).
    """

    __slots__ = ("_alpha",)

    def __init__(self, window: float) -> None:
        super().__init__(window)
        self._alpha = smoothing_alpha(self._size)

    @property
    def alpha(self) -> float:
        """Weight of the newest bucket."""
        return self._alpha

    def average(self, now: float) -> float:
        """Weighted sum over the window ending at ``now``; 0 when empty."""
        last = self._last_write
        if last is None:
            return 0.0
        n = math.floor(now)
        skipped = n - last if n > last else 0
        if skipped >= self._size:
            return 0.0
        buckets = self._buckets
        # Walk back from the last written slot; negative indices wrap the ring.
        i = last % self._size
        total = 0.0
        for weight in _weights(self._size, self._alpha, skipped):
            total += buckets[i] * weight
            i -= 1
        return total
