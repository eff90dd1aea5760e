"""Each component's log level from the chart (``<component>.logLevel`` -> ``LOG_LEVEL``,
zeroserve/envconfig.py ``env_log_level``; README, "Production checklist")."""

from __future__ import annotations

import pytest

from tests.chart.helm import ToolError, one, render

pytestmark = pytest.mark.process  # helm runs for every test

COMPONENTS = ("activator", "autoscaler", "controller")


def _env(objects: list[dict], name: str) -> dict[str, str]:
    [container] = one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_info_by_default_and_each_component_its_own(helm: str) -> None:
    assert {c: _env(render(helm), c)["LOG_LEVEL"] for c in COMPONENTS} == dict.fromkeys(
        COMPONENTS, "info"
    )
    objects = render(helm, sets=["activator.logLevel=debug", "controller.logLevel=warning"])
    assert {c: _env(objects, c)["LOG_LEVEL"] for c in COMPONENTS} == {
        "activator": "debug",
        "autoscaler": "info",
        "controller": "warning",
    }


def test_a_level_the_components_do_not_know_is_refused(helm: str) -> None:
    with pytest.raises(ToolError) as e:
        render(helm, sets=["autoscaler.logLevel=verbose"])
    assert "autoscaler.logLevel" in str(e.value), str(e.value)


def test_extra_env_cannot_set_it_twice(helm: str) -> None:
    with pytest.raises(ToolError) as e:
        render(helm, sets=["activator.extraEnv[0].name=LOG_LEVEL", "activator.extraEnv[0].value=x"])
    assert "activator.extraEnv: LOG_LEVEL is set by the chart" in str(e.value), str(e.value)
