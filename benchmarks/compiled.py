"""What compiling the hot path with mypyc pays: the same measurements with the modules
``make compiled`` built (zeroserve/compiled.py) and with their sources, alternating.

``python -m benchmarks.compiled`` (``make bench-compiled``) builds them if the build is
missing or stale, then measures each side in turn, in a subprocess: with
``ZEROSERVE_PURE_PYTHON=1`` (the sources) and without (the build):

- the Python of one exchange in memory (benchmarks/hoppython.py's ``measure``): the
  work floor, the queue-proxy, the queue-proxy behind the activator, the activator;
- with ``--hopprofile``, the real processes under ``wrk`` (benchmarks/hopprofile.py):
  the queue-proxy, the activator in front of it, the work floor and nginx, CPU per
  request. The hops decide for themselves, as they start (``python -m queueproxy``,
  ``python -m benchmarks.activator_runner``); the work floor and nginx are the same on
  both sides.

Each in-memory run reports which of the modules it loaded compiled, and the comparison
stops if a side is not what its name says.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from zeroserve import compiled

ROWS = ("work floor", "queue-proxy", "queue-proxy behind the activator", "activator")
TARGETS = ("queue-proxy", "activator", "workfloor", "nginx")
SIDES = ("interpreted", "compiled")


def _env(side: str) -> dict[str, str]:
    return {**os.environ, compiled.PURE_ENV: "1" if side == "interpreted" else "0"}


def in_memory(side: str, exchanges: int, reps: int) -> tuple[dict[str, float], dict[str, bool]]:
    """One run of the in-memory rows: µs per exchange by row, and whether each compiled
    module was loaded from its extension."""
    argv = [sys.executable, "-m", "benchmarks.compiled", "--child", str(exchanges), str(reps)]
    run = subprocess.run(
        argv, env=_env(side), capture_output=True, text=True, timeout=600, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"the {side} run failed:\n{run.stderr[-3000:]}")
    got = json.loads(run.stdout.strip().splitlines()[-1])
    return got["rows"], got["compiled"]


def _child(exchanges: int, reps: int) -> None:
    """The in-memory rows, measured in this process (``--child``)."""
    compiled.install()  # before anything imports the hot modules
    import importlib

    import uvloop

    from benchmarks import hoppython as h

    async def rows() -> dict[str, float]:
        # (in a loop: the hops' objects look up the running loop)
        return {name: h.measure(h.FAST_ROWS[name], exchanges, reps) for name in ROWS}

    measured = uvloop.run(rows())
    loaded = {
        m: str(importlib.import_module(compiled.module_name(m)).__file__).endswith(".so")
        for m in compiled.MODULES
    }
    print(json.dumps({"rows": measured, "compiled": loaded}))


def check(side: str, loaded: dict[str, bool]) -> None:
    """Refuse a run that loaded a module the other side's way."""
    wrong = [m for m, c in loaded.items() if c != (side == "compiled")]
    if wrong:
        raise RuntimeError(f"the {side} run loaded {', '.join(wrong)} the other way")


def hopprofile_cpu(report: str) -> dict[str, float]:
    """benchmarks/hopprofile.py's table: CPU µs per request by target."""
    got = {}
    for line in report.splitlines():
        m = re.match(r"\|\s*([a-z-]+)\s*\|\s*[\d,]+\s*\|\s*([\d.]+)\s*\|", line)
        if m:
            got[m.group(1)] = float(m.group(2))
    return got


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiled", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="alternating runs of each side")
    p.add_argument("--exchanges", type=int, default=50_000, help="per repetition, in memory")
    p.add_argument("--reps", type=int, default=5, help="repetitions per run, in memory")
    p.add_argument("--hopprofile", action="store_true", help="also the real processes")
    p.add_argument("--seconds", type=int, default=5, help="of each hopprofile target")
    p.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    extensions, why = compiled.usable()
    if not extensions:
        print(f"building: {why}")
        t0 = time.monotonic()
        try:
            compiled.build()
        except compiled.BuildError as e:
            print(f"cannot compare: {e}", file=sys.stderr)
            return 2
        print(f"built in {time.monotonic() - t0:.0f} s")
    memory: dict[str, dict[str, list[float]]] = {s: {r: [] for r in ROWS} for s in SIDES}
    real: dict[str, dict[str, list[float]]] = {s: {t: [] for t in TARGETS} for s in SIDES}
    for _ in range(args.runs):
        for side in SIDES:
            rows, loaded = in_memory(side, args.exchanges, args.reps)
            check(side, loaded)
            for r in ROWS:
                memory[side][r].append(rows[r])
            if args.hopprofile:
                argv = [sys.executable, "-m", "benchmarks.hopprofile", "--seconds"]
                argv += [str(args.seconds), "--targets", ",".join(TARGETS)]
                run = subprocess.run(
                    argv, env=_env(side), capture_output=True, text=True, timeout=600, check=False
                )
                if run.returncode != 0:
                    print(f"hopprofile failed:\n{run.stderr[-3000:]}", file=sys.stderr)
                    return 1
                for t, cpu in hopprofile_cpu(run.stdout).items():
                    real[side][t].append(cpu)
    print(f"In memory, µs of Python per exchange (median of {args.runs} alternating runs):")
    print("| row | interpreted | compiled | difference |\n| --- | --: | --: | --: |")
    for r in ROWS:
        i, c = (statistics.median(memory[s][r]) for s in SIDES)
        print(f"| {r} | {i:.2f} | {c:.2f} | {c - i:+.2f} |")
    if args.hopprofile:
        print(
            f"\nReal processes (hopprofile: wrk -c50, Go backend), CPU µs per request and x "
            f"nginx of the same run (median of {args.runs} alternating runs):"
        )
        print("| target | interpreted | compiled |\n| --- | --: | --: |")
        for t in TARGETS:
            cells = []
            for s in SIDES:
                per_run = real[s][t]
                ratios = [c / n for c, n in zip(per_run, real[s]["nginx"], strict=True)]
                cells.append(f"{statistics.median(per_run):.1f} ({statistics.median(ratios):.2f}x)")
            print(f"| {t} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
