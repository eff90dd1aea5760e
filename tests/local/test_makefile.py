"""The Makefile a new user meets first: ``make`` lists the targets, ``make up`` installs
only what running needs and says nothing of pip's unless the install fails, and a
``make up`` after ``make test`` installs nothing again."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.local.support import ROOT

pytestmark = pytest.mark.process  # runs make

MAKEFILE = ROOT / "Makefile"


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def phony_targets() -> list[str]:
    [line] = [x for x in MAKEFILE.read_text().splitlines() if x.startswith(".PHONY:")]
    return line.split(":", 1)[1].split()


def test_help_is_the_default_goal_and_lists_every_target_once() -> None:
    bare, help_ = make(), make("help")
    assert bare.returncode == 0 and bare.stdout == help_.stdout, bare
    lines = help_.stdout.splitlines()
    assert lines[0] == "make TARGET, where TARGET is one of:"
    listed = {}
    for line in lines[1:]:
        m = re.fullmatch(r"  (\S+) +(\S.*)", line)
        assert m, f"not 'target  description': {line!r}"
        assert m.group(1) not in listed, f"{m.group(1)} listed twice"
        listed[m.group(1)] = m.group(2)
    assert sorted(listed) == sorted(phony_targets())
    assert listed["up"].startswith("run zeroserve locally")


def test_make_up_installs_the_runtime_dependencies_only() -> None:
    up = make("-n", "-B", "up").stdout
    assert "pip install --disable-pip-version-check -e '.'" in up, up
    assert "[dev" not in up and "[bench" not in up, up
    assert up.splitlines()[-1] == ".venv/bin/zeroserve up examples/helloworld.yaml"
    # the test and bench targets still get their extras
    assert "-e '.[dev]'" in make("-n", "-B", "lint").stdout
    assert "-e '.[dev,bench]'" in make("-n", "-B", "bench").stdout


FAKE_PIP = """\
#!/bin/sh
# stands for .venv/bin/python: prints what pip would, fails for the dev extra
echo "pip says: $*"
echo "WARNING: a warning pip -q would still print" >&2
case "$*" in *dev*) exit 1;; esac
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile and pyproject.toml in a directory of their own, with a fake python."""
    shutil.copy(MAKEFILE, tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PIP)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / ".venv").mkdir()
    return tmp_path


def test_the_install_is_quiet_unless_it_fails(project: Path) -> None:
    ok = make("PY=./fakepy", ".venv/.installed-run", cwd=project)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == "installing zeroserve into .venv (log: .venv/install.log)\n"
    log = (project / ".venv" / "install.log").read_text()
    assert "pip says: -m pip install --disable-pip-version-check -e ." in log
    assert "a warning pip -q would still print" in log

    failed = make("PY=./fakepy", ".venv/.installed", cwd=project)
    assert failed.returncode != 0
    assert "pip says: -m pip install --disable-pip-version-check -e .[dev]" in failed.stdout
    assert "a warning pip -q would still print" in failed.stdout
    assert (
        "make: installing zeroserve and its dev tools failed (log: .venv/install.log)"
        in failed.stdout
    )
    assert not (project / ".venv" / ".installed").exists()


def test_make_up_after_the_dev_install_installs_nothing(project: Path) -> None:
    (project / "fakepy").write_text(FAKE_PIP.replace("*dev*", "*nothing*"))
    assert make("PY=./fakepy", ".venv/.installed", cwd=project).returncode == 0
    up = make("-n", "PY=./fakepy", "up", cwd=project)
    assert up.stdout == ".venv/bin/zeroserve up examples/helloworld.yaml\n", up
    # a changed pyproject.toml is installed again
    later = (project / ".venv" / ".installed-run").stat().st_mtime + 10
    os.utime(project / "pyproject.toml", (later, later))
    assert "pip install" in make("-n", "PY=./fakepy", "up", cwd=project).stdout
