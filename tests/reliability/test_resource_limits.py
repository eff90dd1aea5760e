"""The activator's limits: queue depth, budget, activation timeout, memory.

A flood: ``python -m activator --budget 500 --queue-depth 100`` follows a fake control
API that routes 20 hosts to 20 revisions that never get a replica, and 3,000 requests
arrive at once. Exactly what the limits allow waits, everything else gets ``503
queue-full`` with ``Retry-After`` at once, the budget gauge never passes its limit,
memory stays bounded, and clients that give up free their places. Then the same limits
for requests that are parked again after their replica refused the connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.support.procs import activator_process
from tests.support.raw import Response, read_response
from zeroserve.local.protocol import Snapshot
from zeroserve.topology import Endpoint, RevisionInfo, RevisionKey

from .procfs import rss_bytes
from .support import FakeControl, reason, samples, snapshot, until

pytestmark = pytest.mark.process

REVISIONS = 20
FLOOD = 3000
BUDGET = 500
DEPTH = 100
RSS_BOUND = 200 << 20

KEYS = [RevisionKey("default", f"cold{i}-00001") for i in range(REVISIONS)]
HOSTS = [f"cold{i}.default.example.com" for i in range(REVISIONS)]
BUDGET_FULL = b"activator request budget exhausted"
DEPTH_FULL = b"pending request queue full for revision default/cold0-00001"


class Client:
    """One connection with one request; ``answer`` completes when a response arrives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.answer: asyncio.Task[Response] = asyncio.create_task(
            read_response(reader, timeout=120)
        )

    @classmethod
    async def send(cls, port: int, host: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        self.answer.cancel()
        await asyncio.gather(self.answer, return_exceptions=True)


async def _flood(port: int, hosts: list[str]) -> list[Client]:
    clients: list[Client] = []
    for i in range(0, len(hosts), 100):  # 100 connects at a time, then the next 100
        clients += await asyncio.gather(*(Client.send(port, h) for h in hosts[i : i + 100]))
    return clients


@pytest.mark.timeout(120)
async def test_flood_of_cold_requests_respects_depth_budget_and_memory(tmp_path: Path) -> None:
    snap = snapshot(1, dict(zip(HOSTS, KEYS, strict=True)))  # routes, revisions, no endpoints
    clients: list[Client] = []
    async with (
        FakeControl(snap) as control,
        activator_process(
            tmp_path / "activator.log",
            "--control",
            control.url,
            "--budget",
            str(BUDGET),
            "--queue-depth",
            str(DEPTH),
            "--activation-timeout",
            "120",
        ) as act,
        httpx.AsyncClient(timeout=10) as metrics,
    ):
        used_seen: list[float] = []

        async def budget_used() -> float:
            text = (await metrics.get(act.metrics_url)).text
            (used,) = samples(text, "zeroserve_activator_budget", kind="used")
            used_seen.append(used)
            return used

        async def sample_budget() -> None:
            while True:
                await budget_used()
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample_budget(), name="budget sampler")
        try:
            # 150 for one revision: its queue holds 100, the rest are turned away at once.
            clients = await _flood(act.port, [HOSTS[0]] * 150)
            await until(lambda: sum(c.answer.done() for c in clients) >= 50, "50 answered", 30)
            # Then the rest, spread over all 20: the budget takes 400 more, nothing beyond.
            clients += await _flood(act.port, [HOSTS[i % REVISIONS] for i in range(FLOOD - 150)])
            rejected = FLOOD - BUDGET
            await until(
                lambda: sum(c.answer.done() for c in clients) >= rejected,
                f"{rejected} answered",
                60,
            )
            await asyncio.sleep(0.5)  # nothing else gets answered: the rest wait
            answered = [c.answer.result() for c in clients if c.answer.done()]
            assert len(answered) == rejected
            assert await budget_used() == BUDGET
            text = (await metrics.get(act.metrics_url)).text
            queues = {
                k.name: samples(text, "kn_revision_request_queued", kn_revision_name=k.name)[0]
                for k in KEYS
            }
            assert queues["cold0-00001"] == DEPTH and sum(queues.values()) == BUDGET, queues
            rss = rss_bytes(act.proc.pid)
            print(
                f"activator RSS with {BUDGET} held and {len(clients)} connections: {rss / 2**20:.1f} MiB"
            )
            assert rss < RSS_BOUND
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            held = [c for c in clients if not c.answer.done()]
            await asyncio.gather(*(c.close() for c in clients))

        assert max(used_seen) <= BUDGET, max(used_seen)
        assert Counter(r.status for r in answered) == {503: rejected}
        for r in answered:
            assert r.headers["x-zeroserve-error"] == "activator; reason=queue-full"
            assert r.headers["retry-after"] == "1"
            assert r.body.rstrip(b"\n") in (BUDGET_FULL, DEPTH_FULL), r.body
        assert sum(r.body.rstrip(b"\n") == DEPTH_FULL for r in answered) >= 50
        # Clients that leave free their places (no body: noticed at once).
        assert len(held) == BUDGET
        await until(lambda: _zero(budget_used), "the budget given back", 30, every=0.1)
        assert act.proc.returncode is None
        assert "Traceback" not in act.log_text()


