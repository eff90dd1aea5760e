"""Admission webhooks in the fake API server (tests/fakes/kubeapi/admission.py): which
webhooks a write goes to, what their answers do, and what a failing webhook does, with
a real HTTPS webhook on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from zeroserve.kube.certs import make_ca, serving_cert

from .admission import ADMISSION_TYPES, Admission, rule_matches
from .fakeapi import FakeKubeAPI
from .resources import BUILTIN_TYPES

CONFIGMAPS = next(rt for rt in BUILTIN_TYPES if rt.plural == "configmaps")
DEPLOYMENTS = next(rt for rt in BUILTIN_TYPES if rt.plural == "deployments")


def rule(**overrides: Any) -> dict[str, Any]:
    return {
        "operations": ["CREATE", "UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["configmaps"],
        **overrides,
    }


def test_rules_match_operation_group_version_resource_and_scope() -> None:
    assert rule_matches(rule(), "CREATE", CONFIGMAPS, "")
    assert not rule_matches(rule(), "DELETE", CONFIGMAPS, "")
    assert not rule_matches(rule(apiGroups=["apps"]), "CREATE", CONFIGMAPS, "")
    assert not rule_matches(rule(apiVersions=["v2"]), "CREATE", CONFIGMAPS, "")
    assert rule_matches(rule(resources=["*"], apiGroups=["*"]), "CREATE", DEPLOYMENTS, "")
    assert not rule_matches(rule(resources=["*"], apiGroups=["*"]), "UPDATE", DEPLOYMENTS, "scale")
    scale = rule(apiGroups=["apps"], resources=["deployments/scale"])
    assert rule_matches(scale, "UPDATE", DEPLOYMENTS, "scale")
    assert not rule_matches(scale, "UPDATE", DEPLOYMENTS, "")
    assert rule_matches(rule(apiGroups=["*"], resources=["*/*"]), "UPDATE", DEPLOYMENTS, "status")
    assert not rule_matches(rule(scope="Cluster"), "CREATE", CONFIGMAPS, "")
    assert rule_matches(rule(scope="Namespaced"), "CREATE", CONFIGMAPS, "")


class Webhook:
    """An HTTPS webhook answering with ``self.answer(request)``."""

    def __init__(self, directory: Path) -> None:
        ca, key = make_ca("test webhook CA")
        pair = serving_cert(ca, key, "hook.default.svc", ["hook.default.svc"], [])
        self.ca_bundle = base64.b64encode(ca.cert_pem).decode()
        cert, private = pair.write(directory, "hook")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, private)
        self.seen: list[dict[str, Any]] = []
        self.answer = lambda request: {"allowed": True}
        self.delay = 0.0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.seen.append(review["request"])
        await asyncio.sleep(self.delay)
        response = {"uid": review["request"]["uid"], **self.answer(review["request"])}
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "response": response})


@pytest.fixture
async def hook(tmp_path: Path) -> AsyncIterator[Webhook]:
    webhook = Webhook(tmp_path)
    app = web.Application()
    app.router.add_post("/check", webhook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=webhook.context).start()
    webhook.port = runner.addresses[0][1]
    try:
        yield webhook
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(hook: Webhook) -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI()
    for rt in ADMISSION_TYPES:
        server.registry.register(rt)
    server.admission = Admission(
        server.list,
        server.get,
        lambda host, port: ("127.0.0.1", hook.port) if host == "hook.default.svc" else None,
    )
    async with server:
        yield server


def configure(
    api: FakeKubeAPI, hook: Webhook, kind: str = "Validating", name: str = "hook", **webhook: Any
) -> None:
    api.put(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": f"{kind}WebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": f"{name}.example.com",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "clientConfig": {
                        "service": {"name": "hook", "namespace": "default", "path": "/check"},
                        "caBundle": hook.ca_bundle,
                    },
                    "rules": [rule()],
                    **webhook,
                }
            ],
        }
    )


async def write(
    api: FakeKubeAPI, method: str, name: str, body: Any, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    url = f"{api.url}/api/v1/namespaces/default/configmaps"
    if method != "POST":
        url += f"/{name}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, data=json.dumps(body), headers={"Content-Type": content_type}
        ) as response,
    ):
        return response.status, await response.json()


def config_map(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "data": data,
    }


async def test_a_denial_is_the_apiservers_error_and_nothing_is_stored(
    api: FakeKubeAPI, hook: Webhook
) -> None:
    configure(api, hook)
    hook.answer = lambda request: {
        "allowed": "bad" not in request["object"]["data"],
        "status": {"code": 422, "message": "no bad keys"},
    }
    status, body = await write(api, "POST", "x", config_map("x", bad="1"))
    assert status == 422
    assert body["message"] == 'admission webhook "hook.example.com" denied the request: no bad keys'
    assert api.get("configmaps", "default", "x") is None
    status, _ = await write(api, "POST", "x", config_map("x", good="1"))
    assert status == 201
    [first, second] = hook.seen
    assert second["object"]["data"] == {"good": "1"} and second["oldObject"] is None
    assert (first["operation"], first["userInfo"]["username"], first["namespace"]) == (
        "CREATE",
        "admin",
        "default",
    )
    # an update sends the old object too, a patch the patched one
    hook.answer = lambda request: {"allowed": False}
    status, body = await write(
        api, "PATCH", "x", {"data": {"more": "2"}}, "application/merge-patch+json"
    )
    assert status == 400
    assert body["message"].endswith("denied the request without explanation")
    assert hook.seen[-1]["operation"] == "UPDATE"
    assert hook.seen[-1]["object"]["data"] == {"good": "1", "more": "2"}
    assert hook.seen[-1]["oldObject"]["data"] == {"good": "1"}
    assert api.get("configmaps", "default", "x")["data"] == {"good": "1"}  # type: ignore[index]


async def test_a_mutating_webhooks_patch_is_applied_before_validation(
    api: FakeKubeAPI, hook: Webhook
) -> None:
    configure(api, hook, kind="Mutating", name="add")
    configure(api, hook, kind="Validating", name="check")

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if "stamped" in request["object"]["data"]:
            return {"allowed": True}
        ops = [{"op": "add", "path": "/data/stamped", "value": "yes"}]
        patch = base64.b64encode(json.dumps(ops).encode()).decode()
        return {"allowed": True, "patchType": "JSONPatch", "patch": patch}

    hook.answer = answer
    status, created = await write(api, "POST", "y", config_map("y", a="1"))
    assert status == 201 and created["data"] == {"a": "1", "stamped": "yes"}
    assert [r["object"]["data"] for r in hook.seen] == [{"a": "1"}, {"a": "1", "stamped": "yes"}]


async def test_selectors_choose_the_objects(api: FakeKubeAPI, hook: Webhook) -> None:
    configure(api, hook, objectSelector={"matchLabels": {"checked": "yes"}})
    await write(api, "POST", "a", config_map("a"))
    await write(api, "POST", "b", config_map("b", {"checked": "yes"}))
    assert [r["name"] for r in hook.seen] == ["b"]
    configure(api, hook, namespaceSelector={"matchLabels": {"team": "x"}})
    await write(api, "POST", "c", config_map("c", {"checked": "yes"}))
    assert [r["name"] for r in hook.seen] == ["b"]  # default has no team label


async def test_a_webhook_that_cannot_answer_fails_closed_or_is_ignored(
    api: FakeKubeAPI, hook: Webhook
) -> None:
    configure(api, hook, timeoutSeconds=1)
    hook.delay = 2.0
    status, body = await write(api, "POST", "slow", config_map("slow"))
    assert status == 500
    assert body["message"] == (
        'Internal error occurred: failed calling webhook "hook.example.com": failed to call '
        'webhook: Post "https://hook.default.svc:443/check?timeout=1s": context deadline exceeded'
    )
    configure(api, hook, timeoutSeconds=1, failurePolicy="Ignore")
    status, _ = await write(api, "POST", "slow", config_map("slow"))
    assert status == 201
    # a webhook with no endpoints
    hook.delay = 0
    configure(api, hook, clientConfig={"service": {"name": "gone", "namespace": "default"}})
    status, body = await write(api, "POST", "z", config_map("z"))
    assert status == 500 and 'no endpoints available for service "gone"' in body["message"]
    # a CA that did not sign the webhook's certificate
    other = base64.b64encode(make_ca("other")[0].cert_pem).decode()
    configure(
        api,
        hook,
        clientConfig={
            "service": {"name": "hook", "namespace": "default", "path": "/check"},
            "caBundle": other,
        },
    )
    status, body = await write(api, "POST", "z", config_map("z"))
    assert status == 500 and "CERTIFICATE_VERIFY_FAILED" in body["message"]
