"""config-network (host templates, scheme, rollout duration, TLS keys at their defaults),
config-gc, DomainMapping manifests and the rollout-duration annotation (issue 14)."""

from __future__ import annotations

import pytest

from tests.api.manifests import doc, dump, edit
from zeroserve.api import Configs, ManifestErrors, load, validate
from zeroserve.api.network import (
    DISABLED,
    GCConfig,
    HostTemplate,
    NetworkConfig,
    parse_mesh_mode,
)
from zeroserve.api.objects import DomainMapping, ObjectRef
from zeroserve.api.validate import ROLLOUT_DURATION, rollout_seconds
from zeroserve.envconfig import ConfigError


def test_network_defaults_and_templates() -> None:
    n = NetworkConfig.from_mapping({})
    assert n == NetworkConfig()
    values = {"Name": "hello", "Namespace": "prod", "Domain": "example.com"}
    assert n.domain_template.render(values) == "hello.prod.example.com"
    assert n.tag_template.render({"Name": "hello", "Tag": "v2"}) == "v2-hello"
    custom = NetworkConfig.from_mapping(
        {
            "domain-template": '{{.Name}}-{{.Namespace}}.{{ index .Labels "team" }}.{{.Domain}}',
            "tag-template": "{{.Name}}-{{.Tag}}",
            "default-external-scheme": "https",
            "rollout-duration": "120",
            "autocreate-cluster-domain-claims": "true",
            "ingress-class": "istio.ingress.networking.knative.dev",
            "external-domain-tls": "Disabled",
        }
    )
    assert (
        custom.domain_template.render(values, labels={"team": "web"})
        == "hello-prod.web.example.com"
    )
    assert custom.tag_template.render({"Name": "hello", "Tag": "v2"}) == "hello-v2"
    assert (custom.default_external_scheme, custom.rollout_duration) == ("https", 120)
    assert custom.autocreate_cluster_domain_claims


def test_legacy_keys_are_read_and_the_new_spelling_wins() -> None:
    n = NetworkConfig.from_mapping(
        {"rolloutDuration": "30", "domainTemplate": "{{.Name}}.{{.Domain}}"}
    )
    assert n.rollout_duration == 30
    assert n.domain_template.source == "{{.Name}}.{{.Domain}}"
    assert (
        NetworkConfig.from_mapping(
            {"rolloutDuration": "30", "rollout-duration": "5"}
        ).rollout_duration
        == 5
    )


def test_trimming_marks() -> None:
    t = HostTemplate.parse("{{- .Name -}} . {{.Domain}}", what="t", fields=("Name", "Domain"))
    assert t.render({"Name": "a", "Domain": "b.c"}) == "a. b.c"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"domain-template": "{{.Name}}/x.{{.Domain}}"}, "does not make a host name"),
        ({"domain-template": "{{printf .Name}}.{{.Domain}}"}, "{{printf .Name}} is not supported"),
        ({"domain-template": "{{.Name}.{{.Domain}}"}, "is not supported by zeroserve"),
        ({"tag-template": "{{.Tag}}/{{.Name}}"}, "does not make a host name"),
        ({"tag-template": "{{.Namespace}}-{{.Tag}}"}, "{{.Namespace}} is not supported"),
        ({"rollout-duration": "2m"}, "rollout-duration: must be a whole number of seconds"),
        ({"rollout-duration": "-1"}, "rollout-duration: must be a whole number of seconds"),
        ({"default-external-scheme": "ftp"}, "default-external-scheme: must be http or https"),
        ({"external-domain-tls": "enabled"}, "external-domain-tls: only disabled is supported"),
        ({"auto-tls": "Enabled"}, "auto-tls: only disabled is supported"),
        ({"system-internal-tls": "enabled"}, "system-internal-tls: only disabled"),
        ({"cluster-local-domain-tls": "enabled"}, "cluster-local-domain-tls: only disabled"),
        ({"http-protocol": "redirected"}, "http-protocol: only enabled is supported"),
        ({"ingress-class": "kourier.ingress.networking.knative.dev"}, "programs Istio only"),
        ({"autocreate-cluster-domain-claims": "yes"}, "must be true or false"),
        ({"domain-tempate": "x"}, "domain-tempate: unknown key"),
        ({"mesh-compatibility-mode": "on"}, "mesh-compatibility-mode: must be enabled, disabled"),
    ],
)
def test_bad_network_settings_are_refused_naming_the_key(
    data: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_mapping(data)
    assert str(info.value).startswith("config-network: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (None, "auto"),
        ("", "auto"),
        ("auto", "auto"),
        ("Enabled", "enabled"),
        (" disabled", "disabled"),
    ],
)
def test_mesh_compatibility_mode(text: str | None, mode: str) -> None:
    assert parse_mesh_mode(text) == mode
    data = {} if text is None else {"mesh-compatibility-mode": text}
    assert NetworkConfig.from_mapping(data).mesh_compatibility_mode == mode


