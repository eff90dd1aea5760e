"""``python -m queueproxy --standby`` (queueproxy/standby.py): started ahead, it waits for
its environment on stdin, then is the queue-proxy that environment describes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from queueproxy.standby import AssignmentError, parse_assignment, replace_environment
from tests.support.apps import run_app
from tests.support.procs import qp_env, stop_process

STANDBY = [sys.executable, "-m", "queueproxy", "--standby"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"log": "/x"}', "env: must be an object of strings"),
        ('{"env": {"A": 1}}', "env: must be an object of strings"),
        ('{"env": {}, "log": ""}', "log: must be a non-empty string"),
        ('{"env": {}, "netns": 7}', "netns: must be a non-empty string"),
        ('{"env": {}, "nets": "/run/netns/x"}', "unknown field 'nets'"),
    ],
)
def test_a_bad_assignment_is_refused_naming_the_field(line: str, error: str) -> None:
    with pytest.raises(AssignmentError, match=error):
        parse_assignment(line)


def test_an_assignment_gives_env_log_and_netns() -> None:
    line = json.dumps({"env": {"A": "1"}, "log": "/tmp/q.log", "netns": None})
    assert parse_assignment(line) == ({"A": "1"}, "/tmp/q.log", None)


async def _standby(stderr: Path) -> asyncio.subprocess.Process:
    with stderr.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *STANDBY,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=qp_env(1),  # what it starts with does not matter: the assignment replaces it
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert json.loads(line) == {"queue_proxy": "standby"}, stderr.read_text()
    return proc


async def _assign(proc: asyncio.subprocess.Process, assignment: object) -> bytes:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(assignment).encode() + b"\n")
    await proc.stdin.drain()
    proc.stdin.close()
    return await asyncio.wait_for(proc.stdout.readline(), 30)


def test_the_environment_becomes_exactly_the_assignment_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZS_TEST_KEPT", "same")
    monkeypatch.setenv("ZS_TEST_CHANGED", "before")
    monkeypatch.setenv("ZS_TEST_GONE", "x")
    wanted = {"ZS_TEST_KEPT": "same", "ZS_TEST_CHANGED": "after", "ZS_TEST_NEW": "n"}
    saved = dict(os.environ)
    try:
        replace_environment(wanted)
        assert dict(os.environ) == wanted
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.process
async def test_an_assigned_standby_serves_with_the_given_env_and_logs_to_the_given_file(
    tmp_path: Path,
) -> None:
    before, log = tmp_path / "standby.log", tmp_path / "replica-queue-proxy.log"
    async with run_app() as (app_port, state):
        proc = await _standby(before)
        try:
            env = qp_env(app_port, SERVING_REVISION="standby-00001")
            line = await _assign(proc, {"env": env, "log": str(log)})
            info = json.loads(line)
            assert info["queue_proxy"] == "listening", log.read_text()
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{info['serving_port']}/hello")
                assert r.status_code == 200
                assert state.requests == 1
                metrics = await client.get(f"http://127.0.0.1:{info['user_metrics_port']}/metrics")
            # its identity is the assignment's, not what it was started with
            assert 'revision_name="standby-00001"' in metrics.text
        finally:
            assert await stop_process(proc) == 0
    # from the assignment on, its log is the replica's
    assert "revision default/standby-00001: serving" in log.read_text()
    assert "serving" not in before.read_text()


@pytest.mark.process
async def test_a_standby_whose_stdin_ends_exits_quietly(tmp_path: Path) -> None:
    proc = await _standby(tmp_path / "standby.log")
    assert proc.stdin is not None
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert (tmp_path / "standby.log").read_text() == ""


@pytest.mark.process
@pytest.mark.parametrize(
    ("assignment", "error"),
    [
        ({"env": {}, "nets": "x"}, "the assignment on stdin: unknown field 'nets'"),
        ({"env": {}, "log": "/nonexistent/dir/q.log"}, "log /nonexistent/dir/q.log:"),
        ({"env": {}}, "required environment variable is not set"),
    ],
    ids=["bad-field", "log-unwritable", "env-incomplete"],
)
async def test_an_assignment_it_cannot_apply_ends_it_with_the_reason(
    tmp_path: Path, assignment: dict[str, object], error: str
) -> None:
    stderr = tmp_path / "standby.log"
    proc = await _standby(stderr)
    assert await _assign(proc, assignment) == b""
    assert await asyncio.wait_for(proc.wait(), 30) == 1
    assert error in stderr.read_text()


@pytest.mark.process
async def test_unknown_arguments_are_refused() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queueproxy", "--stand-by", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"unknown arguments ['--stand-by'] (only --standby)" in err
