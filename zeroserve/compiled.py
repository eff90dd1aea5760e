"""The request path's hot modules compiled with mypyc, used only where they were built
from the sources that are there now (docs/http.md, "Compiling the hot path").

``python -m zeroserve.compiled build`` (``make compiled``, which ``make up``, ``make
test`` and the benchmarks run) compiles ``MODULES`` with mypyc into ``build/mypyc`` of
the repository and writes its manifest: each module's extension, and the SHA-256 of
every source of ``PACKAGES`` it was built from (the types it was compiled with come from
all of them). The sources stay what Python imports everywhere else.

``install()`` is the first thing each hop's ``__main__`` does (``python -m queueproxy``,
``python -m activator``). It puts a finder first on ``sys.meta_path`` that loads
``MODULES`` from their extensions, if the manifest is there and every source still has
the hash it was built from; otherwise it changes nothing and the hop runs the same code
as Python (the fallback), saying why in ``status()``. ``ZEROSERVE_PURE_PYTHON=1`` asks
for the fallback; ``ZEROSERVE_COMPILED_DIR`` names another build to use. Nothing else imports the compiled modules: the in-process tests
exercise the sources, and the tests that start hops exercise what ``make`` built.

The core lists component modules here by file name only; it imports none of them.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build" / "mypyc"
MANIFEST = "manifest.json"
PURE_ENV = "ZEROSERVE_PURE_PYTHON"
DIR_ENV = "ZEROSERVE_COMPILED_DIR"  # where install() looks, instead of BUILD_DIR
# The request path's per-exchange code: both fast paths, the upstream pool and response
# parsing, each hop's handler with its statistics and metrics, and the activator's
# routing, revision table and throttler that pick each request's endpoint. A class
# that mypyc compiles can only be subclassed by compiled classes, hence all three fast
# paths and the metrics' subclasses.
MODULES = (
    "zeroserve/http/fastpath.py",
    "zeroserve/http/upstream.py",
    "zeroserve/stats.py",
    "zeroserve/knmetrics.py",
    "queueproxy/fastpath.py",
    "queueproxy/handler.py",
    "queueproxy/metrics.py",
    "activator/fastpath.py",
    "activator/handler.py",
    "activator/metrics.py",
    "activator/revisions.py",
    "activator/routing.py",
    "activator/stats.py",
    "activator/throttler.py",
)
# What mypyc reads to type the modules (copied beside them for the build).
PACKAGES = ("zeroserve", "queueproxy", "activator")
# mypy's settings for the build; the repository's own are in pyproject.toml, which
# setuptools (under mypyc) would read as project metadata if the build ran there.
MYPY_INI = """[mypy]
python_version = 3.11
ignore_missing_imports = True
check_untyped_defs = True
no_implicit_optional = True
"""

_status = "not installed"


class BuildError(Exception):
    """The build failed; the message says where (mypyc's own output included)."""


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(root: Path) -> dict[str, str]:
    """The SHA-256 of every source of ``PACKAGES`` under ``root``, by relative path: the
    compiled code took the types of everything it uses from them, so a build is used
    only while none has changed (hashing them at a hop's start: about 4 ms)."""
    return {
        str(p.relative_to(root)): _digest(p)
        for pkg in PACKAGES
        for p in sorted((root / pkg).rglob("*.py"))
    }


def toolchain_missing() -> str | None:
    """Why mypyc cannot build here (no C compiler, no Python headers), or None."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "no C compiler (gcc or cc) on PATH: mypyc compiles C"
    headers = Path(sysconfig.get_paths()["include"])
    if not (headers / "Python.h").exists():
        return f"no Python headers ({headers}/Python.h): mypyc's C includes them"
    return None


def build(dest: Path = BUILD_DIR, root: Path = REPO) -> dict[str, object]:
    """Compile ``MODULES`` of ``root`` into ``dest`` (replacing what was there) and write
    the manifest; returns it. The build runs in a scratch copy of ``PACKAGES``, so the
    sources never have an extension beside them."""
    missing = toolchain_missing()
    if missing:
        raise BuildError(missing)
    with tempfile.TemporaryDirectory(prefix="zeroserve-mypyc-") as tmp:
        work = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.so")
        for pkg in PACKAGES:
            shutil.copytree(root / pkg, work / pkg, ignore=ignore)
        (work / "mypy.ini").write_text(MYPY_INI)
        run = subprocess.run(
            [sys.executable, "-m", "mypyc", *MODULES],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise BuildError(f"mypyc exited {run.returncode}:\n{(run.stdout + run.stderr)[-4000:]}")
        groups = sorted(p.name for p in work.glob("*__mypyc.*.so"))
        if len(groups) != 1:
            raise BuildError(f"mypyc left {len(groups)} shared libraries, expected one: {groups}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".mypyc-", dir=dest.parent))
        staged.chmod(0o755)  # (mkdtemp's is 0700: readable by whoever runs the hops)
        try:
            modules: dict[str, dict[str, str]] = {}
            for m in MODULES:
                src = work / m
                (ext,) = src.parent.glob(src.stem + ".*.so")
                (staged / m).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ext, staged / Path(m).parent / ext.name)
                modules[module_name(m)] = {"extension": str(Path(m).parent / ext.name)}
            shutil.copy2(work / groups[0], staged / groups[0])
            manifest: dict[str, object] = {
                "python": sys.implementation.cache_tag,
                "group": {"name": groups[0].split(".")[0], "extension": groups[0]},
                "modules": modules,
                "sources": _sources(work),
            }
            (staged / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            # A hop starting meanwhile sees the old build, none (then pure Python) or
            # the new one, never half of one.
            if dest.exists():
                shutil.rmtree(dest)
            staged.rename(dest)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return manifest


class _Finder(importlib.abc.MetaPathFinder):
    """Finds exactly the compiled modules (and mypyc's shared library) by name."""

    def __init__(self, extensions: dict[str, Path]) -> None:
        self.extensions = extensions

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        ext = self.extensions.get(fullname)
        if ext is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(ext))
        return importlib.util.spec_from_file_location(fullname, ext, loader=loader)


def usable(build_dir: Path = BUILD_DIR, root: Path = REPO) -> tuple[dict[str, Path], str]:
    """The extensions to load by module name, and why: empty with the reason if the
    build is missing, unreadable or incomplete, for another Python, or from other
    sources. Never raises: a hop starts either way."""
    path = build_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        python = manifest["python"]
        modules = {name: build_dir / e["extension"] for name, e in manifest["modules"].items()}
        sources = dict(manifest["sources"])
        group = manifest["group"]
        modules[group["name"]] = build_dir / group["extension"]
    except FileNotFoundError:
        return {}, f"no build in {build_dir} (make compiled)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return {}, f"{path}: unreadable ({type(e).__name__}: {e})"
    if python != sys.implementation.cache_tag:
        return {}, f"{build_dir} was built for {python}"
    if set(modules) - {group["name"]} != {module_name(m) for m in MODULES}:
        return {}, f"{build_dir} holds other modules than these sources compile (make compiled)"
    if not set(MODULES) <= set(sources):
        return {}, f"{build_dir} does not list the sources it was built from (make compiled)"
    missing = sorted(str(ext) for ext in modules.values() if not ext.is_file())
    if missing:
        return {}, f"{build_dir} is incomplete: no {missing[0]} (make compiled)"
    for source, digest in sources.items():
        try:
            same = _digest(root / source) == digest
        except OSError:
            same = False
        if not same:
            return {}, f"{source} changed since {build_dir} was built (make compiled)"
    return modules, f"compiled: {len(modules) - 1} modules from {build_dir}"


def plan(env: Mapping[str, str] | None = None) -> tuple[dict[str, Path], str]:
    """What ``install`` would load, by module name, and why; loads nothing. Raises
    ``ValueError`` naming ``ZEROSERVE_PURE_PYTHON`` if it is set to something other
    than 0 or 1."""
    env = os.environ if env is None else env
    value = env.get(PURE_ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{PURE_ENV}={value!r}: expected 1 (pure Python) or 0")
    if value == "1":
        return {}, f"pure Python ({PURE_ENV}=1)"
    return usable(Path(env.get(DIR_ENV) or BUILD_DIR))


def runs_compiled(pid: int, extensions: Mapping[str, Path]) -> bool:
    """Whether process ``pid`` has one of ``extensions`` (``plan()``'s) mapped, that is,
    whether it took the build: the check from outside that a hop did (Linux's
    ``/proc/PID/maps``; False if it cannot be read)."""
    paths = {str(p.resolve()) for p in extensions.values()}
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    for line in maps.splitlines():
        fields = line.split(None, 5)  # address perms offset dev inode [path]
        if len(fields) == 6 and fields[5] in paths:
            return True
    return False


def install(env: Mapping[str, str] | None = None) -> bool:
    """Load ``MODULES`` compiled from now on, if they are built from these sources (in
    ``ZEROSERVE_COMPILED_DIR``, else ``BUILD_DIR``) and not refused by
    ``ZEROSERVE_PURE_PYTHON`` (``plan``); True if so. Call it before anything imports
    one of ``MODULES``: a process that did stays pure Python."""
    global _status
    extensions, why = plan(env)
    loaded = [module_name(m) for m in MODULES if module_name(m) in sys.modules]
    if extensions and loaded:
        _status = f"pure Python (imported before install: {', '.join(loaded)})"
        return False
    _status = why
    if not extensions:
        return False
    sys.meta_path.insert(0, _Finder(extensions))
    return True


def install_or_exit(prog: str) -> None:
    """``install()`` as the first statement of a hop's ``__main__``: a bad
    ``ZEROSERVE_PURE_PYTHON`` ends the process with status 1 and one line on stderr
    naming it, after ``prog``."""
    try:
        install()
    except ValueError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(1)


def status() -> str:
    """What ``install`` decided, for the hop's startup log."""
    return _status


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"] or len(argv) > 2:
        print("usage: python -m zeroserve.compiled build [DIR]", file=sys.stderr)
        return 2
    dest = Path(argv[1]) if len(argv) == 2 else BUILD_DIR
    try:
        manifest = build(dest)
    except BuildError as e:
        print(f"zeroserve.compiled: {e}", file=sys.stderr)
        return 1
    modules = manifest["modules"]
    assert isinstance(modules, dict)
    print(f"compiled {len(modules)} modules into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
