"""A manifest without objects is an error wherever a file is taken: ``apply -f``,
``delete -f`` and ``zeroserve up FILE`` (on stderr, exit 1, nothing started)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local.support import ROOT, up_env
from tests.local.test_access import TOKEN, control_api
from zeroserve import cli

NO_OBJECTS = "no objects in the manifest (it is empty, or only comments and '---')"


@pytest.mark.parametrize("command", ["apply", "delete"])
async def test_apply_and_delete_of_an_empty_file_fail_on_stderr(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n---\n")
    async with control_api(tmp_path) as (_, url):
        argv = [command, "-f", str(empty), "--server", url, "--token", TOKEN]
        assert await asyncio.to_thread(cli.main, argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{empty}: {NO_OBJECTS}" in err, err


@pytest.mark.process
def test_up_with_an_empty_file_starts_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    env = {**up_env(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    p = subprocess.run(
        [sys.executable, "-m", "zeroserve.cli", "up", str(empty), "--port", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.returncode, p.stdout, p.stderr) == (1, "", f"{empty}: {NO_OBJECTS}\n")
    assert list((tmp_path / "run").rglob("control-*.json")) == []
