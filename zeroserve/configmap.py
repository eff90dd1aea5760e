"""Strict parsers for ConfigMap and annotation strings (Go durations, bools, numbers)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import TypeVar

from zeroserve.envconfig import ConfigError

T = TypeVar("T")

_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# One "<number><unit>" term; the number needs a digit before or after the dot.
# ASCII digits only: Python's \d and int() would also take other scripts' digits.
_TERM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION = re.compile(rf"([-+]?)((?:{_TERM})+)")
_TERMS = re.compile(_TERM)
# Go's time.Duration is an int64 count of nanoseconds.
_MAX_NANOS = 2**63 - 1

_INT = re.compile(r"[-+]?[0-9]+")
# Decimal only: Go would also take hex floats, "Inf" and "NaN", none of which
# make sense in a scaling setting.
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# The spellings Go's strconv.ParseBool accepts, which upstream uses for these maps.
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "true", "TRUE", "True"), True),
    **dict.fromkeys(("0", "f", "F", "false", "FALSE", "False"), False),
}


def parse_duration_nanos(text: str) -> int:
    """Parse a Go duration (``90s``, ``1m30s``, ``1.5h``, ``500ms``, ``0``) into nanoseconds.

    Every term needs a unit (only a bare ``0`` may omit it); fractions of a
    nanosecond are truncated. Raises ``ValueError`` for anything else.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        if text in ("0", "+0", "-0"):
            return 0
        raise ValueError(f"invalid duration {text!r}")
    sign, body = match.group(1), match.group(2)
    total = Fraction(0)
    for number, unit in _TERMS.findall(body):
        total += Fraction(number) * _NANOS_PER_UNIT[unit]
    nanos = int(total)
    if nanos > _MAX_NANOS + (1 if sign == "-" else 0):
        raise ValueError(f"invalid duration {text!r}: out of range")
    return -nanos if sign == "-" else nanos


def parse_duration(text: str) -> float:
    """Parse a Go duration into seconds; see :func:`parse_duration_nanos`."""
    return parse_duration_nanos(text) / 1e9


def parse_whole_seconds(text: str) -> float:
    """Parse a Go duration that must be a whole number of seconds."""
    nanos = parse_duration_nanos(text)
    if nanos % 1_000_000_000:
        raise ValueError(f"duration {text!r} is not whole seconds")
    return float(nanos // 1_000_000_000)


def parse_bool(text: str) -> bool:
    """Parse a boolean spelled as Go accepts it: ``true``/``false``, ``1``/``0``, ``t``/``f``."""
    try:
        return _BOOLS[text]
    except KeyError:
        raise ValueError(f"invalid bool {text!r}") from None


def parse_int32(text: str) -> int:
    """Parse a base-10 integer that fits a signed 32-bit value."""
    if _INT.fullmatch(text) is None:
        raise ValueError(f"invalid integer {text!r}")
    value = int(text)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"integer {text!r} out of range")
    return value


def parse_float(text: str) -> float:
    """Parse a finite decimal number (``2``, ``0.7``, ``1e3``)."""
    if _FLOAT.fullmatch(text) is None:
        raise ValueError(f"invalid number {text!r}")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text!r} out of range")
    return value


def _always(_: object) -> bool:
    return True


class ValueReader:
    """Reads typed values out of one string mapping (ConfigMap data or annotations).

    Strict readers raise ``ConfigError`` naming the key, the value and the
    allowed range. Lenient readers mirror upstream's reconciler: a value that
    cannot be used falls back to the default, as if the key were absent.
    """

    __slots__ = ("_data", "_prefix", "strict")

    def __init__(self, data: Mapping[str, str], *, prefix: str = "", strict: bool = True) -> None:
        self._data = data
        self._prefix = prefix
        self.strict = strict

    def lookup(self, keys: str | Sequence[str]) -> tuple[str, str] | None:
        """The first of ``keys`` present in the mapping and its raw value."""
        for key in (keys,) if isinstance(keys, str) else keys:
            raw = self._data.get(key)
            if raw is not None:
                return key, raw
        return None

    def read(
        self,
        keys: str | Sequence[str],
        parse: Callable[[str], T],
        default: T,
        *,
        rule: str,
        ok: Callable[[T], bool] = _always,
    ) -> T:
        """The parsed value of the first present key, or ``default`` when none is."""
        value = self.read_optional(keys, parse, rule=rule, ok=ok)
        return default if value is None else value

    def read_optional(
        self,
        keys: str | Sequence[str],
        parse: Callable[[str], T],
        *,
        rule: str,
        ok: Callable[[T], bool] = _always,
    ) -> T | None:
        """The parsed value of the first present key, or None when none is.

        ``ok`` is the allowed range; a value outside it, or one ``parse``
        rejects, raises when strict and reads as absent otherwise.
        """
        found = self.lookup(keys)
        if found is None:
            return None
        try:
            value = parse(found[1])
        except ValueError:
            pass
        else:
            if ok(value):
                return value
        if self.strict:
            raise self.error(keys, rule)
        return None

    def error(self, keys: str | Sequence[str], rule: str, default: object = None) -> ConfigError:
        """A ``ConfigError`` for the first present key; ``default`` is shown when none is."""
        found = self.lookup(keys)
        if found is not None:
            return ConfigError(f"{self._prefix}{found[0]}: must be {rule}, got {found[1]!r}")
        first = keys if isinstance(keys, str) else keys[0]
        return ConfigError(f"{self._prefix}{first}: must be {rule}, got {default!r} (the default)")
