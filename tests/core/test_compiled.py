"""zeroserve/compiled.py: the hot modules compiled with mypyc are loaded only when they
were built from the sources that are there, and only by a process that asks first.

The decisions are tested on manifests written here; the build itself, and processes
that load it, once per module (``built``: the repository's build when it is current,
else about 35 s of gcc)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zeroserve import compiled

SOURCES = compiled._sources(compiled.REPO)


def _manifest(tmp: Path, **changes: object) -> Path:
    """A manifest of a build in ``tmp`` of the current sources, with ``changes``."""
    modules = {
        compiled.module_name(m): {"extension": m.removesuffix(".py") + ".so"}
        for m in compiled.MODULES
    }
    manifest: dict[str, object] = {
        "python": sys.implementation.cache_tag,
        "group": {"name": "abc__mypyc", "extension": "abc__mypyc.so"},
        "modules": modules,
        "sources": SOURCES,
        **changes,
    }
    (tmp / compiled.MANIFEST).write_text(json.dumps(manifest))
    return tmp


def _extensions(tmp: Path) -> Path:
    """Empty files where ``_manifest`` says the extensions are (only their presence is
    checked before they are loaded)."""
    for m in compiled.MODULES:
        (tmp / m).parent.mkdir(parents=True, exist_ok=True)
        (tmp / m.removesuffix(".py")).with_suffix(".so").touch()
    (tmp / "abc__mypyc.so").touch()
    return tmp


def test_a_build_of_the_current_sources_is_used_module_by_module(tmp_path: Path) -> None:
    extensions, why = compiled.usable(_manifest(_extensions(tmp_path)))
    assert why.startswith(f"compiled: {len(compiled.MODULES)} modules")
    assert extensions["zeroserve.http.fastpath"] == tmp_path / "zeroserve/http/fastpath.so"
    assert extensions["abc__mypyc"] == tmp_path / "abc__mypyc.so"
    assert len(extensions) == len(compiled.MODULES) + 1


def test_no_build_is_pure_python_saying_so(tmp_path: Path) -> None:
    assert compiled.usable(tmp_path) == ({}, f"no build in {tmp_path} (make compiled)")


@pytest.mark.parametrize("source", ["zeroserve/stats.py", "zeroserve/http/exchange.py"])
def test_a_source_changed_since_the_build_is_pure_python_naming_it(
    tmp_path: Path, source: str
) -> None:
    # a compiled module's own source, or one it took types from
    _manifest(_extensions(tmp_path), sources={**SOURCES, source: "0" * 64})
    extensions, why = compiled.usable(tmp_path)
    assert extensions == {}
    assert why == f"{source} changed since {tmp_path} was built (make compiled)"


def test_a_build_that_does_not_list_its_modules_sources_is_not_used(tmp_path: Path) -> None:
    sources = {k: v for k, v in SOURCES.items() if k != "queueproxy/handler.py"}
    extensions, why = compiled.usable(_manifest(tmp_path, sources=sources))
    assert extensions == {} and "does not list the sources" in why


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"python": "cpython-39"}, "was built for cpython-39"),
        ({"modules": {}}, "holds other modules than these sources compile"),
    ],
)
def test_a_build_for_another_python_or_other_modules_is_not_used(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    extensions, why = compiled.usable(_manifest(tmp_path, **changes))
    assert extensions == {} and reason in why


@pytest.mark.parametrize("text", ["{", "[]", '{"python": "cpython-311"}', '{"modules": 1}'])
def test_an_unreadable_manifest_is_pure_python_naming_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / compiled.MANIFEST).write_text(text)
    extensions, why = compiled.usable(tmp_path)
    assert extensions == {} and why.startswith(f"{tmp_path / compiled.MANIFEST}: unreadable")


def test_a_build_missing_an_extension_is_pure_python_naming_it(tmp_path: Path) -> None:
    _manifest(_extensions(tmp_path))
    (tmp_path / "zeroserve/stats.so").unlink()
    extensions, why = compiled.usable(tmp_path)
    assert extensions == {}
    assert why == f"{tmp_path} is incomplete: no {tmp_path / 'zeroserve/stats.so'} (make compiled)"


def test_pure_python_is_asked_for_by_its_variable_and_a_bad_value_names_it() -> None:
    before = list(sys.meta_path)
    assert compiled.install({compiled.PURE_ENV: "1"}) is False
    assert compiled.status() == "pure Python (ZEROSERVE_PURE_PYTHON=1)"
    with pytest.raises(ValueError, match=r"^ZEROSERVE_PURE_PYTHON='yes': expected 1"):
        compiled.install({compiled.PURE_ENV: "yes"})
    assert sys.meta_path == before


def test_a_process_that_imported_a_hot_module_first_stays_pure_python(tmp_path: Path) -> None:
    # This test process imported the sources already (other tests did): even a usable
    # build is not mixed in.
    import zeroserve.stats  # noqa: F401

    before = list(sys.meta_path)
    env = {compiled.DIR_ENV: str(_manifest(_extensions(tmp_path)))}
    assert compiled.install(env) is False
    assert compiled.status().startswith("pure Python (imported before install: ")
    assert "zeroserve.stats" in compiled.status()
    assert sys.meta_path == before


def _module_names(path: Path) -> dict[str, str]:
    """Each name the module binds at its top level by assignment, with its annotation
    ("" for none; "TypeVar" for a type variable)."""
    names: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            value = node.value
            typevar = (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "TypeVar"
            )
            kind = "TypeVar" if typevar else ""
            names.update({t.id: kind for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = ast.unparse(node.annotation)
    return names


def test_every_name_a_compiled_module_binds_is_final() -> None:
    """Compiled, a module-level name that is not Final is looked up in the module's dict
    at each use; a Final one is a C static (docs/http.md, "Compiling the hot path").
    Type aliases say so (TypeAlias); a TypeVar, the logger and ``__all__`` are left."""
    not_final = []
    for m in compiled.MODULES:
        for name, annotation in _module_names(compiled.REPO / m).items():
            kind = annotation.split("[")[0]
            if kind not in ("Final", "TypeAlias", "TypeVar") and name not in ("log", "__all__"):
                not_final.append(f"{m}: {name}")
    assert not_final == []


def test_the_command_names_its_usage() -> None:
    assert compiled.main([]) == 2
    assert compiled.main(["build", "a", "b"]) == 2


# -- the build, and processes that load it ---------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The repository's build when it is that of these sources (``make test`` made it
    with ``make compiled``, which runs ``compiled.build``); else this test's own. No
    test here changes the build."""
    missing = compiled.toolchain_missing()
    if missing:
        pytest.skip(missing)
    if compiled.usable(compiled.BUILD_DIR)[0]:
        yield compiled.BUILD_DIR
        return
    dest = tmp_path_factory.mktemp("mypyc") / "build"
    compiled.build(dest)
    yield dest


