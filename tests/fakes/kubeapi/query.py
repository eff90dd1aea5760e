"""Query-parameter parsing shared by the fake API server's handlers, with the apiserver's
rules: booleans as Go's strconv.ParseBool reads them, non-negative integers, 400 otherwise."""

from __future__ import annotations

from . import errors


def parse_bool(value: str | None) -> bool:
    """``1``/``t``/``true``... are true; note that kubernetes_asyncio sends Python's ``True``."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def parse_int(value: str | None, key: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise errors.bad_request(f"{key}: invalid integer {value!r}") from None
    if number < 0:
        raise errors.bad_request(f"{key}: must be non-negative")
    return number
