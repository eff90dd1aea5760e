"""Fixtures: the fake API server (tests.fakes.kubeapi) with the ``knative-serving`` namespace, and
an in-process controller connected to it through the kubeconfig the fake wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.app import KubeController
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from tests.fakes.kubeapi.fixtures import fake_kube, k8s_client, kubeconfig  # noqa: F401
from tests.fakes.kubeapi.resources import CONTROLLER_EXTRA_CRDS as EXTRA_CRDS
from zeroserve.kube import KubeClient, connect

from .helpers import namespace, running


@pytest.fixture
def cluster(fake_kube: FakeKubeAPI) -> FakeKubeAPI:  # noqa: F811
    """The fake API server with the system namespace (where ConfigMaps and Leases live),
    the chart's DomainMapping and ClusterDomainClaim CRDs, and NetworkPolicies (built into
    a real API server; the fake serves them as a custom resource)."""
    fake_kube.put(namespace("knative-serving"))
    for crd in EXTRA_CRDS:
        fake_kube.put(crd)
    return fake_kube


@pytest.fixture
async def kube(cluster: FakeKubeAPI, kubeconfig: Path) -> AsyncIterator[KubeClient]:  # noqa: F811
    client = await connect(str(kubeconfig), request_timeout=2.0)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def controller(cluster: FakeKubeAPI, kubeconfig: Path) -> AsyncIterator[KubeController]:  # noqa: F811
    async with running(kubeconfig) as ctl:
        yield ctl
