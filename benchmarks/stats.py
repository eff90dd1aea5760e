"""Statistics of repeated measurements: median and range, and a p90.

Benchmarks report medians with their [min-max] over repetitions: on a noisy
machine the range says how far to trust a median.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    median: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        """The spread of the values that are not None; None when there are none."""
        vs = [v for v in values if v is not None]
        if not vs:
            return None
        return cls(statistics.median(vs), min(vs), max(vs), len(vs))


def median(s: Spread | None) -> float | None:
    return None if s is None else s.median


def p90(values: Iterable[float | None]) -> float | None:
    """The 90th percentile (inclusive method); the value itself for one value."""
    vs = [v for v in values if v is not None]
    if len(vs) < 2:
        return vs[0] if vs else None
    return statistics.quantiles(vs, n=10, method="inclusive")[8]
