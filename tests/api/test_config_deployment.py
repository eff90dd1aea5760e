"""``config-deployment``: Knative's keys for the queue-proxy sidecar (image, requests and
limits, ``registries-skipping-tag-resolving``), zeroserve's pull-secret key, and which of
them ``zeroserve up`` refuses because only a cluster's revision pods use them."""

from __future__ import annotations

from fractions import Fraction

import pytest

from zeroserve.api.configs import Configs
from zeroserve.autoscaling.config import (
    DEPLOYMENT_CLUSTER_ONLY_KEYS,
    DeploymentConfig,
    parse_quantity,
)
from zeroserve.envconfig import ConfigError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("25m", Fraction(1, 40)),
        ("0.5", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("64Mi", Fraction(64 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1.5M", Fraction(1_500_000)),
        (".5", Fraction(1, 2)),
        ("+2", Fraction(2)),
        ("100n", Fraction(1, 10_000_000)),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1mi", "64MB", "ten", "1 Gi", "1e30", "Mi", "1.2.3"])
def test_not_quantities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_knatives_defaults() -> None:
    """A 25m CPU request, no limits, no pull secrets; Knative's registries list."""
    d = DeploymentConfig.from_mapping({})
    assert d == DeploymentConfig()
    assert d.queue_resources() == {"requests": {"cpu": "25m"}}
    assert d.queue_sidecar_image == ""
    assert d.queue_sidecar_image_pull_secrets == ()
    assert d.registries_skipping_tag_resolving == {"kind.local", "ko.local", "dev.local"}


def test_every_resource_key() -> None:
    d = DeploymentConfig.from_mapping(
        {
            "queue-sidecar-cpu-request": "100m",
            "queue-sidecar-cpu-limit": "1",
            "queue-sidecar-memory-request": "64Mi",
            "queue-sidecar-memory-limit": "256Mi",
            "queue-sidecar-ephemeral-storage-request": "512Mi",
            "queue-sidecar-ephemeral-storage-limit": "1Gi",
        }
    )
    assert d.queue_resources() == {
        "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "512Mi"},
        "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "1Gi"},
    }


def test_a_limit_alone_keeps_the_default_cpu_request() -> None:
    """What a ResourceQuota that requires limits needs: limits, with Knative's request."""
    d = DeploymentConfig.from_mapping(
        {"queue-sidecar-cpu-limit": "500m", "queue-sidecar-memory-limit": "128Mi"}
    )
    assert d.queue_resources() == {
        "requests": {"cpu": "25m"},
        "limits": {"cpu": "500m", "memory": "128Mi"},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {"queue-sidecar-memory-limit": "lots"},
            "config-deployment: queue-sidecar-memory-limit: must be a quantity like 25m, 0.5, "
            "64Mi or 1Gi, got 'lots'",
            id="not-a-quantity",
        ),
        pytest.param(
            {"queue-sidecar-cpu-request": "-25m"},
            "config-deployment: queue-sidecar-cpu-request: must be a quantity like 25m, 0.5, "
            "64Mi or 1Gi, got '-25m'",
            id="negative",
        ),
        pytest.param(
            {"queue-sidecar-memory-request": "256Mi", "queue-sidecar-memory-limit": "128Mi"},
            "config-deployment: queue-sidecar-memory-limit: must be at least "
            "queue-sidecar-memory-request (256Mi), got '128Mi'",
            id="limit-below-request",
        ),
        pytest.param(
            {"queue-sidecar-cpu-limit": "10m"},
            "config-deployment: queue-sidecar-cpu-limit: must be at least "
            "queue-sidecar-cpu-request (25m, the default), got '10m'",
            id="limit-below-default-request",
        ),
        pytest.param(
            {"queue-sidecar-image": ""},
            "config-deployment: queue-sidecar-image: must be an image reference without "
            "blanks, got ''",
            id="empty-image",
        ),
        pytest.param(
            {"zeroserve.queue-sidecar-image-pull-secrets": "registry,Bad_Name"},
            "config-deployment: zeroserve.queue-sidecar-image-pull-secrets: must be "
            "comma-separated Secret names (lower-case DNS names), got 'registry,Bad_Name'",
            id="bad-secret-name",
        ),
        pytest.param(
            {"registries-skipping-tag-resolving": "kind.local,ghcr.io/org"},
            "config-deployment: registries-skipping-tag-resolving: must be comma-separated "
            "registry hosts like kind.local, got 'kind.local,ghcr.io/org'",
            id="registry-with-path",
        ),
    ],
)
def test_bad_values_name_the_map_and_the_key(data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DeploymentConfig.from_mapping(data)
    assert str(info.value) == message


def test_pull_secrets_and_registries_are_lists() -> None:
    d = DeploymentConfig.from_mapping(
        {
            "zeroserve.queue-sidecar-image-pull-secrets": " registry , mirror,registry,",
            "registries-skipping-tag-resolving": "kind.local, registry.internal:5000",
            "queue-sidecar-image": "registry.example.com/zeroserve@sha256:" + "a" * 64,
        }
    )
    assert d.queue_sidecar_image_pull_secrets == ("registry", "mirror")
    assert d.registries_skipping_tag_resolving == {"kind.local", "registry.internal:5000"}
    assert d.queue_sidecar_image == "registry.example.com/zeroserve@sha256:" + "a" * 64


@pytest.mark.parametrize("key", sorted(DEPLOYMENT_CLUSTER_ONLY_KEYS))
def test_pod_keys_need_a_cluster(key: str) -> None:
    """``zeroserve up`` runs the queue-proxy as a process: no image, no requests or
    limits, no pull; the controller on a cluster takes the same keys."""
    value = {
        "queue-sidecar-image": "zeroserve:1",
        "zeroserve.queue-sidecar-image-pull-secrets": "registry",
        "registries-skipping-tag-resolving": "kind.local",
    }.get(key, "2")
    with pytest.raises(ConfigError) as info:
        Configs().with_config_map("config-deployment", {key: value})
    assert str(info.value) == (
        f"config-deployment: {key}: not supported by zeroserve (it needs a Kubernetes cluster)"
    )
    on_cluster = Configs().with_config_map("config-deployment", {key: value}, cluster=True)
    assert on_cluster.deployment == DeploymentConfig.from_mapping({key: value})
    assert on_cluster.deployment != DeploymentConfig()


def test_progress_deadline_is_read_in_both_places() -> None:
    for cluster in (False, True):
        configs = Configs().with_config_map(
            "config-deployment", {"progress-deadline": "2m"}, cluster=cluster
        )
        assert configs.deployment.progress_deadline == 120.0


@pytest.mark.parametrize("cluster", [False, True], ids=["local", "cluster"])
@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("digest-resolution-timeout", "not supported by zeroserve"),
        ("runtime-class-name", "not supported by zeroserve"),
        ("queueSidecarImage", "not supported by zeroserve"),
        ("queue-sidecar-cpu-requests", "unknown key"),
    ],
)
def test_other_keys_are_refused(cluster: bool, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Configs().with_config_map("config-deployment", {key: "x"}, cluster=cluster)
    assert str(info.value) == f"config-deployment: {key}: {message}"
