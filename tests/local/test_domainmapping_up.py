"""``zeroserve up`` with a DomainMapping: a request for the custom domain reaches the
mapped Service through the ingress, and ``zeroserve get domainmappings`` shows it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .support import EXAMPLES, zeroserve_up

pytestmark = pytest.mark.timeout(120)

MANIFEST = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
        - command: ["python", "examples/helloworld/app.py"]
          env:
            - {name: TARGET, value: "from the shop"}
---
apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: shop.example.org
spec:
  ref:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: shop
"""


@pytest.mark.process
async def test_a_request_for_the_mapped_domain_reaches_the_service(tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    async with zeroserve_up(tmp_path, EXAMPLES / "config-autoscaler-fast.yaml", manifest) as up:
        async with httpx.AsyncClient(timeout=60) as c:
            r = await c.get(up.ingress, headers={"Host": "shop.example.org"})
            assert (r.status_code, r.text) == (200, "Hello from the shop!\n")
            # The Service's own host still answers; an unmapped domain does not.
            r = await c.get(up.ingress, headers={"Host": "shop.default.localhost"})
            assert r.status_code == 200
            r = await c.get(up.ingress, headers={"Host": "other.example.org"})
            assert r.status_code == 404
        table = (await up.acli("get", "domainmappings")).stdout.splitlines()
        assert table[0].split() == ["NAME", "URL", "READY", "REASON"]
        assert table[1].split() == ["shop.example.org", "http://shop.example.org", "True"]
        [dm] = (await up.get("dm"))["items"]
        assert dm["status"]["url"] == "http://shop.example.org"
