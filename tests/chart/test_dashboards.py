"""The Grafana dashboards (docs/dashboards/, and their copies in the chart): valid
Grafana 10 JSON, querying only series the components export with labels those series
carry, and rendered by the chart as sidecar ConfigMaps only when switched on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.chart.exported import exported, selectors
from tests.chart.helm import CHART, ROOT, Obj, ToolError, render

DOCS = ROOT / "docs" / "dashboards"
FILES = sorted(p.name for p in DOCS.glob("*.json"))
EXPORTED = exported()
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_]\w*)\)$")


def _load(name: str) -> dict[str, Any]:
    return json.loads((DOCS / name).read_text())  # type: ignore[no-any-return]


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold theirs
    return out


def test_the_dashboards_are_there() -> None:
    assert FILES == ["scaling.json", "serving.json"]


def test_the_chart_carries_identical_copies() -> None:
    chart = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert chart == FILES
    for name in FILES:
        assert (CHART / "dashboards" / name).read_bytes() == (DOCS / name).read_bytes(), (
            f"charts/zeroserve/dashboards/{name} differs from docs/dashboards/{name}: "
            "copy docs/dashboards/*.json into the chart"
        )


@pytest.mark.parametrize("name", FILES)
def test_grafana_10_dashboard_with_a_prometheus_datasource_variable(name: str) -> None:
    board = _load(name)
    assert board["schemaVersion"] >= 38  # Grafana 10
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "service", "revision"} <= variables.keys()
    panels = _panels(board)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    graphs = [p for p in panels if p["type"] != "row"]
    assert graphs
    for p in graphs:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"], p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]


def test_uids_differ() -> None:
    assert len({_load(n)["uid"] for n in FILES}) == len(FILES)


def _queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    out = [
        (f"panel {p['title']!r}", t["expr"]) for p in _panels(board) for t in p.get("targets", [])
    ]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            m = _LABEL_VALUES.match(v["definition"])
            assert m, f"variable {v['name']}: expected label_values(selector, label)"
            out.append((f"variable {v['name']}", m["selector"]))
            sel = selectors(m["selector"])
            assert len(sel) == 1 and m["label"] in EXPORTED[sel[0].metric], v["name"]
    return out


@pytest.mark.parametrize("name", FILES)
def test_every_queried_series_is_exported_with_the_labels_matched(name: str) -> None:
    board = _load(name)
    seen = set()
    for where, expr in _queries(board):
        found = selectors(expr)
        assert found, f"{name} {where}: no series in {expr}"
        for s in found:
            assert s.metric in EXPORTED, f"{name} {where}: {s.metric} is exported by no component"
            missing = s.labels - EXPORTED[s.metric]
            assert not missing, f"{name} {where}: {s.metric} has no label {sorted(missing)}"
            seen.add(s.metric)
    # The Knative-named series are what the dashboards are about.
    assert sum(m.startswith(("kn_", "http_server_")) for m in seen) >= 5


@pytest.mark.parametrize(
    "expr, metrics",
    [
        pytest.param(
            'sum by (le, a) (rate(x_bucket{a=~"$v", b="1"}[$__rate_interval]))',
            {"x_bucket": {"a", "b"}},
            id="grouping-range",
        ),
        pytest.param("min(y) / on (a) group_left z", {"y": set(), "z": set()}, id="binary"),
        pytest.param('histogram_quantile(0.9, w{c!~"5.."})', {"w": {"c"}}, id="quantile"),
    ],
)
def test_promql_reader(expr: str, metrics: dict[str, set[str]]) -> None:
    assert {s.metric: set(s.labels) for s in selectors(expr)} == metrics


def _dashboard_maps(objects: list[Obj]) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")
    ]


@pytest.mark.process
def test_off_by_default(default_objects: list[Obj]) -> None:
    assert _dashboard_maps(default_objects) == []


@pytest.mark.process
def test_on_renders_one_sidecar_configmap_per_dashboard(custom_objects: list[Obj]) -> None:
    maps = {o["metadata"]["name"]: o for o in _dashboard_maps(custom_objects)}
    assert sorted(maps) == [f"zeroserve-dashboard-{Path(n).stem}" for n in FILES]
    for name in FILES:
        cm = maps[f"zeroserve-dashboard-{Path(name).stem}"]
        meta = cm["metadata"]
        assert meta["labels"]["grafana_dashboard"] == "1"
        assert meta["labels"]["release"] == "kube-prometheus-stack"  # values-custom.yaml
        assert meta["namespace"] == "monitoring"
        assert meta["annotations"] == {"grafana_folder": "Knative"}
        assert cm["data"] == {f"zeroserve-{name}": (DOCS / name).read_text()}


@pytest.mark.process
def test_on_in_the_release_namespace_by_default(helm: str) -> None:
    maps = _dashboard_maps(render(helm, sets=["dashboards.enabled=true"]))
    assert len(maps) == len(FILES)
    assert {o["metadata"]["namespace"] for o in maps} == {"knative-serving"}


@pytest.mark.process
def test_the_schema_refuses_unknown_dashboard_keys(helm: str) -> None:
    with pytest.raises(ToolError, match="dashboards"):
        render(helm, sets=["dashboards.enable=true"])
