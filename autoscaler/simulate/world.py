"""The world around the autoscaler in a simulation: a fake clock, pods that take
time to start, queue-proxies answering scrapes, and the activator's stats.

Each piece stands in for something that is a process or the Kubernetes API in
production; the autoscaler code they feed is the real one (see
autoscaler/simulate/run.py for the loop that drives them second by second).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import aiohttp

from zeroserve.stats import Stat

from ..local import InMemoryCluster
from ..model import Endpoint, RevisionKey
from ..scraper import StatsScraper

# Simulated Unix time of trace second 0. Even, so the 2 s ticks fall on even
# trace seconds and a step at an odd second shows the poke apart from a tick.
EPOCH = 1_700_000_000
KEY = RevisionKey("default", "simulated-00001")


class SimClock:
    """The multiscaler's clock: Unix seconds that move only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class _Pod:
    endpoint: Endpoint
    ready_at: float


class SimulatedPods:
    """The revision's pods: the ``on_scale`` hook of the in-memory cluster."""

    def __init__(self, cluster: InMemoryCluster, clock: SimClock, start_delay: float) -> None:
        self.cluster = cluster
        self.clock = clock
        self.start_delay = start_delay
        self.pods: list[_Pod] = []
        self.events: list[tuple[float, int, int]] = []
        """Applied replica changes: (time, from, to)."""
        self._serial = 0

    def start(self, count: int, *, ready_at: float) -> None:
        """Start ``count`` pods that become ready at ``ready_at``."""
        now = self.clock()
        for _ in range(count):
            self._serial += 1
            endpoint = Endpoint(
                name=f"pod-{self._serial}",
                host="127.0.0.1",
                port=8012,
                stats_port=9090,
                started_at=now,
                ready=ready_at <= now,
            )
            self.pods.append(_Pod(endpoint, ready_at))
        self._publish()

    def on_scale(self, key: RevisionKey, replicas: int) -> None:
        have = len(self.pods)
        if replicas == have:
            return  # the same count applied again: nothing to start or stop
        self.events.append((self.clock(), have, replicas))
        if replicas > have:
            self.start(replicas - have, ready_at=self.clock() + self.start_delay)
            return
        # A ReplicaSet deletes not-ready pods before ready ones, and among ready
        # ones the most recently ready: keep the oldest ready pods.
        self.pods.sort(key=lambda p: (p.endpoint.ready, -p.ready_at), reverse=True)
        del self.pods[replicas:]
        self._publish()

    def advance(self, now: float) -> None:
        """Mark the pods whose start delay has passed ready."""
        if any(not p.endpoint.ready and p.ready_at <= now for p in self.pods):
            for p in self.pods:
                if not p.endpoint.ready and p.ready_at <= now:
                    p.endpoint = replace(p.endpoint, ready=True)
            self._publish()

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods if p.endpoint.ready)

    def _publish(self) -> None:
        self.cluster.set_pods(KEY, [p.endpoint for p in self.pods])


class SimulatedQueueProxies(StatsScraper):
    """The scraper with ``fetch`` answered from the simulation instead of HTTP.

    Sampling, extrapolation and the skip at zero ready pods are the real
    scraper's; each pod reports an even share of the last second's load, all
    of it proxied (the activator is always in the path).
    """

    def __init__(self, session: aiohttp.ClientSession, clock: SimClock) -> None:
        # Seeded: which pods are sampled must not make two runs differ.
        super().__init__(session, rng=random.Random(0))
        self.clock = clock
        self.pods = 1
        self.concurrency = 0.0
        self.rps = 0.0

    async def fetch(self, pod: Endpoint) -> Stat:
        share = 1 / max(1, self.pods)
        c, r = self.concurrency * share, self.rps * share
        return Stat(
            pod_name=pod.name,
            average_concurrent_requests=c,
            average_proxied_concurrent_requests=c,
            request_count=r,
            proxied_request_count=r,
            process_uptime=self.clock() - pod.started_at,
        )


class ActivatorModel:
    """What one zeroserve activator pushes for the revision: upstream's reports
    (knative/serving ``pkg/activator/handler/concurrency_reporter.go``) plus burst pokes.

    The first request for a revision it has no entry for is reported at once
    as concurrency 1 and one request. While the revision has no ready replica,
    more requests arriving are reported at once too (zeroserve's burst poke:
    the in-flight count beyond what was already said). What the pokes said is
    taken off the first full interval. The entry is dropped after an interval
    with no load, so the next request is reported at once again.
    """

    NAME = "activator-sim"

    def __init__(self) -> None:
        self.tracking = False
        self._reported = 0.0

    def pokes(self, concurrency: float, ready: int) -> list[Stat]:
        """The immediate stats for this second's arrivals."""
        out: list[Stat] = []
        if concurrency <= 0:
            return out
        if not self.tracking:
            self.tracking = True
            self._reported = 1.0
            out.append(Stat(pod_name=self.NAME, average_concurrent_requests=1.0, request_count=1.0))
        if ready == 0 and concurrency > self._reported:
            out.append(
                Stat(pod_name=self.NAME, average_concurrent_requests=concurrency - self._reported)
            )
            self._reported = concurrency
        return out

    def close_interval(self, concurrency: float, rps: float) -> Stat | None:
        """The per-second report of the interval just ended, if the revision is tracked."""
        if not self.tracking:
            return None
        reported, count = concurrency, rps
        if self._reported:
            reported, count = (
                max(0.0, concurrency - self._reported),
                rps - 1,
            )  # the count is not floored
            self._reported = 0.0
        if concurrency == 0:
            self.tracking = False  # idle, nothing in flight: the entry is deleted
        return Stat(pod_name=self.NAME, average_concurrent_requests=reported, request_count=count)
