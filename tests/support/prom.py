"""Reading Prometheus text in tests: exact names, labels compared as a whole or in part."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def series(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its exposed name (``x_total``, ``x_bucket``, ...)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    """The sum of ``name``'s samples whose labels include ``labels``; None if none match."""
    found = [v for have, v in series(text).get(name, []) if labels.items() <= have.items()]
    return sum(found) if found else None


def label_sets(text: str, name: str) -> list[dict[str, str]]:
    return [have for have, _ in series(text).get(name, [])]
