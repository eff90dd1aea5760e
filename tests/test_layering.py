"""Import layering (STYLE.md): components never import each other; only one
module of zeroserve imports kubernetes_asyncio; the queue-proxy stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("activator", "queueproxy", "autoscaler", "controller")
# The one module allowed to import kubernetes_asyncio (created with the
# Kubernetes adapter; until then no module may import it at all).
KUBE_MODULE = "zeroserve/kube.py"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("component", COMPONENTS)
def test_components_do_not_import_each_other(component: str) -> None:
    others = set(COMPONENTS) - {component}
    for path in _modules(component):
        bad = _imports(path) & others
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_core_imports_no_component() -> None:
    for path in _modules("zeroserve"):
        bad = _imports(path) & set(COMPONENTS)
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_one_module_imports_kubernetes_asyncio() -> None:
    users = [
        str(p.relative_to(ROOT))
        for pkg in ("zeroserve", *COMPONENTS)
        for p in _modules(pkg)
        if "kubernetes_asyncio" in _imports(p)
    ]
    assert set(users) <= {KUBE_MODULE}, users


def test_queueproxy_imports_neither_kubernetes_nor_autoscaler_nor_aiohttp() -> None:
    for path in _modules("queueproxy"):
        bad = _imports(path) & {"kubernetes_asyncio", "autoscaler", "aiohttp"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_queueproxy_process_loads_no_heavy_module() -> None:
    # What actually gets imported at start, transitively: the sidecar runs in
    # every replica, so its start time and memory count on every cold start.
    code = (
        "import sys, queueproxy.app, queueproxy.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kubernetes_asyncio', 'aiohttp', 'autoscaler', 'activator', 'httpx', 'yaml')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
