"""Fixtures of the chart tests: the tools, and the two renders every test reads.

The chart is rendered once per session for the default values and once for
``values-custom.yaml`` (helm takes about 0.1 s a render); tests must not modify the
objects they get.
"""

from __future__ import annotations

import pytest

from tests.chart.helm import CUSTOM_VALUES, Obj, find_tool, render


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_tool("helm")
    if path is None:
        pytest.fail("helm not found in .venv/bin or on the PATH: run `make tools`")
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_tool("kubectl")
    if path is None:
        pytest.fail("kubectl not found in .venv/bin or on the PATH: run `make tools`")
    return path


@pytest.fixture(scope="session")
def default_objects(helm: str) -> list[Obj]:
    return render(helm)


@pytest.fixture(scope="session")
def custom_objects(helm: str) -> list[Obj]:
    return render(helm, [CUSTOM_VALUES])


@pytest.fixture(scope="session", params=["default", "custom"])
def objects(
    request: pytest.FixtureRequest, default_objects: list[Obj], custom_objects: list[Obj]
) -> list[Obj]:
    """Each render in turn: for the properties that hold whatever the values."""
    return default_objects if request.param == "default" else custom_objects


@pytest.fixture(scope="session")
def crds(default_objects: list[Obj]) -> dict[str, Obj]:
    """The CustomResourceDefinitions of the default render, by kind."""
    return {
        o["spec"]["names"]["kind"]: o
        for o in default_objects
        if o["kind"] == "CustomResourceDefinition"
    }
