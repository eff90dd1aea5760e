"""Manifest errors: one line each, naming the file, the object, the field and the rule.

Exception tree::

    Exception
     └── ManifestErrors      every problem found in one load / validate / apply, in order
                             (.errors: tuple[ManifestError, ...])

Not a ``ValueError`` on purpose: callers that also parse other input (JSON
request bodies) catch ``ValueError`` for that, and must not swallow these.

``ManifestError`` itself is a value, not an exception: loading and validation
collect all of them before anything is raised, so a user fixes a file in one
round instead of one error per attempt.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

_MAX_SHOWN = 60
"""Longest rendering of a bad value inside a message; hostile input can be megabytes."""


@dataclass(frozen=True, slots=True)
class ManifestError:
    """One rule a manifest breaks.

    ``str()`` gives ``file[:line]: object: path: rule``, leaving out empty
    parts, e.g. ``hello.yaml: Service default/hello: spec.traffic: percents
    must add up to 100, got 90``.
    """

    file: str
    """Where the manifest came from (a file name, or ``-`` for standard input)."""

    object: str
    """``Kind namespace/name``, or ``document N`` when the document names no object."""

    path: str
    """Field path inside the object, Knative style: ``spec.traffic[1].percent``; empty for the whole."""

    rule: str
    """What is wrong, with the offending value: ``must be an integer, got 'ten'``."""

    line: int | None = None
    """1-based line, for YAML syntax errors and documents that name no object."""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = ": ".join(part for part in (where, self.object, self.path, self.rule) if part)
        # One line, whatever a hostile document put into a name or key.
        return (
            text
            if text.isprintable()
            else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        )


class ManifestErrors(Exception):
    """Every problem found in one operation; nothing was applied."""

    def __init__(self, errors: Iterable[ManifestError]) -> None:
        self.errors: tuple[ManifestError, ...] = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def describe(value: object) -> str:
    """A short, safe rendering of a value for ``got ...``: quoted strings, YAML words for
    scalars, and the type of containers (whose repr could be huge or recursive)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _clip(repr(value))
    if isinstance(value, int | float):
        return _clip(repr(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):
        # YAML turns an unquoted 2024-01-01 into a date; say so, it surprises people.
        return f"the date {value.isoformat()} (quote it to make it a string)"
    return f"a {type(value).__name__}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
