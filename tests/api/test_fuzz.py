"""Hostile input: junk at every field of the docs' manifests, junk documents, random
text. Loading and validating must answer with ``ManifestErrors`` (every line naming
the file) or objects -- never any other exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.knative_docs import MANIFESTS
from tests.api.manifests import AUTOSCALED, CONFIG_DOMAIN_SELECTORS, HELLO_V2, doc, dump, edit
from zeroserve.api import Configs, ManifestError, ManifestErrors, load, validate

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "-1", "1e400", "hello-00001", "ten", "0", "\u0000", "é" * 70])
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)
BASES = [doc(HELLO_V2), doc(AUTOSCALED), doc(CONFIG_DOMAIN_SELECTORS)] + [
    doc(m.yaml) for m in MANIFESTS
]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path in a document, containers included."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += paths(value, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A docs manifest with one to three fields replaced by junk, or junk keys added."""
    document = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(document)))
        if draw(st.booleans()):
            document = edit(document, path, draw(JUNK))
        elif isinstance(_at(document, path), dict):
            document = edit(document, (*path, draw(st.text(min_size=1, max_size=12))), draw(JUNK))
    return document


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


def check(text: str) -> None:
    try:
        objects = load(text, "fuzz.yaml")
    except ManifestErrors as e:
        assert e.errors
        assert all(str(err).startswith("fuzz.yaml") and str(err).isprintable() for err in e.errors)
        return
    for obj in objects:
        # The object part is escaped like the rest of the line.
        prefix = str(ManifestError("fuzz.yaml", obj.label, "", "")) + ": "
        for err in validate(obj, Configs()):
            assert str(err).startswith(prefix) and str(err).isprintable()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_junk_at_any_field(document: dict[str, Any]) -> None:
    check(dump(document))


@FUZZ
@given(st.lists(JUNK, min_size=1, max_size=3))
def test_junk_documents(documents: list[Any]) -> None:
    check("---\n".join(yaml.safe_dump(d) for d in documents))


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_decoded_leniently(data: bytes) -> None:
    check(data.decode("utf-8", errors="replace"))


def test_deep_nesting_and_alias_bombs_are_errors() -> None:
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    bomb += "kind: Service\napiVersion: serving.knative.dev/v1\nmetadata: {name: x}\nspec:\n"
    bomb += "  template: {spec: {containers: [{image: i, command: *i}]}}\n"
    for text in (deep, bomb):
        check(text)
