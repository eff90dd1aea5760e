"""A user app for the pod tests (tests/local/test_pods_up.py): the standard library only,
so it starts fast in a replica.

- ``GET /`` -> JSON: this process's ``id``, its ``PORT``, its pid and the request's headers;
- ``GET /ready`` -> 200, or 503 while ``$STATE_DIR/<id>.unready`` exists (a readiness
  probe a test can fail for one replica);
- ``GET /alive`` -> 200, or 500 while ``$STATE_DIR/dead`` exists (a liveness probe);
- ``GET /file?path=P`` -> the file's contents (404 when missing);
- ``ALLOC_MB=N``: before listening, allocate and touch N MiB and hold them (an app over
  its memory limit);
- listens on ``$HOST`` (default 0.0.0.0, as an app in a pod) port ``$PORT``; writes its
  id to ``$STATE_DIR/ids`` when it listens.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ID = uuid.uuid4().hex[:12]
STATE = Path(os.environ.get("STATE_DIR", "/tmp"))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/ready":
            unready = (STATE / f"{ID}.unready").exists()
            self._send(503 if unready else 200, b"unready" if unready else b"ready")
        elif url.path == "/alive":
            dead = (STATE / "dead").exists()
            self._send(500 if dead else 200, b"dead" if dead else b"alive")
        elif url.path == "/file":
            path = parse_qs(url.query).get("path", [""])[0]
            try:
                self._send(200, Path(path).read_bytes())
            except OSError as e:
                self._send(404, str(e).encode())
        else:
            body = {
                "id": ID,
                "port": os.environ.get("PORT"),
                "pid": os.getpid(),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            self._send(200, json.dumps(body).encode(), "application/json")


def main() -> None:
    alloc = int(os.environ.get("ALLOC_MB", "0"))
    if alloc:
        hold = bytearray(alloc * 1024 * 1024)
        for i in range(0, len(hold), 4096):  # touch every page: resident, as a real app's
            hold[i] = 1
        while True:
            time.sleep(1)
    server = ThreadingHTTPServer(
        (os.environ.get("HOST", "0.0.0.0"), int(os.environ["PORT"])), Handler
    )
    with (STATE / "ids").open("a") as f:
        f.write(ID + "\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
