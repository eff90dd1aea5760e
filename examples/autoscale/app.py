"""autoscale: the Python twin of Knative's autoscale-go sample.

``GET /?sleep=MS&prime=N&bloat=MB`` sleeps MS milliseconds, finds the
largest prime below N (CPU), and holds MB megabytes for the request's
duration (memory), then says what it did. It listens on ``$PORT``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web


def largest_prime_below(n: int) -> int:
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
    return max(i for i in range(n) if sieve[i])


async def handle(request: web.Request) -> web.Response:
    try:
        sleep_ms = int(request.query.get("sleep", "0"))
        prime = int(request.query.get("prime", "0"))
        bloat_mb = int(request.query.get("bloat", "0"))
    except ValueError:
        return web.Response(status=400, text="sleep, prime and bloat must be integers\n")
    if not (0 <= sleep_ms <= 60_000 and 0 <= prime <= 50_000_000 and 0 <= bloat_mb <= 1024):
        return web.Response(
            status=400, text="sleep <= 60000 ms, prime <= 50000000, bloat <= 1024 MB\n"
        )
    parts = []
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000)
        parts.append(f"Slept for {sleep_ms} milliseconds.")
    if prime:
        parts.append(f"The largest prime less than {prime} is {largest_prime_below(prime)}.")
    if bloat_mb:
        block = bytearray(bloat_mb << 20)
        parts.append(f"Allocated {len(block) >> 20} Mb of memory.")
    return web.Response(text=" ".join(parts) + "\n" if parts else "ok\n")


def main() -> None:
    port_text = os.environ.get("PORT", "8080")
    try:
        port = int(port_text)
    except ValueError:
        sys.exit(f"autoscale: PORT must be an integer, got {port_text!r}")
    import uvloop

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
