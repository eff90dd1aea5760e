"""Server-side printing: ``meta.k8s.io/v1 Table`` responses, which kubectl asks for with
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``.

Every resource gets the default columns the apiserver uses when a type declares no printer
columns of its own: Name and Age.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import errors
from .printers import Column

_COLUMNS = [
    {
        "name": "Name",
        "type": "string",
        "format": "name",
        "priority": 0,
        "description": "Name must be unique within a namespace.",
    },
    {
        "name": "Age",
        "type": "string",
        "format": "",
        "priority": 0,
        "description": "Time since the object was created (metadata.creationTimestamp).",
    },
]


def wants_table(accept: str) -> bool:
    """True when the client's first acceptable media type is a v1 Table."""
    for media in accept.split(","):
        params = {p.strip() for p in media.split(";")[1:]}
        if "as=Table" in params and "g=meta.k8s.io" in params:
            if "v=v1" in params:
                return True
            continue  # older Table versions are not served; try the next alternative
        if media.split(";")[0].strip() in ("application/json", "*/*", ""):
            return False
    return False


def age(timestamp: str | None, at: datetime | None = None) -> str:
    """Render an age compactly, in kubectl's style: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(int(((at or datetime.now(UTC)) - created).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def to_table(
    objects: list[dict[str, Any]],
    resource_version: str,
    include_object: str | None,
    columns: list[Column] | None = None,
    *,
    custom: bool = False,
) -> dict[str, Any]:
    """``columns``: the type's own (:mod:`.printers`) after Name; Age comes last for
    built-ins and for custom resources whose columns include no date (the apiserver adds
    it to a CRD's only when the CRD declares no columns)."""
    include = include_object or "Metadata"
    if include not in ("None", "Metadata", "Object"):
        raise errors.bad_request(
            f'includeObject: Unsupported value: "{include}": supported values: '
            '"None", "Metadata", "Object"'
        )
    extra = columns or []
    with_age = not custom or not extra
    rows = []
    for obj in objects:
        meta = obj.get("metadata", {})
        cells: list[Any] = [meta.get("name", "")]
        for definition, value in extra:
            cell = value(obj)
            if definition["type"] == "date" and isinstance(cell, str):
                cell = age(cell)
            cells.append("" if cell is None else cell)
        if with_age:
            cells.append(age(meta.get("creationTimestamp")))
        row: dict[str, Any] = {"cells": cells}
        rendered = _row_object(obj, include)
        if rendered is not None:
            row["object"] = rendered
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            _COLUMNS[0],
            *(definition for definition, _ in extra),
            *([_COLUMNS[1]] if with_age else []),
        ],
        "rows": rows,
    }
