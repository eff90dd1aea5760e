"""A real ``zeroserve up``: its token file, 401 for calls without the token, the client
finding the token by itself, and ``--control-host`` (with its warning)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from tests.reliability.procfs import listening
from zeroserve.local import access

from .support import EXAMPLES, zeroserve_up

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {stable-window: 20s}
"""


@pytest.mark.process
@pytest.mark.timeout(90)
async def test_the_control_api_wants_the_owners_token(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(CONFIG_MAP)
    service = (EXAMPLES / "helloworld.yaml").read_text()
    async with zeroserve_up(tmp_path, args=("--control-host", "0.0.0.0")) as up:
        assert up.env is not None
        # the file: only its user can read it, in a directory only its user can open
        path = access.token_path(up.control_port, up.env)
        assert path.parent == tmp_path / "run" / "zeroserve"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        data = json.loads(path.read_text())
        assert data["url"] == up.control and len(data["token"]) >= 40

        async def printed() -> bool:
            return any(f"control API token in {path}" in line for line in up.output)

        await up.until(printed, "the token file's line", within=5, every=0.05)
        # --control-host chose the address (the children still reach it on loopback)
        assert ("0.0.0.0", up.control_port) in listening(up.proc.pid)

        async with httpx.AsyncClient(timeout=10) as client:
            body = {"file": "svc.yaml", "yaml": service}
            for headers in ({}, {"Authorization": "Bearer not-the-token"}):
                r = await client.post(f"{up.control}/v1/apply", json=body, headers=headers)
                assert r.status_code == 401 and str(path) in r.json()["error"], r.text
            r = await client.get(f"{up.control}/v1/objects/ksvc", headers=up.headers)
            assert r.json() == {"items": []}  # nothing applied
            assert (await client.get(f"{up.control}/healthz")).status_code == 200

        # the client needs no token argument
        out = (await up.acli("apply", "-f", str(manifest))).stdout
        assert "configmap/config-autoscaler" in out, out
        assert "config-autoscaler" in (await up.acli("get", "configmaps", "-A")).stdout
    assert "warning: the control API listens on 0.0.0.0 (--control-host)" in up.stderr
    assert not path.exists()  # removed at exit
