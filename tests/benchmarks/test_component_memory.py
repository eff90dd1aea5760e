"""``python -m benchmarks.component_memory`` with 20 revisions: the controller, the
autoscaler and the activator each reach sync against the loaded fake API server and get a
positive memory figure for each N; the copies of the template are the controller's own
steady state (it rewrites none of them). The figures
themselves are read, never asserted."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.process
@pytest.mark.timeout(90)
def test_each_component_syncs_and_gets_a_figure_per_revision_count(tmp_path: Path) -> None:
    figures = tmp_path / "memory.json"
    report = tmp_path / "memory.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.component_memory",
            "--revisions",
            "0,20",
            "--per-namespace",
            "10",
            "--running-fraction",
            "0.5",
            "--settle",
            "1",
            "--interval",
            "0.2",
            "--sync-timeout",
            "30",
            "--out",
            str(report),
            "--json",
            str(figures),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(figures.read_text())
    got = {(m["component"], m["revisions"]) for m in results}
    assert got == {(c, n) for c in ("controller", "autoscaler", "activator") for n in (0, 20)}
    for m in results:
        assert m["sync_seconds"] > 0 and m["samples"] >= 3, m
        assert 0 < m["settled_rss_kib"] <= m["peak_rss_kib"], m
    loaded = {m["objects"] for m in results if m["revisions"] == 20}
    # 20 x (Service, Configuration, Route, Revision, Deployment, 3 Services, EndpointSlice,
    # 2 VirtualServices, a NetworkPolicy per namespace) and 10 running Pods, at least.
    assert len(loaded) == 1 and loaded.pop() >= 20 * 10 + 10
    controller = next(m for m in results if m == {**m, "component": "controller", "revisions": 20})
    # The copies are what the controller itself writes in a steady state (names, uids and
    # spec-hashes their own): it rewrites none of the revisions' objects at start.
    assert controller["writes"] is not None and controller["quiet"], controller
    rewritten = [
        k
        for k in controller["writes_by_resource"]
        if k.split()[1].split(".")[0]
        in ("revisions", "deployments", "services", "virtualservices", "routes", "configurations")
    ]
    assert rewritten == [], controller["writes_by_resource"]
    text = report.read_text()
    assert text == done.stdout.strip() + "\n"
    for component in ("controller", "autoscaler", "activator"):
        assert f"| {component} | 20 | " in text


def _mib(quantity: str) -> int:
    number, unit = quantity[:-2], quantity[-2:]
    assert unit in ("Mi", "Gi"), quantity
    return int(number) * (1024 if unit == "Gi" else 1)


def _round_up(mib: float, step: int) -> int:
    return math.ceil(mib / step) * step


def test_the_charts_memory_follows_the_measurement_the_readme_cites() -> None:
    """values.yaml's memory = the rule (request: settled RSS at 1,000 revisions rounded up
    to 64Mi; limit: twice the peak at 10,000 rounded up to 256Mi) applied to the report
    that the README's "Production checklist" cites."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Production checklist\n", 1)[1].split("\n## ", 1)[0]
    [report] = re.findall(r"benchmarks/results/(memory-[0-9-]+\.md)", section)
    rows = [
        line.strip("|").split("|")
        for line in (ROOT / "benchmarks" / "results" / report).read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| component")
    ]
    header = next(
        line.strip("|").split("|")
        for line in (ROOT / "benchmarks" / "results" / report).read_text().splitlines()
        if line.startswith("| component")
    )
    col = {name.strip(): i for i, name in enumerate(header)}
    figures = {
        (r[0].strip(), int(r[col["revisions"]].replace(",", ""))): r for r in rows if len(r) > 5
    }
    values = yaml.safe_load((ROOT / "charts" / "zeroserve" / "values.yaml").read_text())
    for component in ("controller", "autoscaler", "activator"):
        settled = float(figures[(component, 1000)][col["settled RSS MiB"]])
        peak = float(figures[(component, 10000)][col["peak RSS MiB"]])
        memory = {
            kind: _mib(values[component]["resources"][kind]["memory"])
            for kind in ("requests", "limits")
        }
        assert memory == {
            "requests": _round_up(settled, 64),
            "limits": _round_up(2 * peak, 256),
        }, component
        # and the README's table shows the same figures
        assert re.search(
            rf"^  \| {component} \| [^|]+ \| {settled:.0f} \| {peak:.0f}\b", section, re.M
        ), component
