"""The queue-proxy's spans around its breaker (docs/observability.md, "Tracing"): the
wait for a slot is ``kn.queueproxy.wait``, a refusal is an error on it, and only a
request that reached the app has ``kn.queueproxy.proxy``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from queueproxy.app import QueueProxy
from queueproxy.config import Settings
from tests.support.apps import run_app
from tests.support.otlp import otlp_receiver
from tests.support.procs import qp_env
from zeroserve.observability import ObservabilityConfig


async def test_breaker_wait_and_refusal_are_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    async with otlp_receiver() as rx, run_app() as (app_port, state):
        config = ObservabilityConfig(
            tracing_protocol="http/protobuf", tracing_endpoint=rx.url, tracing_sampling_rate=1
        )
        env = qp_env(app_port, CONTAINER_CONCURRENCY="1", OBSERVABILITY_CONFIG=config.to_env())
        qp = QueueProxy(Settings.from_env(env))
        url = f"http://127.0.0.1:{(await qp.start())['serving_port']}"
        try:
            async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=20)) as c:
                # one at the app, ten queued (10 x containerConcurrency), the twelfth refused
                held = [asyncio.ensure_future(c.get(url + "/hold")) for _ in range(11)]
                while qp.breaker is None or qp.breaker.queued < 10:
                    await asyncio.sleep(0.01)
                refused = await c.get(url + "/hold")
                assert refused.status_code == 503
                await asyncio.sleep(0.2)
                state.release.set()
                assert [r.status_code for r in await asyncio.gather(*held)] == [200] * 11
            await rx.wait_for(lambda s: len([x for x in s if x.name == "queue"]) == 12)
        finally:
            await qp.shutdown()
    waits = rx.named("kn.queueproxy.wait")
    proxies = rx.named("kn.queueproxy.proxy")
    assert len(waits) == 12 and len(proxies) == 11
    (refusal,) = [w for w in waits if w.error]
    assert refusal.status_message == "queue full"
    assert refusal.trace_id not in {p.trace_id for p in proxies}
    # the ten that queued waited for the first one's release (0.2 s after the refusal)
    waited = sorted(w.end_ns - w.start_ns for w in waits if not w.error)
    assert waited[-10] >= 0.2e9 > waited[0]
