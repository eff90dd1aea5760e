"""A fake Kubernetes API server for tests: aiohttp on 127.0.0.1, real REST protocol.

``kubernetes_asyncio`` (typed APIs, ``CustomObjectsApi``, the dynamic client, ``watch.Watch``)
and kubectl talk to it through the kubeconfig that :meth:`FakeKubeAPI.write_kubeconfig`
writes. Tests can also seed and inspect state directly (:meth:`FakeKubeAPI.put`, ``get``,
``list``, ``patch``, ``delete``, ``wait_for``), inject faults (:meth:`FakeKubeAPI.fail_next`,
``delay_next``), expire the watch history (:meth:`FakeKubeAPI.expire_history`), cut watch
streams (:meth:`FakeKubeAPI.close_watches`) and restart the server on the same port with its
state intact (:meth:`FakeKubeAPI.restart`).

Everything runs on the test's event loop; there are no threads. This module is the HTTP
layer (routing, discovery, request handling) and the test-facing API; watch streams are
served by :mod:`.streaming`, object semantics live in :mod:`.store` and the modules below it.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from . import errors, openapi, printers, protobuf
from .admission import Admission
from .auth import AUTHENTICATED, MASTERS, Attributes, Auth, User, resource_verb
from .faults import Fault, FaultInjector, RecordedRequest
from .patches import merge_patch
from .query import parse_bool, parse_int
from .resources import BUILTIN_TYPES, ResourceRegistry, ResourceType, default_crds
from .selection import selector_predicate
from .storage import Event
from .store import Store
from .streaming import WatchStreams
from .tables import to_table, wants_table

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-zeroserve-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_JSON = "application/json"
ANONYMOUS_ADMIN = User("admin", (MASTERS, AUTHENTICATED))
"""Who a request is when the server does not authenticate."""
USER = web.RequestKey("user", User)


@dataclass(frozen=True)
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool  # the deprecated /watch/ path prefix


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=_encode(obj), status=status, content_type=_JSON, headers=headers)


class FakeKubeAPI:
    """The fake API server. Construct, ``await start()``, use, ``await stop()``.

    Construction already seeds the default namespaces (default, kube-system, kube-public,
    kube-node-lease) and CRDs (Knative Serving and its internal kinds, Istio), so the direct
    helpers work before the server listens. Typical use::

        async with FakeKubeAPI() as api:
            path = api.write_kubeconfig(tmp_path / "kubeconfig")
            configuration = client.Configuration()
            await config.load_kube_config(config_file=str(path),
                                          client_configuration=configuration)
            api.put({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"replicas": 0}})
            api.fail_next("PATCH", "/deployments/web/scale", 503)
            ...  # run the component under test with ApiClient(configuration)
            await api.wait_for("deploy", "default", "web",
                               lambda d: d is not None and d["spec"]["replicas"] == 3)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_limit: int = 1000,
        bookmark_interval: float = 1.0,
        crds: Iterable[dict[str, Any]] | None = None,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        strict_namespaces: bool = True,
        watch_queue_limit: int = 10_000,
        request_log_limit: int = 1000,
    ) -> None:
        """``port=0`` picks a free port at the first start (kept across restarts).
        ``history_limit`` bounds the watch history (older resourceVersions get 410);
        ``bookmark_interval`` spaces BOOKMARK events (the apiserver's is about a minute);
        ``crds`` replaces the default CRD set (pass ``[*default_crds(), mine]`` to extend it);
        ``strict_namespaces`` refuses creates into missing namespaces, as admission does;
        ``watch_queue_limit`` cuts off a watcher that falls this many events behind."""
        self.host = host
        self._port = port
        self.registry = ResourceRegistry()
        for rt in BUILTIN_TYPES:
            self.registry.register(rt)
        self.store = Store(
            self.registry,
            history_limit=history_limit,
            watch_queue_limit=watch_queue_limit,
            strict_namespaces=strict_namespaces,
        )
        for ns in namespaces:
            self.put(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns},
                    "status": {"phase": "Active"},
                }
            )
        for crd in default_crds() if crds is None else crds:
            self.put(crd)
        self.faults = FaultInjector()
        self.requests: deque[RecordedRequest] = deque(maxlen=request_log_limit)
        self._runner: web.AppRunner | None = None
        self.extra_listeners: builtins.list[tuple[str, int, ssl.SSLContext | None]] = []
        """More (host, port, TLS context) to serve on, from the next start (the test
        cluster's in-cluster HTTPS address)."""
        self._watches = WatchStreams(self.store, bookmark_interval)
        self.auth: Auth | None = None
        self.admission: Admission | None = None
        """Admission webhooks (see .admission); None (the default) calls none."""
        """Authentication and RBAC (see .auth); None (the default) lets every request
        through as an admin."""

    # ----- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the fake API server has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_shutdown.append(self._on_shutdown)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner
        try:
            for host, port, ssl_context in self.extra_listeners:
                await web.TCPSite(
                    runner, host, port, reuse_address=True, ssl_context=ssl_context
                ).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening, end every watch stream, close connections. State is kept."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def restart(self) -> None:
        """Stop and start again on the same port, as an apiserver restart looks to clients:
        open watches end, objects and the resourceVersion counter survive."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> FakeKubeAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Runs after the listener closed and before aiohttp waits for handlers: ending the
        # streams here lets their handlers finish instead of being cancelled at the timeout.
        self.store.close_watchers("shutdown")

    def kubeconfig(
        self,
        *,
        context: str = "fake",
        namespace: str = "default",
        token: str = "fake-token",
        server: str | None = None,
        ca_pem: bytes | None = None,
    ) -> dict[str, Any]:
        """``server``/``ca_pem``: an HTTPS listener of :attr:`extra_listeners` and its CA
        (client-go sends a bearer token over HTTPS only)."""
        cluster: dict[str, Any] = {"server": server or self.url}
        if ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            # Without .auth any credentials are accepted; a token makes clients send an
            # Authorization header as they would against a real cluster.
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, **kwargs: Any) -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig(**kwargs), sort_keys=False))
        return target

    # ----- direct access for tests -----------------------------------------------------

    def resource(self, name: str) -> ResourceType:
        """Resolve ``deployments``, ``Deployment``, ``deploy``, ``ksvc``,
        ``services.serving.knative.dev``... to the served type (preferred version)."""
        return self.registry.resolve(name)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or overwrite ``obj`` (found by apiVersion/kind) with no admission checks;
        ``.status`` is stored as given. Emits ADDED/MODIFIED like any write."""
        rt = self.registry.for_api_version_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise KeyError(f"no served type for {obj.get('apiVersion')}/{obj.get('kind')}")
        return self.store.put(rt, obj)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rt = self.resource(resource)
        obj = self.store.find(rt, namespace, name)
        return None if obj is None else self.store.present(rt, obj)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        rt = self.resource(resource)
        predicate = selector_predicate(label_selector, field_selector, rt.selectable_fields)
        return [self.store.present(rt, o) for o in self.store.select(rt, namespace, predicate)]

    def patch(
        self, resource: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON-merge-patch an object directly, status included (e.g. to play a controller)."""
        current = self.get(resource, namespace, name)
        if current is None:
            rt = self.resource(resource)
            raise errors.not_found(rt.plural, rt.group, name)
        return self.put(merge_patch(current, patch))

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str = "Background",
    ) -> dict[str, Any] | None:
        """Delete as the API would (finalizers and cascades included); returns the last
        state, or None if there was no such object."""
        rt = self.resource(resource)
        if self.store.find(rt, namespace, name) is None:
            return None
        last, _ = self.store.delete(rt, namespace, name, propagation=propagation_policy)
        return last

    @property
    def resource_version(self) -> int:
        return self.store.rv

    def expire_history(self, up_to: int | None = None) -> None:
        """Compact the event history up to ``up_to`` (default: now). Watches from an older
        resourceVersion then get a 410 Expired ERROR event, like after an etcd compaction."""
        self.store.compact(up_to)

    async def wait_for(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        predicate: Callable[[dict[str, Any] | None], bool] | None = None,
        *,
        within: float = 5.0,
    ) -> dict[str, Any] | None:
        """Wait until ``predicate(object or None)`` holds (default: the object exists);
        TimeoutError after ``within`` seconds, showing the last state seen."""
        check = predicate or (lambda obj: obj is not None)
        changed = asyncio.Event()

        def listener(_: Event) -> None:
            changed.set()

        self.store.add_listener(listener)
        current = self.get(resource, namespace, name)
        try:
            async with asyncio.timeout(within):
                while not check(current):
                    changed.clear()
                    await changed.wait()
                    current = self.get(resource, namespace, name)
        except TimeoutError:
            raise TimeoutError(
                f"{resource} {namespace}/{name} did not reach the expected state within "
                f"{within}s; last seen: {current!r}"
            ) from None
        finally:
            self.store.remove_listener(listener)
        return current

    # ----- faults and observation ------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_substring: str,
        status: int,
        count: int = 1,
        *,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Fail the next ``count`` requests whose method matches (``"*"``: any) and whose
        decoded path+query contains ``path_substring``, with a Status of code ``status``."""
        return self.faults.add(
            Fault(
                method.upper(),
                path_substring,
                status,
                count,
                reason=reason,
                message=message,
                retry_after=retry_after,
            )
        )

    def delay_next(self, method: str, path_substring: str, seconds: float, count: int = 1) -> Fault:
        """Hold the next ``count`` matching requests for ``seconds`` before serving them."""
        return self.faults.add(Fault(method.upper(), path_substring, None, count, delay=seconds))

    def requests_matching(
        self, method: str = "*", path_substring: str = ""
    ) -> builtins.list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if method.upper() in ("*", r.method) and path_substring in r.path
        ]

    @property
    def active_watches(self) -> int:
        return len(self._watches)

    async def wait_for_watches(self, count: int = 1, *, within: float = 5.0) -> None:
        """Wait until exactly ``count`` watch streams are open (e.g. until a component's
        informer is connected, or until every stream is gone)."""
        await self._watches.wait_for_count(count, within)

    def close_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch stream while the server keeps running; returns how many.
        Graceful: the chunked response is terminated properly (the client sees end of
        stream). Abrupt: the connection is dropped mid-stream (a payload error)."""
        return self._watches.close_all(abrupt=abrupt)

    # ----- HTTP plumbing ---------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Content-Type", ""),
                body,
            )
        )
        try:
            if self.auth is None:
                request[USER] = ANONYMOUS_ADMIN
            else:
                request[USER] = self.auth.impersonate(
                    self.auth.authenticate(request.headers.get("Authorization")),
                    request.headers.get("Impersonate-User"),
                    request.headers.getall("Impersonate-Group", []),
                )
            fault = self.faults.take(request.method, unquote(request.path_qs))
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    headers, details = {}, None
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                        details = {"retryAfterSeconds": fault.retry_after}
                    raise errors.ApiError(
                        fault.status,
                        fault.message or f"injected fault ({fault.status})",
                        fault.reason,
                        details,
                        headers,
                    )
            response: web.StreamResponse = await handler(request)
            return response
        except errors.ApiError as exc:
            return _json_response(exc.status(), exc.code, exc.headers)
        except Exception as exc:
            # A bug in the fake itself: keep the traceback in the test log, and still answer
            # with a Status so the client under test reports it like any server error.
            log.exception("fake API server failed on %s %s", request.method, request.path_qs)
            failure = errors.ApiError(500, f"fake API server error: {exc!r}", "InternalError")
            return _json_response(failure.status(), 500)

    def _authorize(self, request: web.Request, attrs: Attributes) -> None:
        if self.auth is not None:
            self.auth.authorize(request[USER], attrs)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if (
            not parts
            or parts[0] not in ("api", "apis")
            or len(parts) <= (2 if parts[0] == "api" else 3)
        ):
            # discovery and the rest are non-resource URLs to RBAC
            self._authorize(request, Attributes(request.method.lower(), request.path))
        if not parts or parts[0] not in ("api", "apis"):
            return self._non_resource(request, parts)
        if request.method != "GET" and len(parts) <= (2 if parts[0] == "api" else 3):
            raise errors.method_not_allowed()
        if parts == ["api"]:
            return _json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                    ],
                }
            )
        if parts == ["apis"]:
            return _json_response(self.registry.api_group_list())
        if parts[0] == "api":
            if parts[1] != "v1":
                raise errors.no_such_route()
            group, version, rest = "", "v1", parts[2:]
        else:
            if len(parts) == 2:
                doc = self.registry.api_group(parts[1])
                if doc is None:
                    raise errors.no_such_route()
                return _json_response(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return _json_response(self.registry.api_resource_list(group, version))
        route = self._route(group, version, rest)
        self._authorize(
            request,
            Attributes(
                resource_verb(
                    request.method,
                    has_name=route.name is not None,
                    watch=route.watch_path or parse_bool(request.query.get("watch")),
                ),
                request.path,
                resource_request=True,
                api_group=group,
                api_version=version,
                resource=route.rt.plural,
                subresource=route.subresource or "",
                namespace=route.namespace or "",
                name=route.name or "",
            ),
        )
        return await self._resource_request(request, route)

    def _non_resource(self, request: web.Request, parts: builtins.list[str]) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed()
        if parts == ["version"]:
            return _json_response(VERSION_INFO)
        if parts and parts[0] in ("healthz", "livez", "readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if not parts:
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for group, versions in self.registry.groups().items():
                paths.append(f"/apis/{group}")
                paths.extend(f"/apis/{group}/{v}" for v in versions)
            return _json_response({"paths": sorted(paths)})
        if parts[:2] == ["openapi", "v3"]:
            # v3 only, enough for kubectl's and helm's validation (see .openapi); v2 is
            # not served.
            if len(parts) == 2:
                return _json_response(openapi.root(self.registry))
            doc = openapi.group_version(self.registry, "/".join(parts[2:]))
            if doc is not None:
                return _json_response(doc)
        raise errors.no_such_route()

    def _route(self, group: str, version: str, rest: builtins.list[str]) -> Route:
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace = None
        # /api/v1/namespaces/{name}/status is the Namespace's own subresource, not a
        # namespaced collection called "status".
        own_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
        if len(rest) >= 3 and rest[0] == "namespaces" and not own_subresource:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.no_such_route()
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            raise errors.no_such_route()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise errors.no_such_route()
        if rt.namespaced and namespace is None and name is not None:
            raise errors.no_such_route()
        if sub is not None and not (
            (sub == "status" and rt.status_subresource) or (sub == "scale" and rt.scale)
        ):
            raise errors.no_such_route()
        if watch_path and sub is not None:
            raise errors.no_such_route()
        return Route(rt, namespace, name, sub, watch_path)

    def _admitted(
        self, rt: ResourceType, sub: str, ns: str | None, obj: dict[str, Any] | None
    ) -> bool:
        """Whether an update of ``obj`` goes to any admission webhook."""
        return (
            self.admission is not None
            and obj is not None
            and self.admission.matches("UPDATE", rt, sub, ns, obj)
        )

    async def _admit(
        self,
        request: web.Request,
        operation: str,
        rt: ResourceType,
        sub: str,
        ns: str | None,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        if self.admission is None:
            return obj
        user = request[USER]
        return await self.admission.admit(
            operation, rt, sub, ns, obj, old, (user.name, user.groups), dry_run
        )

    def _columns(self, rt: ResourceType) -> builtins.list[printers.Column] | None:
        """``kubectl get`` columns of the type (see .printers)."""
        if rt.custom:
            crd = self.get("customresourcedefinitions", None, rt.storage_key)
            return printers.crd_columns(crd, rt.version)
        return printers.BUILTIN.get(rt.storage_key)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the request body is empty")
        content_type = request.headers.get("Content-Type", _JSON)
        if "protobuf" in content_type:
            # client-go's typed clients (helm's release Secrets) send protobuf, and do not
            # retry with JSON after a 415: the kinds they send are decoded (.protobuf)
            try:
                obj = protobuf.decode(raw)
            except protobuf.ProtobufError as exc:
                raise errors.bad_request(f"error decoding the request body: {exc}") from None
            if obj is None:
                raise errors.unsupported_media_type(
                    content_type.split(";")[0], [_JSON, "application/yaml"]
                )
            return obj
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding the request body: {exc}") from None

    @staticmethod
    def _dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
        values = builtins.list(request.query.getall("dryRun", []))
        values += (options or {}).get("dryRun") or []
        for value in values:
            if value != "All":
                raise errors.bad_request(
                    f'dryRun: Unsupported value: "{value}": supported values: "All"'
                )
        return bool(values)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        decoded: Any = {}
        if raw.startswith(protobuf.MAGIC):
            try:
                decoded = protobuf.decode(raw)
            except protobuf.ProtobufError:
                decoded = None
        elif raw.strip():
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            if not isinstance(decoded, dict):
                raise errors.bad_request("the request body is not a valid DeleteOptions")
        options: dict[str, Any] = decoded
        query = request.query
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if "orphanDependents" in query:
            options["orphanDependents"] = parse_bool(query["orphanDependents"])
        if options.get("propagationPolicy") is None and options.get("orphanDependents") is not None:
            # The deprecated flag maps onto the policy it predates.
            options["propagationPolicy"] = "Orphan" if options["orphanDependents"] else "Background"
        return options

    async def _resource_request(self, request: web.Request, route: Route) -> web.StreamResponse:
        rt, ns, name, sub = route.rt, route.namespace, route.name, route.subresource
        method, query = request.method, request.query
        table = wants_table(request.headers.get("Accept", ""))
        if route.watch_path and method != "GET":
            raise errors.method_not_allowed()
        if name is None or route.watch_path:
            predicate = selector_predicate(
                query.get("labelSelector"),
                query.get("fieldSelector") if name is None else f"metadata.name={name}",
                rt.selectable_fields,
            )
            if method == "GET" and (route.watch_path or parse_bool(query.get("watch"))):
                return await self._watches.serve(request, rt, ns, predicate, table)
            if method == "GET":
                listing = self.store.list(
                    rt,
                    ns,
                    predicate,
                    limit=parse_int(query.get("limit"), "limit"),
                    continue_token=query.get("continue") or None,
                )
                if table:
                    # Table rows embed whole objects, which carry their apiVersion/kind.
                    typed = [
                        {**i, "apiVersion": rt.api_version, "kind": rt.kind}
                        for i in listing["items"]
                    ]
                    doc = to_table(
                        typed,
                        listing["metadata"]["resourceVersion"],
                        query.get("includeObject"),
                        self._columns(rt),
                        custom=rt.custom,
                    )
                    doc["metadata"] = listing["metadata"]  # keeps continue/remainingItemCount
                    return _json_response(doc)
                return _json_response(listing)
            if method == "POST":
                if rt.namespaced and ns is None:
                    raise errors.method_not_allowed()
                body = await self._body(request)
                dry_run = self._dry_run(request)
                if isinstance(body, dict):
                    body = await self._admit(request, "CREATE", rt, "", ns, body, None, dry_run)
                created = self.store.create(rt, ns, body, dry_run=dry_run)
                return _json_response(created, 201)
            if method == "DELETE":
                options = await self._delete_options(request)
                return _json_response(
                    self.store.delete_collection(
                        rt,
                        ns,
                        predicate,
                        propagation=options.get("propagationPolicy"),
                        dry_run=self._dry_run(request, options),
                    )
                )
            raise errors.method_not_allowed()
        if sub == "scale":
            if method == "GET":
                return _json_response(self.store.get_scale(rt, ns, name))
            if method == "PUT":
                return _json_response(
                    self.store.update_scale(
                        rt, ns, name, await self._body(request), dry_run=self._dry_run(request)
                    )
                )
            if method == "PATCH":
                return _json_response(
                    self.store.patch_scale(
                        rt,
                        ns,
                        name,
                        request.headers.get("Content-Type", ""),
                        await request.read(),
                        dry_run=self._dry_run(request),
                    )
                )
            raise errors.method_not_allowed()
        if method == "GET":
            obj = self.store.get(rt, ns, name)
            if table and sub is None:
                return _json_response(
                    to_table(
                        [obj],
                        str(self.store.rv),
                        query.get("includeObject"),
                        self._columns(rt),
                        custom=rt.custom,
                    )
                )
            return _json_response(obj)
        if method == "PUT":
            body = await self._body(request)
            dry_run = self._dry_run(request)
            if isinstance(body, dict) and self._admitted(rt, sub or "", ns, body):
                old = self.store.get(rt, ns, name)
                body = await self._admit(request, "UPDATE", rt, sub or "", ns, body, old, dry_run)
            return _json_response(
                self.store.update(rt, ns, name, body, subresource=sub, dry_run=dry_run)
            )
        if method == "PATCH":
            dry_run = self._dry_run(request)
            old = self.store.get(rt, ns, name)
            admitted = self._admitted(rt, sub or "", ns, old)
            patched = self.store.patch(
                rt,
                ns,
                name,
                request.headers.get("Content-Type", ""),
                await request.read(),
                subresource=sub,
                dry_run=dry_run or admitted,
            )
            if not admitted:
                return _json_response(patched)
            # with webhooks, the patched object goes through admission, then is written as
            # an update guarded by the resourceVersion it was patched from (409 if it moved)
            patched["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            patched = await self._admit(request, "UPDATE", rt, sub or "", ns, patched, old, dry_run)
            return _json_response(
                self.store.update(rt, ns, name, patched, subresource=sub, dry_run=dry_run)
            )
        if method == "DELETE" and sub is None:
            options = await self._delete_options(request)
            last, gone = self.store.delete(
                rt,
                ns,
                name,
                propagation=options.get("propagationPolicy"),
                preconditions=options.get("preconditions"),
                dry_run=self._dry_run(request, options),
                grace_period=parse_int(
                    request.query.get("gracePeriodSeconds"), "gracePeriodSeconds"
                )
                if "gracePeriodSeconds" in request.query
                else options.get("gracePeriodSeconds"),
            )
            if gone and not rt.return_deleted_object:
                details = {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "uid": last["metadata"]["uid"],
                }
                return _json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {k: v for k, v in details.items() if v},
                    }
                )
            return _json_response(last)
        raise errors.method_not_allowed()
