"""What every part of the suite shares: settings, pinning, processes, output names, the log.

The ``zeroserve up`` process is started on first use (``system()``) with a
``config-autoscaler`` of a short stable window and grace period, so that
revisions scale to zero within seconds; parts that need it share it.
"""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _common as c

from .config import Config
from .local import LocalSystem, config_autoscaler


@dataclass
class Context:
    cfg: Config
    pinning: c.Pinning
    sup: c.Supervisor
    tmp: Path
    stamp: str
    """``YYYYmmdd-HHMMSS`` of the run: the report is ``bench-<stamp>.md``."""
    commands: list[str] = field(default_factory=list)
    """Every distinct external command the run used (for the report)."""
    _system: LocalSystem | None = None

    @staticmethod
    def log(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    def command(self, argv: Sequence[str] | str) -> None:
        text = argv if isinstance(argv, str) else shlex.join(argv)
        if text not in self.commands:
            self.commands.append(text)

    def plot_path(self, name: str) -> Path | None:
        """Where plot ``name`` goes (next to the report), or None when nothing is written."""
        if not self.cfg.write:
            return None
        self.cfg.results_dir.mkdir(parents=True, exist_ok=True)
        return self.cfg.results_dir / f"bench-{self.stamp}-{name}.png"

    @property
    def autoscaler_config(self) -> dict[str, str]:
        return {
            "stable-window": f"{self.cfg.stable_window}s",
            "scale-to-zero-grace-period": f"{self.cfg.grace_period}s",
        }

    def system(self) -> LocalSystem:
        """The running ``zeroserve up`` (started on first use)."""
        if self._system is None:
            conf = self.tmp / "config-autoscaler.yaml"
            conf.write_text(config_autoscaler(self.autoscaler_config))
            self.log(
                "starting zeroserve up (config-autoscaler: "
                + ", ".join(f"{k} {v}" for k, v in self.autoscaler_config.items())
                + ")"
            )
            self._system = LocalSystem.start(self.sup, self.tmp, [conf], self.cfg.logs)
            self.command(
                "zeroserve up config-autoscaler.yaml --port 0 --control-port 0 --logs "
                f"{self._system.logs} (config-autoscaler.yaml: "
                + ", ".join(f"{k}: {v}" for k, v in self.autoscaler_config.items())
                + ")"
            )
            self.log(
                f"zeroserve up: ingress {self._system.ingress}, control API "
                f"{self._system.control}, logs in {self._system.logs}"
            )
        return self._system

    @property
    def system_started(self) -> LocalSystem | None:
        return self._system

    def stop_system(self) -> None:
        if self._system is not None:
            # SIGINT, like Ctrl-C: the activator drains, then every replica
            self.sup.stop(self._system.server, grace=90, sig=signal.SIGINT)
            self._system = None