def _python(
    code: str, env: dict[str, str], cwd: Path = compiled.REPO
) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter, with ``env`` for this process's ZEROSERVE_*."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ZEROSERVE_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**full, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_REPORT = """
import importlib, json
from zeroserve import compiled
ok = compiled.install()
files = {m: importlib.import_module(compiled.module_name(m)).__file__ for m in compiled.MODULES}
import queueproxy.app  # (not compiled)
files["queueproxy/app.py"] = queueproxy.app.__file__
print(json.dumps({"ok": ok, "status": compiled.status(), "root": str(compiled.REPO), "files": files}))
"""


def test_a_process_runs_the_build_only_if_one_of_its_extensions_is_mapped(
    tmp_path: Path,
) -> None:
    import uvloop.loop  # an extension this process has mapped

    mapped = Path(str(uvloop.loop.__file__))
    assert compiled.runs_compiled(os.getpid(), {"uvloop.loop": mapped})
    assert compiled.runs_compiled(os.getpid(), {"x": tmp_path / "no.so", "uvloop.loop": mapped})
    (tmp_path / "x.so").write_bytes(b"")
    assert not compiled.runs_compiled(os.getpid(), {"x": tmp_path / "x.so"})
    assert not compiled.runs_compiled(os.getpid(), {})
    # a process that is not there (pid_max is at most 2**22)
    assert not compiled.runs_compiled(2**22 + 1, {"uvloop.loop": mapped})


@pytest.mark.process
def test_the_build_loads_every_hot_module_from_its_extension(built: Path) -> None:
    manifest = json.loads((built / compiled.MANIFEST).read_text())
    assert set(manifest["modules"]) == {compiled.module_name(m) for m in compiled.MODULES}
    # built in a scratch copy: no extension beside the sources
    assert not list(compiled.REPO.glob("zeroserve/**/*.so"))
    run = _python(_REPORT, {compiled.DIR_ENV: str(built)})
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert (
        got["ok"] is True
        and got["status"] == f"compiled: {len(compiled.MODULES)} modules from {built}"
    )
    for m in compiled.MODULES:
        assert got["files"][m].startswith(str(built)), m
        assert got["files"][m].endswith(".so"), m


_CONNECTIONS = """
import json
import sys
from zeroserve import compiled
assert compiled.install(), compiled.status()
import uvloop
from benchmarks import hoppython

