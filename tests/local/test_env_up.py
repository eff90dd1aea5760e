"""``zeroserve up`` with env from Secrets and an exec readiness probe, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .support import EXAMPLES, UpProcess, zeroserve_up

FAST = EXAMPLES / "config-autoscaler-fast.yaml"

pytestmark = pytest.mark.timeout(120)


def _secret(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": values}


def _service(name: str, env: list[dict[str, Any]], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                "spec": {
                    "containers": [
                        {
                            "command": ["python", "examples/helloworld/app.py"],
                            "env": env,
                            **container,
                        }
                    ]
                },
            }
        },
    }


def _write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


async def _get(up: UpProcess, host: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as c:
        return await c.get(up.ingress, headers={"Host": host})


async def _ready(up: UpProcess, revision: str) -> dict[str, Any]:
    rev = await up.get("revisions", revision)
    return next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")


@pytest.mark.process
async def test_env_from_a_secret_and_a_missing_key_that_is_applied_later(tmp_path: Path) -> None:
    manifest = _write(
        tmp_path / "apps.yaml",
        _secret("greeting", target="from a Secret"),
        _service(
            "from-secret",
            [
                {
                    "name": "TARGET",
                    "valueFrom": {"secretKeyRef": {"name": "greeting", "key": "target"}},
                }
            ],
        ),
        _secret("db", user="app"),
        _service(
            "waiting",
            [{"name": "TARGET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
        ),
    )
    async with zeroserve_up(tmp_path, FAST, manifest) as up:
        r = await _get(up, "from-secret.default.localhost")
        assert (r.status_code, r.text) == (200, "Hello from a Secret!\n")

        async def config_error() -> str:
            table = (await up.acli("get", "revisions")).stdout
            return table if "CreateContainerConfigError" in table else ""

        table = await up.until(config_error, "CreateContainerConfigError", within=30)
        row = next(line.split() for line in table.splitlines() if line.startswith("waiting-00001"))
        assert row[3:5] == ["False", "CreateContainerConfigError"]
        ready = await _ready(up, "waiting-00001")
        assert ready["message"] == "couldn't find key password in Secret default/db"
        assert "CreateContainerConfigError" in (await up.acli("get", "pods")).stdout
        secrets = (await up.acli("get", "secrets")).stdout.splitlines()
        assert secrets[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
        assert any(line.split()[:3] == ["db", "Opaque", "1"] for line in secrets)

        # the Secret gets its key: the replica starts without re-applying the Service
        _write(tmp_path / "db.yaml", _secret("db", user="app", password="hunter2"))
        out = (await up.acli("apply", "-f", str(tmp_path / "db.yaml"))).stdout
        assert out.strip() == "secret/db configured"

        async def became_ready() -> bool:
            return (await _ready(up, "waiting-00001"))["status"] == "True"

        await up.until(became_ready, "waiting-00001 ready", within=30)
        r = await _get(up, "waiting.default.localhost")
        assert (r.status_code, r.text) == (200, "Hello hunter2!\n")


@pytest.mark.process
async def test_a_failing_exec_readiness_probe_keeps_the_replica_unready(tmp_path: Path) -> None:
    flag = tmp_path / "ready-flag"
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"
    manifest = _write(
        tmp_path / "probed.yaml",
        _service(
            "probed",
            [{"name": "TARGET", "value": "probed"}],
            readinessProbe={"exec": {"command": ["python", "-c", check]}, "periodSeconds": 1},
        ),
    )
    async with zeroserve_up(tmp_path, FAST, manifest) as up:

        async def listening() -> bool:
            return "Running" in (await up.acli("get", "pods")).stdout

        await up.until(listening, "the replica started", within=30)
        await asyncio.sleep(4)  # the app answers TCP by now; the exec probe keeps failing
        pods = (await up.acli("get", "pods")).stdout.splitlines()
        # kubectl's view: both containers run, the queue-proxy's probe (TCP) passes, the
        # app's exec readiness probe does not
        assert pods[1].split()[1:3] == ["1/2", "Running"], pods
        assert (await _ready(up, "probed-00001"))["status"] == "Unknown"

        flag.touch()

        async def became_ready() -> bool:
            return (await _ready(up, "probed-00001"))["status"] == "True"

        await up.until(became_ready, "probed-00001 ready", within=30)
        r = await _get(up, "probed.default.localhost")
        assert (r.status_code, r.text) == (200, "Hello probed!\n")
