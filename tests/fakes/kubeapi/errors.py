"""API errors of the fake Kubernetes API server, rendered as ``meta/v1 Status`` objects.

Every failure the fake reports travels as an :class:`ApiError` until the HTTP layer turns it
into the JSON body a real kube-apiserver would send, so that clients parse ``reason``,
``code`` and ``details`` exactly as they would against a cluster.
"""

from __future__ import annotations

from typing import Any

# Default ``reason`` per HTTP code, as metav1.StatusReason names them.
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed API call; ``status()`` is the Status object sent to the client."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    # The apiserver omits empty members of StatusDetails, so core resources carry no group.
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{_qualified(plural, group)} "{name}" not found',
        "NotFound",
        _details(name, group, plural),
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{_qualified(plural, group)} "{name}" already exists',
        "AlreadyExists",
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        "Conflict",
        _details(name, group, plural),
    )


def stale_object(plural: str, group: str, name: str) -> ApiError:
    return conflict(
        plural,
        group,
        name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``causes`` holds (field, cause reason, message) triples, like field.ErrorList."""
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    return ApiError(
        422,
        f'{_qualified(kind, group)} "{name}" is invalid: {summary}',
        "Invalid",
        _details(
            name,
            group,
            kind,
            causes=[{"reason": r, "message": m, "field": f} for f, r, m in causes],
        ),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def method_not_allowed() -> ApiError:
    return ApiError(
        405,
        "the server does not allow this method on the requested resource",
        "MethodNotAllowed",
    )


def no_such_route() -> ApiError:
    return ApiError(
        404,
        "the server could not find the requested resource",
        "NotFound",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)} (got {content_type or 'nothing'})",
        "UnsupportedMediaType",
    )
