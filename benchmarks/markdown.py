"""Report formatting: numbers, spreads, ratios and differences as Markdown table cells.

A spread reads ``median [min-max]`` (just the median for one value), a ratio
``1.23x [1.10-1.40]``, a difference ``+0.40 [+0.30 to +0.50]``; a missing
figure is ``-``.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.stats import Spread


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
    """A two-column table of labels and values."""
    return md_table(header, [list(r) for r in rows])
