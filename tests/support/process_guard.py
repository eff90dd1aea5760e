"""A pytest plugin that fails a test which starts a process without the ``process`` mark.

``make test-fast`` runs ``-m "not process"``; the mark is only worth that if it is
true, so every run (fast or not) checks it. A process start is seen in two ways, since
no one signal covers both kinds of spawn:

- CPython's audit events (``sys.addaudithook``) for ``subprocess.Popen``,
  ``os.posix_spawn``, ``os.fork``, ``os.forkpty``, ``os.exec`` and ``os.system``:
  everything in the standard library, including asyncio's own subprocess transport;
- the ``os.register_at_fork`` "before" callbacks, which run from ``PyOS_BeforeFork``:
  uvloop's ``loop.subprocess_exec`` (so ``asyncio.create_subprocess_exec`` on uvloop)
  forks through libuv's ``uv_spawn`` and raises no audit event, but wraps the spawn in
  ``PyOS_BeforeFork`` / ``PyOS_AfterFork_Parent``.

Spawns are recorded from the start of a test's setup to the end of its teardown,
and per fixture: a test that uses a fixture which started a process (a session-scoped
render, say, computed for an earlier test) needs the mark too, though its own run
started nothing.

Both hooks are process-wide and installed once; they report to the innermost
configured guard, so a guard under ``pytester.runpytest_inprocess`` does not report
into the test that runs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from typing import Any

import pytest

MARK = "process"

# The audit events of the standard library's ways to start a process.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.exec", "os.system"}
)

_guards: list[ProcessGuard] = []  # configured sessions, innermost last
_installed = False


def describe(event: str, args: tuple[Any, ...]) -> str:
    """One line for a spawn audit event: the event and the command it runs."""
    if event in ("subprocess.Popen", "os.posix_spawn", "os.exec") and len(args) > 1:
        argv = args[1]
        command = " ".join(map(str, argv[:4])) if isinstance(argv, list | tuple) else str(argv)
        return f"{event}: {command}"
    if event == "os.system" and args:
        return f"{event}: {args[0]}"
    return event


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited operation (each open, socket call, import): keep the
    # common path to one set lookup.
    if event in SPAWN_EVENTS and _guards:
        _guards[-1].saw(describe(event, args))


def _before_fork() -> None:
    if _guards:
        _guards[-1].saw("fork through PyOS_BeforeFork (uvloop's subprocess_exec, os.fork)")


def _install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_on_audit)
        os.register_at_fork(before=_before_fork)
        _installed = True


class ProcessGuard:
    """Records the processes each test and fixture starts; fails an unmarked test that did."""

    def __init__(self) -> None:
        self._open: list[list[str]] = []  # recordings under way: the test's, a fixture's
        # fixture definition -> the first process its setup started
        self._spawning: dict[pytest.FixtureDef[Any], str] = {}

    def saw(self, what: str) -> None:
        for recording in self._open:
            recording.append(what)

    def pytest_configure(self, config: pytest.Config) -> None:
        _install()
        _guards.append(self)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        _guards.remove(self)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        # pytest sets up a fixture's own dependencies before this hook, so only the
        # fixture's body is recorded here.
        recording: list[str] = []
        self._open.append(recording)
        try:
            return (yield)
        finally:
            self._stop(recording)
            if recording:
                self._spawning.setdefault(fixturedef, recording[0])

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        recording: list[str] = []
        item.stash[_recording] = recording
        self._open.append(recording)
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        recording = item.stash.get(_recording, [])
        try:
            result = yield
        except BaseException as e:
            self._stop(recording)
            problem = self.problem(item, recording)
            if problem:
                e.add_note(problem)
            raise
        self._stop(recording)
        problem = self.problem(item, recording)
        if problem:
            pytest.fail(problem, pytrace=False)
        return result

    def _stop(self, recording: list[str]) -> None:
        # by identity: two empty recordings are equal
        self._open = [r for r in self._open if r is not recording]

    def problem(self, item: pytest.Item, recording: list[str]) -> str | None:
        """Why the test needs the mark, if it does and has not got it."""
        if item.get_closest_marker(MARK) is not None:
            return None
        seen = list(dict.fromkeys(recording))
        seen += [
            f"fixture {fd.argname!r} started one ({self._spawning[fd]})"
            for fd in _fixture_defs(item)
            if fd in self._spawning
        ]
        if not seen:
            return None
        return (
            f"{item.nodeid} starts a process but is not marked `{MARK}`: add "
            f"`pytestmark = pytest.mark.{MARK}` to its module, or `@pytest.mark.{MARK}` "
            "to the test, so that `make test-fast` leaves it out. Seen: " + "; ".join(seen[:5])
        )


_recording = pytest.StashKey[list[str]]()


def _fixture_defs(item: pytest.Item) -> list[Any]:
    """The fixture definitions the test uses (the one in effect for each name)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [defs[-1] for name in info.names_closure if (defs := info.name2fixturedefs.get(name))]
