"""Headless Chromium for tests, driven over the DevTools protocol (aiohttp's websocket).

``chromium()`` starts the Debian ``chromium`` with the flags that keep it off the
network (on a closed network it hangs without them), a fresh profile under the test's
tmp dir and a DevTools port the kernel picks; ``Page`` opens a tab, evaluates script
in it and takes screenshots. The process group is killed at exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

INSTALL = "apt-get install -y chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_path() -> str:
    """The Chromium binary; skips the test (naming the install line) when absent."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"chromium is not installed ({INSTALL}; .ci/run installs it)")


class Page:
    """One tab, over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"DevTools websocket: {msg.type} {msg.data!r}")
                data = json.loads(msg.data)
                if data.get("id") == ident:
                    if "error" in data:
                        raise AssertionError(f"{method}: {data['error']}")
                    return dict(data.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (a promise is awaited)."""
        r = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def screenshot(self, path: Path) -> Path:
        r = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(r["data"]))
        return path


class Browser:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[Page]:
        """A new tab at ``url``, closed afterwards."""
        async with self.session.put(f"{self.base}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        try:
            async with self.session.ws_connect(
                target["webSocketDebuggerUrl"], max_msg_size=0
            ) as ws:
                page = Page(ws)
                # navigated here rather than named in /json/new: a fragment (#token=...)
                # would end that request's URL
                await page.call("Page.navigate", url=url)
                yield page
        finally:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.session.get(f"{self.base}/json/close/{target['id']}"):
                    pass


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    """A headless Chromium with its profile under ``tmp_path``; killed at exit."""
    binary = chromium_path()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = tmp_path / "chromium.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        ws_url = None
        async with asyncio.timeout(30):
            while ws_url is None:
                if proc.returncode is not None:
                    raise AssertionError(f"chromium exited {proc.returncode}: {log.read_text()}")
                m = _LISTENING.search(log.read_text(errors="replace"))
                ws_url = m.group(1) if m else None
                if ws_url is None:
                    await asyncio.sleep(0.1)
        base = "http://" + ws_url.removeprefix("ws://").split("/", 1)[0]
        async with aiohttp.ClientSession() as session:
            yield Browser(base, session)
    finally:
        # chromium forks helpers (zygote, renderers, GPU): the whole group goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # helpers that outlived the browser
