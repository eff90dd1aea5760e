"""Table tests for the strict string parsers and the key/alias reader."""

from __future__ import annotations

import pytest

from zeroserve.configmap import (
    ValueReader,
    parse_bool,
    parse_duration,
    parse_duration_nanos,
    parse_float,
    parse_int32,
    parse_whole_seconds,
)
from zeroserve.envconfig import ConfigError


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        pytest.param("60s", 60_000_000_000, id="seconds"),
        pytest.param("1m30s", 90_000_000_000, id="minutes-and-seconds"),
        pytest.param("500ms", 500_000_000, id="milliseconds"),
        pytest.param("1h", 3_600_000_000_000, id="hour"),
        pytest.param("1h2m3s4ms5us6ns", 3_723_004_005_006, id="every-unit"),
        pytest.param("3\u00b5s", 3_000, id="micro-sign"),
        pytest.param("3\u03bcs", 3_000, id="greek-mu"),
        pytest.param("1.5h", 5_400_000_000_000, id="fraction"),
        pytest.param(".5s", 500_000_000, id="fraction-without-integer-part"),
        pytest.param("1.s", 1_000_000_000, id="dot-without-fraction-digits"),
        pytest.param("1.0000000009s", 1_000_000_000, id="sub-nanosecond-truncated"),
        pytest.param("0", 0, id="bare-zero"),
        pytest.param("-0", 0, id="signed-bare-zero"),
        pytest.param("0s", 0, id="zero-seconds"),
        pytest.param("-1.5s", -1_500_000_000, id="negative"),
        pytest.param("+2s", 2_000_000_000, id="plus-sign"),
        pytest.param("2s1s", 3_000_000_000, id="repeated-unit-adds"),
        pytest.param("2562047h47m16.854775807s", 2**63 - 1, id="int64-max"),
        pytest.param("-2562047h47m16.854775808s", -(2**63), id="int64-min"),
    ],
)
def test_parse_duration_accepts_go_syntax(text: str, nanos: int) -> None:
    assert parse_duration_nanos(text) == nanos
    assert parse_duration(text) == nanos / 1e9


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("60", id="no-unit"),
        pytest.param("1m30", id="last-term-without-unit"),
        pytest.param("1d", id="unknown-unit"),
        pytest.param("1S", id="upper-case-unit"),
        pytest.param("1mss", id="unit-with-trailing-letters"),
        pytest.param(".s", id="dot-without-digits"),
        pytest.param("s", id="unit-only"),
        pytest.param("-", id="sign-only"),
        pytest.param(" 1s", id="leading-space"),
        pytest.param("1s ", id="trailing-space"),
        pytest.param("1 s", id="inner-space"),
        pytest.param("1e3s", id="exponent"),
        pytest.param("--1s", id="double-sign"),
        pytest.param("1s-1s", id="inner-sign"),
        pytest.param("\u0661s", id="non-ascii-digit"),
        pytest.param("2562047h47m16.854775808s", id="int64-overflow"),
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", 90.0), ("1m", 60.0), ("0", 0.0), ("1000ms", 1.0), ("-5s", -5.0)],
)
def test_parse_whole_seconds(text: str, expected: float) -> None:
    assert parse_whole_seconds(text) == expected


@pytest.mark.parametrize("text", ["1.5s", "1500ms", "1ns", "60s1ns"])
def test_parse_whole_seconds_rejects_fractions(text: str) -> None:
    with pytest.raises(ValueError, match="whole seconds"):
        parse_whole_seconds(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("t", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("f", False),
        ("0", False),
    ],
)
def test_parse_bool(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", ["yes", "no", "tRUE", "", " true", "2"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bool"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-3", -3),
        ("+7", 7),
        ("007", 7),
        ("2147483647", 2**31 - 1),
        ("-2147483648", -(2**31)),
    ],
)
def test_parse_int32(text: str, expected: int) -> None:
    assert parse_int32(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1.0", "1e3", "ten", "1_000", " 1", "\u0661", "2147483648", "-2147483649"]
)
def test_parse_int32_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="integer"):
        parse_int32(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", 2.0),
        ("0.7", 0.7),
        (".5", 0.5),
        ("5.", 5.0),
        ("-1", -1.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
    ],
)
def test_parse_float(text: str, expected: float) -> None:
    assert parse_float(text) == expected


@pytest.mark.parametrize("text", ["", "inf", "NaN", "0x10", "1_0", "1,5", " 1", "1e999", "seventy"])
def test_parse_float_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="number"):
        parse_float(text)


KEYS = ("p/max-scale", "p/maxScale")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({}, 7, id="absent-gives-default"),
        pytest.param({"p/max-scale": "3"}, 3, id="hyphenated"),
        pytest.param({"p/maxScale": "4"}, 4, id="alias"),
        pytest.param({"p/maxScale": "4", "p/max-scale": "3"}, 3, id="hyphenated-wins"),
    ],
)
def test_reader_takes_first_present_key(data: dict[str, str], expected: int) -> None:
    for strict in (True, False):
        reader = ValueReader(data, strict=strict)
        assert reader.read(KEYS, parse_int32, 7, rule="an integer >= 0") == expected


def test_strict_reader_names_the_key_that_was_used() -> None:
    reader = ValueReader({"p/maxScale": "ten"}, prefix="cm: ")
    with pytest.raises(ConfigError) as info:
        reader.read(KEYS, parse_int32, 0, rule="an integer >= 0")
    assert str(info.value) == "cm: p/maxScale: must be an integer >= 0, got 'ten'"


def test_strict_reader_rejects_out_of_range_with_the_same_message() -> None:
    reader = ValueReader({"p/max-scale": "-1"})
    with pytest.raises(ConfigError, match=r"^p/max-scale: must be an integer >= 0, got '-1'$"):
        reader.read(KEYS, parse_int32, 0, rule="an integer >= 0", ok=lambda n: n >= 0)


@pytest.mark.parametrize(
    "data",
    [{"p/max-scale": "ten"}, {"p/max-scale": "-1"}, {"p/max-scale": "-1", "p/maxScale": "5"}],
    ids=["unparsable", "out-of-range", "bad-hyphenated-does-not-fall-through-to-alias"],
)
def test_lenient_reader_treats_bad_values_as_absent(data: dict[str, str]) -> None:
    reader = ValueReader(data, strict=False)
    assert reader.read(KEYS, parse_int32, 7, rule="an integer >= 0", ok=lambda n: n >= 0) == 7
    assert reader.read_optional(KEYS, parse_int32, rule="x", ok=lambda n: n >= 0) is None


def test_error_for_an_absent_key_shows_the_default() -> None:
    error = ValueReader({}, prefix="cm: ").error(KEYS, "an integer >= 1", 0)
    assert str(error) == "cm: p/max-scale: must be an integer >= 1, got 0 (the default)"
