"""Where ``zeroserve up`` keeps its logs by default: one directory per run under the
user's XDG state directory, the last few runs only, never removing a running one's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.support import ROOT, up_env
from zeroserve.local.up import KEEP_RUNS, RunLogs, Up, UpError, UpOptions, logs_root


def test_the_root_is_the_xdg_state_directory_else_under_home(tmp_path: Path) -> None:
    assert logs_root({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "zeroserve" / "logs"
    home = Path.home() / ".local" / "state" / "zeroserve" / "logs"
    assert logs_root({}) == home
    # The XDG spec: a relative path is invalid and ignored.
    assert logs_root({"XDG_STATE_HOME": "relative/state"}) == home


def test_a_run_gets_a_directory_named_by_its_start_time_and_pid(tmp_path: Path) -> None:
    start = time.mktime((2026, 12, 5, 16, 52, 11, 0, 0, -1))
    run = RunLogs.start(tmp_path, now=start, pid=4242)
    try:
        assert run.path == tmp_path / "20261205-165211-4242"
        assert run.path.is_dir()
        (run.path / "autoscaler.log").write_text("started\n")
    finally:
        run.close()
    assert (run.path / "autoscaler.log").is_file()  # kept after the run


def test_a_run_that_logged_nothing_leaves_no_directory(tmp_path: Path) -> None:
    run = RunLogs.start(tmp_path)
    assert run.path.is_dir()
    run.close()
    assert list(tmp_path.iterdir()) == []


def _runs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def finished_run(root: Path, now: float, pid: int) -> Path:
    """The directory of a run that logged something and is over."""
    run = RunLogs.start(root, now=now, pid=pid)
    (run.path / "app.log").write_text("output\n")
    run.close()
    return run.path


def test_only_the_last_runs_are_kept(tmp_path: Path) -> None:
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    names = [finished_run(tmp_path, base + i * 60, 100 + i).name for i in range(KEEP_RUNS + 3)]
    assert _runs(tmp_path) == names[-KEEP_RUNS:]


def test_a_running_runs_directory_is_never_removed_however_old(tmp_path: Path) -> None:
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    running = RunLogs.start(tmp_path, now=base, pid=1)
    (running.path / "app.log").write_text("still going\n")
    try:
        later = [finished_run(tmp_path, base + i * 60, 1 + i).name for i in range(1, KEEP_RUNS + 2)]
        assert running.path.is_dir()
        assert _runs(tmp_path) == sorted([running.path.name, *later[-KEEP_RUNS:]])
    finally:
        running.close()
    # Over: the next run prunes it.
    finished_run(tmp_path, base + 3600, 99)
    assert not running.path.exists()


def test_only_run_directories_are_touched(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "19990101-000000-1.txt").write_text("a file with a run's name")
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    for i in range(KEEP_RUNS + 1):
        finished_run(tmp_path, base + i, i + 1)
    assert (tmp_path / "notes").is_dir() and (tmp_path / "19990101-000000-1.txt").is_file()


def test_a_run_whose_directory_has_no_lock_is_not_running(tmp_path: Path) -> None:
    stale = tmp_path / "20000101-000000-7"
    stale.mkdir()
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    for i in range(KEEP_RUNS):
        finished_run(tmp_path, base + i, i + 1)
    assert not stale.exists()


def test_up_uses_a_run_directory_by_default_and_logs_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    up = Up(UpOptions(standby_queue_proxies=0))
    assert up.log_dir.parent == tmp_path / "state" / "zeroserve" / "logs"
    assert up.log_dir.name.endswith(f"-{os.getpid()}")
    assert up.run_logs is not None
    up.run_logs.close()
    chosen = tmp_path / "mine"
    assert Up(UpOptions(log_dir=chosen, standby_queue_proxies=0)).log_dir == chosen
    assert chosen.is_dir()


def test_a_log_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UpError, match=r"^--logs .*/file/logs: Not a directory$"):
        Up(UpOptions(log_dir=blocker / "logs"))
    with pytest.raises(UpError, match=r"cannot make the log directory .*--logs DIR"):
        RunLogs.start(blocker)


@pytest.mark.process
def test_up_says_so_when_its_log_directory_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = subprocess.run(
        [sys.executable, "-m", "zeroserve.cli", "up", "--port", "0", "--logs", str(blocker / "x")],
        env=up_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == f"zeroserve up: --logs {blocker / 'x'}: Not a directory\n"
