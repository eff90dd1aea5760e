"""Typed reading of one YAML mapping, noting every problem with its field path.

The parser never trusts a document: every accessor checks the type it expects
and, instead of raising, records ``(path, rule)`` and returns a neutral value,
so one pass over a document finds all of its problems. Fields a reader was not
asked about are reported by :meth:`Fields.only` -- unknown fields are errors,
never silently dropped (a typo like ``containerConcurency`` would otherwise
leave a revision unlimited without a word).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from zeroserve.api.errors import describe

Problems = list[tuple[str, str]]
"""(field path, rule) pairs, in the order found."""

SERVER_FIELDS = frozenset(
    {
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "ownerReferences",
        "finalizers",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)
"""``metadata`` fields the API server sets; a manifest copied from ``get -o yaml`` has them."""

LABEL_KEYS = frozenset({"networking.knative.dev/visibility", "serving.knative.dev/visibility"})
"""Knative's keys that are labels, not annotations, on the Service's or Route's own
metadata (docs: "Configuring cluster-local services"); every other prefixed key is
taken for an annotation."""
_QUALIFIED = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
"""``prefix/name``: the shape of a label or annotation key, never of a field name."""


def metadata_of(path: str) -> str:
    """Where the labels and annotations of the mapping at ``path`` live: the object's
    own ``metadata``, or, inside a Service's or Configuration's ``spec``, the revision
    template's (where the ``autoscaling.knative.dev`` annotations take effect)."""
    return "spec.template.metadata" if path.split(".")[0] == "spec" else "metadata"


def join(path: str, key: str) -> str:
    """``path.key``; a key that is empty or has spaces or control characters is shown
    quoted (``metadata['\\n']``) so the path stays one readable line."""
    if not key or not key.isprintable() or any(c.isspace() for c in key):
        return f"{path}[{describe(key)}]"
    return f"{path}.{key}" if path else key


def _non_string_key(value: Any) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return k
            bad = _non_string_key(v)
            if bad is not None:
                return bad
    elif isinstance(value, list):
        for v in value:
            bad = _non_string_key(v)
            if bad is not None:
                return bad
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class Fields:
    """One mapping at ``path``; accessors return typed values and note problems."""

    __slots__ = ("_data", "_seen", "path", "problems")

    def __init__(self, data: Mapping[Any, Any], path: str, problems: Problems) -> None:
        self._data = data
        self._seen: set[str] = set()
        self.path = path
        self.problems = problems

    @classmethod
    def of(cls, value: object, path: str, problems: Problems) -> Fields | None:
        """A reader for ``value``, or None (problem noted) when it is not a mapping."""
        if isinstance(value, dict):
            return cls(value, path, problems)
        problems.append((path, f"must be a mapping, got {describe(value)}"))
        return None

    def note(self, key: str, rule: str) -> None:
        self.problems.append((join(self.path, key), rule))

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def names(self) -> list[str]:
        """The string keys present (others are reported by :meth:`only`)."""
        return [k for k in self._data if isinstance(k, str)]

    def raw(self, key: str) -> Any:
        self._seen.add(key)
        return self._data.get(key)

    def null(self, key: str) -> None:
        """Accept ``key: null`` (what Go clients write for an unset struct, such as
        ``creationTimestamp: null``); any other value is left for :meth:`only` to report."""
        if key in self._data and self._data[key] is None:
            self._seen.add(key)

    def plain(self) -> dict[str, Any]:
        """The whole mapping as written (a deep copy), every key taken as read; for
        fields kept for the cluster, which checks them (``affinity``...). Non-string
        keys are reported."""
        self._seen.update(k for k in self._data if isinstance(k, str))
        bad = _non_string_key(self._data)
        if bad is not None:
            self.problems.append((self.path, f"field names must be strings, got {describe(bad)}"))
        return _copy(self._data)

    def only(
        self, *, unsupported: Mapping[str, str] | Iterable[str] = (), metadata: str | None = None
    ) -> None:
        """Report every key not read so far; ``unsupported`` are fields Knative has and
        zeroserve does not (a different message than for a typo). A key shaped like a
        label or an annotation (``autoscaling.knative.dev/target``) says where it belongs:
        ``metadata`` (default: :func:`metadata_of` this path) plus ``.annotations`` or
        ``.labels``; mis-nesting them is the usual mistake, and "unknown field" alone
        does not show it."""
        reasons = (
            unsupported if isinstance(unsupported, Mapping) else dict.fromkeys(unsupported, "")
        )
        for key in self._data:
            if not isinstance(key, str):
                self.problems.append(
                    (self.path, f"field names must be strings, got {describe(key)}")
                )
            elif key in self._seen:
                continue
            elif key in reasons:
                self.note(key, reasons[key] or "not supported by zeroserve")
            elif self.path == "metadata" and key in SERVER_FIELDS:
                self.note(key, "is set by the server; remove it from the manifest")
            elif _QUALIFIED.fullmatch(key):
                # The visibility label is read on the Service's (Route's) own metadata.
                where = (
                    "metadata.labels"
                    if key in LABEL_KEYS
                    else f"{metadata or metadata_of(self.path)}.annotations"
                )
                self.problems.append((self.path, f'unknown field "{key}": did you mean {where}?'))
            else:
                close = difflib.get_close_matches(key, sorted(self._seen), n=1)
                self.note(
                    key, f"unknown field (did you mean {close[0]!r}?)" if close else "unknown field"
                )

    # ----- scalars -----------------------------------------------------------------------

    def string(self, key: str, *, required: bool = False) -> str:
        value = self.raw(key)
        if value is None:
            if required:
                self.note(key, "missing required field")
            return ""
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, int | float) else ""
            self.note(key, f"must be a string{hint}, got {describe(value)}")
            return ""
        if required and not value:
            self.note(key, "missing required field")
        return value

    def integer(self, key: str) -> int | None:
        """An integer (YAML ``10``; ``"10"`` and ``10.0`` are rejected, as Kubernetes does)."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.note(key, f"must be an integer, got {describe(value)}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.note(key, f"must be true or false, got {describe(value)}")
            return None
        return value

    # ----- collections -------------------------------------------------------------------

    def mapping(self, key: str) -> Fields | None:
        """A nested mapping's reader; None when absent or not a mapping (noted)."""
        value = self.raw(key)
        if value is None:
            return None
        return Fields.of(value, join(self.path, key), self.problems)

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """(path, value) of each list element; nothing when absent or not a list (noted)."""
        value = self.raw(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.note(key, f"must be a list, got {describe(value)}")
            return
        base = join(self.path, key)
        for i, item in enumerate(value):
            yield f"{base}[{i}]", item

    def strs(self, key: str) -> tuple[str, ...]:
        """A list of strings."""
        out: list[str] = []
        for path, item in self.items(key):
            if isinstance(item, str):
                out.append(item)
            else:
                self.problems.append((path, f"must be a string, got {describe(item)}"))
        return tuple(out)

    def str_map(self, key: str) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations, ConfigMap data).

        Values must already be strings, as the API server demands: an unquoted
        ``min-scale: 1`` is an error that says so, not a silent conversion."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.note(key, f"must be a mapping of strings, got {describe(value)}")
            return {}
        out: dict[str, str] = {}
        base = join(self.path, key)
        for k, v in value.items():
            if not isinstance(k, str):
                self.problems.append((base, f"keys must be strings, got {describe(k)}"))
            elif not isinstance(v, str):
                self.problems.append(
                    (join(base, k), f"must be a string (quote it), got {describe(v)}")
                )
            else:
                out[k] = v
        return out
