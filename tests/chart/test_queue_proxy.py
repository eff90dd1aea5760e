"""The chart's ``queueProxy`` values: written into ``config-deployment`` and, read by the
controller's own loader, onto the queue-proxy of every revision pod."""

from __future__ import annotations

import pytest

from controller import workloads
from controller.config import ClusterConfig, Settings
from controller.meta import SPEC_HASH_ANNOTATION
from tests.chart.helm import NAMESPACE, Obj, ToolError, one, only, render
from tests.controller.test_resources import REVISION, desired

pytestmark = pytest.mark.process

PINNED = "registry.example.com/platform/zeroserve@sha256:" + "b" * 64


def _deployment_data(objects: list[Obj]) -> dict[str, str]:
    data = dict(one(objects, "ConfigMap", "config-deployment", NAMESPACE)["data"])
    data.pop("_example")
    return data


def _controller(objects: list[Obj]) -> ClusterConfig:
    """The controller as the chart starts it (its --queue-proxy-image), after reading the
    rendered ConfigMaps."""
    args = one(objects, "Deployment", "controller", NAMESPACE)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    config = ClusterConfig(
        Settings(
            system_namespace=NAMESPACE,
            queue_proxy_image=args[args.index("--queue-proxy-image") + 1],
        )
    )
    config.update({(NAMESPACE, o["metadata"]["name"]): o for o in only(objects, "ConfigMap")})
    return config


def _revision_deployment(objects: list[Obj]) -> Obj:
    """The Deployment the controller writes for a revision under these values."""
    config = _controller(objects)
    return workloads.deployment(
        desired(),
        REVISION,
        image=config.queue_proxy_image,
        replicas=1,
        progress_deadline=config.configs.deployment.progress_deadline,
        sidecar=config.configs.deployment,
    )


def _queue(deployment: Obj) -> Obj:
    (container,) = (
        c
        for c in deployment["spec"]["template"]["spec"]["containers"]
        if c["name"] == "queue-proxy"
    )
    result: Obj = container
    return result


def test_the_defaults(default_objects: list[Obj]) -> None:
    """The chart's image, Knative's 25m CPU request plus a 64Mi memory request, no limits
    and no pull secrets."""
    assert _deployment_data(default_objects) == {
        "progress-deadline": "600s",
        "queue-sidecar-image": "zeroserve:0.1.0",
        "queue-sidecar-cpu-request": "25m",
        "queue-sidecar-memory-request": "64Mi",
    }
    deployment = _revision_deployment(default_objects)
    queue = _queue(deployment)
    assert queue["image"] == "zeroserve:0.1.0"
    assert queue["resources"] == {"requests": {"cpu": "25m", "memory": "64Mi"}}
    assert "imagePullSecrets" not in deployment["spec"]["template"]["spec"]


def test_a_pinned_sidecar_survives_an_image_upgrade(helm: str) -> None:
    """With queueProxy.image pinned, a new chart image changes the components but not
    config-deployment, so no revision pod is rolled; unpinned, every one is."""

    def revision_hash(*sets: str) -> str:
        objects = render(helm, sets=list(sets))
        return str(_revision_deployment(objects)["metadata"]["annotations"][SPEC_HASH_ANNOTATION])

    pinned = f"queueProxy.image={PINNED}"
    assert revision_hash("image.tag=0.1.0", pinned) == revision_hash("image.tag=0.2.0", pinned)
    assert revision_hash("image.tag=0.1.0") != revision_hash("image.tag=0.2.0")
    objects = render(helm, sets=["image.tag=0.2.0", pinned])
    assert _queue(_revision_deployment(objects))["image"] == PINNED


def test_requests_limits_and_pull_secrets(helm: str) -> None:
    objects = render(
        helm,
        sets=[
            "queueProxy.resources.limits.cpu=1",
            "queueProxy.resources.limits.memory=256Mi",
            "queueProxy.resources.requests.ephemeral-storage=512Mi",
        ],
        set_json=['queueProxy.imagePullSecrets=["registry", {"name": "mirror"}, "registry"]'],
    )
    data = _deployment_data(objects)
    assert data["queue-sidecar-cpu-limit"] == "1"
    assert data["queue-sidecar-memory-limit"] == "256Mi"
    assert data["queue-sidecar-ephemeral-storage-request"] == "512Mi"
    assert data["zeroserve.queue-sidecar-image-pull-secrets"] == "registry,mirror"
    deployment = _revision_deployment(objects)
    assert _queue(deployment)["resources"] == {
        "requests": {"cpu": "25m", "memory": "64Mi", "ephemeral-storage": "512Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    # The revision's own secret (desired() has none) would come first; the sidecar's follow.
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry"},
        {"name": "mirror"},
    ]


def test_config_deployment_keys_win(helm: str) -> None:
    """A key set under config.deployment overrides queueProxy's; null removes it."""
    objects = render(
        helm,
        sets=[
            "config.deployment.queue-sidecar-image=zs:override",
            "config.deployment.queue-sidecar-memory-request=null",
        ],
    )
    data = _deployment_data(objects)
    assert data["queue-sidecar-image"] == "zs:override"
    assert "queue-sidecar-memory-request" not in data


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("queueProxy.resources.limits.gpu=1", "Additional property gpu"),
        ("queueProxy.image=a b", "queueProxy.image"),
        ("queueProxy.imagePulSecrets[0]=x", "imagePulSecrets"),
    ],
    ids=["unknown-resource", "blank-in-image", "typo"],
)
def test_the_schema_refuses(helm: str, value: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        render(helm, sets=[value])
