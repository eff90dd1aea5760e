"""A Python twin of Knative's grpc-ping-go sample (knative/docs
``code-samples/serving/grpc-ping-go``): a gRPC server on ``$PORT`` (h2c, HTTP/2 without
TLS), with the unary ``Ping`` (answers ``pong: <msg>`` ... as the sample, with
``$TARGET``) and the server-streaming ``PingStream`` (``count`` answers, ``count``
given as ``msg`` or 3).

Run locally by ``zeroserve up examples/grpc-ping.yaml``; call with ``client.py``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pingproto import PING, PING_STREAM, SERVICE, decode, encode

TARGET = os.environ.get("TARGET", "grpc-ping")


def ping(request: bytes, context: grpc.ServicerContext) -> bytes:
    return encode(f"pong from {TARGET}: {decode(request)}")


def ping_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    text = decode(request)
    count = int(text) if text.isdigit() else 3
    for i in range(count):
        yield encode(f"pong {i + 1}/{count} from {TARGET}")


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handlers = {
        "Ping": grpc.unary_unary_rpc_method_handler(ping),
        "PingStream": grpc.unary_stream_rpc_method_handler(ping_stream),
    }
    assert PING.endswith("/Ping") and PING_STREAM.endswith("/PingStream")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"grpc-ping listening on {port}", flush=True)
    stop.wait()
    server.stop(grace=5).wait()


if __name__ == "__main__":
    main()
