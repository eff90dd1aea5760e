"""The settings ConfigMaps: upstream's defaults, the values' overrides, and every map
accepted by zeroserve's own parser (which rejects unknown keys), as the controller and
the autoscaler will read them."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from controller.config import ClusterConfig, IstioGateways, Settings, parse_config_istio
from tests.chart.helm import NAMESPACE, Obj, ToolError, one, only, render
from zeroserve.api.configs import Configs, DomainConfig
from zeroserve.api.features import DEFAULTS, FeaturesConfig
from zeroserve.autoscaling.config import AutoscalerConfig, DeploymentConfig

pytestmark = pytest.mark.process

NAMES = (
    "config-autoscaler",
    "config-defaults",
    "config-deployment",
    "config-domain",
    "config-features",
    "config-gc",
    "config-network",
    "config-observability",
    "config-tracing",
)
"""The maps zeroserve's shared parser reads (``Configs``)."""
ALL = tuple(sorted((*NAMES, "config-istio")))


def _data(objects: list[Obj], name: str) -> dict[str, str]:
    return dict(one(objects, "ConfigMap", name, NAMESPACE)["data"])


def _configs(objects: list[Obj]) -> Configs:
    configs = Configs()
    for name in NAMES:
        configs = configs.with_config_map(
            name, _data(objects, name), default_domain="svc.cluster.local", cluster=True
        )
    return configs


def test_only_these_maps(objects: list[Obj]) -> None:
    settings = [
        o
        for o in only(objects, "ConfigMap")
        if "grafana_dashboard" not in o["metadata"]["labels"]  # test_dashboards.py
    ]
    assert sorted(o["metadata"]["name"] for o in settings) == list(ALL)


def test_every_value_is_a_string_and_documented(objects: list[Obj]) -> None:
    for name in ALL:
        data = _data(objects, name)
        assert all(isinstance(v, str) for v in data.values())
        assert data["_example"].strip()


def test_the_defaults_are_upstreams(default_objects: list[Obj]) -> None:
    configs = _configs(default_objects)
    assert configs.autoscaler == AutoscalerConfig()
    # Knative's, but for the sidecar's image (the chart's) and its 64Mi memory request.
    assert configs.deployment == replace(
        DeploymentConfig(),
        queue_sidecar_image="zeroserve:0.1.0",
        queue_sidecar_requests=(("cpu", "25m"), ("memory", "64Mi")),
    )
    assert configs.defaults == Configs().defaults
    assert configs.domain == DomainConfig({"example.com": {}})
    assert configs.features == FeaturesConfig()
    assert configs.network == Configs().network
    assert configs.gc == Configs().gc
    assert configs.observability == Configs().observability


def test_config_istio_names_knatives_gateways(default_objects: list[Obj]) -> None:
    """The chart's config-istio is net-istio's default, read by the controller's parser."""
    data = _data(default_objects, "config-istio")
    assert {k: v for k, v in data.items() if k != "_example"} == {
        "gateway.knative-serving.knative-ingress-gateway": (
            "istio-ingressgateway.istio-system.svc.cluster.local"
        ),
        "local-gateway.knative-serving.knative-local-gateway": (
            "knative-local-gateway.istio-system.svc.cluster.local"
        ),
    }
    assert parse_config_istio(data, NAMESPACE) == IstioGateways(
        ingress=(
            (
                "knative-serving/knative-ingress-gateway",
                "istio-ingressgateway.istio-system.svc.cluster.local",
            ),
        ),
        local=(
            (
                "knative-serving/knative-local-gateway",
                "knative-local-gateway.istio-system.svc.cluster.local",
            ),
        ),
    )


