"""What each observability switch costs per request through the queue-proxy
(docs/observability.md; the README's "Observability").

Queue-proxies in front of the sample app, differing only in ``OBSERVABILITY_CONFIG``:
everything at its default ("off": no request log, no tracing, Prometheus series on);
``request-metrics-protocol: none`` (the Knative-named series off); the request log on
(Knative's default template, one line per request to the queue-proxy's stdout, a
file here as under ``zeroserve up``); tracing on with ``tracing-sampling-rate`` 0 (spans
made, never exported) and with rate 1 (every request exported by OTLP/HTTP to a sink
collector, ``python -m benchmarks.observability --sink``, that answers every batch with
200). For each,
in interleaved repetitions: ``wrk -t1 -c50`` for ``--seconds`` (throughput), and the
queue-proxy's own CPU time per request over that run (``/proc/PID/schedstat``: its
threads too, so the exporter's). Prints a Markdown table; asserts nothing.

``--baseline DIR``: a fourth queue-proxy run from another checkout (one without tracing,
e.g. ``git archive <commit> | tar -x -C DIR``), to see what the switch costs while off.

    .venv/bin/python -m benchmarks.observability                     # 3 x 5 s per mode
    .venv/bin/python -m benchmarks.observability --reps 5 --seconds 10 --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import procfs
from benchmarks.loadgen import missing_tools, run_load
from benchmarks.processes import Pinning, Supervisor, free_port, json_line, log
from benchmarks.servers import REPO, SAMPLE_APP, Proc, start_app, start_queue_proxy, wait_tcp
from zeroserve.observability import ObservabilityConfig

MODES = (
    "off",
    "request metrics none",
    "request log on",
    "tracing on, sampling 0",
    "tracing on, sampling 1",
)


def config(mode: str, sink: str) -> ObservabilityConfig:
    if mode == "off":
        return ObservabilityConfig()
    if mode == "request metrics none":
        return ObservabilityConfig(request_metrics_protocol="none")
    if mode == "request log on":
        return ObservabilityConfig(enable_request_log=True)
    rate = 1.0 if mode.endswith("1") else 0.0
    return ObservabilityConfig(
        tracing_protocol="http/protobuf", tracing_endpoint=sink, tracing_sampling_rate=rate
    )


def sink(port: int) -> None:
    """A collector that takes every OTLP/HTTP batch and keeps nothing."""
    from aiohttp import web

    async def traces(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def baseline_queue_proxy(sup: Supervisor, src: Path, like: Proc) -> Proc:
    """``python -m queueproxy`` from ``src`` with the environment of ``like`` (off)."""
    env = dict(procfs_environ(like.server.pid))
    server = sup.start("qp-baseline", [sys.executable, "-m", "queueproxy"], env, cwd=src)
    info = json_line(server, "queue_proxy", "listening")
    return Proc(server, int(str(info["serving_port"])), f"queue-proxy from {src}")


def procfs_environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e]
    return {k.decode(): v.decode() for k, v in pairs}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.observability", description=__doc__)
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    p.add_argument("--seconds", type=int, default=5, help="wrk run per mode (default 5)")
    p.add_argument("--no-pin", action="store_true", help="do not pin servers and load")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="also a queue-proxy from DIR")
    p.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.sink:
        sink(a.sink)
        return 0
    if (missing := missing_tools(["wrk"])) is not None:
        print(f"benchmarks.observability: {missing}", file=sys.stderr)
        return 1
    pin = Pinning.choose(not a.no_pin, 1, 0)
    modes = (*MODES, "baseline") if a.baseline else MODES
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    rps: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp, Supervisor(Path(tmp), pin) as sup:
        app = start_app(sup, "app", SAMPLE_APP)
        sink_port = free_port()
        sink_server = sup.start(
            "sink",
            [sys.executable, "-m", "benchmarks.observability", "--sink", str(sink_port)],
            cwd=REPO,
        )
        wait_tcp(sink_port, sink_server)
        url = f"http://127.0.0.1:{sink_port}/v1/traces"
        qps = {
            m: start_queue_proxy(
                sup, f"qp-{i}", app.port, 0, env={"OBSERVABILITY_CONFIG": config(m, url).to_env()}
            )
            for i, m in enumerate(MODES)
        }
        if a.baseline:
            qps["baseline"] = baseline_queue_proxy(sup, a.baseline, qps["off"])
        for rep in range(a.reps):
            for mode, qp in qps.items():
                before = procfs.cpu_ns(qp.server.pid) or 0
                run = run_load(
                    [
                        "wrk",
                        "-t1",
                        "-c50",
                        f"-d{a.seconds}s",
                        "--latency",
                        f"http://127.0.0.1:{qp.port}/",
                    ],
                    pin.prefix(pin.load_cpu),
                    a.seconds + 30,
                )
                after = procfs.cpu_ns(qp.server.pid) or 0
                if run.result is None or run.result.requests == 0:
                    print(f"benchmarks.observability: {mode}: {run.error}", file=sys.stderr)
                    return 1
                # spans still batched are exported within the schedule delay: let them go
                time.sleep(0.5)
                cpu[mode].append((after - before) / 1e3 / run.result.requests)
                rps[mode].append(run.result.rps)
                log(
                    f"rep {rep + 1} {mode}: {run.result.rps:,.0f} req/s, {cpu[mode][-1]:.1f} µs/req"
                )
    base = statistics.median(cpu["off"])
    print(f"queue-proxy, CONTAINER_CONCURRENCY=0, sample app; {pin.note}; median of {a.reps}\n")
    print("| switch | req/s (wrk -t1 -c50) | queue-proxy CPU µs/request | vs off |")
    print("|---|---|---|---|")
    for mode in modes:
        c = statistics.median(cpu[mode])
        print(f"| {mode} | {statistics.median(rps[mode]):,.0f} | {c:.1f} | {c - base:+.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
