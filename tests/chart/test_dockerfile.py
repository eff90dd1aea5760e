"""The Dockerfile, read as text (no Docker engine runs here): multi-stage, pinned bases,
a non-root user, nothing fetched by ADD, and the runtime the chart expects."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.chart.helm import ROOT, Obj, only

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        logical += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            op, _, args = logical.strip().partition(" ")
            out.append((op.upper(), args.strip()))
            logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return out


def _parse() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, with ${ARG}s in FROM resolved."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for op, rest in _instructions(DOCKERFILE.read_text()):
        if op == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base, name))
        elif not stages:
            assert op == "ARG", f"only ARG may come before the first FROM, got {op}"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


ARGS, STAGES = _parse()


def test_multi_stage() -> None:
    assert [s.name for s in STAGES] == ["builder", "runtime"]
    runtime = STAGES[-1]
    copies = runtime.all("COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    # The runtime installs nothing itself: no RUN at all.
    assert runtime.all("RUN") == []


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_bases_are_pinned_python_311_slim(stage: Stage) -> None:
    image, _, tag = stage.base.partition(":")
    assert image == "python" and tag and tag != "latest"
    assert tag.startswith("3.11") and "slim" in tag
    assert STAGES[0].base == STAGES[-1].base  # the venv moves between identical interpreters


def test_no_remote_add() -> None:
    for op, rest in _instructions(DOCKERFILE.read_text()):
        assert op != "ADD", f"use COPY (ADD fetches and unpacks): ADD {rest}"
        assert not re.search(r"\b(curl|wget)\b", rest), f"nothing is downloaded outside pip: {rest}"


def test_runtime_user_is_not_root() -> None:
    [user] = STAGES[-1].all("USER")
    uid, _, gid = user.partition(":")
    assert uid == "65532" and gid == "65532"
    # The USER comes after the last COPY, so every later layer runs unprivileged.
    ops = [op for op, _ in STAGES[-1].instructions]
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "COPY")


def test_runtime_command_and_environment() -> None:
    runtime = STAGES[-1]
    [entrypoint] = runtime.all("ENTRYPOINT")
    [cmd] = runtime.all("CMD")
    assert json.loads(entrypoint) == []
    assert json.loads(cmd) == ["python", "-m", "activator"]  # exec form: no shell involved
    env = dict(item.split("=", 1) for line in runtime.all("ENV") for item in shlex.split(line))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem is read-only
    assert env["PATH"].startswith("/opt/venv/bin:")  # `zeroserve` and `python` are the venv's
    assert runtime.all("WORKDIR") == ["/app"]
    assert "examples ./examples" in runtime.all("COPY")  # the sample apps, as revision images


@pytest.mark.process
def test_the_chart_runs_the_image_as_the_image_expects(default_objects: list[Obj]) -> None:
    [user] = STAGES[-1].all("USER")
    for d in only(default_objects, "Deployment"):
        [c] = d["spec"]["template"]["spec"]["containers"]
        assert str(c["securityContext"]["runAsUser"]) == user.split(":")[0]
        assert c["command"][0] in ("python", "zeroserve")  # both on the image's PATH


def test_the_build_context_is_an_allowlist() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = {
        word.rstrip("/")
        for stage in STAGES
        for arg in stage.all("COPY")
        if not arg.startswith("--from=")
        for word in arg.split()[:-1]
    }
    assert sources == allowed  # everything copied is let in, and nothing else
    assert {".venv", ".git", "tests", "benchmarks"}.isdisjoint(allowed)


def test_the_build_copies_every_package_the_distribution_installs() -> None:
    """A component missing from the build context would be missing from the image, and the
    chart's ``python -m <component>`` would fail only on a cluster."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert {"zeroserve", "activator", "autoscaler", "queueproxy", "controller"} <= packages
    copied = {
        arg.split()[0].rstrip("/") for arg in STAGES[0].all("COPY") if not arg.startswith("--from=")
    }
    assert packages <= copied, sorted(packages - copied)


def test_the_hops_run_the_hot_path_compiled_in_the_builder() -> None:
    """The builder compiles the hot path as ``make compiled`` does, with the ``compile``
    extra's pins; the runtime copies the build and names it to every hop
    (tests/core/test_compiled.py: wheel-installed sources take such a build)."""
    builder, runtime = STAGES
    runs = " && ".join(builder.all("RUN"))
    build = re.search(r"python -m zeroserve\.compiled build (\S+)", runs)
    assert build, "the builder does not compile the hot path"
    dest = build.group(1)
    assert re.search(r"apt-get install [^&]*\bgcc\b", runs)  # mypyc compiles C
    assert "python -m pip install --find-links /wheels '.[compile]'" in runs
    # A failed build must not fail the image: the hops run the sources then.
    assert f"mkdir -p {dest}" in runs and "|| echo" in runs[build.start() :]
    assert f"--from=builder {dest} {dest}" in runtime.all("COPY")
    env = dict(item.split("=", 1) for line in runtime.all("ENV") for item in shlex.split(line))
    assert env["ZEROSERVE_COMPILED_DIR"] == dest
    assert runtime.all("RUN") == []  # (gcc and mypyc stay in the builder)