def test_gc_config() -> None:
    assert GCConfig.from_mapping({}) == GCConfig(48 * 3600.0, 15 * 3600.0, 20, 1000)
    g = GCConfig.from_mapping(
        {
            "retain-since-create-time": "disabled",
            "retain-since-last-active-time": "1h30m",
            "min-non-active-revisions": "2",
            "max-non-active-revisions": "Disabled",
        }
    )
    assert g == GCConfig(DISABLED, 5400.0, 2, DISABLED)
    for data, message in (
        ({"min-non-active-revisions": "-1"}, "must be non-negative"),
        ({"min-non-active-revisions": "5", "max-non-active-revisions": "2"}, "must be <="),
        ({"retain-since-create-time": "2 days"}, "must be a duration"),
        ({"max-non-active-revisions": "-3"}, "non-negative integer or disabled"),
        ({"stale-revision-create-delay": "1h"}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            GCConfig.from_mapping(data)


def test_network_and_gc_maps_apply_through_configs() -> None:
    c = Configs().with_config_map("config-network", {"rollout-duration": "60"})
    c = c.with_config_map("config-gc", {"min-non-active-revisions": "1"})
    assert (c.network.rollout_duration, c.gc.min_non_active_revisions) == (60, 1)


DM = """\
apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: shop.example.org
  namespace: default
spec:
  ref:
    name: hello
    kind: Service
    apiVersion: serving.knative.dev/v1
"""


def test_domain_mapping_loads_and_validates() -> None:
    [dm] = load(DM, "f.yaml")
    assert isinstance(dm, DomainMapping)
    assert dm.ref == ObjectRef("serving.knative.dev/v1", "Service", "hello")
    assert validate(dm, Configs()) == []


@pytest.mark.parametrize(
    ("name", "ref_namespace", "expected"),
    [
        (
            "shop",
            "",
            [
                "metadata.name: invalid name 'shop': should be a domain with at least two "
                "segments separated by dots"
            ],
        ),
        (
            "a.b.svc.cluster.local",
            "",
            [
                "metadata.name: invalid name 'a.b.svc.cluster.local': must "
                "not be a subdomain of cluster local domain 'cluster.local'"
            ],
        ),
        (
            "shop.example.org",
            "other",
            [
                "spec.ref.namespace: mismatched namespaces: the reference "
                "must be in 'default', got 'other'"
            ],
        ),
    ],
)
def test_bad_domain_mappings(name: str, ref_namespace: str, expected: list[str]) -> None:
    text = DM.replace("shop.example.org", name)
    if ref_namespace:
        text += f"    namespace: {ref_namespace}\n"
    [dm] = load(text, "f.yaml")
    assert [f"{e.path}: {e.rule}" for e in validate(dm, Configs())] == expected


def test_domain_mapping_shape_errors() -> None:
    with pytest.raises(ManifestErrors) as info:
        load(
            DM.replace("    apiVersion: serving.knative.dev/v1\n", "")
            + "  tls:\n    secretName: x\n",
            "f.yaml",
        )
    assert [f"{e.path}: {e.rule}" for e in info.value.errors] == [
        "spec.ref.apiVersion: missing required field",
        "spec.tls: not supported by zeroserve yet (it has no TLS); leave it out",
    ]


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("90s", None),
        ("2m", None),
        ("1.5s", "rollout-duration=1.5s is not at second precision"),
        ("-5s", "rollout-duration=-5s must be positive"),
        ("soon", "invalid value: soon (a duration like 120s or 2m)"),
    ],
)
def test_rollout_duration_annotation(value: str, rule: str | None) -> None:
    document = edit(doc(), ("metadata", "annotations"), {ROLLOUT_DURATION: value})
    [svc] = load(dump(document), "f.yaml")
    found = [e.rule for e in validate(svc, Configs())]
    assert found == ([] if rule is None else [rule])
    if rule is None:
        assert rollout_seconds(svc.meta.annotations) in (90, 120)


def test_rollout_duration_on_the_template_is_refused() -> None:
    document = edit(
        doc(), ("spec", "template", "metadata"), {"annotations": {ROLLOUT_DURATION: "9s"}}
    )
    [svc] = load(dump(document), "f.yaml")
    assert [e.path for e in validate(svc, Configs())] == [
        f"spec.template.metadata.annotations.{ROLLOUT_DURATION}"
    ]
