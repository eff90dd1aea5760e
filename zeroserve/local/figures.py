"""The autoscaler's figures per revision per decision, and the bounded history the
control API keeps of them for the live page (docs/local-mode.md, "The live page").

Locally the autoscaler posts, after each 2 s tick, one ``Figures`` per revision to
``POST /v1/figures``: what its decider observed (stable and panic concurrency and
requests per second, revision totals, as knative/serving
``pkg/autoscaler/metrics/collector.go`` keeps both metrics whatever the revision
scales on), the desired scale the scale step arrived at, the ready pods and panic
mode. ``FigureHistory`` keeps the last ``window`` seconds of them per revision and
numbers every point, so a reader asks for the points after the last number it saw.

Pure: no I/O, time comes in as an argument.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zeroserve.topology import RevisionKey

FIGURES_PATH = "/v1/figures"

HISTORY_SECONDS = 300.0
"""How far back the control API keeps figures (the page plots this much)."""
MAX_POINTS = 1000
"""Points kept per revision at most, whatever their times (ticks come every 2 s:
150 in five minutes)."""
MAX_BATCH = 10_000
"""Figures one ``POST /v1/figures`` may carry."""


@dataclass(frozen=True, slots=True)
class Figures:
    """One decision of the autoscaler about one revision."""

    time: float
    """Unix seconds of the tick."""
    stable_concurrency: float
    """Requests in flight, averaged over the stable window (revision total)."""
    panic_concurrency: float
    """The same over the panic window."""
    stable_rps: float
    """Requests per second, averaged over the stable window (revision total)."""
    panic_rps: float
    """The same over the panic window."""
    desired: int
    """Replicas the autoscaler wants after bounds and the scale-to-zero gate; -1 while
    not known yet."""
    ready: int
    """Ready replicas the autoscaler counted."""
    panic: bool
    """The decider is in panic mode."""
    metric: str = "concurrency"
    """What the revision scales on: ``concurrency`` or ``rps``."""
    target: float = 0.0
    """The target of that metric per replica."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "stable_concurrency": self.stable_concurrency,
            "panic_concurrency": self.panic_concurrency,
            "stable_rps": self.stable_rps,
            "panic_rps": self.panic_rps,
            "desired": self.desired,
            "ready": self.ready,
            "panic": self.panic,
            "metric": self.metric,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figures:
        """Decode; ``ValueError`` names the field that is missing or wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"figures must be an object, not {type(data).__name__}")

        def number(name: str) -> float:
            v = data.get(name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
            return float(v)

        def count(name: str) -> int:
            v = data.get(name)
            if isinstance(v, bool) or not isinstance(v, int) or v < -1:
                raise ValueError(f"{name}: expected an integer >= -1, got {v!r}")
            return v

        panic = data.get("panic")
        if not isinstance(panic, bool):
            raise ValueError(f"panic: expected true or false, got {panic!r}")
        metric = data.get("metric", "concurrency")
        if metric not in ("concurrency", "rps"):
            raise ValueError(f"metric: expected 'concurrency' or 'rps', got {metric!r}")
        return cls(
            time=number("time"),
            stable_concurrency=number("stable_concurrency"),
            panic_concurrency=number("panic_concurrency"),
            stable_rps=number("stable_rps"),
            panic_rps=number("panic_rps"),
            desired=count("desired"),
            ready=count("ready"),
            panic=panic,
            metric=metric,
            target=number("target") if "target" in data else 0.0,
        )


def encode_batch(items: Iterable[tuple[RevisionKey, Figures]]) -> dict[str, Any]:
    """The body of ``POST /v1/figures``."""
    return {
        "figures": [{"namespace": k.namespace, "revision": k.name, **f.to_json()} for k, f in items]
    }


def decode_batch(body: Any) -> list[tuple[RevisionKey, Figures]]:
    """The figures of a ``POST /v1/figures`` body; ``ValueError`` says which entry and
    field is wrong."""
    items = body.get("figures") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise ValueError('expected {"figures": [...]}')
    if len(items) > MAX_BATCH:
        raise ValueError(f"figures: {len(items)} entries, at most {MAX_BATCH}")
    out = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise ValueError(f"expected an object, not {type(item).__name__}")
            ns, rev = item.get("namespace"), item.get("revision")
            if not isinstance(ns, str) or not ns or not isinstance(rev, str) or not rev:
                raise ValueError("namespace and revision: expected non-empty strings")
            out.append((RevisionKey(ns, rev), Figures.from_json(item)))
        except ValueError as e:
            raise ValueError(f"figures[{i}]: {e}") from None
    return out


class FigureHistory:
    """The last ``window`` seconds of figures per revision, each point numbered.

    Numbers grow by one per point across all revisions, so ``since(n)`` returns exactly
    the points added after the reader's last number ``n``. Points older than ``window``
    before the newest time seen, and beyond ``max_points`` per revision, are dropped.
    """

    def __init__(self, window: float = HISTORY_SECONDS, max_points: int = MAX_POINTS) -> None:
        if not window > 0:
            raise ValueError(f"window={window!r}: must be > 0")
        if max_points < 1:
            raise ValueError(f"max_points={max_points!r}: must be >= 1")
        self.window = window
        self.max_points = max_points
        self.seq = 0
        """The number of the last point added (0: none yet)."""
        self._points: dict[RevisionKey, deque[tuple[int, Figures]]] = {}

    def add(self, key: RevisionKey, figures: Figures) -> int:
        """Keep ``figures`` for ``key``; returns its number."""
        points = self._points.get(key)
        if points is None:
            points = self._points[key] = deque(maxlen=self.max_points)
        self.seq += 1
        points.append((self.seq, figures))
        self._trim(points, figures.time)
        return self.seq

    def _trim(self, points: deque[tuple[int, Figures]], now: float) -> None:
        oldest = now - self.window
        while points and points[0][1].time < oldest:
            points.popleft()

    def retain(self, keys: Iterable[RevisionKey]) -> None:
        """Forget the revisions not in ``keys`` (deleted ones)."""
        keep = set(keys)
        for key in [k for k in self._points if k not in keep]:
            del self._points[key]

    def since(self, seq: int, now: float) -> dict[RevisionKey, list[tuple[int, Figures]]]:
        """The points numbered after ``seq`` and not older than ``window`` before ``now``,
        per revision (revisions with none left out), oldest first."""
        out = {}
        for key, points in list(self._points.items()):
            self._trim(points, now)
            if not points:
                del self._points[key]
                continue
            if points[-1][0] <= seq:
                continue
            out[key] = [p for p in points if p[0] > seq]
        return out
