"""How many of a revision's pods to scrape each second to estimate its total load."""

from __future__ import annotations

import math

# Below this many pods every pod is scraped; sampling would save nothing.
_MIN_POPULATION_TO_SAMPLE = 3

# Sample size for estimating a mean over an unbounded population, in the usual
# z^2 * variance / error^2 form: z = 1.96 (95 % confidence), 100 and 5^2.
# Kept as an expression rather than the literal 15.3664 so the float value is
# the one the formula produces.
_UNBOUNDED_SAMPLE = 1.96**2 * 100 / 5**2


def sample_size(n_pods: int) -> int:
    """Number of pods to scrape out of ``n_pods`` ready pods.

    Every pod when there are at most three; otherwise the infinite-population
    sample size corrected for a finite population,
    ``ceil(N * X / (N + X - 1))``, which grows slowly and stays at 16 or
    fewer up to a thousand pods. The scraped sum is later scaled by
    ``n_pods / sample_size`` to estimate the revision total.
    """
    if n_pods < 0:
        raise ValueError(f"n_pods={n_pods!r}: must be >= 0")
    if n_pods <= _MIN_POPULATION_TO_SAMPLE:
        return n_pods
    x = _UNBOUNDED_SAMPLE
    return math.ceil(n_pods * x / (n_pods + x - 1))