async def _zero(used: Callable[[], Awaitable[float]]) -> bool:
    return await used() == 0


class BudgetExceeded(AssertionError):
    """The budget gauge showed more waiting requests than the limit."""


def _dead_port() -> int:
    """A port nobody listens on: a replica that just died."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FLAKY = RevisionKey("default", "flaky-00001")
COLD = RevisionKey("default", "cold-00001")


def _flaky_snapshot(timeout_seconds: float = 300.0) -> Snapshot:
    """``flaky.default.example.com`` -> a revision whose only replica refuses connections;
    ``cold.default.example.com`` -> one without replicas."""
    return snapshot(
        1,
        {"cold.default.example.com": COLD, "flaky.default.example.com": FLAKY},
        {FLAKY: [Endpoint("flaky-pod", "127.0.0.1", _dead_port(), 1, ready=True)]},
        revisions=[RevisionInfo(FLAKY, timeout_seconds=timeout_seconds)],
    )


@pytest.mark.timeout(60)
async def test_budget_holds_when_requests_are_requeued_after_a_connect_error(
    tmp_path: Path,
) -> None:
    budget = 50
    clients: list[Client] = []
    async with (
        FakeControl(_flaky_snapshot()) as control,
        activator_process(
            tmp_path / "activator.log", "--control", control.url, "--budget", str(budget)
        ) as act,
        httpx.AsyncClient(timeout=10) as metrics,
    ):

        async def used() -> float:
            (n,) = samples(
                (await metrics.get(act.metrics_url)).text, "zeroserve_activator_budget", kind="used"
            )
            return n

        try:
            clients = await _flood(act.port, ["cold.default.example.com"] * budget)
            await until(lambda: _equals(used, budget), "the budget full", 10)
            # Requests for the revision whose replica refuses connections: each gets a slot
            # at once, fails to connect, and is parked again to wait for another replica.
            clients += await _flood(act.port, ["flaky.default.example.com"] * 10)
            seen = []
            for _ in range(20):
                seen.append(await used())
                await asyncio.sleep(0.05)
        finally:
            await asyncio.gather(*(c.close() for c in clients))
        assert act.proc.returncode is None
    if max(seen) > budget:
        raise BudgetExceeded(f"budget used up to {max(seen)} with a limit of {budget}")


@pytest.mark.timeout(60)
async def test_request_requeued_after_a_connect_error_still_has_the_activation_timeout(
    tmp_path: Path,
) -> None:
    async with (
        FakeControl(_flaky_snapshot(timeout_seconds=6)) as control,
        activator_process(
            tmp_path / "activator.log", "--control", control.url, "--activation-timeout", "2"
        ) as act,
        httpx.AsyncClient(timeout=30) as client,
    ):
        cold, flaky = await asyncio.gather(
            *(
                client.get(act.url, headers={"Host": f"{name}.default.example.com"})
                for name in ("cold", "flaky")
            )
        )
    # both waited for a replica that did not come: both end at the activation timeout
    assert (cold.status_code, reason(cold)) == (503, "activator; reason=activation-timeout")
    assert (flaky.status_code, reason(flaky)) == (503, "activator; reason=activation-timeout"), (
        flaky.status_code,
        reason(flaky),
        flaky.text,
    )


async def _equals(f: Callable[[], Awaitable[float]], value: float) -> bool:
    return await f() == value
