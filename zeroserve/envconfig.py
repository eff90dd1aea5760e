"""Reading settings from environment variables with errors that name the variable.

Every component's ``from_env`` uses these; a bad value raises ``ConfigError``
whose message is the one line the process prints before exiting with code 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


_MISSING = object()


def _raw(env: Mapping[str, str], name: str, default: object) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        if default is _MISSING:
            raise ConfigError(f"{name}: required environment variable is not set")
        return None
    return value.strip()


def env_str(env: Mapping[str, str], name: str, default: str | object = _MISSING) -> str:
    value = _raw(env, name, default)
    return value if value is not None else str(default)


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int | object = _MISSING,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(env, name, default)
    if value is None:
        assert isinstance(default, int)
        return default
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{name}: must be an integer, got {value!r}") from None
    _check_range(name, n, minimum, maximum)
    return n


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float | object = _MISSING,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(env, name, default)
    if value is None:
        assert isinstance(default, int | float)
        return float(default)
    try:
        x = float(value)
    except ValueError:
        raise ConfigError(f"{name}: must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    _check_range(name, x, minimum, maximum)
    return x


def env_port(env: Mapping[str, str], name: str, default: int | object = _MISSING) -> int:
    """A TCP port; 0 means "pick a free one"."""
    return env_int(env, name, default, minimum=0, maximum=65535)


def _check_range(name: str, x: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and x < minimum:
        raise ConfigError(f"{name}: must be >= {minimum:g}, got {x:g}")
    if maximum is not None and x > maximum:
        raise ConfigError(f"{name}: must be <= {maximum:g}, got {x:g}")


LOG_LEVEL_ENV = "LOG_LEVEL"
"""The activator's, the autoscaler's and the controller's log level (the chart's
``<component>.logLevel``); the queue-proxy's is Knative's ``SERVING_LOGGING_LEVEL``."""
LOG_LEVELS = ("debug", "info", "warning", "error")
"""The levels a component's log level may name (any case)."""


def env_log_level(env: Mapping[str, str], name: str) -> str:
    """The logging level named by ``name`` (default ``info``), upper case as
    :func:`logging.basicConfig` takes it; raises ``ConfigError`` naming the variable."""
    value = _raw(env, name, "info") or "info"
    if value.lower() not in LOG_LEVELS:
        raise ConfigError(f"{name}: unknown level {value!r} (one of {', '.join(LOG_LEVELS)})")
    return value.upper()
