"""The components' log level from their environment (zeroserve/envconfig.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zeroserve.envconfig import LOG_LEVEL_ENV, ConfigError, env_log_level

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (None, "INFO"),
        ("", "INFO"),
        ("debug", "DEBUG"),
        ("WARNING", "WARNING"),
        (" error ", "ERROR"),
    ],
)
def test_levels(value: str | None, level: str) -> None:
    env = {} if value is None else {LOG_LEVEL_ENV: value}
    assert env_log_level(env, LOG_LEVEL_ENV) == level


def test_an_unknown_level_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"LOG_LEVEL: unknown level 'trace' \(one of debug"):
        env_log_level({LOG_LEVEL_ENV: "trace"}, LOG_LEVEL_ENV)


@pytest.mark.process
@pytest.mark.parametrize(
    ("component", "variable"),
    [
        ("activator", "LOG_LEVEL"),
        ("autoscaler", "LOG_LEVEL"),
        ("controller", "LOG_LEVEL"),
        ("queueproxy", "SERVING_LOGGING_LEVEL"),
    ],
)
def test_each_component_refuses_a_bad_level_at_start(component: str, variable: str) -> None:
    env = {"PATH": "/usr/bin:/bin", variable: "loud"}
    p = subprocess.run(
        [sys.executable, "-m", component],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1, p.stderr
    assert f"{variable}: unknown level 'loud'" in p.stderr, p.stderr
