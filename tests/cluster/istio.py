"""The test cluster's stand-in for Istio's ingress gateway: serves what the Gateways and
VirtualServices in the API server say, on a public and a cluster-local listener.

A listener serves the Gateways whose servers listen on its port: the public one those on
port 80 (``knative-ingress-gateway``), the cluster-local one those on 8081
(``knative-local-gateway``), as the chart installs them. For a request it does what
envoy does with Istio's configuration:

- the VirtualServices bound to one of the listener's Gateways (``spec.gateways``:
  ``<namespace>/<name>``, or ``<name>`` in the VirtualService's namespace) whose
  ``spec.hosts`` hold the request's host (exact, ``*.suffix`` or ``*``, port ignored);
- their first ``http`` rule with a ``match`` entry that holds (entries are ORed, the
  conditions of one ANDed): ``gateways``, ``authority``/``uri``/``headers`` with
  ``exact``/``prefix``/``regex``; no ``match``: every request;
- a destination by ``weight``, the rule's and the destination's
  ``headers.request.set/add/remove``, ``rewrite.authority``;
- forwarded to ``destination.host`` (a Service's DNS name) and ``port.number`` through
  the cluster's Services (a ready endpoint), streamed both ways, with envoy's
  ``x-forwarded-for``, ``x-forwarded-proto``, ``x-request-id``,
  ``x-envoy-attempt-count`` (and ``x-envoy-external-address`` on the public listener)
  and, on the response, ``server: istio-envoy`` and ``x-envoy-upstream-service-time``;
- no rule: 404 with an empty body; nothing ready behind the destination: 503 ``no
  healthy upstream``; a refused connection: 503 ``upstream connect error or
  disconnect/reset before headers. reset reason: connection failure``; a rule's
  ``timeout`` elapsed before the response headers: 504 ``upstream request timeout``.

What differs from Istio: one listener per gateway port on 127.0.0.1 (no TLS servers,
no SNI), HTTP/1.1 only (no HTTP/2, no upgrades to WebSocket), no retries (the controller
turns them off: ``retries: {attempts: 0}``), no mirroring, fault injection, CORS or
redirects, and the mesh's routing (``gateways: [mesh]``) is not simulated. With the
mesh model on (tests/cluster/mesh.py) the gateway, Envoy, connects to endpoints from the
mesh address: its connections count as mTLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.kubeapi.fakeapi import FakeKubeAPI

Resolve = Callable[[str, int], tuple[str, int] | None]

PUBLIC_PORT, LOCAL_PORT = 80, 8081
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def _string_match(rule: dict[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if "exact" in rule:
        return value == rule["exact"]
    if "prefix" in rule:
        return value.startswith(str(rule["prefix"]))
    if "regex" in rule:
        return re.fullmatch(str(rule["regex"]), value) is not None
    return True


def host_matches(pattern: str, host: str) -> bool:
    """A VirtualService host against a request's host (port stripped)."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _gateway_ref(ref: str, namespace: str) -> str:
    return ref if "/" in ref else f"{namespace}/{ref}"


def match_holds(
    m: dict[str, Any], *, gateway: str, namespace: str, authority: str, path: str, headers: Any
) -> bool:
    gateways = m.get("gateways")
    if gateways and gateway not in {_gateway_ref(g, namespace) for g in gateways}:
        return False
    if "authority" in m and not _string_match(m["authority"], authority):
        return False
    if "uri" in m and not _string_match(m["uri"], path):
        return False
    for name, rule in (m.get("headers") or {}).items():
        if not _string_match(rule, headers.get(name)):
            return False
    return True


def choose(route: list[dict[str, Any]]) -> dict[str, Any]:
    """A destination by weight (a lone one without a weight gets everything)."""
    weights = [int(d.get("weight", 100 if len(route) == 1 else 0)) for d in route]
    if sum(weights) <= 0:
        return route[0]
    return random.choices(route, weights)[0]


def _apply_headers(headers: dict[str, str], ops: dict[str, Any] | None) -> None:
    request = (ops or {}).get("request") or {}
    for name, value in (request.get("set") or {}).items():
        for k in [k for k in headers if k.lower() == name.lower()]:
            del headers[k]
        headers[name] = str(value)
    for name, value in (request.get("add") or {}).items():
        existing = next((k for k in headers if k.lower() == name.lower()), None)
        headers[existing or name] = f"{headers[existing]},{value}" if existing else str(value)
    for name in request.get("remove") or ():
        for k in [k for k in headers if k.lower() == str(name).lower()]:
            del headers[k]


