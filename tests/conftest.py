"""Suite-wide fixtures: uvloop for every async test, and leak and mark checks.

A test fails if it leaves a child process running or an asyncio task pending:
every process and task a test starts must have an owner that stops it. A test
that starts a process at all must be marked ``process`` (``make test-fast``
leaves those out); :mod:`tests.support.process_guard` fails one that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
import uvloop

from tests.support.process_guard import ProcessGuard
from zeroserve import forksafe

pytest_plugins = ("pytester",)  # for the guard's own test, run in-process


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ProcessGuard(), "process-guard")
    # the tests fork processes after gRPC tests left garbage behind (zeroserve/forksafe.py)
    forksafe.install()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    # Production runs on uvloop; so do the tests.
    return {"uvloop": uvloop.new_event_loop}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn):
            # first, so it is torn down last: after every fixture that owns tasks
            item.fixturenames.insert(0, "_no_leaked_tasks")  # type: ignore[attr-defined]


def _children() -> set[int]:
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[1] the parent pid; zombies are reaped already-dead
        if int(fields[1]) == me and fields[0] != b"Z":
            found.add(int(entry))
    return found


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    before = _children()
    yield
    leaked = _children() - before
    if leaked:
        for pid in leaked:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"test left child processes running: {sorted(leaked)}")


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    me = asyncio.current_task()
    for _ in range(3):  # let cancellations that are already under way finish
        await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if pending:
        for t in pending:
            t.cancel()
        pytest.fail(f"test left asyncio tasks pending: {[t.get_name() for t in pending]}")
