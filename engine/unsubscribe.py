"""Signed unsubscribe tokens: who (profile) and what (channel), so a link needs no login.

A token is ``base64url(profile_id \\x1f channel) . base64url(HMAC-SHA256(secret, payload))``.
It does not expire (an old email's link must still work, as the one-click rules require) and
reveals only the profile id, never an address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_SEP = "\x1f"


class BadToken(ValueError):
    """The token was not made with this secret, or is malformed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, profile_id: str, channel: str) -> str:
    payload = f"{profile_id}{_SEP}{channel}".encode()
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(profile_id, channel) of a token made with ``secret``; BadToken otherwise."""
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise BadToken("signature does not match")
        profile_id, channel = payload.decode().split(_SEP)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadToken(str(exc)) from None
    return profile_id, channel


def unsubscribe_url(base_url: str, secret: str, profile_id: str, channel: str) -> str:
    """The one-click link served by the API (``POST`` unsubscribes; ``GET`` asks first)."""
    return f"{base_url.rstrip('/')}/u/{make_token(secret, profile_id, channel)}"
