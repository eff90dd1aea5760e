"""Import layering (docs/README.md, "Layering"): components never import each other; only
the modules of the zeroserve/kube/ package import kubernetes_asyncio; the queue-proxy stays
light; no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("activator", "queueproxy", "autoscaler", "controller")
# The package whose modules (and only those) may import kubernetes_asyncio.
KUBE_PACKAGE = ROOT / "zeroserve" / "kube"


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


def test_only_modules_of_the_kube_package_import_kubernetes_asyncio() -> None:
    users = [
        str(p.relative_to(ROOT))
        for pkg in ("zeroserve", *COMPONENTS)
        for p in _modules(pkg)
        if "kubernetes_asyncio" in _imports(p) and not p.is_relative_to(KUBE_PACKAGE)
    ]
    assert users == [], users


def test_queueproxy_imports_neither_kubernetes_nor_autoscaler_nor_aiohttp() -> None:
    for path in _modules("queueproxy"):
        bad = _imports(path) & {"kubernetes_asyncio", "autoscaler", "aiohttp"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.process
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


# ----- no import cycles ------------------------------------------------------------------

PACKAGES = ("zeroserve", *COMPONENTS, "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports, TYPE_CHECKING imports included.

    ``from pkg import name`` depends on ``pkg`` (its ``__init__`` runs first) and, when
    ``name`` is a submodule, on ``pkg.name`` too; an import of a module that is not the
    project's own is left out."""
    paths = {_module_name(p): p for pkg in PACKAGES for p in _modules(pkg)}

    def own(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".")[: None if is_package else -1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            targets.update(t for n in names if (t := own(n)) is not None and t != mod)
        graph[mod] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p.a"}}
    assert _cycles(graph) == [["p", "p.a", "p.b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_the_projects_modules() -> None:
    graph = _import_graph()
    assert "zeroserve.http.server" in graph  # the graph is really built
    assert _cycles(graph) == []
