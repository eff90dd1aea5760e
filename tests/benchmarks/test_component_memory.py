"""``python -m benchmarks.component_memory`` with 20 revisions: the controller, the
autoscaler and the activator each reach sync against the loaded fake API server and get a
positive memory figure for each N; the copies of the template are the controller's own
steady state (it rewrites none of them). The figures
themselves are read, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]


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
