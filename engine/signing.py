"""HMAC-SHA256 signed tokens for links that carry their own authority (unsubscribe, reports).

A token is ``base64url(payload) . base64url(HMAC-SHA256(secret, payload))``: readable by anyone,
forgeable by no one without the secret. Each kind of link signs its own payload layout and
uses its own secret, so a token of one kind is never accepted as the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class BadToken(ValueError):
    """The token was not made with this secret, is malformed, or has expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, payload: bytes) -> str:
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def unsign(secret: str, token: str) -> bytes:
    """The payload of a token made with ``secret``; BadToken otherwise."""
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
    except ValueError as exc:
        raise BadToken(str(exc)) from None
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise BadToken("signature does not match")
    return payload
