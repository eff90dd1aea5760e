"""The queue-proxy sidecar's settings from ``config-deployment``: its image, its requests
and limits, and the pull secrets of its image in every revision pod."""

from __future__ import annotations

import logging

import pytest

from controller import workloads
from controller.app import KubeController
from controller.config import ClusterConfig, Settings
from controller.meta import SPEC_HASH_ANNOTATION
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.api.objects import Obj, RevisionTemplate
from zeroserve.autoscaling.config import DeploymentConfig

from .helpers import HELLOWORLD_GO, config_map, put_manifest
from .test_resources import REVISION, desired

SYSTEM = "knative-serving"


def render(sidecar: DeploymentConfig, template: RevisionTemplate | None = None) -> Obj:
    return workloads.deployment(
        desired(template),
        REVISION,
        image="zeroserve:0.1.0",
        replicas=1,
        progress_deadline=600,
        sidecar=sidecar,
    )


def pod(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def queue(deployment: Obj) -> Obj:
    (container,) = (c for c in pod(deployment)["containers"] if c["name"] == "queue-proxy")
    return container


def test_knatives_default_resources() -> None:
    """A 25m CPU request and no limits; no imagePullSecrets field when there are none."""
    deployment = render(DeploymentConfig())
    assert queue(deployment)["resources"] == {"requests": {"cpu": "25m"}}
    assert "imagePullSecrets" not in pod(deployment)


def test_requests_and_limits_from_the_map() -> None:
    sidecar = DeploymentConfig.from_mapping(
        {
            "queue-sidecar-memory-request": "64Mi",
            "queue-sidecar-cpu-limit": "1",
            "queue-sidecar-memory-limit": "256Mi",
            "queue-sidecar-ephemeral-storage-limit": "1Gi",
        }
    )
    deployment = render(sidecar)
    assert queue(deployment)["resources"] == {
        "requests": {"cpu": "25m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "1Gi"},
    }
    # Another setting is another pod template: the Deployment is rewritten.
    hashes = {
        render(s)["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        for s in (DeploymentConfig(), sidecar)
    }
    assert len(hashes) == 2


def test_the_charts_defaults_keep_todays_pods() -> None:
    """The chart writes a 25m CPU and a 64Mi memory request: the queue-proxy's resources
    as zeroserve wrote them before config-deployment had these keys, so upgrading the
    chart does not roll revision pods for them."""
    sidecar = DeploymentConfig.from_mapping(
        {"queue-sidecar-cpu-request": "25m", "queue-sidecar-memory-request": "64Mi"}
    )
    assert queue(render(sidecar))["resources"] == {"requests": {"cpu": "25m", "memory": "64Mi"}}


@pytest.mark.parametrize(
    ("written", "sidecar", "expected"),
    [
        pytest.param(None, "registry", ["registry"], id="sidecar-only"),
        pytest.param(
            [{"name": "app-registry"}],
            "registry,mirror",
            ["app-registry", "registry", "mirror"],
            id="users-first",
        ),
        pytest.param(
            [{"name": "registry"}, {"name": "app-registry"}],
            "app-registry,registry,mirror",
            ["registry", "app-registry", "mirror"],
            id="deduplicated",
        ),
        pytest.param([{"name": "app-registry"}], "", ["app-registry"], id="users-only"),
    ],
)
def test_pull_secrets_join_the_revisions_own(
    written: list[Obj] | None, sidecar: str, expected: list[str]
) -> None:
    base = desired().template
    template = RevisionTemplate(
        containers=base.containers,
        pod={"imagePullSecrets": written} if written is not None else {},
    )
    config = DeploymentConfig.from_mapping(
        {"zeroserve.queue-sidecar-image-pull-secrets": sidecar} if sidecar else {}
    )
    secrets = pod(render(config, template))["imagePullSecrets"]
    assert secrets == [{"name": n} for n in expected]


def _maps(data: dict[str, str]) -> dict[tuple[str, str], Obj]:
    return {(SYSTEM, "config-deployment"): config_map("config-deployment", data)}


def test_the_image_comes_from_the_map_else_the_flag() -> None:
    config = ClusterConfig(Settings(system_namespace=SYSTEM, queue_proxy_image="zeroserve:1"))
    assert config.update(_maps({"queue-sidecar-image": "registry.example.com/zs:2"}))
    assert config.queue_proxy_image == "registry.example.com/zs:2"
    assert config.update(_maps({"progress-deadline": "600s"}))
    assert config.queue_proxy_image == "zeroserve:1"


def test_a_bad_quantity_keeps_the_last_good_map(caplog: pytest.LogCaptureFixture) -> None:
    config = ClusterConfig(Settings(system_namespace=SYSTEM, queue_proxy_image="zeroserve:1"))
    good = {"queue-sidecar-memory-limit": "256Mi", "queue-sidecar-image": "zs:2"}
    assert config.update(_maps(good))
    with caplog.at_level(logging.ERROR, logger="controller"):
        assert not config.update(_maps({**good, "queue-sidecar-memory-limit": "256MB"}))
    assert "config-deployment: queue-sidecar-memory-limit: must be a quantity" in caplog.text
    assert config.configs.deployment.queue_sidecar_limits == (("memory", "256Mi"),)
    assert config.queue_proxy_image == "zs:2"


async def test_the_controller_writes_them(cluster: FakeKubeAPI, controller: KubeController) -> None:
    """Through the planner: a new config-deployment re-renders the revision's pods."""
    put_manifest(cluster, HELLOWORLD_GO)
    rev = "helloworld-go-00001"
    first = await cluster.wait_for("deployments", "default", f"{rev}-deployment", within=5)
    assert first is not None and queue(first)["resources"] == {"requests": {"cpu": "25m"}}
    cluster.put(
        config_map(
            "config-deployment",
            {
                "queue-sidecar-memory-limit": "200Mi",
                "zeroserve.queue-sidecar-image-pull-secrets": "registry",
            },
        )
    )
    updated = await cluster.wait_for(
        "deployments",
        "default",
        f"{rev}-deployment",
        lambda d: d is not None and "limits" in queue(d)["resources"],
        within=5,
    )
    assert updated is not None
    assert queue(updated)["resources"] == {
        "requests": {"cpu": "25m"},
        "limits": {"memory": "200Mi"},
    }
    assert pod(updated)["imagePullSecrets"] == [{"name": "registry"}]
