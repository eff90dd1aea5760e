"""The run journal: what a run made is undone when it stops, or by the next run when it
was killed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from zeroserve.local.sandbox.state import RunState, clean_stale


async def test_undo_removes_what_was_recorded_newest_first_and_the_run_dir(
    tmp_path: Path,
) -> None:
    state = RunState.create(tmp_path / "runs")
    made = tmp_path / "a" / "b"
    for p in (tmp_path / "a", made):
        state.record("mkdir", str(p))
        p.mkdir()
    state.record("mkfile", str(made / "f"))
    (made / "f").touch()
    kept = tmp_path / "kept"
    state.record("mkdir", str(kept))
    kept.mkdir()
    (kept / "not ours").write_text("x")  # something else wrote here: left alone
    done = await state.undo()
    assert done == [f"mkfile {made / 'f'}", f"mkdir {made}", f"mkdir {tmp_path / 'a'}"]
    assert not (tmp_path / "a").exists() and kept.exists()
    assert not state.dir.exists()


async def test_forgotten_entries_are_not_undone(tmp_path: Path) -> None:
    state = RunState.create(tmp_path / "runs")
    d = tmp_path / "d"
    state.record("mkdir", str(d))
    d.mkdir()
    state.forget("mkdir", str(d))
    assert state.entries() == []
    assert await state.undo() == []
    assert d.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.process
async def test_clean_stale_undoes_runs_whose_owner_is_gone_only(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    live = RunState.create(root)  # this process: alive
    dead = RunState.create(root)
    reused = RunState.create(root)
    for state, owner in ((dead, _dead_pid()), (reused, None)):
        info = json.loads((state.dir / "owner.json").read_text())
        if owner is not None:
            info["pid"] = owner
        else:
            info["starttime"] = "1"  # our pid, but another process's start time
        (state.dir / "owner.json").write_text(json.dumps(info))
    paths = {}
    for name, state in (("live", live), ("dead", dead), ("reused", reused)):
        paths[name] = tmp_path / name
        state.record("mkdir", str(paths[name]))
        paths[name].mkdir()
    removed = await clean_stale(root)
    assert sorted(removed) == sorted([f"mkdir {paths['dead']}", f"mkdir {paths['reused']}"])
    assert paths["live"].exists() and live.dir.exists()
    assert not dead.dir.exists() and not reused.dir.exists()
    await live.undo()


async def test_a_line_cut_by_a_crash_is_skipped(tmp_path: Path) -> None:
    state = RunState.create(tmp_path / "runs")
    d = tmp_path / "d"
    state.record("mkdir", str(d))
    d.mkdir()
    with state.journal.open("a") as f:
        f.write('{"kind": "mkd')
    assert state.entries() == [("mkdir", str(d))]
    await state.undo()
    assert not d.exists()
