"""What a container's process does before exec: cgroup, network namespace, mounts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zeroserve.local.sandbox.enter import Mount, ensure_mountpoint, preexec
from zeroserve.local.sandbox.state import RunState

from .conftest import root_only, volume_and_targets

pytestmark = pytest.mark.process


def _run(code: str, fn: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, preexec_fn=fn
    )  # type: ignore[call-overload]


def test_the_pid_is_written_to_each_cgroup_procs_file(tmp_path: Path) -> None:
    files = [tmp_path / "memory.procs", tmp_path / "cpu.procs"]
    for f in files:
        f.touch()
    out = _run("import os; print(os.getpid())", preexec(cgroup_procs=[str(f) for f in files]))
    assert [f.read_text() for f in files] == [out.stdout.strip()] * 2


@root_only
def test_a_bind_mount_is_seen_by_the_child_only_and_read_only_where_asked(
    tmp_path: Path,
) -> None:
    volume, rw, ro = volume_and_targets(tmp_path)
    code = (
        "import sys\n"
        f"print(open('{rw}/key').read())\n"
        f"open('{rw}/new', 'w').write('x')\n"
        "try:\n"
        f"    open('{ro}/nope', 'w')\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
    )
    mounts = [Mount(str(volume), str(rw)), Mount(str(volume), str(ro), read_only=True)]
    out = _run(code, preexec(mounts=mounts))
    assert out.stdout.split() == ["value", "30"], out.stderr  # 30: EROFS
    assert (volume / "new").exists()  # written through the read-write mount
    assert list(rw.iterdir()) == [] and list(ro.iterdir()) == []  # the host sees no mount


@root_only
def test_a_process_joins_a_real_memory_cgroup(tmp_path: Path) -> None:
    base = Path("/sys/fs/cgroup/memory")
    if not base.is_dir():
        pytest.skip("no cgroup v1 memory hierarchy on this machine")
    cg = base / f"zs-test-{tmp_path.name[-12:]}"
    cg.mkdir()
    try:
        code = "import os; print(open(f'/proc/{os.getpid()}/cgroup').read())"
        out = _run(code, preexec(cgroup_procs=[str(cg / "cgroup.procs")]))
        assert f"memory:/{cg.name}" in out.stdout, out.stdout
    finally:
        cg.rmdir()


async def test_missing_mount_points_are_made_journaled_and_undone(tmp_path: Path) -> None:
    state = RunState.create(tmp_path / "runs")
    target = tmp_path / "etc" / "creds" / "password"
    ensure_mountpoint(str(target), is_file=True, state=state)
    assert target.is_file() and target.stat().st_size == 0
    assert state.entries() == [
        ("mkdir", str(tmp_path / "etc")),
        ("mkdir", str(tmp_path / "etc" / "creds")),
        ("mkfile", str(target)),
    ]
    ensure_mountpoint(str(tmp_path), is_file=False, state=state)  # exists: nothing recorded
    assert len(state.entries()) == 3
    await state.undo()
    assert not (tmp_path / "etc").exists()
