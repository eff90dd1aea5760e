"""Pytest fixtures and helpers for testing against the fake Kubernetes API server.

``tests/fakes/kubeapi/conftest.py`` re-exports the fixtures for the tests in this package. Test
packages elsewhere can do the same from their own conftest.py::

    from tests.fakes.kubeapi.fixtures import fake_kube, k8s_client, kubeconfig  # noqa: F401

or skip fixtures and scope everything to the test body::

    async with FakeKubeAPI() as api, api_client(api, tmp_path) as k8s:
        pods = await client.CoreV1Api(k8s).list_namespaced_pod("default")
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from .fakeapi import FakeKubeAPI


@contextlib.asynccontextmanager
async def api_client(api: FakeKubeAPI, directory: Path) -> AsyncIterator[client.ApiClient]:
    """A kubernetes_asyncio ApiClient loaded from a kubeconfig the fake writes into
    ``directory``: the same path production code takes to reach a cluster."""
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(api.write_kubeconfig(directory / "kubeconfig")),
        client_configuration=configuration,
    )
    async with client.ApiClient(configuration) as k8s:
        yield k8s


@pytest.fixture
async def fake_kube() -> AsyncIterator[FakeKubeAPI]:
    """A started FakeKubeAPI (fast bookmarks for tests), stopped after the test."""
    api = FakeKubeAPI(bookmark_interval=0.2)
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
def kubeconfig(fake_kube: FakeKubeAPI, tmp_path: Path) -> Path:
    return fake_kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def k8s_client(fake_kube: FakeKubeAPI, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    async with api_client(fake_kube, tmp_path) as k8s:
        yield k8s
