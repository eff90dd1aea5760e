"""The components' Prometheus endpoints, as the benchmarks read them: scrape, sum, difference."""

from __future__ import annotations

import re
import urllib.error
from collections.abc import Mapping

from benchmarks.processes import http_get

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int, timeout: float = 2.0, host: str = "127.0.0.1") -> str | None:
    try:
        status, body = http_get(f"http://{host}:{port}/metrics", timeout=timeout)
    except (OSError, urllib.error.URLError):
        return None
    return body.decode(errors="replace") if status == 200 else None


def total(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Sum of the samples named exactly ``name`` (Prometheus text format) whose
    labels include ``labels``; None when there is no such sample."""
    found: float | None = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in (labels or {}).items()):
            found = (found or 0.0) + float(m.group(3))
    return found


def delta(
    before: str | None, after: str | None, name: str, labels: Mapping[str, str] | None = None
) -> float | None:
    """How much a counter (or a histogram's ``_sum``/``_count``) grew between two scrapes."""
    if before is None or after is None:
        return None
    return (total(after, name, labels) or 0.0) - (total(before, name, labels) or 0.0)
