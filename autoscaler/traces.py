"""Load traces for the autoscaler simulator: CSV files and built-in generators.

A trace is a piecewise-constant load: rows of ``(time_s, value)``, each value
holding from its time until the next row's, 0 before the first row and the
last value to the end. The load is either ``concurrency`` (requests in
flight) or ``rps`` (requests arriving per second); a CSV file's header says
which::

    time_s,concurrency
    # comment lines and blank lines are skipped
    0,0
    31,200
    150,0

Generators build the same rows from a spec ``KIND[:key=value,...]``, for
example ``step:from=0,to=200,at=31,until=150`` (see :data:`GENERATOR_HELP`).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zeroserve.configmap import parse_float

CONCURRENCY = "concurrency"
RPS = "rps"
UNITS = (CONCURRENCY, RPS)
TIME_COLUMN = "time_s"


class TraceError(ValueError):
    """A trace file or generator spec is unusable; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Trace:
    """A piecewise-constant load over time."""

    unit: str
    """``concurrency`` or ``rps``."""
    times: tuple[float, ...]
    """Row start times in seconds, strictly increasing, the first one >= 0."""
    values: tuple[float, ...]
    """The load from each row's time until the next row's; all >= 0."""
    source: str
    """Where it came from: a file name or a generator spec."""
    length: float | None = None
    """Natural length in seconds (a generated day), None when it simply ends at the last row."""

    @property
    def last_change(self) -> float:
        """Time of the last row: after it the load stays constant."""
        return self.times[-1]

    def per_second(self, seconds: int) -> list[float]:
        """The average load over each second ``[s, s + 1)`` for ``s < seconds``.

        Averaging rather than sampling keeps a burst shorter than a second
        (rows at fractional times) in the picture, as the activator's
        time-weighted concurrency would.
        """
        times, values = self.times, self.values
        out: list[float] = []
        i = -1  # index of the row in force; -1 = before the first row (no load)
        for s in range(seconds):
            t, end = float(s), float(s + 1)
            area = 0.0
            while t < end:
                while i + 1 < len(times) and times[i + 1] <= t:
                    i += 1
                upto = min(end, times[i + 1]) if i + 1 < len(times) else end
                if i >= 0:
                    area += values[i] * (upto - t)
                t = upto
            out.append(area)
        return out


# -- CSV ---------------------------------------------------------------------------


def read_csv(path: str | Path) -> Trace:
    """Read a trace file; a ``TraceError`` names the file, line and column of a bad value."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{name}: cannot read the trace: {e}") from None
    return parse_csv(text, name)


def parse_csv(text: str, name: str = "<trace>") -> Trace:
    """Parse the text of a trace file; ``name`` is used in error messages."""
    header: list[str] = []
    times: list[float] = []
    values: list[float] = []
    # Spreadsheets often save a byte-order mark before the header.
    reader = csv.reader(text.removeprefix("\ufeff").splitlines())
    for fields in reader:
        cells = [f.strip() for f in fields]
        if not any(cells) or cells[0].startswith("#"):
            continue
        at = _Location(name, reader.line_num, header)
        if not header:
            if cells[0] != TIME_COLUMN:
                raise TraceError(
                    f"{at.column(1)}: the header must start with {TIME_COLUMN!r}, got {cells[0]!r}"
                )
            if len(cells) != 2:
                raise TraceError(
                    f"{at.line()}: the header must have 2 columns, {TIME_COLUMN} and "
                    f"concurrency or rps, got {len(cells)}"
                )
            if cells[1] not in UNITS:
                raise TraceError(
                    f"{at.column(2)}: the second header column must be "
                    f"'concurrency' or 'rps', got {cells[1]!r}"
                )
            header = cells
            continue
        if len(cells) != 2:
            raise TraceError(
                f"{at.line()}: expected 2 columns ({','.join(header)}), got {len(cells)}"
            )
        t = _number(cells[0], at.column(1))
        if times and t <= times[-1]:
            raise TraceError(
                f"{at.column(1)}: must be greater than the previous {TIME_COLUMN} "
                f"({times[-1]:g}), got {cells[0]!r}"
            )
        times.append(t)
        values.append(_number(cells[1], at.column(2)))
    if not header:
        raise TraceError(
            f"{name}: empty trace: expected a header '{TIME_COLUMN},concurrency' "
            f"or '{TIME_COLUMN},rps'"
        )
    if not times:
        raise TraceError(f"{name}: no data rows after the header")
    return Trace(header[1], tuple(times), tuple(values), name)


class _Location:
    """Where in a trace file a problem is, for error messages."""

    def __init__(self, name: str, line: int, header: Sequence[str]) -> None:
        self.name, self.line_no, self.header = name, line, header

    def line(self) -> str:
        return f"{self.name}, line {self.line_no}"

    def column(self, column: int) -> str:
        label = f" ({self.header[column - 1]})" if column <= len(self.header) else ""
        return f"{self.line()}, column {column}{label}"


def _number(text: str, where: str) -> float:
    try:
        value = parse_float(text)  # decimal and finite only: no 'nan', 'inf' or hex
    except ValueError:
        raise TraceError(f"{where}: must be a number >= 0, got {text!r}") from None
    if value < 0:
        raise TraceError(f"{where}: must be a number >= 0, got {text!r}")
    return value


# -- generators ----------------------------------------------------------------------

GENERATOR_HELP = """\
generators (--generate KIND[:key=value,...]; every key is optional):
  step     from=0 to=100 at=30 [until=T]
           load 'from' until 'at', then 'to' (until 'until', then 'from' again)
  spike    base=10 peak=300 at=60 length=10
           a rectangular burst of 'length' seconds on top of a steady base
  diurnal  min=10 max=200 period=3600 cycles=1 step=60 noise=0 seed=1
           a compressed day: min at t=0, max at period/2, one row every 'step'
           seconds; 'noise' (0 to <1) multiplies each row by 1 +/- up to noise
  every kind also takes unit=concurrency|rps (default concurrency)
  e.g. step:to=200,at=31,until=150  spike:peak=500,length=5  diurnal:max=300,noise=0.2
