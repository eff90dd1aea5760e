"""The live page of ``zeroserve up``, served by the control API (docs/local-mode.md, "The
live page").

| method | path | what |
| --- | --- | --- |
| GET | / | the page (HTML; no data in it) |
| GET | /page/{app.js,style.css} | its script and style |
| GET | /v1/overview?since=N | Services, revisions, traffic, replicas, and the autoscaler's figures numbered after N (the page token or the control token) |
| POST | /v1/figures | ``{"figures": [...]}``: the autoscaler's figures of one tick (the control token) |

Who may read: the page and its files carry no data and need no token; the data
(``/v1/overview``) needs a token of its own, the *page token*, which ``zeroserve up``
prints in the page's URL after ``#token=`` (a fragment: the browser never sends it in
a request line or a ``Referer``; the script sends it as ``Authorization: Bearer``).
The page token only reads: leaking the printed URL does not let anyone apply a
manifest, which runs commands. The control token reads the data too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from . import access
from .figures import FIGURES_PATH, FigureHistory, Figures, decode_batch

PAGE_DIR = Path(__file__).with_name("page")
"""The page's files (package data)."""
OVERVIEW_PATH = "/v1/overview"
STATIC_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
OPEN_PATHS = frozenset({"/", "/page/app.js", "/page/style.css", OVERVIEW_PATH})
"""Paths the control API's token check leaves alone: the page's files, and its data,
which checks the page token itself."""

