"""Autoscaler decision throughput: one tick (windows + decider + scale step) over many revisions.

    .venv/bin/python -m benchmarks.autoscaler                 # 10,000 revisions
    .venv/bin/python -m benchmarks.autoscaler --revisions 1000 --ticks 20

Every revision gets one activator stat per simulated second (varying load),
then ticks run on a simulated clock; the CPU time of each tick is measured
with ``time.process_time``. No I/O: replica counts go to an in-memory cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from autoscaler.local import InMemoryCluster
from autoscaler.model import Endpoint, RevisionInfo, RevisionKey
from autoscaler.multiscaler import Multiscaler
from zeroserve.autoscaling.config import AutoscalerConfig
from zeroserve.stats import Stat


async def run(n: int, ticks: int, seed: int) -> None:
    rng = random.Random(seed)
    cluster = InMemoryCluster()
    keys = [RevisionKey(f"ns-{i % 50}", f"svc-{i}-00001") for i in range(n)]
    for key in keys:
        info = RevisionInfo(key, container_concurrency=rng.choice([0, 1, 10, 100]))
        cluster.put_revision(info, replicas=rng.randint(0, 5))
        pods = [
            Endpoint(f"{key.name}-{j}", "127.0.0.1", 8012, 9090) for j in range(rng.randint(0, 5))
        ]
        cluster.set_pods(key, pods)
    now = 1_000_000.0
    ms = Multiscaler(
        config=AutoscalerConfig(),
        revisions=cluster,
        pods=cluster,
        scaler=cluster,
        clock=lambda: now,
    )
    ms.sync(now)
    rng = random.Random(seed + 1)
    loads = [rng.choice([0.0, 0.5, 3.0, 40.0, 300.0]) for _ in keys]
    samples, record_cpu = [], []
    for t in range(60 + 2 * ticks):
        now += 1
        start = time.process_time()
        for key, load in zip(keys, loads, strict=True):
            concurrency = load * rng.uniform(0.8, 1.2)
            ms.record(key, Stat(pod_name="activator", average_concurrent_requests=concurrency))
        record_cpu.append(time.process_time() - start)
        if t >= 60 and t % 2 == 0:
            start = time.process_time()
            ms.tick(now)
            samples.append(time.process_time() - start)
            for _ in range(4):  # let replica-count tasks run (outside the measured tick)
                await asyncio.sleep(0)
    await ms.stop()
    med = statistics.median(samples)
    print(f"revisions: {n}, ticks measured: {len(samples)}")
    print(
        f"CPU per tick: median {med * 1000:.1f} ms  "
        f"[min {min(samples) * 1000:.1f} - max {max(samples) * 1000:.1f}]"
    )
    print(f"decisions per second of CPU: {n / med:,.0f}")
    print(
        f"recording one stat per revision (one second of activator stats): "
        f"median {statistics.median(record_cpu) * 1000:.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.autoscaler", description=__doc__.split("\n")[0]
    )
    p.add_argument("--revisions", type=int, default=10_000)
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    asyncio.run(run(args.revisions, args.ticks, args.seed))


if __name__ == "__main__":
    main()
