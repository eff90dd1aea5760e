"""The README's Pod Security command (its "Production checklist"): the chart's
``config.features`` value reaches ``config-features`` as a value the controller reads as
Knative's ``secure-pod-defaults``."""

from __future__ import annotations

import pytest

from tests.chart.helm import ROOT, one, render
from zeroserve.api.configs import Configs

pytestmark = pytest.mark.process


def test_the_readme_pod_security_command_turns_secure_pod_defaults_on(helm: str) -> None:
    readme = (ROOT / "README.md").read_text()
    bullet = readme.split("- **Pod Security in workload namespaces.**", 1)[1]
    command = bullet.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    sets = [arg for arg in command.split() if "=" in arg and not arg.startswith("-")]
    assert sets == ["config.features.secure-pod-defaults=Enabled"]
    data = one(render(helm, sets=sets), "ConfigMap", "config-features")["data"]
    assert data["secure-pod-defaults"] == "Enabled"
    configs = Configs().with_config_map("config-features", data, default_domain="example.com")
    assert configs.features.secure_pod_defaults() == "enabled"
