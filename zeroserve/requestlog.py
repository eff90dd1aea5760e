"""Request logs (docs/observability.md, "Request logs"): one line per request, shaped by
``logging.request-log-template`` over Knative's template data (knative/serving
``pkg/http/request_log.go``): ``.Request`` (Go's ``*http.Request`` as a server sees it,
built here from the exchange), ``.Response`` (``Code``, ``Size``, ``Latency`` in
seconds), ``.Revision`` (``Name``, ``Namespace``, ``Service``, ``Configuration``,
``PodName``, ``PodIP``) and ``.TraceID`` (from ``traceparent``, else ``X-B3-TraceId``).

The queue-proxy and the activator each hold a :class:`RequestLogger` while
config-observability turns request logs on, and None while it does not: the request
path then pays one attribute check. Everything below runs only when a line is written.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from zeroserve.gotemplate import Header, Template, TemplateError, canonical_header_key, go_print
from zeroserve.http.exchange import Request
from zeroserve.observability import ObservabilityConfig

__all__ = [
    "LogInput",
    "LogRequest",
    "LogResponse",
    "LogRevision",
    "RequestLogger",
    "TemplateError",
    "parse_template",
    "stdout_writer",
]

_monotonic = time.monotonic
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
_PATH_SAFE = "$&+,/:;=@"  # what Go's url package leaves unescaped in a path, with [A-Za-z0-9-_.~]


def parse_template(text: str) -> Template:
    """The request log template, ending with a newline as Knative makes it; raises
    ``TemplateError`` for what the subset (:mod:`zeroserve.gotemplate`) does not take."""
    return Template.parse(text if text.endswith("\n") else text + "\n")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class LogURL:
    """Go's ``*url.URL`` of a server request (``url.ParseRequestURI`` of its target)."""

    __slots__ = (
        "ForceQuery",
        "Fragment",
        "Host",
        "Opaque",
        "Path",
        "RawFragment",
        "RawPath",
        "RawQuery",
        "Scheme",
        "_escaped",
    )

    def __init__(self, target: str) -> None:
        self.Scheme = self.Opaque = self.Host = self.RawPath = ""
        self.Fragment = self.RawFragment = ""
        rest = target
        if not target.startswith("/") and "://" in target:
            scheme, _, rest = target.partition("://")
            self.Scheme = scheme.lower()
            slash = rest.find("/")
            question = rest.find("?")
            cut = min(i for i in (slash, question, len(rest)) if i >= 0)
            self.Host, rest = rest[:cut], rest[cut:]
        path, q, query = rest.partition("?")
        self.RawQuery = query
        self.ForceQuery = bool(q) and not query
        self._escaped = path
        if _BAD_ESCAPE.search(path):
            self.Path = path
        else:
            self.Path = unquote_to_bytes(path.encode("utf-8", "surrogateescape")).decode(
                "utf-8", "surrogateescape"
            )
        if _escape_path(self.Path) != path:
            self.RawPath = path

    def EscapedPath(self) -> str:  # Go's method names, as templates call them
        return self._escaped

    def String(self) -> str:
        head = f"{self.Scheme}://{self.Host}" if self.Scheme else ""
        query = "?" + self.RawQuery if self.RawQuery or self.ForceQuery else ""
        return head + self._escaped + query

    def RequestURI(self) -> str:
        path = self._escaped or "/"
        return path + ("?" + self.RawQuery if self.RawQuery or self.ForceQuery else "")

    def Hostname(self) -> str:
        host = self.Host
        if host.startswith("["):
            return host[1 : host.find("]")] if "]" in host else host[1:]
        return host.rpartition(":")[0] if ":" in host else host

    def Port(self) -> str:
        host = self.Host
        if host.startswith("["):
            rest = host[host.find("]") + 1 :] if "]" in host else ""
            return rest[1:] if rest.startswith(":") else ""
        return host.rpartition(":")[2] if ":" in host else ""

    def IsAbs(self) -> bool:
        return self.Scheme != ""

    def __str__(self) -> str:
        return self.String()


def _escape_path(path: str) -> str:
    return quote(path, safe=_PATH_SAFE, errors="surrogateescape")


class LogRequest:
    """Go's ``*http.Request`` of one exchange, computed field by field when a template
    asks for it."""

    __slots__ = ("RemoteAddr", "_header", "_req", "_url")

    def __init__(self, req: Request, remote_addr: str) -> None:
        self._req = req
        self.RemoteAddr = remote_addr
        self._header: Header | None = None
        self._url: LogURL | None = None

    @property
    def Method(self) -> str:
        return _text(self._req.method)

    @property
    def RequestURI(self) -> str:
        return _text(self._req.target)

    @property
    def URL(self) -> LogURL:
        if self._url is None:
            self._url = LogURL(self.RequestURI)
        return self._url

    @property
    def Proto(self) -> str:
        return "HTTP/" + self._req.version

    @property
    def ProtoMajor(self) -> int:
        return int(self._req.version.partition(".")[0] or 1)

    @property
    def ProtoMinor(self) -> int:
        return int(self._req.version.partition(".")[2] or 0)

    @property
    def Header(self) -> Header:
        """The request's headers by canonical name, ``Host`` left out (Go keeps it in
        ``Host``)."""
        if self._header is None:
            values: dict[str, list[str]] = {}
            for lname, line in self._req.lines:
                if lname == b"host":
                    continue
                name, _, value = line.partition(b":")
                key = canonical_header_key(_text(name.strip()))
                values.setdefault(key, []).append(_text(value.strip()))
            self._header = Header(values)
        return self._header

    @property
    def Host(self) -> str:
        """The host the client asked for: behind the activator, ``K-Original-Host``
        (which the queue-proxy restores as the app's ``Host``)."""
        req = self._req
        host = req.header(b"k-original-host") or req.header(b"host")
        return _text(host) if host is not None else ""

    @property
    def ContentLength(self) -> int:
        """The declared body length; -1 when unknown (chunked), 0 without a body."""
        if self._req.chunked:
            return -1
        raw = self._req.header(b"content-length")
        try:
            return int(raw) if raw is not None else 0
        except ValueError:
            return -1

    @property
    def TransferEncoding(self) -> list[str]:
        return ["chunked"] if self._req.chunked and self._req.version == "1.1" else []

    @property
    def Close(self) -> bool:
        return not self._req.keep_alive

    def UserAgent(self) -> str:
        return self.Header.Get("User-Agent")

    def Referer(self) -> str:
        return self.Header.Get("Referer")

    def __str__(self) -> str:
        return f"&{{{self.Method} {self.URL} {self.Proto}}}"