async def main():
    from activator.app import Activator, Settings
    from queueproxy import app, config

    qp = app.QueueProxy(config.Settings.from_env(hoppython.QP_ENV))
    act = Activator(Settings(host="127.0.0.1", port=0, metrics_port=0))
    out = {}
    for name, server in (("queue-proxy", qp.serving), ("activator", act.servers[0])):
        a, b = server.connection(server), server.connection(server)
        out[name] = {
            "class": type(a).__module__ + "." + type(a).__name__,
            "file": sys.modules[type(a).__module__].__file__,
            "off": sorted(a.off_statuses),
            "shared": a.off_statuses is b.off_statuses,
        }
    print(json.dumps(out))

uvloop.run(main())
"""


@pytest.mark.process
def test_compiled_fast_connections_share_their_class_constants(built: Path) -> None:
    # Held requests cost 0.3 KiB more compiled: an instance attribute's frozenset
    # default was built anew by every connection (benchmarks/suite/held.py measured it).
    run = _python(_CONNECTIONS, {compiled.DIR_ENV: str(built)})
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["queue-proxy"]["off"] == [204, 304]
    assert got["activator"]["off"] == [204, 304, 502]
    for hop, conn in got.items():
        assert conn["file"].endswith(".so"), (hop, conn)
        assert conn["shared"], (hop, conn)


@pytest.mark.process
def test_sources_installed_from_the_wheel_take_a_build_named_by_its_variable(
    built: Path, tmp_path: Path
) -> None:
    """The image's arrangement (Dockerfile): the packages installed from the wheel, the
    build elsewhere, named by ZEROSERVE_COMPILED_DIR. The wheel holds the same files, so
    the manifest's hashes match the installed copy; an installed file changed since, and
    the hops run the sources."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(compiled.REPO / name, src / name)
    with open(compiled.REPO / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in (pattern.rstrip("*") for pattern in include):
        ignore = shutil.ignore_patterns("__pycache__", "*.so")
        shutil.copytree(compiled.REPO / pkg, src / pkg, ignore=ignore)
    wheels = tmp_path / "wheels"
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)]
    made = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    [wheel] = wheels.glob("zeroserve-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)

    def report() -> dict[str, Any]:
        # from outside the repository: everything comes from the installed copy
        env = {"PYTHONPATH": str(site), compiled.DIR_ENV: str(built)}
        run = _python(_REPORT, env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        got: dict[str, Any] = json.loads(run.stdout)
        return got

    got = report()
    assert got["root"] == str(site)
    assert got["ok"] is True, got["status"]
    assert got["status"] == f"compiled: {len(compiled.MODULES)} modules from {built}"
    for m in compiled.MODULES:
        assert got["files"][m].startswith(str(built)) and got["files"][m].endswith(".so"), m
    assert got["files"]["queueproxy/app.py"] == str(site / "queueproxy" / "app.py")
    # the installed copy is what the build is checked against, not the repository
    with (site / "queueproxy" / "fastpath.py").open("a") as out:
        out.write("# changed\n")
    got = report()
    assert got["ok"] is False
    assert (
        got["status"] == f"queueproxy/fastpath.py changed since {built} was built (make compiled)"
    )
    assert got["files"]["queueproxy/fastpath.py"] == str(site / "queueproxy" / "fastpath.py")


@pytest.mark.process
def test_with_the_build_present_pure_python_is_still_one_variable_away(built: Path) -> None:
    run = _python(_REPORT, {compiled.DIR_ENV: str(built), compiled.PURE_ENV: "1"})
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["ok"] is False
    for m in compiled.MODULES:
        assert got["files"][m] == str(compiled.REPO / m), m


@pytest.mark.process
def test_a_hop_started_with_a_bad_value_exits_naming_the_variable() -> None:
    for hop in ("queueproxy", "activator", "benchmarks.activator_runner"):
        run = subprocess.run(
            [sys.executable, "-m", hop],
            env={**os.environ, compiled.PURE_ENV: "maybe"},
            cwd=compiled.REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 1, (hop, run.stderr)
        assert "ZEROSERVE_PURE_PYTHON='maybe': expected 1" in run.stderr, hop
