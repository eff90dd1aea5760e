"""Issue 14's routing through a real ``zeroserve up``: a cluster-local Service only on
the local gateway, Knative-Serving-Tag header routing once config-features enables it,
and config-gc collecting the revision no route names (its replica stops)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .support import EXAMPLES, UpProcess, zeroserve_up

pytestmark = pytest.mark.timeout(120)

TAG_HEADER = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: config-features, namespace: knative-serving}
data: {tag-header-based-routing: enabled}
"""


async def _get(base: str, host: str, **headers: str) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(base, headers={"Host": host, **headers})
        return r.status_code, r.text


async def _revisions(up: UpProcess) -> list[str]:
    return [r["metadata"]["name"] for r in (await up.get("revisions"))["items"]]


@pytest.mark.process
async def test_cluster_local_tag_header_and_gc_through_zeroserve_up(tmp_path: Path) -> None:
    async with zeroserve_up(
        tmp_path,
        EXAMPLES / "cluster-local.yaml",
        EXAMPLES / "hello.yaml",
        args=("--local-port", "0"),
    ) as up:
        assert up.local_gateway is not None
        internal = "internal.default.svc.cluster.local"
        # The public ingress never serves a cluster-local host, however it is spelled.
        for host in (internal, "Internal.Default.Svc.Cluster.Local.", "internal.default.svc:80"):
            status, body = await _get(up.ingress, host)
            assert status == 404, (host, body)
        assert await _get(up.local_gateway, internal) == (200, "Hello from inside!\n")
        # A public Service: its external host on the ingress, its local names on the gateway.
        assert await _get(up.ingress, "hello.default.localhost") == (200, "Hello World!\n")
        assert await _get(up.local_gateway, "hello.default.svc.cluster.local") == (
            200,
            "Hello World!\n",
        )
        assert (await _get(up.local_gateway, "hello.default.localhost"))[0] == 404

        # v2 with v1 tagged `current` at 0 %: the tag header reaches v1 once enabled.
        split = tmp_path / "split.yaml"
        split.write_text(
            (EXAMPLES / "traffic-split.yaml")
            .read_text()
            .replace("percent: 80", "percent: 100")
            .replace("percent: 20", "percent: 0")
        )
        await up.acli("apply", "-f", str(split))

        async def v2_serves() -> bool:
            return await _get(up.ingress, "hello.default.localhost") == (200, "Hello Knative!\n")

        await up.until(v2_serves, "hello-00002 serving", within=60)
        tagged = {"Knative-Serving-Tag": "current"}
        assert await _get(up.ingress, "hello.default.localhost", **tagged) == (
            200,
            "Hello Knative!\n",
        )  # the flag is off: the header means nothing
        features = tmp_path / "features.yaml"
        features.write_text(TAG_HEADER)
        await up.acli("apply", "-f", str(features))

        async def tag_routes() -> bool:
            return await _get(up.ingress, "hello.default.localhost", **tagged) == (
                200,
                "Hello World!\n",
            )

        await up.until(tag_routes, "the tag header routing to hello-00001", within=30)
        unknown = {"Knative-Serving-Tag": "nope"}
        assert await _get(up.ingress, "hello.default.localhost", **unknown) == (
            200,
            "Hello Knative!\n",
        )

        # GC: the tagged v1 is named by the route, so it stays; untagged, it is collected.
        (tmp_path / "gc.yaml").write_text((EXAMPLES / "config-gc.yaml").read_text())
        await up.acli("apply", "-f", str(tmp_path / "gc.yaml"))
        assert "hello-00001" in await _revisions(up)
        untagged = tmp_path / "untagged.yaml"
        untagged.write_text((EXAMPLES / "hello.yaml").read_text().replace("World", "Knative"))
        await up.acli("apply", "-f", str(untagged))

        async def collected() -> bool:
            names = await _revisions(up)
            return "hello-00001" not in names and "hello-00002" in names

        await up.until(collected, "hello-00001 collected", within=30)

        async def v1_stopped() -> bool:
            pods = (await up.acli("get", "pods")).stdout
            return "hello-00001" not in pods

        await up.until(v1_stopped, "hello-00001's replica stopped", within=30)
        assert await _get(up.ingress, "hello.default.localhost") == (200, "Hello Knative!\n")
