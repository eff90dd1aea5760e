"""Label and field selectors, parsed with the grammar and matched with the semantics of
k8s.io/apimachinery (``labels.Parse`` and ``fields.ParseSelector``).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
``k>3``, ``k<3``; requirements are ANDed. As upstream, ``!=`` and ``notin`` also match objects
that lack the label. Field selectors: ``f=v``, ``f==v``, ``f!=v`` on an allow-list of fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import errors

_SPECIAL = "!=<>(),"


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number = int(value or "")
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "!=" and text[i + 1 : i + 2] == "=":
            tokens.append(text[i : i + 2])
            i += 2
        elif ch in _SPECIAL:
            tokens.append(ch)
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            tokens.append(text[start:i])
    return tokens


def _is_word(token: str | None) -> bool:
    return token is not None and token not in _SPECIAL and token not in ("==", "!=")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector; raises ApiError(400) on syntax errors like the apiserver."""
    if not text or not text.strip():
        return []
    tokens = _tokenize(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def fail(why: str) -> errors.ApiError:
        return errors.bad_request(f"unable to parse requirement: {why} in selector {text!r}")

    reqs: list[Requirement] = []
    while True:
        tok = peek()
        if tok == "!":
            pos += 1
            key = peek()
            if not _is_word(key):
                raise fail("expected a label key after '!'")
            assert key is not None
            pos += 1
            reqs.append(Requirement(key, "!"))
        elif _is_word(tok):
            assert tok is not None
            key = tok
            pos += 1
            op = peek()
            if op is None or op == ",":
                reqs.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if _is_word(value):
                    assert value is not None
                    pos += 1
                else:
                    value = ""  # "k=" selects the empty value, as upstream
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            elif op in (">", "<"):
                pos += 1
                value = peek()
                if not _is_word(value) or not (value or "").lstrip("-").isdigit():
                    raise fail(f"operator {op} needs an integer value")
                assert value is not None
                pos += 1
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise fail(f"expected '(' after {op}")
                pos += 1
                values: list[str] = []
                while True:
                    value = peek()
                    if value == ")":
                        pos += 1
                        break
                    if value == ",":
                        values.append("")
                        pos += 1
                        continue
                    if not _is_word(value):
                        raise fail(f"unterminated value list for {key}")
                    assert value is not None
                    values.append(value)
                    pos += 1
                    if peek() == ",":
                        pos += 1
                    elif peek() != ")":
                        raise fail(f"expected ',' or ')' in value list for {key}")
                if not values:
                    raise fail(f"{op} needs at least one value")
                reqs.append(Requirement(key, op, tuple(values)))
            else:
                raise fail(f"unexpected {op!r} after key {key!r}")
        else:
            raise fail("expected a label key")
        tok = peek()
        if tok is None:
            return reqs
        if tok != ",":
            raise fail(f"expected ',' but found {tok!r}")
        pos += 1


def labels_match(reqs: Iterable[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negate: bool


def _split_unescaped(text: str, sep: str) -> list[str]:
    # Field selector values may escape ',', '=' and '\' with a backslash.
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, escaped = [], False
    for ch in text:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def parse_field_selector(text: str | None, allowed: Iterable[str]) -> list[FieldTerm]:
    """Parse a field selector; unknown field labels are refused as the apiserver does."""
    if not text or not text.strip():
        return []
    allowed = set(allowed)
    terms = []
    for raw in _split_unescaped(text, ","):
        part = raw.strip()
        op = next((o for o in ("!=", "==", "=") if part.find(o) > 0), None)
        if op is None:
            raise errors.bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        idx = part.find(op)
        field, value = part[:idx].strip(), _unescape(part[idx + len(op) :].strip())
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        terms.append(FieldTerm(field, value, negate=op == "!="))
    return terms


def field_value(obj: dict[str, Any], dotted: str) -> str:
    """The string form of a field, as the apiserver's field sets render it."""
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def fields_match(terms: Iterable[FieldTerm], obj: dict[str, Any]) -> bool:
    for term in terms:
        equal = field_value(obj, term.field) == term.value
        if equal == term.negate:
            return False
    return True


def selector_predicate(
    label_selector: str | None, field_selector: str | None, allowed_fields: Iterable[str]
) -> Callable[[dict[str, Any]], bool]:
    """Parse both selectors once and return a predicate over stored objects."""
    reqs = parse_label_selector(label_selector)
    terms = parse_field_selector(field_selector, allowed_fields)
    return lambda obj: labels_match(reqs, obj) and fields_match(terms, obj)


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """Render a metav1.LabelSelector as a selector string (used by ``Scale.status.selector``)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
