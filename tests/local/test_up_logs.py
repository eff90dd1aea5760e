"""Where ``zeroserve up`` keeps its logs by default: one directory per run under the
user's XDG state directory, the last few runs only, never removing a running one's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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
    finally:
        run.close()


def _runs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_only_the_last_runs_are_kept(tmp_path: Path) -> None:
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    names = []
    for i in range(KEEP_RUNS + 3):
        run = RunLogs.start(tmp_path, now=base + i * 60, pid=100 + i)
        (run.path / "app.log").write_text("output\n")
        names.append(run.path.name)
        run.close()
    assert _runs(tmp_path) == names[-KEEP_RUNS:]


def test_a_running_runs_directory_is_never_removed_however_old(tmp_path: Path) -> None:
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    running = RunLogs.start(tmp_path, now=base, pid=1)
    try:
        later = []
        for i in range(1, KEEP_RUNS + 2):
            run = RunLogs.start(tmp_path, now=base + i * 60, pid=1 + i)
            later.append(run.path.name)
            run.close()
        assert running.path.is_dir()
        assert _runs(tmp_path) == sorted([running.path.name, *later[-KEEP_RUNS:]])
    finally:
        running.close()
    # Over: the next run prunes it.
    RunLogs.start(tmp_path, now=base + 3600, pid=99).close()
    assert not running.path.exists()


def test_only_run_directories_are_touched(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "19990101-000000-1.txt").write_text("a file with a run's name")
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    for i in range(KEEP_RUNS + 1):
        RunLogs.start(tmp_path, now=base + i, pid=i + 1).close()
    assert (tmp_path / "notes").is_dir() and (tmp_path / "19990101-000000-1.txt").is_file()


def test_a_run_whose_directory_has_no_lock_is_not_running(tmp_path: Path) -> None:
    stale = tmp_path / "20000101-000000-7"
    stale.mkdir()
    base = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, -1))
    for i in range(KEEP_RUNS):
        RunLogs.start(tmp_path, now=base + i, pid=i + 1).close()
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
