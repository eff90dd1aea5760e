"""The load generators: ``wrk`` and ``hey`` found, run (pinned to the load CPU) and parsed.

A run that exits non-zero or prints nothing parseable is an error message, never an
exception, so that one failed run is reported and the others go on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

APT_HINT = "apt-get install -y wrk hey nginx"
# Servers such as nginx live in sbin, which a non-root PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# A wrk script that turns each connection into a paced client: after every
# response it waits delay() ms, so rate ~= connections / (delay + latency).
WRK_PACED_LUA = """\
local delay_ms = tonumber(os.getenv("BENCH_WRK_DELAY_MS") or "0") or 0
function delay()
  return delay_ms
end
"""


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))


def missing_tools(names: Sequence[str]) -> str | None:
    """None when every tool is installed, else a message naming the missing ones."""
    if missing := [n for n in names if which(n) is None]:
        return f"required tool(s) not found: {', '.join(missing)}. Install them with: {APT_HINT}"
    return None


@dataclass(frozen=True)
class LoadResult:
    rps: float
    requests: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    errors: int
    non2xx: int
    codes: dict[int, int] = field(default_factory=dict)
    """Responses by status code (hey only)."""


@dataclass(frozen=True)
class LoadRun:
    rc: int
    output: str
    wall: float
    result: LoadResult | None
    error: str | None


def run_load(
    argv: Sequence[str],
    load_prefix: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> LoadRun:
    """Run a load generator to completion, bounded by ``timeout``; parse the output of
    wrk and hey (not of other tools)."""
    full = [*load_prefix, which(argv[0]) or argv[0], *argv[1:]]
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        rc, output = r.returncode, r.stdout + (f"\n--- stderr ---\n{r.stderr}" * bool(r.stderr))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        rc, output = 124, f"{out or ''}\n(timed out after {timeout:.0f}s)"
    wall = time.monotonic() - t0
    parser = {"wrk": parse_wrk, "hey": parse_hey}.get(os.path.basename(argv[0]))
    result, error = None, None
    if rc != 0:
        error = f"{argv[0]} exit status {rc}: {output.strip()[-300:]}"
    elif parser is not None:
        try:
            result = parser(output)
        except ValueError as e:
            error = f"{e}: {output.strip()[-300:]}"
    return LoadRun(rc, output, wall, result, error)


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unrecognised wrk latency {text!r}")
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(text: str) -> LoadResult:
    """Parse ``wrk --latency`` output (µs resolution latencies)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if not rps or not total:
        raise ValueError("no 'Requests/sec' / 'N requests in' line in wrk output")
    pct = {p: _wrk_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.M)}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return LoadResult(
        float(rps.group(1)),
        int(total.group(1)),
        pct.get("50"),
        pct.get("90"),
        pct.get("99"),
        sum(int(x) for x in sock.groups()) if sock else 0,
        int(non2xx.group(1)) if non2xx else 0,
    )


def parse_hey(text: str) -> LoadResult:
    """Parse hey's default summary (latencies in 0.1 ms steps)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise ValueError("no 'Requests/sec' line in hey output")
    pct = {p: float(s) * 1e3 for p, s in re.findall(r"^\s+(\d+)%+ in ([\d.]+) secs", text, re.M)}
    codes = {
        int(c): int(n) for c, n in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", text, re.M)
    }
    tail = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    return LoadResult(
        float(rps.group(1)),
        sum(codes.values()),
        pct.get("50"),
        pct.get("90"),
        pct.get("99"),
        sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", tail, re.M)),
        sum(n for c, n in codes.items() if not 200 <= c < 300),
        codes,
    )


def hey_seconds(label: str, text: str) -> float | None:
    """A ``Total:`` / ``Slowest:`` figure of hey's summary, in seconds."""
    m = re.search(rf"{label}:\s+([\d.]+) secs", text)
    return float(m.group(1)) if m else None
