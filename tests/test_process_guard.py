"""The guard that keeps the ``process`` mark true (:mod:`tests.support.process_guard`).

The inner sessions run in this process (``runpytest_inprocess``) with a guard of their
own. They raise the guard's two signals without starting anything: ``sys.audit`` raises
the very event ``subprocess.Popen`` raises, and ``PyOS_BeforeFork`` /
``PyOS_AfterFork_Parent`` are the calls uvloop wraps around its fork. The last test
checks, with real processes, that both kinds of spawn still reach the guard.
"""

from __future__ import annotations

import pytest

from tests.support.process_guard import ProcessGuard, describe

INI = """
[pytest]
markers =
    process: starts a process
asyncio_default_fixture_loop_scope = function
"""

SIGNALS = """
import ctypes
import sys

import pytest


def popen_event():
    sys.audit("subprocess.Popen", "/bin/helm", ["/bin/helm", "template", "."], None, None)


def uvloop_fork_hooks():
    ctypes.pythonapi.PyOS_BeforeFork()
    ctypes.pythonapi.PyOS_AfterFork_Parent()


@pytest.fixture(scope="session")
def rendered():
    sys.audit("os.posix_spawn", "/bin/helm", ["/bin/helm", "template"], {})
    return "objects"
"""


@pytest.mark.parametrize(
    ("event", "args", "line"),
    [
        (
            "subprocess.Popen",
            ("/bin/helm", ["helm", "template", ".", "--namespace", "x"], None, None),
            "subprocess.Popen: helm template . --namespace",
        ),
        ("os.posix_spawn", ("/bin/true", ("true",), {}), "os.posix_spawn: true"),
        ("os.exec", ("/bin/sh", ["sh", "-c", "exit"], {}), "os.exec: sh -c exit"),
        ("os.system", (b"make tools",), "os.system: b'make tools'"),
        ("os.fork", (), "os.fork"),
    ],
    ids=["popen", "posix_spawn", "exec", "system", "fork"],
)
def test_a_spawn_is_described_by_its_command(
    event: str, args: tuple[object, ...], line: str
) -> None:
    assert describe(event, args) == line


def test_an_unmarked_test_that_starts_a_process_fails(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_guarded=SIGNALS
        + """

def test_popen_unmarked():
    popen_event()


@pytest.mark.process
def test_popen_marked():
    popen_event()


def test_uvloop_spawn_unmarked():
    uvloop_fork_hooks()


@pytest.mark.process
def test_uvloop_spawn_marked():
    uvloop_fork_hooks()


def test_no_process():
    assert sum([1, 2]) == 3  # pure work: the guard has nothing to say


@pytest.mark.process
def test_fixture_first_use(rendered):
    assert rendered


def test_fixture_reused_unmarked(rendered):
    assert rendered


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("the fixture's own teardown error")


def test_spawn_and_a_teardown_error(broken_teardown):
    popen_event()
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=[ProcessGuard()])

    result.assert_outcomes(passed=8, errors=4)
    errors = [
        line.split("::")[1].split()[0] for line in result.outlines if line.startswith("ERROR ")
    ]
    assert errors == [
        "test_popen_unmarked",
        "test_uvloop_spawn_unmarked",
        "test_fixture_reused_unmarked",
        "test_spawn_and_a_teardown_error",
    ]
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_popen_unmarked*",
            "*test_popen_unmarked starts a process but is not marked `process`: add"
            " `pytestmark = pytest.mark.process`*Seen: subprocess.Popen: /bin/helm template .",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*test_uvloop_spawn_unmarked starts a process but is not marked `process`*"
            "Seen: fork through PyOS_BeforeFork*",
        ]
    )
    # the fixture ran for the first (marked) test; the second only reused its value
    result.stdout.fnmatch_lines(
        [
            "*test_fixture_reused_unmarked starts a process but is not marked `process`*"
            "Seen: fixture 'rendered' started one (os.posix_spawn: /bin/helm template)",
        ]
    )
    # a teardown that fails on its own keeps its error, with the guard's as a note
    result.stdout.fnmatch_lines(
        [
            "*RuntimeError: the fixture's own teardown error",
            "*test_spawn_and_a_teardown_error starts a process but is not marked `process`*",
        ],
        consecutive=True,
    )


@pytest.mark.process
def test_real_spawns_reach_the_guard(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_real="""
import asyncio
import subprocess

import uvloop


def test_subprocess_run():
    subprocess.run(["true"], check=True)


def test_uvloop_subprocess_exec():
    async def spawn():
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0

    uvloop.run(spawn())
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=[ProcessGuard()])

    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_subprocess_run starts a process*Seen: subprocess.Popen: true*",
            "*test_uvloop_subprocess_exec starts a process*Seen: fork through PyOS_BeforeFork*",
        ]
    )
