"""``python -m queueproxy``: read the environment, run until SIGTERM, drain, exit.

``python -m queueproxy --standby`` first waits for its environment on stdin
(:mod:`queueproxy.standby`; the local runtime's standby queue-proxies)."""

from __future__ import annotations

import sys

from zeroserve import compiled

# First: the modules ``make compiled`` built are loaded only if nothing imported their
# sources yet (zeroserve/compiled.py). A standby decides here, before its assignment.
compiled.install_or_exit("queue-proxy")

import asyncio
import logging
import os

import uvloop

from zeroserve.envconfig import ConfigError, env_log_level

from .app import run
from .config import Settings
from .standby import wait_and_apply


def main() -> int:
    try:
        level = env_log_level(os.environ, "SERVING_LOGGING_LEVEL")
    except ConfigError as e:
        print(f"queue-proxy: {e}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=level,
        format="%(asctime)s queue-proxy %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("queueproxy").debug("hot path: %s", compiled.status())
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as e:
        print(f"queue-proxy: {e}", file=sys.stderr)
        return 1
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


if __name__ == "__main__":
    if sys.argv[1:] == ["--standby"]:
        sys.exit(wait_and_apply(main))
    if sys.argv[1:]:
        print(f"queue-proxy: unknown arguments {sys.argv[1:]} (only --standby)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
