"""config-observability reaches running queue-proxies without a restart (the local
runtime pushes it to their admin port), new replicas through OBSERVABILITY_CONFIG, and
the activators through the state snapshot."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx
import pytest

from activator.app import Activator
from activator.config import Settings as ActivatorSettings
from activator.local import LocalControlSources
from zeroserve.local.protocol import Snapshot
from zeroserve.local.runtime import LocalRuntime, RevisionRun
from zeroserve.local.up import Child
from zeroserve.observability import ObservabilityConfig
from zeroserve.topology import RevisionInfo, RevisionKey

ROOT = Path(__file__).resolve().parents[2]
KEY = RevisionKey("default", "hello-00001")
ON = ObservabilityConfig(enable_request_log=True, enable_probe_request_log=True)


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


async def _configs(rt: LocalRuntime, client: httpx.AsyncClient) -> dict[str, ObservabilityConfig]:
    out = {}
    for pod in rt.set_for(KEY).pods:
        r = pod.replica
        assert r is not None
        answer = await client.get(f"http://{r.host}:{r.ports['admin_port']}/observability")
        out[pod.name] = ObservabilityConfig.from_json(answer.json())
    return out


@pytest.mark.process
async def test_a_change_reaches_running_and_new_queue_proxies(tmp_path: Path) -> None:
    rt = LocalRuntime(on_change=lambda: None, log_dir=tmp_path)
    try:
        rt.set_revisions(
            {
                KEY: RevisionRun(
                    info=RevisionInfo(KEY, service="hello", configuration="hello"),
                    command=("python", "examples/helloworld/app.py"),
                    working_dir=str(ROOT),
                )
            }
        )
        rt.set_scale(KEY, 1)
        await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 1)
        first = rt.set_for(KEY).pods[0]
        assert first.replica is not None
        pid = first.replica.queue_proxy.pid if first.replica.queue_proxy else None
        async with httpx.AsyncClient() as client:
            assert set((await _configs(rt, client)).values()) == {ObservabilityConfig()}
            rt.set_observability(ON)
            async with asyncio.timeout(10):
                while set((await _configs(rt, client)).values()) != {ON}:
                    await asyncio.sleep(0.05)
            # the same process: nothing was restarted
            assert first.replica.queue_proxy is not None
            assert first.replica.queue_proxy.pid == pid
            rt.set_scale(KEY, 2)
            await until(lambda: len([e for e in rt.endpoints()[KEY] if e.ready]) == 2)
            assert set((await _configs(rt, client)).values()) == {ON}
            second = next(p for p in rt.set_for(KEY).pods if p is not first)
            assert second.replica is not None
            assert second.replica.queue_proxy_env()["OBSERVABILITY_CONFIG"] == ON.to_env()
            # the request log reaches the replica's queue-proxy log file (its stdout)
            r = first.replica
            await client.get(f"http://{r.host}:{r.serving_port}/?mark=logged")
            log = tmp_path / f"{first.name}-queue-proxy.log"
            async with asyncio.timeout(10):
                while '"requestUrl": "/?mark\\u003Dlogged"' not in log.read_text():
                    await asyncio.sleep(0.05)
    finally:
        await rt.close()


def test_the_snapshot_carries_both_maps() -> None:
    snap = Snapshot(
        version=3,
        observability_config={"logging.enable-request-log": "true"},
        tracing_config={"backend": "none"},
    )
    back = Snapshot.from_json(snap.to_json())
    assert back == snap
    assert (
        Snapshot.from_json({**snap.to_json(), "observability_config": {}}).observability_config
        == {}
    )


async def test_the_activator_follows_the_snapshot_once_per_change() -> None:
    act = Activator(ActivatorSettings(host="127.0.0.1", port=0, metrics_port=0, drain_seconds=0))
    heard: list[ObservabilityConfig] = []
    act.observability_listeners.append(heard.append)
    async with aiohttp.ClientSession() as session:
        sources = LocalControlSources("http://127.0.0.1:1", act, session)
        data = {"logging.enable-request-log": "true"}
        sources.apply(Snapshot(version=1, observability_config=data))
        sources.apply(Snapshot(version=2, observability_config=data))
        assert heard == [ObservabilityConfig(enable_request_log=True)]
        sources.apply(
            Snapshot(version=3, observability_config=data, tracing_config={"debug": "true"})
        )
        assert act.observability.tracing_sampling_rate == 1.0 and len(heard) == 2
    await act.close()


@pytest.mark.process
async def test_a_components_stdout_after_its_first_line_goes_to_its_log(tmp_path: Path) -> None:
    """``zeroserve up``'s children (the activators' request logs): read, not left to fill
    the pipe, and appended to the component's log file."""
    script = (
        "import json, sys\n"
        "print(json.dumps({'port': 1}), flush=True)\n"
        "for i in range(2000): print(f'request line {i} ' + 'x' * 100)\n"
        "sys.stdout.flush()\n"
    )
    log = tmp_path / "activator.log"
    child = await Child.spawn("activator", [sys.executable, "-c", script], log)
    assert child.info == {"port": 1}
    # 200 kB: more than a pipe holds, so it ends only if someone reads
    assert await asyncio.wait_for(child.proc.wait(), 10) == 0
    await child.stop(5)
    text = log.read_text()
    assert "request line 0 " in text and "request line 1999 " in text
