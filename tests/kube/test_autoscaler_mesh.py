"""The autoscaler follows config-network's mesh-compatibility-mode (docs/autoscaling.md,
"Mesh mode"): its scraper gets the mode and the private Services' stats URLs."""

from __future__ import annotations

from typing import Any

from autoscaler.app import Autoscaler
from autoscaler.config import Settings
from autoscaler.model import RevisionKey
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeClient

from .helpers import eventually


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "knative-serving"},
        "data": data,
    }


async def test_config_network_mesh_mode_reaches_the_scraper(
    kube: KubeClient, fake_kube: FakeKubeAPI
) -> None:
    fake_kube.put(_config_map("config-network", {"mesh-compatibility-mode": "enabled"}))
    autoscaler = Autoscaler(Settings(host="127.0.0.1", port=0, metrics_port=0), kube)
    try:
        await autoscaler.start()
        scraper = autoscaler.scraper
        assert scraper is not None and scraper.mesh_mode == "enabled"
        assert scraper.service_url is not None
        key = RevisionKey("default", "hello-00001")
        assert (
            scraper.service_url(key)
            == "http://hello-00001-private.default.svc.cluster.local:9090/metrics"
        )
        scraper.via_service.add(key)
        fake_kube.put(_config_map("config-network", {"mesh-compatibility-mode": "bad"}))
        fake_kube.put(_config_map("config-network", {"mesh-compatibility-mode": "disabled"}))
        await eventually(lambda: scraper.mesh_mode == "disabled", "followed live")
        assert scraper.via_service == set()  # every revision starts over, directly
    finally:
        await autoscaler.stop()
