"""Call the grpc-ping example through zeroserve (or any h2c endpoint).

    python examples/grpc-ping/client.py 127.0.0.1:8080 grpc-ping.default.localhost hello
    python examples/grpc-ping/client.py 127.0.0.1:8080 grpc-ping.default.localhost --stream 5

The second argument is the Service's host, sent as the ``:authority`` (the gateway and
the activator route by it, as by ``Host`` for HTTP/1.1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pingproto import PING, PING_STREAM, decode, encode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("address", help="host:port of the ingress")
    p.add_argument("authority", help="the Service's host, e.g. grpc-ping.default.localhost")
    p.add_argument("message", nargs="?", default="hello")
    p.add_argument("--stream", type=int, metavar="N", help="PingStream with N answers")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    with grpc.insecure_channel(
        args.address, options=[("grpc.default_authority", args.authority)]
    ) as channel:
        try:
            if args.stream:
                call = channel.unary_stream(PING_STREAM, encode, decode)
                for answer in call(str(args.stream), timeout=args.timeout):
                    print(answer)
            else:
                call = channel.unary_unary(PING, encode, decode)
                print(call(args.message, timeout=args.timeout))
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
