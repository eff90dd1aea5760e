"""``python -m benchmarks.hoppython``: the Python work of one exchange, in memory. Its
figures mean something only if every hop it drives really relays the response, with and
without each ablation (``measure`` checks the client got every response's bytes), and if
an ablation takes away what it says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import hoppython

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.process
def test_every_hop_and_ablation_is_measured_whole() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.hoppython", "--exchanges", "300", "--reps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = {
        line.split(" | ")[0].strip("| "): float(line.split(" | ")[1])
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith("| hop") and "---" not in line
    }
    general = hoppython.GENERAL
    names = ["floor", "work floor", "queue-proxy", "queue-proxy behind the activator"]
    names += ["activator", "activator's general path", general]
    names += [f"{general} without {a}" for a in hoppython.ABLATIONS]
    names.append(f"{general} without all of these")
    assert list(rows) == names
    assert all(us > 0 for us in rows.values())


@pytest.mark.parametrize("ablation", list(hoppython.ABLATIONS))
def test_an_ablation_keeps_the_response_and_removes_its_part(ablation: str) -> None:
    from queueproxy.handler import QueueProxyHandler
    from zeroserve.http.clientside import ClientSide
    from zeroserve.http.server import ServerConnection
    from zeroserve.http.upstream import UpstreamConnection

    calls: list[str] = []
    watched = {
        "the handler's work (probes, stats, drain, breaker, metrics)": (
            QueueProxyHandler,
            "_forward",
        ),
        "timers armed per request": (ClientSide, "arm"),
        "a callback per response header": (UpstreamConnection, "on_header"),
        "the request's header lines kept": (ServerConnection, "on_header"),
    }
    cls, name = watched[ablation]
    original = getattr(cls, name)

    def spy(self: object, *args: object) -> object:
        calls.append(name)
        return original(self, *args)

    async def one(ablate: bool) -> int:
        calls.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cls, name, spy)
            if ablate:
                with hoppython.ablated([ablation]):
                    exchange, sink = hoppython.general_path()
                    exchange()
            else:
                exchange, sink = hoppython.general_path()
                exchange()
        return sink.bytes

    assert asyncio.run(one(False)) == len(hoppython.RESPONSE)
    assert calls  # the part runs in the full queue-proxy
    assert asyncio.run(one(True)) == len(hoppython.RESPONSE)
    assert not calls  # and not in the ablated one


@pytest.mark.parametrize(
    "hop",
    [
        hoppython.queue_proxy,
        lambda: hoppython.queue_proxy(request=hoppython.BEHIND_ACTIVATOR),
        hoppython.activator,
    ],
    ids=["queue-proxy", "queue-proxy behind the activator", "activator"],
)
def test_the_fast_path_rows_stay_on_the_fast_path(hop: Any) -> None:
    """hey's request and the Go backend's answer are each fast path's exchange: measured
    through it, with no hand-over to the general path."""
    from zeroserve.http.fastpath import FastConnection
    from zeroserve.http.server import ServerConnection

    passed: list[bytes] = []
    response = FastConnection._response

    def spy(self: FastConnection, up: Any, data: bytes) -> None:
        passed.append(data)
        response(self, up, data)

    async def run() -> int:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ServerConnection, "take_over", None)  # a hand-over would fail
            mp.setattr(FastConnection, "_response", spy)
            exchange, sink = hop()
            for _ in range(3):
                exchange()
        return sink.bytes

    assert asyncio.run(run()) == 3 * len(hoppython.RESPONSE)
    assert passed == [hoppython.RESPONSE] * 3  # through the fast path's response side


def test_behind_the_activator_is_what_the_activator_forwards() -> None:
    """The queue-proxy's request in the "behind the activator" row is the head the
    activator's fast path writes for hey's request, byte for byte."""
    from zeroserve.http.upstream import UpstreamConnection

    written: list[bytes] = []

    def connection_made(self: UpstreamConnection, transport: Any) -> None:
        transport.write = written.append
        self.transport = transport

    async def run() -> None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(UpstreamConnection, "connection_made", connection_made)
            exchange, _ = hoppython.activator()
            exchange()

    asyncio.run(run())
    assert written == [hoppython.BEHIND_ACTIVATOR]
