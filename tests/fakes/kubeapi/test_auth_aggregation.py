"""The fake API server's aggregated ClusterRoles (the built-in admin, edit and view),
impersonation (``kubectl --as``) and its audit of allowed requests
(tests/fakes/kubeapi/auth.py)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .auth import AUTHENTICATED, MASTERS, RBAC_GROUP, RBAC_TYPES, Auth, User, bootstrap_policy
from .fakeapi import FakeKubeAPI

ADMIN = "admin-token"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
CONFIG_MAPS = "/api/v1/namespaces/{ns}/configmaps"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI(namespaces=("default", "other"))
    for rt in RBAC_TYPES:
        server.registry.register(rt)
    server.auth = Auth(
        server.list,
        tokens={ADMIN: User("kubernetes-admin", (MASTERS, AUTHENTICATED))},
        service_account_key=secrets.token_bytes(32),
        audit_path=tmp_path / "audit.jsonl",
    )
    for obj in bootstrap_policy():
        server.put(obj)
    async with server:
        yield server


async def call(
    api: FakeKubeAPI,
    method: str,
    path: str,
    *,
    user: str | None = None,
    groups: tuple[str, ...] = (),
    token: str = ADMIN,
    body: Any = None,
) -> tuple[int, dict[str, Any]]:
    """A request with the admin's token, as ``user`` when given (``kubectl --as``)."""
    headers: list[tuple[str, str]] = [("Authorization", f"Bearer {token}")]
    if user is not None:
        headers.append(("Impersonate-User", user))
    headers += [("Impersonate-Group", g) for g in groups]
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, api.url + path, headers=headers, json=body) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else {}


def bind(api: FakeKubeAPI, namespace: str, user: str, cluster_role: str) -> None:
    api.put(
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{user}-{cluster_role}", "namespace": namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}],
        }
    )


def labelled_role(name: str, labels: dict[str, str], rules: list[dict[str, Any]]) -> dict:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": rules,
    }


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}


async def test_edit_and_view_collect_the_roles_labelled_for_them(api: FakeKubeAPI) -> None:
    # like a chart's aggregate-to-edit role: secrets are not in the built-in part here
    api.put(
        labelled_role(
            "secrets-edit",
            {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
            [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}],
        )
    )
    bind(api, "default", "alice", "edit")
    bind(api, "default", "bob", "view")
    bind(api, "default", "carol", "admin")
    for who in ("alice", "carol"):
        status, _ = await call(
            api, "POST", SECRETS.format(ns="default"), user=who, body=secret(who)
        )
        assert status == 201, who
    # only in the namespace of the binding
    status, body = await call(
        api, "POST", SECRETS.format(ns="other"), user="alice", body=secret("x")
    )
    assert status == 403
    assert body["message"] == (
        'secrets is forbidden: User "alice" cannot create resource "secrets" in API group ""'
        ' in the namespace "other"'
    )
    status, body = await call(
        api, "POST", SECRETS.format(ns="default"), user="bob", body=secret("b")
    )
    assert status == 403 and 'User "bob" cannot create resource "secrets"' in body["message"]
    # view's own rules reach edit and admin (nested aggregation), admin's stay its own
    for who in ("alice", "bob", "carol"):
        assert (await call(api, "GET", CONFIG_MAPS.format(ns="default"), user=who))[0] == 200, who
    roles = f"/apis/{RBAC_GROUP}/v1/namespaces/default/roles"
    assert (await call(api, "GET", roles, user="carol"))[0] == 200
    assert (await call(api, "GET", roles, user="alice"))[0] == 403


async def test_a_role_counts_only_while_it_carries_the_label(api: FakeKubeAPI) -> None:
    bind(api, "default", "alice", "edit")
    path = SECRETS.format(ns="default")
    assert (await call(api, "POST", path, user="alice", body=secret("a")))[0] == 403
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    # a label for another role (admin is not part of edit), or another value, is not
    # selected
    api.put(labelled_role("r", {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}, rules))
    assert (await call(api, "POST", path, user="alice", body=secret("a")))[0] == 403
    api.put(labelled_role("r", {"rbac.authorization.k8s.io/aggregate-to-edit": "false"}, rules))
    assert (await call(api, "POST", path, user="alice", body=secret("a")))[0] == 403
    api.put(labelled_role("r", {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}, rules))
    assert (await call(api, "POST", path, user="alice", body=secret("a")))[0] == 201


async def test_impersonation_needs_the_impersonate_verb(api: FakeKubeAPI) -> None:
    bind(api, "default", "dave", "view")
    # the admin may act as anyone; dave gets exactly dave's access
    assert (await call(api, "GET", CONFIG_MAPS.format(ns="default"), user="dave"))[0] == 200
    assert (await call(api, "GET", CONFIG_MAPS.format(ns="other"), user="dave"))[0] == 403
    # as a member of system:masters, dave is an admin
    status, _ = await call(
        api, "GET", CONFIG_MAPS.format(ns="other"), user="dave", groups=(MASTERS,)
    )
    assert status == 200
    # groups alone name no one
    status, body = await call(api, "GET", CONFIG_MAPS.format(ns="default"), groups=(MASTERS,))
    assert status == 400 and "Impersonate-User" in body["message"]
    # a service account is impersonated with its groups, so its RoleBindings count
    api.put(
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "robot-view", "namespace": "other"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:other"}],
        }
    )
    robot = "system:serviceaccount:other:robot"
    assert (await call(api, "GET", CONFIG_MAPS.format(ns="other"), user=robot))[0] == 200
    assert (await call(api, "GET", CONFIG_MAPS.format(ns="default"), user=robot))[0] == 403
    # a user who may not impersonate gets the apiserver's 403 naming the user asked for
    bind(api, "default", "dave", "edit")
    api.auth.tokens["dave-token"] = User("dave", (AUTHENTICATED,))  # type: ignore[union-attr]
    status, body = await call(
        api, "GET", CONFIG_MAPS.format(ns="default"), user="erin", token="dave-token"
    )
    assert status == 403
    assert body["message"] == (
        'users "erin" is forbidden: User "dave" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )


async def test_the_audit_records_each_allowed_call_once(api: FakeKubeAPI, tmp_path: Path) -> None:
    bind(api, "default", "alice", "view")
    for _ in range(3):
        await call(api, "GET", CONFIG_MAPS.format(ns="default"), user="alice")
    await call(
        api, "GET", CONFIG_MAPS.format(ns="default") + "?watch=true&timeoutSeconds=1", user="alice"
    )
    await call(api, "GET", SECRETS.format(ns="default"), user="alice")  # denied: not audited
    await call(api, "GET", "/api", user="alice")  # not a resource request
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    alice = [(x["verb"], x["group"], x["resource"]) for x in lines if x["user"] == "alice"]
    assert alice == [("list", "", "configmaps"), ("watch", "", "configmaps")]
    # the admin's impersonation is a call of its own
    assert {
        "user": "kubernetes-admin",
        "verb": "impersonate",
        "group": "",
        "resource": "users",
    } in lines
    assert api.auth is not None
    assert ("alice", "list", "", "configmaps") in api.auth.audit
