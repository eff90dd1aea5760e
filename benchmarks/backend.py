"""A benchmark backend: the helloworld sample app plus large responses.

``GET /`` answers ``Hello {TARGET}!`` exactly like ``examples/helloworld/app.py``
(same framework, same event loop, same bytes), so tiny-response figures are
comparable with the sample app's; ``GET /bytes/N`` answers N bytes
(``application/octet-stream``, with a Content-Length; at most 64 MiB), built
once per size, so a 1 MiB response costs the server a write, not a
computation. It listens on ``$HOST:$PORT`` (default 127.0.0.1:8080).

    PORT=8081 .venv/bin/python benchmarks/backend.py
    curl -s http://127.0.0.1:8081/bytes/1048576 | wc -c
"""

from __future__ import annotations

import os
import sys

import uvloop
from aiohttp import web

MAX_BYTES = 64 << 20


def make_app(target: str) -> web.Application:
    greeting = f"Hello {target}!\n".encode()
    cache: dict[int, bytes] = {}

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=greeting, content_type="text/plain")

    async def sized(request: web.Request) -> web.Response:
        try:
            n = int(request.match_info["n"])
        except ValueError:
            return web.Response(status=400, text="N must be an integer\n")
        if not 0 <= n <= MAX_BYTES:
            return web.Response(status=400, text=f"N must be between 0 and {MAX_BYTES}\n")
        if n not in cache:  # a benchmark asks for one or two sizes
            cache[n] = (bytes(range(256)) * (n // 256 + 1))[:n]
        return web.Response(body=cache[n], content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/bytes/{n}", sized)
    app.router.add_get("/{tail:.*}", hello)
    return app


def main() -> None:
    if not (port := os.environ.get("PORT", "8080")).isdigit():
        sys.exit(f"benchmarks/backend.py: PORT must be an integer, got {port!r}")
    web.run_app(
        make_app(os.environ.get("TARGET", "World")),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(port),
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
