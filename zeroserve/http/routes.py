"""A handler for small local endpoints (metrics, admin, health) on the same engine."""

from __future__ import annotations

from collections.abc import Callable

from .exchange import Request
from .server import Handler, ServerConnection

Route = Callable[[ServerConnection, Request], None]


class RouteHandler(Handler):
    """Dispatches ``GET``/``HEAD`` by path; every route answers through ``conn``."""

    def __init__(self, hop: bytes, routes: dict[bytes, Route]) -> None:
        self.hop = hop
        self.routes = routes

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        path = req.target.split(b"?", 1)[0]
        route = self.routes.get(path)
        if route is None:
            conn.fail(404, b"not-found", b"no such endpoint: " + path)
        elif req.method not in (b"GET", b"HEAD"):
            conn.fail(
                405, b"method-not-allowed", b"only GET is served here", b"Allow: GET, HEAD\r\n"
            )
        else:
            route(conn, req)
