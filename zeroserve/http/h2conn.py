"""What both ends of the hop's HTTP/2 connections share (``http2.H2ServerConnection``
towards clients, ``h2upstream.H2Upstream`` towards the next hop): writing h2's queued
frames once per turn of the event loop, and sending within the flow-control windows."""

from __future__ import annotations

import asyncio
import contextlib

from h2.connection import H2Connection
from h2.exceptions import H2Error


class H2Transport(asyncio.Protocol):
    """An asyncio Protocol around an ``H2Connection``; subclasses set ``h2`` and call
    :meth:`start_writing` once the event loop runs."""

    h2: H2Connection
    transport: asyncio.Transport | None

    def start_writing(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._flush_pending = False

    def _flush(self) -> None:
        """Write what h2 has queued, once per turn of the event loop: the frames of every
        stream touched meanwhile go out in one write (one syscall, not one per frame)."""
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def send_data(self, sid: int, data: bytearray) -> int:
        """Send as much of ``data`` as the windows allow; returns how much (all of it
        when the stream is gone: what it had is dropped)."""
        h2 = self.h2
        sent = 0
        try:
            while sent < len(data):
                size = min(
                    h2.local_flow_control_window(sid), h2.max_outbound_frame_size, len(data) - sent
                )
                if size <= 0:
                    break
                h2.send_data(sid, bytes(data[sent : sent + size]))
                sent += size
        except H2Error:
            return len(data)
        self._flush()
        return sent

    def end_stream(self, sid: int) -> None:
        with contextlib.suppress(H2Error):
            self.h2.end_stream(sid)
        self._flush()

    def acknowledge(self, sid: int, size: int) -> None:
        """Open the windows again by ``size`` bytes received on ``sid``."""
        if not size:
            return
        with contextlib.suppress(H2Error):
            self.h2.acknowledge_received_data(size, sid)
        self._flush()
