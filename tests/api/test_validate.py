"""Validation rules that depend on the cluster's settings, and the settings themselves:
config-defaults, config-domain, and how a batch's ConfigMaps apply to the rest of it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.manifests import AUTOSCALED, CONTAINER, HELLO_V2, HELLOWORLD_GO, doc, dump, edit
from zeroserve.api import Configs, DefaultsConfig, DomainConfig, load, validate, validate_objects
from zeroserve.api.configs import LOCAL_DOMAIN
from zeroserve.envconfig import ConfigError

SVC = "f.yaml: Service default/hello"


def problems(
    document: dict[str, Any], configs: Configs | None = None, *, local: bool = True
) -> list[str]:
    [obj] = load(dump(document), "f.yaml")
    return [str(e) for e in validate(obj, configs or Configs(), local=local)]


@pytest.mark.parametrize(
    "text", [HELLOWORLD_GO, HELLO_V2, AUTOSCALED], ids=["helloworld", "split", "autoscaled"]
)
def test_docs_examples_are_valid(text: str) -> None:
    [obj] = load(text, "f.yaml")
    assert validate(obj, Configs()) == []


def test_command_is_required_only_locally() -> None:
    no_command = edit(doc(), (*CONTAINER, "command"), [])
    assert problems(no_command) == [
        f"{SVC}: spec.template.spec.containers[0].command: required locally: the image is not "
        'pulled, so the container needs a command: to run, e.g. command: ["python", "app.py"]'
    ]
    assert problems(no_command, local=False) == []
    # ... and on Kubernetes the image is what runs, so it is required there.
    no_image = edit(doc(), (*CONTAINER, "image"), "")
    assert problems(no_image) == []
    assert problems(no_image, local=False) == [
        f"{SVC}: spec.template.spec.containers[0].image: missing required field"
    ]


CC = ("spec", "template", "spec", "containerConcurrency")
TIMEOUT = ("spec", "template", "spec", "timeoutSeconds")


@pytest.mark.parametrize(
    ("data", "path", "value", "expected"),
    [
        pytest.param({}, CC, 1000, [], id="cc-at-default-limit"),
        pytest.param(
            {"container-concurrency-max-limit": "50"},
            CC,
            51,
            [
                f"{SVC}: spec.template.spec.containerConcurrency: must be between 0 and 50 "
                "(config-defaults container-concurrency-max-limit), got 51"
            ],
            id="cc-over-lowered-limit",
        ),
        pytest.param(
            {"allow-container-concurrency-zero": "false", "container-concurrency": "1"},
            CC,
            0,
            [
                f"{SVC}: spec.template.spec.containerConcurrency: must be between 1 and 1000 "
                "(config-defaults container-concurrency-max-limit), got 0"
            ],
            id="cc-zero-disallowed",
        ),
        pytest.param({}, TIMEOUT, 600, [], id="timeout-at-max"),
        pytest.param(
            {"max-revision-timeout-seconds": "900"}, TIMEOUT, 900, [], id="timeout-raised-max"
        ),
        pytest.param(
            {},
            TIMEOUT,
            601,
            [
                f"{SVC}: spec.template.spec.timeoutSeconds: must be between 0 and 600 (config-defaults "
                "max-revision-timeout-seconds), got 601"
            ],
            id="timeout-over-max",
        ),
    ],
)
def test_config_defaults_bounds(
    data: dict[str, str], path: tuple[str, ...], value: int, expected: list[str]
) -> None:
    configs = Configs().with_config_map("config-defaults", data)
    assert problems(edit(doc(), path, value), configs) == expected


def test_max_scale_limit_from_config_autoscaler_applies_to_annotations() -> None:
    configs = Configs().with_config_map(
        "config-autoscaler", {"max-scale-limit": "3", "max-scale": "3"}
    )
    annotated = edit(
        doc(),
        ("spec", "template", "metadata", "annotations"),
        {"autoscaling.knative.dev/max-scale": "10"},
    )
    assert problems(annotated, configs) == [
        f"{SVC}: spec.template.metadata.annotations.autoscaling.knative.dev/max-scale: must be an "
        "integer between 1 and max-scale-limit (3), got '10'"
    ]
    assert problems(annotated) == []


def test_configmaps_in_a_batch_apply_to_the_rest_of_it() -> None:
    text = dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-defaults", "namespace": "knative-serving"},
            "data": {"container-concurrency-max-limit": "5"},
        },
        edit(doc(), CC, 6),
    )
    configs, errors = validate_objects(load(text, "f.yaml"), Configs())
    assert configs.defaults.container_concurrency_max_limit == 5
    assert [str(e) for e in errors] == [
        f"{SVC}: spec.template.spec.containerConcurrency: must be between 0 and 5 "
        "(config-defaults container-concurrency-max-limit), got 6"
    ]


def test_defaults_config_parses_every_key() -> None:
    assert DefaultsConfig.from_mapping(
        {
            "revision-timeout-seconds": "100",
            "max-revision-timeout-seconds": "200",
            "revision-response-start-timeout-seconds": "10",
            "revision-idle-timeout-seconds": "20",
            "container-concurrency": "4",
            "container-concurrency-max-limit": "8",
            "allow-container-concurrency-zero": "false",
            "container-name-template": "app",
            "_example": "ignored documentation",
        }
    ) == DefaultsConfig(
        revision_timeout_seconds=100,
        max_revision_timeout_seconds=200,
        revision_response_start_timeout_seconds=10,
        revision_idle_timeout_seconds=20,
        container_concurrency=4,
        container_concurrency_max_limit=8,
        allow_container_concurrency_zero=False,
        container_name="app",
    )
    # Upstream: the response-start default is the revision timeout itself.
    assert DefaultsConfig.from_mapping({}).response_start_timeout_seconds == 300


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        pytest.param(
            "config-defaults",
            {"revision-timeout-seconds": "700"},
            "config-defaults: revision-timeout-seconds: must be an integer between 1 and "
            "max-revision-timeout-seconds (600), got '700'",
            id="timeout-over-max",
        ),
        pytest.param(
            "config-defaults",
            {"revision-idle-timeout-seconds": "301"},
            "config-defaults: revision-idle-timeout-seconds: must be an integer between 0 and "
            "revision-timeout-seconds (300), got '301'",
            id="idle-over-timeout",
        ),
        pytest.param(
            "config-defaults",
            {"allow-container-concurrency-zero": "false"},
            "config-defaults: container-concurrency: must be an integer between 1 and "
            "container-concurrency-max-limit (1000) (0 needs allow-container-concurrency-zero: "
            "true), got 0 (the default)",
            id="zero-default-disallowed",
        ),
        pytest.param(
            "config-defaults",
            {"container-name-template": "{{.Name}}"},
            "config-defaults: container-name-template: must be a plain DNS-1123 label "
            "(templates are not supported by zeroserve), got '{{.Name}}'",
            id="go-template",
        ),
        pytest.param(
            "config-defaults",
            {"revision-cpu-limit": "1"},
            "config-defaults: revision-cpu-limit: not supported by zeroserve (it needs a "
            "Kubernetes cluster)",
            id="cluster-only-key",
        ),
        pytest.param(
            "config-defaults",
            {"revision-timeout": "1"},
            "config-defaults: revision-timeout: unknown key",
            id="typo-key",
        ),
        pytest.param(
            "config-autoscaler",
            {"stable-windw": "1m"},
            "config-autoscaler: stable-windw: unknown key",
            id="autoscaler-typo",
        ),
        pytest.param(
            "config-deployment",
            {"queue-sidecar-image": "x"},
            "config-deployment: queue-sidecar-image: not supported by zeroserve (it needs a "
            "Kubernetes cluster)",
            id="deployment-image",
        ),
        pytest.param(
            "config-domain",
            {"Example.COM": ""},
            "config-domain: Example.COM: must be a lower-case DNS name like example.com, got "
            "'Example.COM'",
            id="domain-upper-case",
        ),
        pytest.param(
            "config-domain",
            {"example.com": "app: prod"},
            "config-domain: example.com: must be empty (the default domain) or 'selector:' "
            "followed by labels, like 'selector: {app: prod}', got 'app: prod'",
            id="no-selector-key",
        ),
        pytest.param(
            "config-domain",
            {"example.com": "selector:\n  replicas: 3"},
            "config-domain: example.com: selector: must map label names to string values, got "
            "'selector:\\n  replicas: 3'",
            id="selector-int-value",
        ),
        pytest.param(
            "config-domain",
            {"example.com": "selector: [a"},
            "config-domain: example.com: must be empty (the default domain) or 'selector:' "
            "followed by labels, like 'selector: {app: prod}', got 'selector: [a'",
            id="bad-yaml",
        ),
    ],
)
def test_bad_config_maps(name: str, data: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Configs().with_config_map(name, data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("data", "labels", "domain"),
    [
        pytest.param({}, {}, LOCAL_DOMAIN, id="empty-map-local-default"),
        pytest.param({"example.com": ""}, {"app": "x"}, "example.com", id="single-default"),
        pytest.param(
            {"example.com": "", "example.org": "selector:\n  app: nonprofit"},
            {"app": "nonprofit"},
            "example.org",
            id="selector-beats-default",
        ),
        pytest.param(
            {"example.com": "", "example.org": "selector:\n  app: nonprofit"},
            {"app": "shop"},
            "example.com",
            id="no-match-default",
        ),
        pytest.param(
            {"a.dev": "selector:\n  app: x", "b.dev": "selector:\n  app: x\n  tier: web"},
            {"app": "x", "tier": "web"},
            "b.dev",
            id="most-specific-wins",
        ),
        pytest.param(
            {"b.dev": "selector:\n  app: x", "a.dev": "selector:\n  app: x"},
            {"app": "x"},
            "a.dev",
            id="tie-alphabetical",
        ),
        pytest.param(
            {"example.org": "selector:\n  app: nonprofit"},
            {"app": "shop"},
            None,
            id="nothing-matches",
        ),
    ],
)
def test_domain_selection(data: dict[str, str], labels: dict[str, str], domain: str | None) -> None:
    assert DomainConfig.from_mapping(data).domain_for(labels) == domain


def test_domain_default_can_be_chosen_for_kubernetes() -> None:
    assert DomainConfig.from_mapping({}, default_domain="svc.cluster.local").domains == {
        "svc.cluster.local": {}
    }
