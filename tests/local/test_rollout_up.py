"""A gradual rollout under ``zeroserve up``: with ``serving.knative.dev/rollout-duration: 4s``
a new revision takes its traffic in steps (status.traffic 99/1, 66/34, 33/67, then all
on the new one, a step a second) while a light steady load keeps flowing, and no
request fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .support import EXAMPLES, UpProcess, zeroserve_up

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

HOST = "hello.default.localhost"


def _service(target: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "hello",
            "annotations": {"serving.knative.dev/rollout-duration": "4s"},
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": {
                    "containers": [
                        {
                            "command": ["python", "examples/helloworld/app.py"],
                            "env": [{"name": "TARGET", "value": target}],
                        }
                    ]
                },
            }
        },
    }


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def _traffic(up: UpProcess) -> tuple[tuple[str, int], ...]:
    svc = await up.get("ksvc", "hello")
    return tuple((t["revisionName"], t["percent"]) for t in svc["status"].get("traffic", []))


async def test_a_4s_rollout_moves_in_steps_and_loses_no_request(tmp_path: Path) -> None:
    v1 = _write(tmp_path / "v1.yaml", _service("v1"))
    async with zeroserve_up(tmp_path, EXAMPLES / "config-autoscaler-fast.yaml", v1) as up:

        async def v1_serving() -> bool:
            return await _traffic(up) == (("hello-00001", 100),)

        await up.until(v1_serving, "hello-00001 serving")
        bodies: list[str] = []
        failures: list[str] = []
        stop = asyncio.Event()

        async def load() -> None:
            # about 5 requests a second, each on its own connection, until told to stop
            async with httpx.AsyncClient(timeout=30) as client:
                while not stop.is_set():
                    try:
                        r = await client.get(
                            up.ingress, headers={"Host": HOST, "Connection": "close"}
                        )
                        if r.status_code == 200:
                            bodies.append(r.text.strip())
                        else:
                            failures.append(f"{r.status_code} {r.text.strip()}")
                    except httpx.HTTPError as e:
                        failures.append(repr(e))
                    await asyncio.sleep(0.2)

        loader = asyncio.create_task(load())
        try:
            await up.acli("apply", "-f", str(_write(tmp_path / "v2.yaml", _service("v2"))))
            seen: list[tuple[tuple[str, int], ...]] = []

            async def rolled_out() -> bool:
                split = await _traffic(up)
                if not seen or seen[-1] != split:
                    seen.append(split)
                return split == (("hello-00002", 100),)

            await up.until(rolled_out, "the rollout to hello-00002", within=60, every=0.1)
            await asyncio.sleep(1.0)  # a little more load on the new revision alone
        finally:
            stop.set()
            await loader
        assert not failures, failures
        # Every split seen is one of Knative's steps for 4 s (1 %, then +33 % a second),
        # oldest revision first, and they came in order, with some in between.
        steps = [
            (("hello-00001", 100),),
            (("hello-00001", 99), ("hello-00002", 1)),
            (("hello-00001", 66), ("hello-00002", 34)),
            (("hello-00001", 33), ("hello-00002", 67)),
            (("hello-00002", 100),),
        ]
        assert all(s in steps for s in seen), seen
        assert [steps.index(s) for s in seen] == sorted(steps.index(s) for s in seen), seen
        assert len([s for s in seen if len(s) == 2]) >= 2, seen
        # Both revisions answered during the rollout, and the new one alone at the end.
        assert "Hello v1!" in bodies and "Hello v2!" in bodies
        assert bodies[-3:] == ["Hello v2!"] * 3
        assert len(bodies) >= 15
