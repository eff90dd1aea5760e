"""Service account tokens for ``projected`` volumes' ``serviceAccountToken`` sources.

On Kubernetes the kubelet asks the API server for a bound token (a JWT) and writes it
into the volume (kubernetes ``pkg/volume/projected``, ``pkg/serviceaccount/claims.go``
for the claims). Locally there is no API server: the run signs the same claims itself
(HS256, with a key made for the run), so an app that reads its token finds one of the
right shape, for the right pod and service account, expiring when asked; no Kubernetes
API server would accept it, and none is there to call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

ISSUER = "https://zeroserve.local"
DEFAULT_EXPIRATION = 3600
"""``expirationSeconds`` when not given (Kubernetes' default is one hour)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_token(
    *,
    key: bytes,
    namespace: str,
    service_account: str,
    pod: str,
    pod_uid: str,
    audience: str = "",
    expiration_seconds: int = DEFAULT_EXPIRATION,
    now: float | None = None,
) -> str:
    """A JWT with the claims of a bound service account token (``iss``, ``sub``
    ``system:serviceaccount:NS:NAME``, ``aud``, ``iat``/``nbf``/``exp`` and the
    ``kubernetes.io`` claim naming the namespace, the pod and the service account)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "aud": [audience or ISSUER],
        "exp": issued + int(expiration_seconds),
        "iat": issued,
        "nbf": issued,
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": pod, "uid": pod_uid},
            "serviceaccount": {"name": service_account},
        },
    }
    header = {"alg": "HS256", "typ": "JWT"}
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(signature)}"