class IngressGateway:
    """Two listeners on 127.0.0.1 (module doc). ``resolve(host, port)`` gives a ready
    endpoint of a Service DNS name, or None."""

    def __init__(
        self,
        api: FakeKubeAPI,
        resolve: Resolve,
        *,
        public_port: int = 0,
        local_port: int = 0,
        source: str | None = None,
    ) -> None:
        self.api = api
        self.source = source
        self.resolve = resolve
        self._ports = {"public": public_port, "local": local_port}
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self.public_port = 0
        self.local_port = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, force_close=False, local_addr=(self.source, 0) if self.source else None
            ),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        for which, gateway_port in (("public", PUBLIC_PORT), ("local", LOCAL_PORT)):
            app = web.Application(client_max_size=0)
            app.router.add_route(
                "*", "/{tail:.*}", functools.partial(self._handle, port=gateway_port, which=which)
            )
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self._ports[which], reuse_address=True)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            if which == "public":
                self.public_port = port
            else:
                self.local_port = port

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _gateways(self, port: int) -> set[str]:
        """``<ns>/<name>`` of the Gateways with a server on ``port``."""
        out = set()
        for gw in self.api.list("gateways.networking.istio.io"):
            for server in (gw.get("spec") or {}).get("servers") or ():
                if int((server.get("port") or {}).get("number", 0)) == port:
                    out.add(f"{gw['metadata']['namespace']}/{gw['metadata']['name']}")
        return out

    def route(
        self, port: int, authority: str, path: str, headers: Any
    ) -> tuple[dict[str, Any], dict[str, Any], str] | None:
        """(the http rule, the chosen destination, the VirtualService's namespace) for a
        request on the listener of gateway port ``port``; None: no route (404)."""
        host = authority.rsplit(":", 1)[0] if ":" in authority else authority
        gateways = self._gateways(port)
        services = sorted(
            self.api.list("virtualservices.networking.istio.io"),
            key=lambda v: v["metadata"].get("creationTimestamp") or "",
        )
        for vs in services:
            ns = vs["metadata"]["namespace"]
            spec = vs.get("spec") or {}
            bound = gateways & {_gateway_ref(g, ns) for g in spec.get("gateways") or ()}
            if not bound or not any(host_matches(h, host) for h in spec.get("hosts") or ()):
                continue
            for rule in spec.get("http") or ():
                matches = rule.get("match") or [{}]
                if any(
                    match_holds(
                        m, gateway=g, namespace=ns, authority=authority, path=path, headers=headers
                    )
                    for m in matches
                    for g in bound
                ) and rule.get("route"):
                    return rule, choose(rule["route"]), ns
        return None

    async def _handle(self, request: web.Request, port: int, which: str) -> web.StreamResponse:
        started = time.monotonic()
        authority = request.headers.get("Host", "")
        found = self.route(port, authority, request.path_qs, request.headers)
        if found is None:
            return web.Response(status=404, headers={"server": "istio-envoy"})
        rule, destination, ns = found
        dest = destination.get("destination") or {}
        target_host = str(dest.get("host", ""))
        if "." not in target_host:
            target_host = f"{target_host}.{ns}"
        target_port = int((dest.get("port") or {}).get("number") or 80)
        endpoint = self.resolve(target_host, target_port)
        if endpoint is None:
            return _envoy_error(503, "no healthy upstream")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        client = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        headers["X-Forwarded-Proto"] = "http"
        headers.setdefault("X-Request-Id", str(uuid.uuid4()))
        headers["X-Envoy-Attempt-Count"] = "1"
        if which == "public":
            headers["X-Envoy-External-Address"] = client
        _apply_headers(headers, rule.get("headers"))
        _apply_headers(headers, destination.get("headers"))
        rewrite = (rule.get("rewrite") or {}).get("authority")
        if rewrite:
            for k in [k for k in headers if k.lower() == "host"]:
                del headers[k]
            headers["Host"] = str(rewrite)
        timeout = _duration(rule.get("timeout"))
        assert self._session is not None
        url = f"http://{endpoint[0]}:{endpoint[1]}{request.path_qs}"
        body = request.content if request.body_exists else None
        try:
            upstream_cm = self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            )
            upstream = await asyncio.wait_for(upstream_cm.__aenter__(), timeout)
        except TimeoutError:
            return _envoy_error(504, "upstream request timeout")
        except aiohttp.ClientConnectorError:
            return _envoy_error(
                503,
                "upstream connect error or disconnect/reset before headers. "
                "reset reason: connection failure",
            )
        except aiohttp.ClientError:
            return _envoy_error(
                503,
                "upstream connect error or disconnect/reset before headers. "
                "reset reason: connection termination",
            )
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "server":
                    response.headers.add(k, v)
            response.headers["server"] = "istio-envoy"
            elapsed = int((time.monotonic() - started) * 1000)
            response.headers["x-envoy-upstream-service-time"] = str(elapsed)
            if upstream.headers.get("Content-Length") is not None:
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            with contextlib.suppress(Exception):
                await upstream_cm.__aexit__(None, None, None)


def _envoy_error(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=text, headers={"server": "istio-envoy", "content-type": "text/plain"}
    )


def _duration(value: object) -> float | None:
    """An Istio duration (``"30s"``, ``"1.5s"``, ``"100ms"``); None: no timeout."""
    if not value:
        return None
    text = str(value)
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    if text.endswith("m"):
        return float(text[:-1]) * 60
    return float(text)
