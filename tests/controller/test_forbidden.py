"""A controller without the RBAC it needs says so: the API server's 403, word for word,
in the error it stops with (the fake API server enforcing RBAC, tests/fakes/kubeapi/auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.kubeapi.auth import RBAC_TYPES, Auth, bootstrap_policy, service_account_user
from tests.fakes.kubeapi.fakeapi import FakeKubeAPI
from zeroserve.kube import KubeError

from .helpers import running


async def test_a_controller_denied_by_rbac_names_the_missing_permission(
    cluster: FakeKubeAPI, kubeconfig: Path
) -> None:
    for rt in RBAC_TYPES:
        cluster.registry.register(rt)
    for obj in bootstrap_policy():
        cluster.put(obj)
    # the kubeconfig's token is the controller's service account, bound to nothing
    cluster.auth = Auth(
        cluster.list, tokens={"fake-token": service_account_user("knative-serving", "controller")}
    )
    with pytest.raises(KubeError) as caught:
        async with running(kubeconfig, sync_timeout=1.0):
            pass
    assert (
        'is forbidden: User "system:serviceaccount:knative-serving:controller" cannot list '
        'resource "services" in API group "serving.knative.dev" at the cluster scope'
    ) in str(caught.value)
