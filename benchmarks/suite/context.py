"""What every part of a run shares: the settings, the processes, the commands run, the log.

The ``zeroserve up`` process has a short stable window and grace period, so that revisions
scale to zero within seconds.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from benchmarks.processes import Pinning, Supervisor, log
from benchmarks.servers import Proc

from .config import Config
from .local import LocalSystem, config_autoscaler


class Skipped(Exception):
    """A part cannot run here; the message says why and what to install."""


class Goal(NamedTuple):
    """A figure next to the goal it is read against (never asserted)."""

    what: str
    goal: str
    measured: str
    within: bool | None


def at_most(value: float, goal: float) -> bool:
    """``value <= goal`` for a measured figure, free of binary rounding: a p50 of 0.4 ms
    over 0.1 ms is 0.30000000000000004, and meets a goal of +0.3 ms."""
    return round(value, 9) <= goal


def at_least(value: float, goal: float) -> bool:
    """``value >= goal``, as :func:`at_most`."""
    return round(value, 9) >= goal


class PartResult(Protocol):
    """What every part's result gives the report; most parts have no goals and no notes."""

    def headline(self) -> list[str]: ...

    def section(self, plot: list[str]) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...

    def goals(self) -> list[Goal]:
        return []

    def notes(self) -> list[str]:
        return []


@dataclass
class Context:
    cfg: Config
    pinning: Pinning
    sup: Supervisor
    tmp: Path
    commands: list[str] = field(default_factory=list)
    """Every distinct external command the run used (for the report)."""
    _system: LocalSystem | None = None

    log = staticmethod(log)

    def command(self, argv: Sequence[str] | str) -> None:
        text = argv if isinstance(argv, str) else shlex.join(argv)
        if text not in self.commands:
            self.commands.append(text)

    @property
    def autoscaler_config(self) -> dict[str, str]:
        config = {
            "stable-window": f"{self.cfg.stable_window}s",
            "scale-to-zero-grace-period": f"{self.cfg.grace_period}s",
        }
        if self.cfg.zero_start:  # initial-scale 0 is refused without it
            config["allow-zero-initial-scale"] = "true"
        return config

    @property
    def initial_scale(self) -> dict[str, str]:
        """The annotations of a Service that must start at zero (``zero_start``), else none:
        one applied with the default initial scale of 1 reaches zero only a stable window
        and a grace period after its first replica is ready."""
        return {"autoscaling.knative.dev/initial-scale": "0"} if self.cfg.zero_start else {}

    def system(self) -> LocalSystem:
        if self._system is None:
            conf = self.tmp / "config-autoscaler.yaml"
            conf.write_text(config_autoscaler(self.autoscaler_config))
            settings = ", ".join(f"{k}: {v}" for k, v in self.autoscaler_config.items())
            self.log(f"starting zeroserve up (config-autoscaler: {settings})")
            logs = self.cfg.logs or self.tmp / "zeroserve-logs"
            self._system = LocalSystem.start(self.sup, [conf], logs)
            self.command(
                "zeroserve up config-autoscaler.yaml --port 0 --control-port 0 --logs "
                f"{self._system.logs} (config-autoscaler.yaml: {settings})"
            )
            self.log(f"zeroserve up: ingress {self._system.ingress}, logs in {self._system.logs}")
        return self._system

    def stop_system(self) -> None:
        if self._system is not None:
            # SIGINT, like Ctrl-C: the activator drains, then every replica
            self.sup.stop(self._system.server, grace=90, sig=signal.SIGINT)
            self._system = None

    def stop(self, *procs: Proc) -> None:
        self.sup.stop(*[p.server for p in procs])
