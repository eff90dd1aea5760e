"""Part 5, held requests: ``held`` requests waiting in a cold activator, then one replica.

The held phase of ``benchmarks/activator.py`` (``benchmarks/_held.py``),
repeated ``held_reps`` times, each with a fresh cold activator and queue-proxy
(containerConcurrency 10) in front of the sample app: the activator's memory
per held request (VmRSS growth / requests waiting), whether every request was
answered 200 exactly once after the replica appeared, and how long that took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks import _common as c
from benchmarks import _held as hd
from benchmarks import _servers as sv

from .context import Context

CC = 10


@dataclass
class HeldResult:
    runs: list[hd.Held]
    nofile: tuple[int, int]

    def kib(self) -> c.Spread | None:
        return c.Spread.of(h.kib_per_held for h in self.runs)

    def all_s(self) -> c.Spread | None:
        return c.Spread.of(h.all_s for h in self.runs)

    @property
    def lost(self) -> int:
        return sum(h.lost for h in self.runs)

    @property
    def exactly_once(self) -> int:
        return sum(1 for h in self.runs if h.qp_count == h.n and h.ok == h.n)

    def headline(self) -> list[str]:
        if not self.runs:
            return []
        n = self.runs[0].n
        return [
            f"{len(self.runs)} x {n:,} requests held by a cold activator: "
            f"**{c.fmt_spread(self.kib(), 2)} KiB of activator memory per held request**; "
            f"{self.lost} lost, each answered exactly once in {self.exactly_once} of "
            f"{len(self.runs)}, all answered {c.fmt_spread(self.all_s(), 2)} s after the "
            "replica appeared"
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "n": [h.n for h in self.runs],
            "ok": [h.ok for h in self.runs],
            "lost": self.lost,
            "queue_proxy_counted": [h.qp_count for h in self.runs],
            "kib_per_held": [h.kib_per_held for h in self.runs],
        }


def run(ctx: Context) -> HeldResult:
    cfg = ctx.cfg
    nofile = c.raise_nofile(2 * cfg.held + 1024)
    if nofile[0] < cfg.held + 512:
        raise c.BenchError(
            f"{cfg.held:,} held requests need RLIMIT_NOFILE >= {cfg.held + 512}; "
            f"the limit is {nofile[0]} (hard {nofile[1]}). Raise it (ulimit -n) "
            "or lower --held."
        )
    backend = sv.start_backend(ctx.sup, name="held-app")
    expect = c.http_get(f"http://127.0.0.1:{backend.port}/")[1]
    settings = hd.HeldSettings(cfg.held, CC)
    runs = []
    for rep in range(1, cfg.held_reps + 1):
        held, act, qp = hd.run_held(
            settings,
            ctx.sup,
            backend.server,
            backend.port,
            expect,
            nofile,
            ctx.log,
            suffix=f"-{rep}",
        )
        runs.append(held)
        ctx.sup.stop(act.server)
        ctx.sup.stop(qp.server)
    ctx.sup.stop(backend.server)
    ctx.command(
        f"python -m benchmarks.activator --no-warm --held {cfg.held} (its held phase, "
        f"{cfg.held_reps} time(s))"
    )
    return HeldResult(runs, nofile)


def table(res: HeldResult) -> str:
    rows = []
    for i, h in enumerate(res.runs, 1):
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted(h.statuses.items())) or "none"
        rows.append(
            [
                str(i),
                f"{h.n:,}",
                f"{h.waiting:,}",
                c.fmt(h.kib_per_held, 2),
                codes,
                f"{h.lost:,}",
                c.fmt(h.qp_count, 0, thousands=True),
                "yes" if h.qp_count == h.n and h.ok == h.n else "**no**",
                c.fmt(h.open_s, 2),
                c.fmt(h.first_s, 3),
                c.fmt(h.all_s, 3),
            ]
        )
    return c.md_table(
        [
            "rep",
            "held",
            "waiting (activator)",
            "KiB per held request",
            "status codes",
            "lost",
            "queue-proxy counted",
            "each once",
            "open + send s",
            "first answer s",
            "all answered s",
        ],
        rows,
    )
