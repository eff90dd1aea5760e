"""A replica's container output as ``kubectl logs`` reads it: the last N lines, the
lines since a time, and new lines as they are written (docs/local-mode.md, "Logs and
events").

A replica's processes write straight into files of the run's log directory
(``{pod}-app.log`` for the user container, its sidecars and init containers,
``{pod}-queue-proxy.log``), with no pipe through ``zeroserve up`` and no time per
line. On Kubernetes the container runtime stamps each line as it reads it from the
container's pipe (CRI's log format); here a :class:`LogClock` stamps bytes instead:
every second it notes each log file's size with the time, so a byte's time is the
first sample that saw it. ``--since`` is therefore exact to within one sampling
interval (a line may be reported up to that much late, never early), which costs a
``stat`` per file per second instead of a copy of every byte of output.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_SECONDS = 1.0
"""How often the clock notes the log files' sizes (the precision of ``--since``)."""
MAX_MARKS = 4096
"""Size marks kept per file; past it every other old mark is dropped (the times of the
oldest output get coarser, never wrong in the direction of leaving a line out)."""
FOLLOW_POLL_SECONDS = 0.2
"""How often ``logs -f`` looks for new output."""
READ_CHUNK = 64 << 10


@dataclass
class _Marks:
    sizes: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


class LogClock:
    """When each byte of a set of growing files was first seen (pure but for ``stat``;
    time is passed in)."""

    def __init__(self, max_marks: int = MAX_MARKS) -> None:
        self.max_marks = max_marks
        self._marks: dict[Path, _Marks] = {}

    def sample(self, paths: Iterable[Path], now: float) -> None:
        """Note the size of each file in ``paths`` at ``now``; files not named again
        are forgotten (their pod is gone)."""
        seen: dict[Path, _Marks] = {}
        for path in paths:
            marks = self._marks.get(path) or _Marks()
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0
            if marks.sizes and size < marks.sizes[-1]:
                marks = _Marks()  # truncated or replaced: its old times mean nothing
            if size and (not marks.sizes or size > marks.sizes[-1]):
                marks.sizes.append(size)
                marks.times.append(now)
                if len(marks.sizes) > self.max_marks:
                    # Keep the newest half as is; thin the older half (a dropped mark's
                    # bytes take the next kept mark's later time: reported late, not lost).
                    half = len(marks.sizes) // 2
                    marks.sizes = marks.sizes[:half:2] + marks.sizes[half:]
                    marks.times = marks.times[:half:2] + marks.times[half:]
            seen[path] = marks
        self._marks = seen

    def offset_since(self, path: Path, since: float) -> int:
        """The first byte of ``path`` first seen at ``since`` or later (the file's
        noted size when none was; 0 for a file never sampled)."""
        marks = self._marks.get(path)
        if marks is None:
            return 0
        i = bisect.bisect_left(marks.times, since)
        if i == len(marks.times):
            return marks.sizes[-1]
        return marks.sizes[i - 1] if i > 0 else 0


def line_start(f: os.PathLike[str] | str, offset: int) -> int:
    """The offset of the start of the line that holds byte ``offset`` (a line first seen
    partly before a sample counts from its first byte)."""
    pos = offset
    with open(f, "rb") as fh:
        while pos > 0:
            begin = max(0, pos - READ_CHUNK)
            fh.seek(begin)
            chunk = fh.read(pos - begin)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                return begin + nl + 1
            pos = begin
    return 0


def tail_start(path: Path, lines: int, floor: int = 0) -> int:
    """The offset where the last ``lines`` lines of ``path`` begin, not before
    ``floor`` (a final line without its newline yet counts as a line)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if lines <= 0:
            return end
        pos, count = end, 0
        if pos > floor:
            f.seek(pos - 1)
            if f.read(1) == b"\n":
                pos -= 1  # the newline ending the last line does not start a line
        while pos > floor:
            begin = max(floor, pos - READ_CHUNK)
            f.seek(begin)
            chunk = f.read(pos - begin)
            i = len(chunk)
            while True:
                nl = chunk.rfind(b"\n", 0, i)
                if nl < 0:
                    break
                count += 1
                if count == lines:
                    return begin + nl + 1
                i = nl
            pos = begin
    return floor


def read_from(path: Path, offset: int, *, partial: bool = True) -> tuple[bytes, int]:
    """The output of ``path`` from ``offset`` on, and the offset after what was
    returned; without ``partial``, only complete lines (a last line still being
    written is left for the next read, as ``logs -f`` needs)."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = len(data) if partial else data.rfind(b"\n") + 1
    return data[:end], offset + end


def start_offset(
    path: Path, clock: LogClock, *, since: float | None = None, tail: int | None = None
) -> int:
    """Where ``kubectl logs [--since] [--tail]`` starts reading ``path``: the lines
    since ``since`` (a Unix time), of those the last ``tail``."""
    start = 0
    if since is not None:
        start = line_start(path, clock.offset_since(path, since))
    if tail is not None and tail >= 0:
        start = tail_start(path, tail, start)
    return start
