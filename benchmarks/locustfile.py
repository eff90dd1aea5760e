"""Locust scenario of the suite's autoscaling part: a step, a spike, a ramp down to idle.

    BENCH_HOST_HEADER=autoscale-go.default.localhost \\
        .venv/bin/locust -f benchmarks/locustfile.py --headless --host http://127.0.0.1:8080

Each user sends ``GET $BENCH_PATH`` (default ``/?sleep=100``: the autoscale
sample app answers after 100 ms) with ``Host: $BENCH_HOST_HEADER`` and, with
no wait time, the next one when the answer arrives, so the users are the
concurrency the service sees. The shape is ``STAGES`` over ``BENCH_SECONDS``
(default 120) with ``BENCH_PEAK_USERS`` (default 70) at the spike. With
``BENCH_OUT`` set, the figures of every second (requests, failures, p50/p95/max
latency, the mean requests in flight) and the users are written there as JSON
when the test stops: the suite plots them and feeds the concurrency to the
autoscaler simulator. Point ``BENCH_HOST_HEADER`` at your own service to
load-test it through zeroserve.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from typing import Any

from locust import FastHttpUser, LoadTestShape, constant, events, task

HOST_HEADER = os.environ.get("BENCH_HOST_HEADER", "")
PATH = os.environ.get("BENCH_PATH", "/?sleep=100")
SECONDS = float(os.environ.get("BENCH_SECONDS", "120"))
PEAK = int(os.environ.get("BENCH_PEAK_USERS", "70"))
OUT = os.environ.get("BENCH_OUT", "")
# (end of the stage as a share of the time, users at its start and at its end as shares of
# the peak): a trickle, a step, the spike, back to the step, a linear ramp down, idle.
STAGES = (
    (0.08, 0.07, 0.07),
    (0.375, 0.43, 0.43),
    (0.50, 1.0, 1.0),
    (0.625, 0.43, 0.43),
    (0.83, 0.43, 0.0),
    (1.0, 0.0, 0.0),
)


def users_at(share: float, peak: int = PEAK) -> int | None:
    """Users at ``share`` (0-1) of the shape's time; None once it is over."""
    begin = 0.0
    for end, first, last in STAGES:
        if share < end:
            frac = (share - begin) / (end - begin)
            return round(peak * (first + (last - first) * frac))
        begin = end
    return None


class _Seconds:
    """Per-second figures of the requests, by the unix second they ended in."""

    def __init__(self) -> None:
        self.latencies: dict[int, list[float]] = defaultdict(list)
        self.failures: dict[int, int] = defaultdict(int)
        self.busy: dict[int, float] = defaultdict(float)
        self.errors: dict[str, int] = defaultdict(int)
        self.users: list[tuple[float, int, int]] = []
        self.start: float | None = None
        self.written = False

    def request(self, start: float, seconds: float, exception: BaseException | None) -> None:
        end = start + seconds
        self.latencies[int(end)].append(seconds * 1000)
        if exception is not None:
            self.failures[int(end)] += 1
            self.errors[type(exception).__name__ + ": " + str(exception)[:80]] += 1
        # in flight during [start, end]: add its share of every second it covers
        s = int(start)
        while s < end:
            self.busy[s] += min(end, s + 1) - max(start, s)
            s += 1

    def to_json(self) -> dict[str, Any]:
        rows = []
        for sec in sorted(set(self.latencies) | set(self.busy)):
            lat = sorted(self.latencies.get(sec, []))
            rows.append(
                {
                    "t": sec,
                    "requests": len(lat),
                    "failures": self.failures.get(sec, 0),
                    "p50_ms": _pct(lat, 0.50),
                    "p95_ms": _pct(lat, 0.95),
                    "max_ms": lat[-1] if lat else None,
                    "concurrency": round(self.busy.get(sec, 0.0), 3),
                }
            )
        return {
            "start": self.start,
            "seconds": rows,
            "errors": dict(self.errors),
            "users": [list(u) for u in self.users],
            "shape_seconds": SECONDS,
            "peak_users": PEAK,
            "path": PATH,
            "host_header": HOST_HEADER,
        }

    def write(self) -> None:
        if OUT and not self.written:
            with open(OUT, "w") as f:
                json.dump(self.to_json(), f)
            self.written = True


def _pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, math.ceil(q * len(sorted_ms)) - 1)]


SECONDS_SEEN = _Seconds()


@events.request.add_listener
def _on_request(
    response_time: float,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **kwargs: Any,
) -> None:
    seconds = response_time / 1000
    start = start_time if start_time is not None else time.time() - seconds
    SECONDS_SEEN.request(start, seconds, exception)


@events.test_stop.add_listener
@events.quitting.add_listener
def _on_stop(**kwargs: Any) -> None:
    SECONDS_SEEN.write()


class ServiceUser(FastHttpUser):
    """Sends the next request as soon as the last one is answered."""

    wait_time = constant(0)

    @task
    def call(self) -> None:
        headers = {"Host": HOST_HEADER} if HOST_HEADER else None
        self.client.get(PATH, headers=headers, name=PATH)


class StepSpikeRamp(LoadTestShape):
    """The step, the spike and the ramp down to idle of the table above."""

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if SECONDS_SEEN.start is None:
            SECONDS_SEEN.start = time.time() - run_time
        users = users_at(run_time / SECONDS)
        if users is None:
            return None
        actual = self.runner.user_count if self.runner is not None else 0
        SECONDS_SEEN.users.append((time.time(), users, actual))
        # start or stop every user of a stage within a second
        return users, max(1.0, float(PEAK))
