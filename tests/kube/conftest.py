"""Fixtures: the fake API server (tests.fakes.kubeapi) and a zeroserve KubeClient connected to it
through the kubeconfig the fake wrote, the way production code connects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.kubeapi.fixtures import fake_kube, k8s_client, kubeconfig  # noqa: F401
from zeroserve.kube import KubeClient, connect


@pytest.fixture
async def kube(kubeconfig: Path) -> AsyncIterator[KubeClient]:  # noqa: F811
    # A short request timeout keeps the outage tests quick; the fake answers in milliseconds.
    client = await connect(str(kubeconfig), request_timeout=2.0)
    try:
        yield client
    finally:
        await client.close()
