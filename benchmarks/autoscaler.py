"""Autoscaler decision throughput: one tick (windows + decider + scale step) over many revisions.

    .venv/bin/python -m benchmarks.autoscaler                 # 10,000 revisions
    .venv/bin/python -m benchmarks.autoscaler --revisions 1000 --ticks 20

Every revision gets one activator stat per simulated second (varying load),
then ticks run on a simulated clock; the CPU time of each tick is measured
with ``time.process_time``. No I/O: replica counts go to an in-memory cluster.
Prints the median and spread of CPU per tick and the decisions per second.
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


def build(n: int, seed: int) -> tuple[Multiscaler, InMemoryCluster, list[RevisionKey], list[float]]:
    rng = random.Random(seed)
    cluster = InMemoryCluster()
    keys = []
    for i in range(n):
        key = RevisionKey(f"ns-{i % 50}", f"svc-{i}-00001")
        cc = rng.choice([0, 1, 10, 100])
        cluster.put_revision(
            RevisionInfo(key, container_concurrency=cc), replicas=rng.randint(0, 5)
        )
        cluster.set_pods(
            key,
            [
                Endpoint(f"{key.name}-{j}", "127.0.0.1", 8012, 9090)
                for j in range(rng.randint(0, 5))
            ],
        )
        keys.append(key)
    clock_box = [1_000_000.0]
    ms = Multiscaler(
        config=AutoscalerConfig(),
        revisions=cluster,
        pods=cluster,
        scaler=cluster,
        clock=lambda: clock_box[0],
    )
    ms.sync(clock_box[0])
    return ms, cluster, keys, clock_box


async def run(n: int, ticks: int, seed: int) -> None:
    ms, _, keys, clock = build(n, seed)
    rng = random.Random(seed + 1)
    loads = [rng.choice([0.0, 0.5, 3.0, 40.0, 300.0]) for _ in keys]
    samples = []
    record_cpu = []
    for t in range(60 + 2 * ticks):
        clock[0] += 1
        start = time.process_time()
        for key, load in zip(keys, loads, strict=True):
            ms.record(
                key,
                Stat(
                    pod_name="activator", average_concurrent_requests=load * rng.uniform(0.8, 1.2)
                ),
            )
        record_cpu.append(time.process_time() - start)
        if t >= 60 and t % 2 == 0:
            start = time.process_time()
            ms.tick(clock[0])
            samples.append(time.process_time() - start)
            await asyncio.sleep(0)  # let replica-count tasks run (outside the measured tick)
            for _ in range(3):
                await asyncio.sleep(0)
    await ms.stop()
    med = statistics.median(samples)
    print(f"revisions: {n}, ticks measured: {len(samples)}")
    print(
        f"CPU per tick: median {med * 1000:.1f} ms  [min {min(samples) * 1000:.1f} - max {max(samples) * 1000:.1f}]"
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