class LogResponse:
    """Knative's ``RequestLogResponse``."""

    __slots__ = ("Code", "Latency", "Size")

    def __init__(self, code: int, size: int, latency: float) -> None:
        self.Code, self.Size, self.Latency = code, size, latency

    def __str__(self) -> str:
        return f"&{{{self.Code} {self.Size} {go_print(self.Latency)}}}"


class LogRevision:
    """Knative's ``RequestLogRevision``: who answered."""

    __slots__ = ("Configuration", "Name", "Namespace", "PodIP", "PodName", "Service")

    def __init__(
        self,
        name: str = "",
        namespace: str = "",
        service: str = "",
        configuration: str = "",
        pod_name: str = "",
        pod_ip: str = "",
    ) -> None:
        self.Name, self.Namespace, self.Service = name, namespace, service
        self.Configuration, self.PodName, self.PodIP = configuration, pod_name, pod_ip

    def __str__(self) -> str:
        fields = (
            self.Name,
            self.Namespace,
            self.Service,
            self.Configuration,
            self.PodName,
            self.PodIP,
        )
        return "&{" + " ".join(fields) + "}"


_EMPTY_REVISION = LogRevision()


class LogInput:
    """Knative's ``RequestLogTemplateInput``: the template's data."""

    __slots__ = ("Request", "Response", "Revision", "TraceID")

    def __init__(
        self, request: LogRequest, response: LogResponse, revision: LogRevision, trace_id: str
    ) -> None:
        self.Request, self.Response, self.Revision, self.TraceID = (
            request,
            response,
            revision,
            trace_id,
        )


def trace_id(header: Header) -> str:
    """The trace ID of W3C ``traceparent`` (its second field), else B3's ``X-B3-TraceId``
    (knative/serving ``pkg/http/trace.go``)."""
    parent = header.Get("Traceparent")
    if parent:
        parts = parent.split("-", 2)
        if len(parts) >= 2:
            return parts[1]
    return header.Get("X-B3-Traceid")


def remote_addr(conn: Any) -> str:
    """``ip:port`` of the client (Go's ``RemoteAddr``); the IP alone once the connection
    is gone. ``conn`` is an HTTP/1.1 connection or an HTTP/2 stream (``.conn``)."""
    transport = getattr(conn, "transport", None) or getattr(
        getattr(conn, "conn", None), "transport", None
    )
    peer = transport.get_extra_info("peername") if transport is not None else None
    if peer:
        host, port = str(peer[0]), peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _text(getattr(conn, "client_ip", b""))


def stdout_writer() -> Callable[[bytes], None]:
    """Writes whole lines to file descriptor 1 (one ``write`` each, so lines of
    concurrent writers never interleave), as Knative's ``NewSyncFileWriter(os.Stdout)``."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]

    return write


class RequestLogger:
    """Writes a request's line at the end of its exchange (:meth:`log`)."""

    __slots__ = ("probes", "revision", "template", "write")

    def __init__(
        self,
        template: Template,
        write: Callable[[bytes], None],
        *,
        revision: LogRevision = _EMPTY_REVISION,
        probes: bool = False,
    ) -> None:
        self.template = template
        self.write = write
        self.revision = revision
        """The revision of every line (the queue-proxy's); the activator gives one per line."""
        self.probes = probes
        """``logging.enable-probe-request-log``: whether health checks get lines."""

    @classmethod
    def from_config(
        cls,
        config: ObservabilityConfig,
        write: Callable[[bytes], None],
        *,
        revision: LogRevision = _EMPTY_REVISION,
    ) -> RequestLogger | None:
        """The logger ``config`` asks for; None when request logs are off."""
        if not config.request_log_on:
            return None
        return cls(
            parse_template(config.request_log_template),
            write,
            revision=revision,
            probes=config.enable_probe_request_log,
        )

    def log(self, conn: Any, req: Request, revision: LogRevision | None = None) -> None:
        """Write the line of ``req``, which just ended on ``conn``."""
        latency = _monotonic() - req.started
        request = LogRequest(req, remote_addr(conn))
        data = LogInput(
            request,
            LogResponse(req.status, req.resp_size, latency),
            revision or self.revision,
            trace_id(request.Header),
        )
        try:
            line = self.template.render(data)
        except (IndexError, KeyError, TypeError, AttributeError, ValueError):
            line = (
                f"Invalid request log template: method: {request.Method}, response code: "
                f"{req.status}, latency: {go_print(latency)}, url: {request.URL}\n"
            )
        self.write(line.encode("utf-8", "surrogateescape"))
