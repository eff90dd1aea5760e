"""``config-istio`` as net-istio reads it (both formats, defaults, errors naming the key),
and the controller following it live, keeping the last good gateways on a bad edit."""

from __future__ import annotations

import pytest

from controller.config import (
    ClusterConfig,
    IstioGateways,
    Settings,
    default_gateways,
    parse_config_istio,
)
from zeroserve.envconfig import ConfigError

INGRESS = (
    "knative-serving/knative-ingress-gateway",
    "istio-ingressgateway.istio-system.svc.cluster.local",
)
LOCAL = (
    "knative-serving/knative-local-gateway",
    "knative-local-gateway.istio-system.svc.cluster.local",
)


def test_no_keys_gives_net_istios_defaults() -> None:
    assert parse_config_istio({}, "knative-serving") == IstioGateways((INGRESS,), (LOCAL,))
    assert parse_config_istio({"_example": "x"}, "knative-serving") == default_gateways(
        "knative-serving"
    )


def test_the_prefixed_keys_name_namespace_and_gateway() -> None:
    got = parse_config_istio(
        {
            "gateway.edge.public": "public.edge.svc.cluster.local",
            "gateway.second": "second.edge.svc.cluster.local",
        },
        "knative-serving",
    )
    # A name without a namespace is in the system namespace; the local gateway keeps its
    # default when no local-gateway key is set.
    assert got.ingress == (
        ("edge/public", "public.edge.svc.cluster.local"),
        ("knative-serving/second", "second.edge.svc.cluster.local"),
    )
    assert got.local == (LOCAL,)


def test_the_list_format() -> None:
    got = parse_config_istio(
        {
            "local-gateways": "- namespace: mesh\n  name: private\n  service: p.mesh.svc.cluster.local\n"
        },
        "knative-serving",
    )
    assert got == IstioGateways((INGRESS,), (("mesh/private", "p.mesh.svc.cluster.local"),))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"gateway.a.b": "x.svc", "external-gateways": "[]"},
            "cannot be set together",
        ),
        ({"gateway.edge.public": "Not A Host!"}, "gateway.edge.public: .*not a DNS subdomain"),
        ({"local-gateway.edge.private": ""}, "local-gateway.edge.private: .*missing service"),
        ({"external-gateways": "{a: b}"}, "external-gateways: must be a list"),
        (
            {"external-gateways": "- {namespace: a, name: b}"},
            "external-gateways: gateway a/b: missing service",
        ),
    ],
)
def test_bad_input_names_the_key(data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config_istio(data, "knative-serving")


def test_the_controller_follows_config_istio_and_keeps_the_last_good_one() -> None:
    config = ClusterConfig(Settings())
    assert config.gateways == default_gateways("knative-serving")

    def maps(data: dict[str, str]) -> dict[tuple[str, str], dict[str, object]]:
        return {("knative-serving", "config-istio"): {"data": data}}

    assert config.update(maps({"gateway.edge.public": "public.edge.svc.cluster.local"}))
    good = config.gateways
    assert good.ingress_names == ("edge/public",)
    assert not config.update(maps({"gateway.edge.public": "Not A Host!"}))
    assert config.gateways == good
    assert config.update({})  # the map deleted: the defaults again
    assert config.gateways == default_gateways("knative-serving")