SECURITY_HEADERS = {
    # only the page's own script, style and data: nothing from elsewhere, no inline code
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

SERVICE_LABEL = "serving.knative.dev/service"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"


def page_url(control_url: str, page_token: str) -> str:
    """The URL ``zeroserve up`` prints: the page with its token in the fragment."""
    return f"{control_url.rstrip('/')}/#token={page_token}"


def _condition(obj: Mapping[str, Any], kind: str = "Ready") -> dict[str, str]:
    for c in obj.get("status", {}).get("conditions", ()):
        if c.get("type") == kind:
            return {
                "status": str(c.get("status", "Unknown")),
                "reason": str(c.get("reason", "")),
                "message": " ".join(str(c.get("message", "")).split()),
            }
    return {"status": "Unknown", "reason": "", "message": ""}


def overview(
    services: Iterable[Mapping[str, Any]],
    revisions: Iterable[Mapping[str, Any]],
    pods: Iterable[tuple[str, str, bool]],
    figures: Mapping[Any, list[tuple[int, Figures]]],
    *,
    seq: int,
    now: float,
    window: float,
) -> dict[str, Any]:
    """What the page shows, from Kubernetes-shaped Services and Revisions, the replicas
    as ``(namespace, revision, ready)``, and the figures numbered after the reader's
    last (``FigureHistory.since``).

    Services come sorted by namespace and name, each with its traffic (``status.traffic``)
    and its revisions newest first; revisions of a Configuration with no Service come
    in a group of their own (``"kind": "Configuration"``)."""
    pods_total: Counter[tuple[str, str]] = Counter()
    pods_ready: Counter[tuple[str, str]] = Counter()
    for pod_ns, pod_rev, pod_ready in pods:
        pods_total[pod_ns, pod_rev] += 1
        if pod_ready:
            pods_ready[pod_ns, pod_rev] += 1

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for svc in services:
        meta, status = svc.get("metadata", {}), svc.get("status", {})
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        svc_ready = _condition(svc)
        groups[ns, name] = {
            "kind": "Service",
            "namespace": ns,
            "name": name,
            "url": status.get("url", ""),
            "ready": svc_ready["status"],
            "reason": svc_ready["reason"],
            "message": svc_ready["message"],
            "latestReady": status.get("latestReadyRevisionName", ""),
            "traffic": [
                {
                    "revision": t.get("revisionName", ""),
                    "percent": t.get("percent", 0),
                    "tag": t.get("tag", ""),
                    "url": t.get("url", ""),
                    "latest": bool(t.get("latestRevision", False)),
                }
                for t in status.get("traffic", ())
            ],
            "revisions": [],
        }
    for rev in revisions:
        meta, status = rev.get("metadata", {}), rev.get("status", {})
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        labels = meta.get("labels", {})
        owner = labels.get(SERVICE_LABEL) or labels.get(CONFIGURATION_LABEL) or name
        group = groups.get((ns, owner))
        if group is None:
            group = groups[ns, owner] = {
                "kind": "Configuration",
                "namespace": ns,
                "name": owner,
                "url": "",
                "ready": "Unknown",
                "reason": "",
                "message": "",
                "latestReady": "",
                "traffic": [],
                "revisions": [],
            }
        ready = _condition(rev)
        desired = status.get("desiredReplicas")
        group["revisions"].append(
            {
                "namespace": ns,
                "name": name,
                "created": meta.get("creationTimestamp", ""),
                "ready": ready["status"],
                "reason": ready["reason"],
                "message": ready["message"],
                "active": _condition(rev, "Active")["status"],
                "desired": desired if isinstance(desired, int) else None,
                "readyPods": pods_ready[ns, name],
                "pods": pods_total[ns, name],
                # a tagged target's percent is of the main URL's traffic too
                "percent": sum(
                    int(t["percent"] or 0) for t in group["traffic"] if t["revision"] == name
                ),
                "tags": [t["tag"] for t in group["traffic"] if t["revision"] == name and t["tag"]],
            }
        )
    for group in groups.values():
        group["revisions"].sort(key=lambda r: (r["created"], r["name"]), reverse=True)
    points: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, pts in figures.items():
        points[key.namespace, key.name] = [{"seq": s, **f.to_json()} for s, f in pts]
    return {
        "now": now,
        "seq": seq,
        "window": window,
        "services": [groups[k] for k in sorted(groups)],
        "figures": [
            {"namespace": ns, "revision": rev, "points": pts}
            for (ns, rev), pts in sorted(points.items())
        ],
    }


def unauthorized_message() -> str:
    return (
        "unauthorized: the live page's data needs 'Authorization: Bearer <token>' with the "
        "page token (open the page at the URL `zeroserve up` printed: 'live page: "
        "http://.../#token=...') or the control API's token"
    )


class LivePage:
    """The page's routes on the control API (see the module docstring)."""

    def __init__(
        self,
        *,
        controller: Any,
        pods: Callable[[], Iterable[tuple[str, str, bool]]],
        token: str,
        history: FigureHistory | None = None,
        clock: Callable[[], float] = time.time,
        page_dir: Path = PAGE_DIR,
    ) -> None:
        self.controller = controller
        """Has ``get(kind)`` (Kubernetes-shaped objects) and ``revisions()`` (keys)."""
        self.pods = pods
        self.token = token
        self.page_token = access.new_token()
        """Reads the page's data and nothing else (see the module docstring)."""
        self.history = history or FigureHistory()
        self.clock = clock
        self.page_dir = page_dir

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.index)
        router.add_get("/page/{file}", self.static)
        router.add_get(OVERVIEW_PATH, self.overview)
        router.add_post(FIGURES_PATH, self.post_figures)

    def _file(self, name: str) -> web.Response:
        kind = STATIC_FILES[name]
        body = (self.page_dir / name).read_bytes()
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=SECURITY_HEADERS)

    async def index(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name == "index.html" or name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no such file: /page/{name}")
        return self._file(name)

    def authorized(self, header: str | None) -> bool:
        return access.authorized(header, self.page_token) or access.authorized(header, self.token)

    async def overview(self, request: web.Request) -> web.Response:
        if not self.authorized(request.headers.get("Authorization")):
            return web.json_response(
                {"error": unauthorized_message()},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="zeroserve-page"'},
            )
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return web.json_response(
                {"error": f"since: expected an integer, got {request.query['since']!r}"},
                status=400,
            )
        now = self.clock()
        body = overview(
            self.controller.get("ksvc"),
            self.controller.get("revision"),
            self.pods(),
            self.history.since(since, now),
            seq=self.history.seq,
            now=now,
            window=self.history.window,
        )
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def post_figures(self, request: web.Request) -> web.Response:
        try:
            items = decode_batch(await request.json())
        except ValueError as e:
            return web.json_response({"error": f"bad figures: {e}"}, status=400)
        known = set(self.controller.revisions())
        self.history.retain(known)
        taken = 0
        for key, f in items:
            if key in known:
                self.history.add(key, f)
                taken += 1
        return web.json_response({"taken": taken, "seq": self.history.seq})
