"""The service account tokens a pod sandbox writes for ``serviceAccountToken``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from zeroserve.local.sandbox.tokens import ISSUER, service_account_token


def _part(token: str, i: int) -> dict:  # type: ignore[type-arg]
    raw = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def test_a_token_carries_the_bound_claims_and_verifies_with_the_run_key() -> None:
    token = service_account_token(
        key=b"k" * 32,
        namespace="shop",
        service_account="reader",
        pod="cart-00001-deployment-abcde",
        pod_uid="u-1",
        audience="vault",
        expiration_seconds=600,
        now=1000,
    )
    assert _part(token, 0) == {"alg": "HS256", "typ": "JWT"}
    claims = _part(token, 1)
    assert claims["sub"] == "system:serviceaccount:shop:reader"
    assert (claims["aud"], claims["iss"]) == (["vault"], ISSUER)
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1000, 1000, 1600)
    assert claims["kubernetes.io"]["pod"] == {"name": "cart-00001-deployment-abcde", "uid": "u-1"}
    signing, _, signature = token.rpartition(".")
    expected = hmac.new(b"k" * 32, signing.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    other = service_account_token(
        key=b"x" * 32, namespace="shop", service_account="reader", pod="p", pod_uid="u", now=1000
    )
    assert _part(other, 1)["aud"] == [ISSUER]  # no audience: the issuer's own
