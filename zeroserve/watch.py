"""``zeroserve get KIND -w``: kubectl's watch output over the control API's change
count (docs/local-mode.md, "Logs and events").

kubectl prints the table, then one row each time the API server sends an event for an
object. The control API has no per-object watch; it counts changes (``GET
/v1/watch?since=N``, a long-poll), so each change the table is read again and the rows
that differ from the ones printed last are printed, in the table's order. The AGE
column, and the age in RESTARTS' ``2 (5s ago)``, are left out of the comparison (they
change by themselves, and kubectl prints on changes of the object, not of the clock);
a row that is gone is not printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

WATCH_POLL_SECONDS = 10.0
"""The longest one long-poll of the change count waits."""

Table = dict[str, Any]
"""``{"headers": [...], "rows": [[...], ...]}`` as ``GET /v1/table/{kind}`` answers."""


class RowPrinter:
    """Prints rows under a header with columns as wide as the widest seen so far (kubectl's
    watch rows come through one tabwriter per row; keeping widths keeps them aligned)."""

    def __init__(self, headers: list[str], out: TextIO) -> None:
        self.headers = headers
        self.widths = [len(h) for h in headers]
        self.out = out
        self.header_printed = False

    def print(self, rows: list[list[str]]) -> None:
        for row in rows:
            self.widths = [max(w, len(str(c))) for w, c in zip(self.widths, row, strict=False)]
        lines = [] if self.header_printed else [self.headers]
        self.header_printed = True
        for row in [*lines, *rows]:
            text = "   ".join(str(c).ljust(w) for c, w in zip(row, self.widths, strict=False))
            print(text.rstrip(), file=self.out, flush=True)


def row_keys(headers: list[str], rows: list[list[str]]) -> list[tuple[str, ...]]:
    """Each row's object: (namespace, name) under ``-A``, else (name,)."""
    n = 2 if headers[:1] == ["NAMESPACE"] else 1
    return [tuple(r[:n]) for r in rows]


def changed_rows(
    headers: list[str], rows: list[list[str]], last: dict[tuple[str, ...], tuple[str, ...]]
) -> list[list[str]]:
    """The rows that differ from ``last`` (the rows printed, by object, without AGE),
    which is updated."""
    skip = {i for i, h in enumerate(headers) if h == "AGE"}
    # RESTARTS reads "2 (5s ago)": the count is the object's, the age the clock's
    restarts = {i for i, h in enumerate(headers) if h == "RESTARTS"}
    out = []
    for key, row in zip(row_keys(headers, rows), rows, strict=True):
        seen = tuple(
            str(c).split(" (", 1)[0] if i in restarts else str(c)
            for i, c in enumerate(row)
            if i not in skip
        )
        if last.get(key) != seen:
            last[key] = seen
            out.append(row)
    return out


def watch_table(
    read: Callable[[], Table],
    wait_change: Callable[[int, float], int],
    *,
    out: TextIO,
    namespace: str | None,
    watch_only: bool = False,
    timeout: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print the table (unless ``watch_only``), then the changed rows after each change,
    until Ctrl-C or ``timeout`` seconds (0: none)."""
    deadline = clock() + timeout if timeout > 0 else None
    version = wait_change(-1, 0)
    table = read()
    printer = RowPrinter(table["headers"], out)
    last: dict[tuple[str, ...], tuple[str, ...]] = {}
    first = changed_rows(table["headers"], table["rows"], last)
    if not watch_only:
        if first:
            printer.print(first)
        else:
            where = "" if namespace is None else f" in {namespace} namespace"
            print(f"No resources found{where}.", file=out, flush=True)
    while True:
        wait = WATCH_POLL_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - clock())
            if wait <= 0:
                return 0
        new = wait_change(version, wait)
        if new == version:
            continue
        version = new
        table = read()
        rows = changed_rows(table["headers"], table["rows"], last)
        if rows:
            printer.print(rows)
