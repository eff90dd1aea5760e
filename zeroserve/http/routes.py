"""A handler for small local endpoints (metrics, admin, health) on the same engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .exchange import Request
from .server import Handler, ServerConnection

Route = Callable[[ServerConnection, Request], None]


class RouteHandler(Handler):
    """Dispatches ``GET``/``HEAD`` by path, and ``PUT`` to the ``put`` routes; every
    route answers through ``conn`` (a ``PUT`` route reads its body with :func:`read_body`)."""

    def __init__(
        self, hop: bytes, routes: dict[bytes, Route], put: dict[bytes, Route] | None = None
    ) -> None:
        self.hop = hop
        self.routes = routes
        self.put = put or {}

    def on_request(self, conn: ServerConnection, req: Request) -> None:
        path = req.target.split(b"?", 1)[0]
        route = self.routes.get(path)
        if req.method == b"PUT" and path in self.put:
            self.put[path](conn, req)
        elif route is None:
            conn.fail(404, b"not-found", b"no such endpoint: " + path)
        elif req.method not in (b"GET", b"HEAD"):
            conn.fail(
                405, b"method-not-allowed", b"only GET is served here", b"Allow: GET, HEAD\r\n"
            )
        else:
            route(conn, req)


async def read_body(req: Request, timeout: float = 5.0) -> bytes | None:
    """The whole body of a request to a local route (the engine buffers it in
    ``req.body`` while nothing consumes it); None when it did not arrive in ``timeout``
    seconds. For small admin bodies only: it polls."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not req.body_done:
        if loop.time() > give_up:
            return None
        await asyncio.sleep(0.005)
    return b"".join(req.body or ())
