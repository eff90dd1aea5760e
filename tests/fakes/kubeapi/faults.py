"""Fault injection and request recording for the fake API server.

A :class:`Fault` matches requests by method and by a case-insensitive substring of the decoded
path and query string (so ``"deployments/web/scale"`` or ``"watch=true"`` both work), and
either delays them, fails them with an API ``Status`` of the chosen code, or both, for a
number of matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .query import parse_bool


@dataclass
class Fault:
    method: str  # upper-case HTTP method, or "*" for any
    path_substring: str
    status: int | None  # None: only delay
    remaining: int
    reason: str | None = None
    message: str | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After and details.retryAfterSeconds
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        # Case-insensitive, so "watch=true" also matches the "watch=True" Python clients send.
        return (
            self.remaining > 0
            and self.method in ("*", method)
            and self.path_substring.lower() in target.lower()
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, for assertions on what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any = field(default=None)  # decoded JSON when the body was JSON, else the raw text

    @property
    def is_watch(self) -> bool:
        return parse_bool(self.query.get("watch"))


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def take(self, method: str, target: str) -> Fault | None:
        """The first live fault matching this request, consuming one of its uses."""
        for fault in self._faults:
            if fault.matches(method, target):
                fault.remaining -= 1
                fault.hits += 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return list(self._faults)
