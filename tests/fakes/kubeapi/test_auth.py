"""Authentication and RBAC in the fake API server (tests/fakes/kubeapi/auth.py): the
apiserver's 401s and 403s, over real HTTP, from Roles and bindings stored in it."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from zeroserve.local.sandbox.tokens import service_account_token

from .auth import (
    AUTHENTICATED,
    MASTERS,
    RBAC_TYPES,
    Attributes,
    Auth,
    User,
    bootstrap_policy,
    rule_allows,
)
from .fakeapi import FakeKubeAPI

KEY = secrets.token_bytes(32)
ADMIN = "admin-token"


def sa_token(namespace: str, name: str, *, key: bytes = KEY, expiration: int = 600) -> str:
    return service_account_token(
        key=key,
        namespace=namespace,
        service_account=name,
        pod="p",
        pod_uid="u",
        expiration_seconds=expiration,
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI()
    for rt in RBAC_TYPES:
        server.registry.register(rt)
    server.auth = Auth(
        server.list,
        tokens={ADMIN: User("kubernetes-admin", (MASTERS, AUTHENTICATED))},
        service_account_key=KEY,
        log_path=tmp_path / "forbidden.jsonl",
    )
    for obj in bootstrap_policy():
        server.put(obj)
    async with server:
        yield server


async def call(
    api: FakeKubeAPI, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, api.url + path, headers=headers, json=body) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else {}


def grant(api: FakeKubeAPI, namespace: str, account: str, rules: list[dict[str, Any]]) -> None:
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, "namespace": namespace},
            "rules": rules,
        }
    )
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )


async def test_requests_without_a_valid_token_get_401(api: FakeKubeAPI) -> None:
    assert (await call(api, "GET", "/api/v1/namespaces/default/pods", None))[0] == 401
    assert (await call(api, "GET", "/api/v1/namespaces/default/pods", "nope"))[0] == 401
    other_key = sa_token("default", "x", key=secrets.token_bytes(32))
    assert (await call(api, "GET", "/api", other_key))[0] == 401
    expired = sa_token("default", "x", expiration=-10)
    status, body = await call(api, "GET", "/api", expired)
    assert (status, body["reason"]) == (401, "Unauthorized")


async def test_the_admin_may_do_anything_and_accounts_may_discover(api: FakeKubeAPI) -> None:
    assert (await call(api, "GET", "/api/v1/namespaces/default/pods", ADMIN))[0] == 200
    assert (await call(api, "GET", "/api/v1/namespaces", ADMIN))[0] == 200
    token = sa_token("default", "app")
    for path in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/version", "/openapi/v3"):
        assert (await call(api, "GET", path, token))[0] == 200, path
    assert api.auth is not None and api.auth.denials == []


async def test_a_denied_request_gets_the_apiservers_403_and_is_logged(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    token = sa_token("default", "app")
    status, body = await call(api, "GET", "/api/v1/namespaces/default/pods", token)
    assert status == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:app" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    )
    assert body["details"] == {"kind": "pods"}
    status, body = await call(api, "GET", "/apis/apps/v1/namespaces/default/deployments/web", token)
    assert body["message"].startswith(
        'deployments.apps "web" is forbidden: User "system:serviceaccount:default:app" '
        'cannot get resource "deployments" in API group "apps" in the namespace "default"'
    )
    status, body = await call(api, "GET", "/api/v1/namespaces", token)
    assert body["message"].endswith("at the cluster scope")
    logged = [json.loads(line) for line in (tmp_path / "forbidden.jsonl").read_text().splitlines()]
    assert [(d["verb"], d["resource"]) for d in logged] == [
        ("list", "pods"),
        ("get", "deployments"),
        ("list", "namespaces"),
    ]


async def test_a_role_allows_its_verbs_in_its_namespace_only(api: FakeKubeAPI) -> None:
    grant(api, "default", "app", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    token = sa_token("default", "app")
    assert (await call(api, "GET", "/api/v1/namespaces/default/pods", token))[0] == 200
    assert (await call(api, "GET", "/api/v1/namespaces/kube-system/pods", token))[0] == 403
    # list is not watch
    status, body = await call(api, "GET", "/api/v1/namespaces/default/pods?watch=true", token)
    assert status == 403 and "cannot watch resource" in body["message"]
    # another account in the namespace is not the bound one
    other = sa_token("default", "other")
    assert (await call(api, "GET", "/api/v1/namespaces/default/pods", other))[0] == 403


async def test_resource_names_and_subresources(api: FakeKubeAPI) -> None:
    grant(
        api,
        "default",
        "ctl",
        [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["mine"],
                "verbs": ["get"],
            },
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get"]},
        ],
    )
    api.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "mine", "namespace": "default"},
            "spec": {},
        }
    )
    api.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}},
        }
    )
    token = sa_token("default", "ctl")
    leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    assert (await call(api, "GET", f"{leases}/mine", token))[0] == 200
    status, body = await call(api, "GET", f"{leases}/theirs", token)
    assert status == 403
    assert body["message"].startswith('leases.coordination.k8s.io "theirs" is forbidden')
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    assert (await call(api, "GET", f"{deployments}/web/scale", token))[0] == 200
    assert (await call(api, "GET", f"{deployments}/web", token))[0] == 403


async def test_a_cluster_role_through_a_role_binding_is_limited_to_its_namespace(
    api: FakeKubeAPI,
) -> None:
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}],
        }
    )
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader", "namespace": "kube-public"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "reader",
            },
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:default"}],
        }
    )
    token = sa_token("default", "anyone")
    assert (await call(api, "GET", "/api/v1/namespaces/kube-public/configmaps", token))[0] == 200
    assert (await call(api, "GET", "/api/v1/namespaces/default/configmaps", token))[0] == 403
    assert (await call(api, "GET", "/api/v1/namespaces", token))[0] == 403


def test_rule_matching() -> None:
    scale = Attributes(
        "patch",
        "/x",
        resource_request=True,
        api_group="apps",
        resource="deployments",
        subresource="scale",
        namespace="n",
        name="d",
    )
    assert rule_allows({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["*"]}, scale)
    assert not rule_allows(
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}, scale
    )
    assert not rule_allows({"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}, scale)
    create = Attributes(
        "create", "/x", resource_request=True, api_group="", resource="secrets", namespace="n"
    )
    assert not rule_allows(
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["create"]},
        create,
    )
    url = Attributes("get", "/openapi/v3/apis/apps/v1")
    assert rule_allows({"nonResourceURLs": ["/openapi/*"], "verbs": ["get"]}, url)
    assert not rule_allows({"nonResourceURLs": ["/openapi"], "verbs": ["get"]}, url)