def test_config_istio_follows_the_values(helm: str) -> None:
    objects = render(
        helm,
        sets=["istio.localGateway.namespace=mesh-gateways", "clusterDomain=corp.internal"],
        set_json=[
            'config.istio={"gateway.edge.public": "public.edge.svc.corp.internal", '
            '"gateway.knative-serving.knative-ingress-gateway": null}'
        ],
    )
    gateways = parse_config_istio(_data(objects, "config-istio"), NAMESPACE)
    assert gateways.ingress == (("edge/public", "public.edge.svc.corp.internal"),)
    assert gateways.local == (
        (
            "knative-serving/knative-local-gateway",
            "knative-local-gateway.mesh-gateways.svc.corp.internal",
        ),
    )
    service = one(objects, "Service", "knative-local-gateway", "mesh-gateways")
    assert service["spec"]["ports"] == [
        {"name": "http2", "port": 80, "targetPort": 8081, "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {"istio": "ingressgateway"}
    gateway = one(objects, "Gateway", "knative-local-gateway", NAMESPACE)
    assert gateway["spec"]["servers"][0]["port"]["number"] == 8081


def test_the_values_override(custom_objects: list[Obj]) -> None:
    configs = _configs(custom_objects)
    assert (configs.autoscaler.stable_window, configs.autoscaler.scale_to_zero_grace_period) == (
        30,
        10,
    )
    assert "target-burst-capacity" not in _data(
        custom_objects, "config-autoscaler"
    )  # null removes a key
    assert configs.defaults.container_concurrency == 10
    assert configs.deployment.progress_deadline == 300
    assert configs.domain == DomainConfig(
        {"apps.example.org": {}, "internal.example.org": {"visibility": "internal"}}
    )
    assert configs.domain.domain_for({}) == "apps.example.org"
    assert configs.domain.domain_for({"visibility": "internal"}) == "internal.example.org"
    assert _data(custom_objects, "config-features").keys() == {
        "_example",
        "kubernetes.podspec-init-containers",
        "kubernetes.podspec-nodeselector",
    }
    assert configs.features.enabled("kubernetes.podspec-init-containers")
    assert configs.features.flag("kubernetes.podspec-nodeselector") == "allowed"


def test_the_controller_and_the_autoscaler_take_them(
    objects: list[Obj], caplog: pytest.LogCaptureFixture
) -> None:
    """Read by the components' own loaders: the controller's (which logs a map it cannot
    parse and keeps the last good one) and the autoscaler's."""
    maps = {(NAMESPACE, o["metadata"]["name"]): o for o in only(objects, "ConfigMap")}
    cluster = ClusterConfig(
        Settings(system_namespace=NAMESPACE, queue_proxy_image="zeroserve:0.1.0")
    )
    with caplog.at_level(logging.INFO, logger="controller"):
        assert cluster.update(maps)
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert cluster.configs == _configs(objects)
    # config-deployment names the chart's image, the one the controller's flag names.
    args = one(objects, "Deployment", "controller", NAMESPACE)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    flag = args[args.index("--queue-proxy-image") + 1]
    assert cluster.queue_proxy_image == flag
    assert (
        AutoscalerConfig.from_mapping(_data(objects, "config-autoscaler"))
        == _configs(objects).autoscaler
    )
    assert (
        DeploymentConfig.from_mapping(_data(objects, "config-deployment"))
        == _configs(objects).deployment
    )


def test_config_features_documents_knatives_flags(objects: list[Obj]) -> None:
    """``config-features`` lists every one of Knative's flags with its default in
    ``_example`` (zeroserve's parser ignores that key and takes the rest)."""
    data = _data(objects, "config-features")
    listed = dict(
        line.split(": ", 1)
        for line in data["_example"].splitlines()
        if ": " in line and line.split(": ", 1)[0] in DEFAULTS
    )
    assert listed == dict(DEFAULTS)
    assert FeaturesConfig.from_mapping(data).flags.keys() == DEFAULTS.keys()


def test_a_bad_feature_flag_is_refused_by_the_values_schema(helm: str) -> None:
    """A misspelt flag fails at ``helm install`` (values.schema.json), not in the cluster."""
    # helm names the flags it would take.
    with pytest.raises(ToolError, match="tag-header-based-routing"):
        render(helm, set_json=['config.features={"kubernetes.podspec-afinity": "enabled"}'])


def test_the_queue_sidecar_image_can_be_set(helm: str) -> None:
    """The one config-deployment key only the cluster reads (the local parser refuses it)."""
    objects = render(helm, sets=["config.deployment.queue-sidecar-image=registry.example.com/zs:1"])
    cluster = ClusterConfig(
        Settings(system_namespace=NAMESPACE, queue_proxy_image="zeroserve:0.1.0")
    )
    cluster.update({(NAMESPACE, o["metadata"]["name"]): o for o in only(objects, "ConfigMap")})
    assert cluster.queue_proxy_image == "registry.example.com/zs:1"


def test_no_default_domain(helm: str) -> None:
    objects = render(helm, sets=["domain="])
    assert _data(objects, "config-domain").keys() == {"_example"}
    # No entry: routes get the cluster-local domain only, as upstream.
    assert _configs(objects).domain == DomainConfig({"svc.cluster.local": {}})


def test_numbers_and_booleans_become_strings(helm: str) -> None:
    objects = render(
        helm,
        sets=[
            "config.defaults.container-concurrency=10",
            "config.autoscaler.enable-scale-to-zero=false",
        ],
        set_json=[
            "config.defaults.container-concurrency-max-limit=1000",
            "config.autoscaler.container-concurrency-target-percentage=70.5",
        ],
    )
    defaults, autoscaler = _data(objects, "config-defaults"), _data(objects, "config-autoscaler")
    assert (defaults["container-concurrency"], defaults["container-concurrency-max-limit"]) == (
        "10",
        "1000",
    )
    assert autoscaler["enable-scale-to-zero"] == "false"
    assert autoscaler["container-concurrency-target-percentage"] == "70.5"
    assert _configs(objects).defaults.container_concurrency == 10


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["config.autoscaler.stable-window=3s"], "stable-window"),
        (["config.autoscaler.stable_window=60s"], "stable_window: unknown key"),
        (["config.defaults.revision-timeout-seconds=900"], "revision-timeout-seconds"),
    ],
    ids=["window-too-short", "misspelt-key", "timeout-over-max"],
)
def test_a_bad_setting_is_caught_by_zeroserves_parser(
    helm: str, sets: list[str], message: str
) -> None:
    """The chart passes strings through; zeroserve's parser is the judge, as in the cluster."""
    with pytest.raises(ValueError, match=message):
        _configs(render(helm, sets=sets))
