"""helloworld: the Python twin of Knative's helloworld-go sample.

Answers every GET with ``Hello {TARGET}!`` (``TARGET`` defaults to ``World``)
on ``$PORT`` (default 8080), the way a Knative container is started.
"""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

log = logging.getLogger("helloworld")


def make_app(target: str) -> web.Application:
    greeting = f"Hello {target}!\n".encode()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=greeting, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    port_text = os.environ.get("PORT", "8080")
    try:
        port = int(port_text)
    except ValueError:
        sys.exit(f"helloworld: PORT must be an integer, got {port_text!r}")
    target = os.environ.get("TARGET", "World")
    import uvloop

    log.info("starting server on port %d", port)
    # SIGTERM stops the server gracefully (aiohttp's signal handling); a replica's
    # queue-proxy has already drained by the time the app receives it.
    web.run_app(
        make_app(target),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
