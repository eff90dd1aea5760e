"""How ``zeroserve logs`` finds where to start reading a replica's log: the byte
clock behind ``--since`` and the line arithmetic of ``--tail`` (zeroserve/local/podlogs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeroserve.local.podlogs import LogClock, line_start, read_from, start_offset, tail_start


def write(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_a_byte_takes_the_time_of_the_first_sample_that_saw_it(tmp_path: Path) -> None:
    log = tmp_path / "p-app.log"
    clock = LogClock()
    write(log, "a\n")
    clock.sample([log], now=100.0)
    write(log, "b\nc\n")
    clock.sample([log], now=101.0)
    clock.sample([log], now=102.0)  # nothing new: no mark
    write(log, "d\n")
    clock.sample([log], now=103.0)
    assert clock.offset_since(log, 99.0) == 0
    assert clock.offset_since(log, 100.0) == 0
    assert clock.offset_since(log, 100.5) == 2  # b and c were first seen at 101
    assert clock.offset_since(log, 101.5) == 6  # d at 103
    assert clock.offset_since(log, 103.5) == 8  # nothing since: the end
    assert start_offset(log, clock, since=100.5) == 2
    assert read_from(log, start_offset(log, clock, since=101.5)) == (b"d\n", 8)


def test_a_line_seen_in_part_before_the_time_counts_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "p-app.log"
    clock = LogClock()
    write(log, "one\ntw")
    clock.sample([log], now=10.0)
    write(log, "o\nthree\n")
    clock.sample([log], now=11.0)
    assert clock.offset_since(log, 10.5) == 6
    assert line_start(log, 6) == 4
    data, _ = read_from(log, start_offset(log, clock, since=10.5))
    assert data == b"two\nthree\n"


def test_a_truncated_file_forgets_its_times_and_a_file_not_listed_is_dropped(
    tmp_path: Path,
) -> None:
    log = tmp_path / "p-app.log"
    clock = LogClock()
    write(log, "old line\n")
    clock.sample([log], now=1.0)
    log.write_text("new\n")
    clock.sample([log], now=5.0)
    assert clock.offset_since(log, 2.0) == 0
    clock.sample([], now=6.0)
    assert clock.offset_since(log, 100.0) == 0  # never sampled (any more): from the start


def test_marks_are_bounded_and_thinning_only_makes_lines_later(tmp_path: Path) -> None:
    log = tmp_path / "p-app.log"
    clock = LogClock(max_marks=8)
    for i in range(20):
        write(log, f"{i}\n")
        clock.sample([log], now=float(i))
    marks = clock._marks[log]
    assert len(marks.sizes) <= 8
    # every line written at or after t is still included for since=t
    for t in range(20):
        data, _ = read_from(log, start_offset(log, clock, since=float(t)))
        assert f"{t}\n".encode() in data


@pytest.mark.parametrize(
    ("text", "lines", "want"),
    [
        ("a\nb\nc\n", 2, "b\nc\n"),
        ("a\nb\nc\n", 0, ""),
        ("a\nb\nc\n", 10, "a\nb\nc\n"),
        ("a\nb\nc", 1, "c"),  # a last line without its newline yet is a line
        ("", 3, ""),
    ],
    ids=["last-two", "none", "more-than-there-are", "unfinished-line", "empty"],
)
def test_tail_starts_at_the_last_lines(tmp_path: Path, text: str, lines: int, want: str) -> None:
    log = tmp_path / "p.log"
    log.write_text(text)
    data, _ = read_from(log, tail_start(log, lines))
    assert data.decode() == want


def test_tail_counts_within_since_and_long_files_are_read_backwards(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    log.write_text("".join(f"line {i:06d}\n" for i in range(20000)))  # > one read chunk
    data, _ = read_from(log, tail_start(log, 3))
    assert data.decode().splitlines() == ["line 019997", "line 019998", "line 019999"]
    floor = 12 * 19999  # only the last line is since the time
    data, _ = read_from(log, tail_start(log, 3, floor))
    assert data.decode() == "line 019999\n"


def test_follow_reads_only_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    log.write_text("done\nhalf")
    assert read_from(log, 0, partial=False) == (b"done\n", 5)
    write(log, " a line\n")
    assert read_from(log, 5, partial=False) == (b"half a line\n", 17)
