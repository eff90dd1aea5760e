"""The test cluster's DNS: the cluster DNS names of Services, as CoreDNS's ``kubernetes``
plugin answers them, on the ``kube-dns`` Service's ClusterIP (UDP and TCP port 53).

- ``<service>.<namespace>.svc.<cluster domain>``: A -> the ClusterIP; a headless Service
  -> its ready endpoints' addresses; an ``ExternalName`` Service -> a CNAME (followed
  when it names another cluster Service);
- ``<pod IP with dashes>.<namespace>.pod.<cluster domain>``: A -> that IP;
- any other name in the cluster domain: NXDOMAIN; AAAA of a known name: no data (IPv4
  only); names outside the cluster domain and reverse lookups: NXDOMAIN at once (there is
  no upstream to forward to: pods have no egress), so nothing waits for a timeout.

Pods get ``/etc/resolv.conf`` as the kubelet writes it for ``dnsPolicy: ClusterFirst``
(``search <ns>.svc.<domain> svc.<domain> <domain>``, ``options ndots:5``), so short names
resolve through the search path as on a cluster.

Hand-written (the DNS wire format of one-question queries, RFC 1035 section 4) rather
than a library: the server needs only parsing a question and writing A/CNAME answers,
about 100 lines, and no other part of zeroserve needs DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

A, CNAME, AAAA = 1, 5, 28
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4
TTL = 5

Answer = tuple[int, str, bytes]  # (type, owner name, rdata)
Lookup = Callable[[str], list[tuple[str, str]] | None]
"""A name -> [("A", ip) | ("CNAME", name)], or None when it does not exist."""


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels = []
    jumped_to = -1
    for _ in range(128):
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            pointer = ((length & 0x3F) << 8) | data[offset + 1]
            if jumped_to < 0:
                jumped_to = offset + 2
            offset = pointer
            continue
        labels.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    else:
        raise ValueError("name too long")
    return ".".join(labels).lower(), (jumped_to if jumped_to >= 0 else offset)


def _name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode()
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def answer(query: bytes, lookup: Lookup) -> bytes | None:
    """The response to one query message; None when it is too broken to answer."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    rd = flags & 0x0100
    if flags & 0x8000:
        return None  # a response, not a query
    if qdcount != 1 or (flags >> 11) & 0xF != 0:
        return struct.pack(
            "!HHHHHH", ident, 0x8000 | rd | (NOTIMP if qdcount == 1 else FORMERR), 0, 0, 0, 0
        )
    try:
        qname, offset = _read_name(query, 12)
        qtype, _qclass = struct.unpack("!HH", query[offset : offset + 4])
    except (ValueError, IndexError, struct.error):
        return struct.pack("!HHHHHH", ident, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
    question = query[12 : offset + 4]
    records: list[Answer] = []
    rcode = NOERROR
    name = qname
    for _ in range(8):  # follow CNAMEs inside the cluster
        found = lookup(name)
        if found is None:
            rcode = NXDOMAIN if not records else NOERROR
            break
        cname = next((v for k, v in found if k == "CNAME"), None)
        if cname is not None:
            records.append((CNAME, name, _name(cname)))
            name = cname.rstrip(".").lower()
            continue
        if qtype in (A, 255):
            records += [(A, name, ipaddress.IPv4Address(v).packed) for k, v in found if k == "A"]
        break
    body = b""
    for rtype, owner, rdata in records:
        body += _name(owner) + struct.pack("!HHIH", rtype, 1, TTL, len(rdata)) + rdata
    # QR, AA, RD as asked, RA
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd | 0x0080 | rcode, 1, len(records), 0, 0)
    return header + question + body


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data, self.lookup)
        if reply is not None and self.transport is not None:
            if len(reply) > 512:  # truncated: the client retries over TCP
                reply = (
                    reply[:2]
                    + struct.pack("!H", struct.unpack("!H", reply[2:4])[0] | 0x0200)
                    + reply[4:12]
                )
            self.transport.sendto(reply, addr)


class DnsServer:
    """Serves ``lookup`` on ``ip:port`` over UDP and TCP."""

    def __init__(self, lookup: Lookup, ip: str, port: int = 53) -> None:
        self.lookup = lookup
        self.ip = ip
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.lookup), local_addr=(self.ip, self.port)
        )
        self._tcp = await asyncio.start_server(self._stream, self.ip, self.port, reuse_address=True)

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = answer(await reader.readexactly(length), self.lookup)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


def resolv_conf(namespace: str, nameserver: str, cluster_domain: str) -> str:
    """``/etc/resolv.conf`` of a ``ClusterFirst`` pod."""
    search = f"{namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:5\n"
