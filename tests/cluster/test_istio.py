"""The Istio ingress gateway stand-in: routing from the VirtualServices the controller
writes, on the public and the cluster-local listener, with real sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

from .istio import IngressGateway, host_matches
from .kinds import istio_crds

SYSTEM = "knative-serving"
ACTIVATOR = f"activator.{SYSTEM}.svc.cluster.local"


def gateway_obj(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": SYSTEM},
        "spec": {
            "servers": [
                {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ]
        },
    }


def virtual_service(**extra_rule: Any) -> dict[str, Any]:
    """The shape controller/ingress.py writes: one rule per gateway, by authority prefix."""
    rule = lambda gw, prefix, dest: {  # noqa: E731
        "match": [{"gateways": [f"{SYSTEM}/{gw}"], "authority": {"prefix": prefix}}],
        "route": [{"destination": {"host": dest, "port": {"number": 80}}, "weight": 100}],
        "retries": {"attempts": 0},
        **extra_rule,
    }
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "hello-ingress", "namespace": "default"},
        "spec": {
            "hosts": [
                "hello.default.example.com",
                "hello.default.svc.cluster.local",
                "hello.default.svc",
            ],
            "gateways": [f"{SYSTEM}/knative-ingress-gateway", f"{SYSTEM}/knative-local-gateway"],
            "http": [
                rule("knative-ingress-gateway", "hello.default.example.com", ACTIVATOR),
                rule("knative-local-gateway", "hello.default.svc", ACTIVATOR),
            ],
        },
    }


@pytest.fixture
async def setup() -> AsyncIterator[tuple[FakeKubeAPI, IngressGateway, list[Any], dict[str, Any]]]:
    seen: list[Any] = []

    async def backend(request: web.Request) -> web.Response:
        seen.append(request.headers.copy())  # case-insensitive, as HTTP
        return web.Response(text=f"hi {request.host}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    endpoints: dict[str, Any] = {ACTIVATOR: ("127.0.0.1", port)}
    api = FakeKubeAPI(crds=istio_crds(), namespaces=("default", SYSTEM))
    api.put(gateway_obj("knative-ingress-gateway", 80))
    api.put(gateway_obj("knative-local-gateway", 8081))
    gw = IngressGateway(api, lambda host, p: endpoints.get(host))
    await gw.start()
    try:
        yield api, gw, seen, endpoints
    finally:
        await gw.stop()
        await runner.cleanup()


async def get(port: int, host: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"http://127.0.0.1:{port}/x?y=1", headers={"Host": host, **(headers or {})}
        ) as r:
            return r.status, await r.text(), r.headers


def test_host_patterns() -> None:
    assert host_matches("a.example.com", "a.example.com")
    assert host_matches("*.example.com", "a.example.com")
    assert not host_matches("*.example.com", "example.org")
    assert host_matches("*", "anything")


async def test_public_and_local_listeners_serve_only_their_gateways_rules(setup: Any) -> None:
    api, gw, seen, _ = setup
    api.put(virtual_service())
    status, body, headers = await get(gw.public_port, "hello.default.example.com")
    assert (status, body) == (200, "hi hello.default.example.com")
    assert headers["server"] == "istio-envoy" and "x-envoy-upstream-service-time" in headers
    assert seen[-1]["X-Forwarded-Proto"] == "http" and seen[-1]["X-Forwarded-For"] == "127.0.0.1"
    assert seen[-1]["X-Request-Id"] and seen[-1]["X-Envoy-External-Address"] == "127.0.0.1"
    # the cluster-local name through the local gateway only
    assert (await get(gw.local_port, "hello.default.svc.cluster.local"))[0] == 200
    assert (await get(gw.public_port, "hello.default.svc.cluster.local"))[:2] == (404, "")
    assert (await get(gw.local_port, "hello.default.example.com"))[0] == 404
    assert (await get(gw.public_port, "nobody.example.com"))[0] == 404


async def test_header_operations_rewrite_and_upstream_errors(setup: Any) -> None:
    api, gw, seen, endpoints = setup
    api.put(
        virtual_service(
            headers={
                "request": {"set": {"K-Set": "1"}, "add": {"K-Add": "2"}, "remove": ["X-Drop"]}
            },
            rewrite={"authority": "other.default.svc.cluster.local"},
        )
    )
    status, body, _ = await get(
        gw.public_port, "hello.default.example.com", {"X-Drop": "x", "K-Set": "0"}
    )
    assert (status, body) == (200, "hi other.default.svc.cluster.local")
    assert seen[-1]["K-Set"] == "1" and seen[-1]["K-Add"] == "2" and "X-Drop" not in seen[-1]
    endpoints.pop(ACTIVATOR)
    assert (await get(gw.public_port, "hello.default.example.com"))[:2] == (
        503,
        "no healthy upstream",
    )
    endpoints[ACTIVATOR] = ("127.0.0.1", 1)  # nothing listens
    status, body, _ = await get(gw.public_port, "hello.default.example.com")
    assert status == 503 and body.startswith("upstream connect error")


async def test_tag_header_match_and_weights(setup: Any) -> None:
    api, gw, _, endpoints = setup
    vs = virtual_service()
    tagged = {
        "match": [
            {
                "gateways": [f"{SYSTEM}/knative-ingress-gateway"],
                "authority": {"prefix": "hello.default.example.com"},
                "headers": {"Knative-Serving-Tag": {"exact": "blue"}},
            }
        ],
        "route": [{"destination": {"host": "blue.default", "port": {"number": 80}}, "weight": 100}],
    }
    vs["spec"]["http"].insert(0, tagged)
    api.put(vs)
    endpoints["blue.default"] = ("127.0.0.1", 1)
    assert (await get(gw.public_port, "hello.default.example.com"))[0] == 200
    assert (
        await get(gw.public_port, "hello.default.example.com", {"Knative-Serving-Tag": "blue"})
    )[0] == 503
    _rule, dest, _ = gw.route(80, "hello.default.example.com", "/", {}) or (None, None, None)
    assert dest is not None and dest["destination"]["host"] == ACTIVATOR
    split = [
        {"destination": {"host": "a"}, "weight": 20},
        {"destination": {"host": "b"}, "weight": 80},
    ]
    from .istio import choose

    picks = [choose(split)["destination"]["host"] for _ in range(2000)]
    assert 300 <= picks.count("a") <= 500  # 20 % of 2,000, far inside the binomial's bounds
