"""Where each microsecond of a hop goes: ``perf`` over the hop under load.

``python -m benchmarks.hopprofile`` builds the Go backend (benchmarks/gobackend), starts
each target in front of it (the queue-proxy, the activator in front of the queue-proxy,
the bare pass-through of benchmarks/h1floor.py and its work floor, nginx), all on one CPU, and drives each
with ``wrk -c50`` from the other CPU while ``perf record`` samples the target's
processes. It prints each target's CPU per request, split into user and system time
(``/proc/PID/stat``), and then by where ``perf`` saw it: the kernel (the system calls
and the loopback TCP stack they run), the Python interpreter (``libpython``: the
bytecode of the hop's own code), uvloop, httptools, the C library and the rest; each
share is turned into µs per request with the measured CPU. The README's Performance
section quotes it. Needs ``perf`` (Debian ``linux-perf``), ``wrk``, ``nginx`` and
``go``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import servers
from benchmarks.loadgen import run_load, which
from benchmarks.processes import Pinning, Supervisor
from benchmarks.procfs import CLK_TCK, descendants, user_system_ticks

TARGETS = ("queue-proxy", "activator", "floor", "workfloor", "nginx")
GROUPS = (
    ("kernel", re.compile(r"\[kernel")),
    ("Python interpreter", re.compile(r"libpython|^python3")),
    ("uvloop", re.compile(r"^loop\.cpython")),
    ("httptools", re.compile(r"^(parser|url_parser)\.cpython")),
    ("C library", re.compile(r"^libc[.-]")),
    ("nginx", re.compile(r"^nginx$")),
)


def _times(pids: list[int]) -> tuple[int, int]:
    """User and system clock ticks of ``pids`` so far."""
    ticks = [user_system_ticks(pid) for pid in pids]
    return sum(u for u, _ in ticks), sum(t for _, t in ticks)


def shares(report: str) -> dict[str, float]:
    """``perf report --sort dso`` output: the share of samples of each group (percent)."""
    got: dict[str, float] = {}
    for line in report.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S.*?)\s*$", line)
        if not m:
            continue
        pct, dso = float(m.group(1)), m.group(2)
        group = next((name for name, rx in GROUPS if rx.search(dso)), "other")
        got[group] = got.get(group, 0.0) + pct
    return got


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hopprofile", description=__doc__)
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    p.add_argument("--seconds", type=int, default=4, help="of each measured run")
    args = p.parse_args()
    targets = [t for t in TARGETS if t in args.targets.split(",")]
    missing = [t for t in ("perf", "wrk", "nginx", "go") if which(t) is None]
    if missing:
        print(f"needs {', '.join(missing)} (apt-get install -y linux-perf wrk nginx golang-go)")
        return 2
    pinning = Pinning.choose(True, 1, 0)
    pinning.pin_self()
    with tempfile.TemporaryDirectory() as tmp, Supervisor(Path(tmp), pinning) as sup:
        work = Path(tmp)
        go = str(servers.build_go_backend(work))
        app = servers.start_app(sup, "app", "", go)
        procs = {}
        if {"queue-proxy", "activator"} & set(targets):
            qp = servers.start_queue_proxy(sup, "queue-proxy", app.port, 0)
            procs["queue-proxy"] = (qp.port, [qp.server.pid])
            if "activator" in targets:
                act = servers.start_activator(sup, "activator", qp.port, 0, cold=False)
                procs["activator"] = (act.port, [act.server.pid, qp.server.pid])
        if "floor" in targets:
            fl = servers.start_floor(sup, app.port, "floor")
            procs["floor"] = (fl.port, [fl.server.pid])
        if "workfloor" in targets:
            wf = servers.start_floor(sup, app.port, "workfloor", work=True)
            procs["workfloor"] = (wf.port, [wf.server.pid])
        if "nginx" in targets:
            ng = servers.start_nginx(sup, shutil.which("nginx") or "nginx", work, app.port, "nginx")
            # nginx's worker runs under its master
            procs["nginx"] = (ng.port, [ng.server.pid, *descendants(ng.server.pid)])
        load = pinning.prefix(pinning.load_cpu)
        host = ["-H", f"Host: {servers.ROUTE_HOST}"]
        rows = []
        for name in targets:
            port, pids = procs[name]
            url = f"http://127.0.0.1:{port}/"
            run_load(["wrk", "-t1", "-c50", "-d1s", *host, url], load, 30)  # warm-up
            data = work / f"{name}.perf"
            record = ["perf", "record", "-q", "-F", "2999", "-o", str(data)]
            record += ["-p", ",".join(map(str, pids)), "--", "sleep", str(args.seconds + 1)]
            perf = subprocess.Popen(
                record,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            u0, s0 = _times(pids)
            run = run_load(["wrk", "-t1", "-c50", f"-d{args.seconds}s", *host, url], load, 60)
            u1, s1 = _times(pids)
            _, err = perf.communicate(timeout=60)
            if run.result is None or not run.result.requests:
                print(f"{name}: wrk failed: {run.error}", file=sys.stderr)
                return 1
            if perf.returncode != 0:
                print(f"perf record failed: {err.strip()[-500:]}", file=sys.stderr)
                return 2
            argv = ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso"]
            report = subprocess.run(
                [*argv, "-g", "none", "--stdio"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            per = 1e6 / CLK_TCK / run.result.requests
            rows.append((name, run.result.rps, (u1 - u0) * per, (s1 - s0) * per, shares(report)))
    groups = [g for g, _ in GROUPS] + ["other"]
    print(f"wrk -t1 -c50 -d{args.seconds}s through each target; the Go backend; µs per request")
    print("| target | req/s | CPU | user | system | " + " | ".join(groups) + " |")
    print("|---|--:|--:|--:|--:|" + "--:|" * len(groups))
    for name, rps, user, system, got in rows:
        total = user + system
        cells = [f"{total * got.get(g, 0.0) / 100:.1f}" for g in groups]
        print(
            f"| {name} | {rps:,.0f} | {total:.1f} | {user:.1f} | {system:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
