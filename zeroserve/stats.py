"""Request statistics: time-weighted concurrency and request counts (docs/autoscaling.md).

``RequestStats`` is the accumulator both proxies keep per revision: every
request in and out moves it along the time axis, and ``report(now)`` closes an
interval. ``Stat`` is what goes over the wire (queue-proxy ``:9090/metrics``,
the activator's websocket batches), with upstream's field names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Stat:
    """One reporting interval of one pod (or one activator), upstream's ``Stat``."""

    pod_name: str
    """Who measured: the pod name, or the activator's name."""
    average_concurrent_requests: float = 0.0
    """Time-weighted average of requests in flight (queued ones included)."""
    average_proxied_concurrent_requests: float = 0.0
    """The part of the average that came through the activator."""
    request_count: float = 0.0
    """Requests that arrived during the interval, per second."""
    proxied_request_count: float = 0.0
    """The part of ``request_count`` that came through the activator."""
    process_uptime: float = 0.0
    """Seconds since the reporting process started."""
    timestamp: int = 0
    """Unix seconds when the interval closed (0: unset, the receiver stamps it)."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_mapping(cls, data: Any) -> Stat:
        """Parse a decoded JSON object; raises ``ValueError`` naming the bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"stat must be a JSON object, got {type(data).__name__}")
        pod = data.get("pod_name", "")
        if not isinstance(pod, str):
            raise ValueError("stat field pod_name must be a string")
        values: dict[str, float] = {}
        for name in _FLOAT_FIELDS:
            raw = data.get(name, 0.0)
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError(f"stat field {name} must be a number, got {raw!r}")
            values[name] = float(raw)
        ts = data.get("timestamp", 0)
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise ValueError(f"stat field timestamp must be a number, got {ts!r}")
        return cls(pod_name=pod, timestamp=int(ts), **values)

    @classmethod
    def from_json(cls, body: bytes | str) -> Stat:
        try:
            data = json.loads(body)
        except json.JSONDecodeError as e:
            raise ValueError(f"stat is not valid JSON: {e}") from None
        return cls.from_mapping(data)


_FLOAT_FIELDS: Final = (
    "average_concurrent_requests",
    "average_proxied_concurrent_requests",
    "request_count",
    "proxied_request_count",
    "process_uptime",
)


@dataclass(frozen=True, slots=True)
class Interval:
    """What ``RequestStats.report`` returns: raw interval figures."""

    average_concurrency: float
    average_proxied_concurrency: float
    request_count: int
    proxied_request_count: int
    seconds: float


class RequestStats:
    """Time-weighted concurrency over reporting intervals.

    Concurrency is integrated over time (area under the in-flight curve), so a
    request held for half an interval counts 0.5. Events carry their own time;
    an event older than the last one is applied without moving time back.
    """

    __slots__ = (
        "_area",
        "_count",
        "_last",
        "_proxied_area",
        "_proxied_count",
        "_seconds",
        "concurrency",
        "proxied_concurrency",
    )

    def __init__(self, now: float) -> None:
        self.concurrency = 0
        self.proxied_concurrency = 0
        self._last = now
        self._area = 0.0
        self._proxied_area = 0.0
        self._seconds = 0.0
        self._count = 0
        self._proxied_count = 0

    def _advance(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            self._seconds += dt
            self._area += self.concurrency * dt
            self._proxied_area += self.proxied_concurrency * dt
            self._last = now

    def request_in(self, now: float, proxied: bool) -> None:
        # _advance, inlined: this and request_out run on every request (the queue-proxy's
        # fast path, docs/queue-proxy.md)
        dt = now - self._last
        if dt > 0:
            self._seconds += dt
            self._area += self.concurrency * dt
            self._proxied_area += self.proxied_concurrency * dt
            self._last = now
        self._count += 1
        self.concurrency += 1
        if proxied:
            self._proxied_count += 1
            self.proxied_concurrency += 1

    def request_out(self, now: float, proxied: bool) -> None:
        dt = now - self._last
        if dt > 0:
            self._seconds += dt
            self._area += self.concurrency * dt
            self._proxied_area += self.proxied_concurrency * dt
            self._last = now
        self.concurrency -= 1
        if proxied:
            self.proxied_concurrency -= 1

    def report(self, now: float) -> Interval:
        """Close the interval ending at ``now`` and start the next one.

        Current in-flight values carry over; the accumulators reset."""
        self._advance(now)
        seconds = self._seconds
        if seconds > 0:
            avg = self._area / seconds
            proxied_avg = self._proxied_area / seconds
        else:
            avg = proxied_avg = 0.0
        out = Interval(avg, proxied_avg, self._count, self._proxied_count, seconds)
        self._area = self._proxied_area = self._seconds = 0.0
        self._count = self._proxied_count = 0
        return out