"""


def generate(spec: str) -> Trace:
    """Build a trace from a generator spec; a ``TraceError`` says what is wrong with it."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    gen = _GENERATORS.get(kind)
    if gen is None:
        raise TraceError(
            f"--generate {spec!r}: unknown kind {kind!r}; choose one of {', '.join(_GENERATORS)}"
        )
    allowed, build = gen
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise TraceError(f"--generate {spec!r}: expected key=value, got {item!r}")
        if key not in (*allowed, "unit"):
            raise TraceError(
                f"--generate {spec!r}: {kind} takes {', '.join((*allowed, 'unit'))}; got {key!r}"
            )
        params[key] = value.strip()
    unit = params.pop("unit", CONCURRENCY)
    if unit not in UNITS:
        raise TraceError(f"--generate {spec!r}: unit must be concurrency or rps, got {unit!r}")
    p = _Params(spec, params)
    rows, length = build(p)
    return Trace(unit, tuple(t for t, _ in rows), tuple(v for _, v in rows), spec, length)


class _Params:
    """Typed access to one spec's parameters, with errors naming the spec and the key."""

    def __init__(self, spec: str, raw: dict[str, str]) -> None:
        self.spec = spec
        self.raw = raw

    def number(
        self,
        key: str,
        default: float,
        *,
        rule: str = ">= 0",
        ok: Callable[[float], bool] = lambda x: x >= 0,
    ) -> float:
        """The parsed value of ``key`` or ``default``; nan (unparsable) fails every rule."""
        text = self.raw.get(key)
        if text is None:
            return default
        try:
            value = parse_float(text)
        except ValueError:
            value = math.nan
        if not ok(value):
            raise self.error(f"{key} must be a number {rule}, got {text!r}")
        return value

    def optional(self, key: str) -> float | None:
        return self.number(key, 0.0) if key in self.raw else None

    def error(self, message: str) -> TraceError:
        return TraceError(f"--generate {self.spec!r}: {message}")


Rows = list[tuple[float, float]]


def _positive(x: float) -> bool:
    return x > 0


def _step(p: _Params) -> tuple[Rows, float | None]:
    low, high, at = p.number("from", 0.0), p.number("to", 100.0), p.number("at", 30.0)
    until = p.optional("until")
    if until is not None and until <= at:
        raise p.error(f"until ({until:g}) must be after at ({at:g})")
    rows: Rows = [(0.0, low), (at, high)] if at > 0 else [(0.0, high)]
    if until is not None:
        rows.append((until, low))
    return rows, None


def _spike(p: _Params) -> tuple[Rows, float | None]:
    base, peak, at = p.number("base", 10.0), p.number("peak", 300.0), p.number("at", 60.0)
    length = p.number("length", 10.0, rule="> 0", ok=_positive)
    rows: Rows = [(0.0, base), (at, peak)] if at > 0 else [(0.0, peak)]
    rows.append((at + length, base))
    return rows, None


def _diurnal(p: _Params) -> tuple[Rows, float | None]:
    low, high = p.number("min", 10.0), p.number("max", 200.0)
    if high < low:
        raise p.error(f"max ({high:g}) must be >= min ({low:g})")
    period = p.number("period", 3600.0, rule="> 0", ok=_positive)
    cycles = p.number("cycles", 1.0, rule="> 0", ok=_positive)
    step = p.number("step", 60.0, rule="> 0", ok=_positive)
    noise = p.number("noise", 0.0, rule="in [0, 1)", ok=lambda x: 0 <= x < 1)
    seed = p.number("seed", 1.0, rule="that is a whole number", ok=lambda x: x == int(x))
    # A seeded generator: the same spec always gives the same trace, so runs compare.
    rng = random.Random(int(seed))
    length = period * cycles
    rows: Rows = []
    for k in range(math.ceil(length / step)):
        t = k * step
        # Raised cosine: the trough at t=0 and the peak half a period later.
        value = low + (high - low) * (1 - math.cos(2 * math.pi * t / period)) / 2
        if noise:
            value *= 1 + rng.uniform(-noise, noise)
        rows.append((t, round(value, 3)))
    return rows, length


_GENERATORS: dict[str, tuple[Sequence[str], Callable[[_Params], tuple[Rows, float | None]]]] = {
    "step": (("from", "to", "at", "until"), _step),
    "spike": (("base", "peak", "at", "length"), _spike),
    "diurnal": (("min", "max", "period", "cycles", "step", "noise", "seed"), _diurnal),
}
