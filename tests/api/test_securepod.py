"""``secure-pod-defaults`` (zeroserve/api/securepod.py): the flag's values as Knative
parses them, the security contexts each value fills in (Knative's
``revision_defaults.go`` ``defaultSecurityContext`` and its tests), and the fields the
flag lets through validation (Knative's ``fieldmask.go``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.api.manifests import CONTAINER, doc, edit
from tests.api.test_podspec import C, S, configs, problems
from zeroserve.api.features import FeaturesConfig
from zeroserve.api.securepod import secure_container, secure_pod_spec
from zeroserve.envconfig import ConfigError

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
}


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("Disabled", "disabled"),
        ("AllowRootBounded", "allowrootbounded"),
        ("allowrootbounded", "allowrootbounded"),
        ("Enabled", "enabled"),
        ("ENABLED", "enabled"),
    ],
)
def test_the_flag_takes_knatives_three_values_in_any_case(written: str, value: str) -> None:
    features = FeaturesConfig.from_mapping({"secure-pod-defaults": written})
    assert features.secure_pod_defaults() == value


def test_the_flag_refuses_other_values_by_name() -> None:
    with pytest.raises(ConfigError, match=r"config-features: secure-pod-defaults: must be one of"):
        FeaturesConfig.from_mapping({"secure-pod-defaults": "allowed"})
    with pytest.raises(ConfigError, match=r"secure-pod-defaults: must be one of .*'root-allowed'"):
        FeaturesConfig.from_mapping({"secure-pod-defaults": "root-allowed"})


def secured(container: dict[str, Any], flag: str, pod: dict[str, Any] | None = None) -> Any:
    out = copy.deepcopy(container)
    secure_container(out, pod or {}, flag)
    return out.get("securityContext")


def test_disabled_leaves_the_container_alone() -> None:
    assert secured({"image": "x"}, "disabled") is None


def test_enabled_fills_the_restricted_fields() -> None:
    assert secured({"image": "x"}, "enabled") == RESTRICTED


def test_allow_root_bounded_leaves_run_as_non_root_out() -> None:
    expected = {k: v for k, v in RESTRICTED.items() if k != "runAsNonRoot"}
    assert secured({"image": "x"}, "allowrootbounded") == expected


def test_a_low_port_adds_net_bind_service() -> None:
    container = {"image": "x", "ports": [{"containerPort": 80}]}
    assert secured(container, "enabled")["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }
    high = {"image": "x", "ports": [{"containerPort": 8080}]}
    assert secured(high, "enabled")["capabilities"] == {"drop": ["ALL"]}


def test_fields_the_user_wrote_are_kept() -> None:
    written = {
        "allowPrivilegeEscalation": True,
        "capabilities": {},
        "runAsNonRoot": False,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
        "readOnlyRootFilesystem": True,
    }
    container = {"image": "x", "ports": [{"containerPort": 80}], "securityContext": written}
    assert secured(container, "enabled") == written


def test_a_seccomp_profile_without_a_type_gets_runtime_default() -> None:
    container = {"image": "x", "securityContext": {"seccompProfile": {}}}
    assert secured(container, "enabled")["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_pods_context_spares_the_container_seccomp_and_run_as_non_root() -> None:
    pod = {"seccompProfile": {"type": "Unconfined"}, "runAsNonRoot": False}
    assert secured({"image": "x"}, "enabled", pod) == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # a pod profile without a type does not count
    assert secured({"image": "x"}, "enabled", {"seccompProfile": {}})["seccompProfile"] == {
        "type": "RuntimeDefault"
    }


def test_every_container_and_init_container_is_defaulted_and_the_pod_is_not() -> None:
    spec = {
        "containers": [{"image": "a"}, {"image": "b"}],
        "initContainers": [{"image": "c"}],
    }
    secure_pod_spec(spec, "enabled")
    assert [c["securityContext"] for c in (*spec["containers"], *spec["initContainers"])] == [
        RESTRICTED
    ] * 3
    assert "securityContext" not in spec


def test_validation_lets_the_defaults_through_only_with_the_flag_on() -> None:
    bind = edit(
        doc(),
        (*CONTAINER, "securityContext"),
        {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    )
    hint = "kubernetes.containerspec-addcapabilities: enabled in config-features"
    assert hint in problems(bind)[0]
    assert problems(bind, configs(**{"secure-pod-defaults": "Enabled"})) == []
    assert problems(bind, configs(**{"secure-pod-defaults": "AllowRootBounded"})) == []
    more = edit(
        doc(), (*CONTAINER, "securityContext"), {"capabilities": {"add": ["NET_BIND_SERVICE", "X"]}}
    )
    assert problems(more, configs(**{"secure-pod-defaults": "Enabled"})) == [
        f"{C}.securityContext.capabilities.add: must not set the field(s) (it needs {hint})"
    ]


def test_validation_lets_a_pod_opt_out_of_the_seccomp_default() -> None:
    on = configs(**{"secure-pod-defaults": "Enabled"})
    for kind in ("RuntimeDefault", "Unconfined"):
        pod = edit(
            doc(),
            ("spec", "template", "spec", "securityContext"),
            {"seccompProfile": {"type": kind}},
        )
        assert problems(pod, on) == []
        assert problems(pod) == [
            f"{S}.securityContext.seccompProfile: must not set the field(s) (it needs "
            "kubernetes.podspec-securitycontext: enabled in config-features)"
        ]
    local = edit(
        doc(),
        ("spec", "template", "spec", "securityContext"),
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
    )
    assert len(problems(local, on)) == 1
