"""Errors of the Kubernetes API, and the one place that translates failures into them.

Every failure leaves :mod:`zeroserve.kube` as a :class:`KubeError`; ``ApiException``,
aiohttp and timeout errors are translated here and nowhere else::

    KubeError                 anything the API refused, with .status and .reason
     ├── NotFound             404
     ├── Conflict             409: stale resourceVersion, or a precondition failed
     ├── AlreadyExists        409 with reason AlreadyExists (create of an existing name)
     ├── Invalid              400 / 422: the API will not accept this request as it is
     ├── Expired              410: a resourceVersion or continue token is too old; re-list
     └── Unavailable          connection refused/reset, timeouts, 429, 5xx: try again later

:func:`status_error` reads an answer the API gave (its code and ``Status`` body);
:func:`connection_error` covers a request that got no answer (the exceptions in
:data:`CONNECTION_ERRORS`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the object and the API's reason."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        """HTTP status the API answered, None when no answer arrived."""
        self.reason = reason
        """The Status ``reason`` (NotFound, Conflict, ...) or a short cause."""


class NotFound(KubeError):
    """404: the object (or its kind) does not exist."""


class Conflict(KubeError):
    """409 on a write: the object changed since it was read (stale resourceVersion)."""


class AlreadyExists(KubeError):
    """409 on a create: an object of that name exists."""


class Invalid(KubeError):
    """422: the API server refused the object (validation)."""


class Expired(KubeError):
    """410: the resourceVersion of a watch or list is too old; list again."""


class Unavailable(KubeError):
    """No usable answer (connection refused or reset, timeout, 429, 5xx): try again later."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after
        """Seconds the API asked us to wait (429/503 Retry-After), if it said."""


CONNECTION_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ApiException)
"""What a request raises when no answer arrived; :func:`connection_error` translates them."""


def status_error(
    code: int,
    body: bytes | str | Mapping[str, Any] | None,
    what: str,
    retry_after: str | None = None,
) -> KubeError:
    """The error for an API answer with a non-2xx code (or a watch ERROR event's Status)."""
    status: Mapping[str, Any] = {}
    text = ""
    if isinstance(body, Mapping):
        status = body
    elif body:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        with contextlib.suppress(ValueError):
            decoded = json.loads(text)
            if isinstance(decoded, dict):
                status = decoded
    reason = str(status.get("reason") or f"HTTP {code}")
    message = f"{what}: {reason}: {status.get('message') or text.strip()[:200] or 'no details'}"
    if code == 404:
        return NotFound(message, status=code, reason=reason)
    if code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(message, status=code, reason=reason)
    if code in (400, 422):
        return Invalid(message, status=code, reason=reason)
    if code == 410:
        return Expired(message, status=code, reason=reason)
    if code == 429 or code >= 500:
        delay = None
        with contextlib.suppress(TypeError, ValueError):
            delay = float(retry_after) if retry_after is not None else None
        return Unavailable(message, status=code, reason=reason, retry_after=delay)
    return KubeError(message, status=code, reason=reason)


def connection_error(exc: BaseException, what: str, timeout: float) -> Unavailable:
    """The error for a request that got no answer (``exc`` is one of :data:`CONNECTION_ERRORS`)."""
    if isinstance(exc, TimeoutError):
        return Unavailable(f"{what}: no answer from the API within {timeout:g}s", reason="Timeout")
    if isinstance(exc, ApiException):
        # Raised by the library itself only for requests it could not even send.
        return Unavailable(f"{what}: {exc.reason}", status=exc.status or None, reason="ClientError")
    return Unavailable(f"{what}: {type(exc).__name__}: {exc}", reason="ConnectionError")
