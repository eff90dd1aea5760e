"""Figures of repeated measurements: median and [min-max], p90, and their Markdown cells.

Benchmarks report medians with their [min-max] over repetitions: on a noisy
machine the range says how far to trust a median. A spread reads ``median
[min-max]`` (the median alone for one value), a ratio ``1.23x [1.10-1.40]``, a
difference ``+0.40 [+0.30 to +0.50]``; a missing figure is ``-``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
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


def fmt(x: float | None, digits: int = 1, thousands: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}" if thousands else f"{x:.{digits}f}"


def fmt_spread(s: Spread | None, digits: int = 1, thousands: bool = False) -> str:
    if s is None:
        return "-"
    med = fmt(s.median, digits, thousands)
    return (
        med
        if s.n == 1
        else f"{med} [{fmt(s.lo, digits, thousands)}-{fmt(s.hi, digits, thousands)}]"
    )


def fmt_delta(s: Spread | None, digits: int) -> str:
    """A signed difference: ``+median [+min to +max]``."""
    if s is None:
        return "-"
    med = f"{s.median:+.{digits}f}"
    return med if s.n == 1 else f"{med} [{s.lo:+.{digits}f} to {s.hi:+.{digits}f}]"


def fmt_ratio(s: Spread | None) -> str:
    if s is None:
        return "-"
    return f"{s.median:.2f}x" if s.n == 1 else f"{s.median:.2f}x [{s.lo:.2f}-{s.hi:.2f}]"


def md_table(header: Sequence[str] | str, rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table (``header`` may be one ``|``-separated string); the first
    ``left`` columns are left-aligned, the rest right-aligned."""
    cols = header.split("|") if isinstance(header, str) else list(header)
    align = ["---" if i < left else "--:" for i in range(len(cols))]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def kv_table(rows: Sequence[tuple[str, str]], header: str = " | ") -> str:
    return md_table(header, [list(r) for r in rows])


def columns(
    rows: Sequence[Any], cols: Sequence[tuple[str, Callable[[Any], str]]], left: int = 1
) -> str:
    return md_table([h for h, _ in cols], [[cell(r) for _, cell in cols] for r in rows], left)


def details(summary: str, body: str) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", body, "", "</details>", ""]
