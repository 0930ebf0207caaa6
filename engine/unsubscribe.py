"""Signed unsubscribe tokens: who (profile) and what (channel), so a link needs no login.

Tokens are ``itsdangerous`` timed signatures, salted for this one purpose (a token signed for
anything else never reads as an unsubscribe link), and carry the time they were made:

- they expire after ``max_age`` (``MAX_AGE``, 90 days by default: well past the 30 days the
  anti-spam rules ask an unsubscribe link to keep working);
- secrets rotate without breaking links already sent: the first secret signs, every secret
  given verifies, so move the current one behind a new one and drop it once its links expired;
- a token reveals only the profile id and channel, never an address.

Links made before tokens were timed (``payload.signature``, HMAC-SHA256, no expiry) are still
read, with any of the secrets, so the e-mails already sent keep working.

Errors::

    BadToken (ValueError)   not made with any of the secrets, or malformed
      TokenExpired          made with one of them, but longer ago than max_age
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

SALT = "journey-engine.unsubscribe"
MAX_AGE = timedelta(days=90)
Secrets = str | Sequence[str]
"""One secret, or several: the first signs, all verify (rotation)."""

_LEGACY_SEP = "\x1f"


class BadToken(ValueError):
    """The token was not made with these secrets, or is malformed."""


class TokenExpired(BadToken):
    """The token is genuine but older than the links' lifetime."""


def make_token(secrets: Secrets, profile_id: str, channel: str, now: datetime | None = None) -> str:
    """A token for (profile, channel), signed with the first secret at ``now`` (default: the
    current time)."""
    return _serializer(secrets, now).dumps([profile_id, channel])


def read_token(
    secrets: Secrets, token: str, *, max_age: timedelta = MAX_AGE, now: datetime | None = None
) -> tuple[str, str]:
    """(profile_id, channel) of a token made with any of ``secrets`` no longer than
    ``max_age`` before ``now``; ``TokenExpired`` or ``BadToken`` otherwise."""
    keys = _keys(secrets)
    if token.count(".") == 1:
        return _read_legacy(keys, token)
    try:
        payload = _serializer(keys, now).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired as exc:
        raise TokenExpired("the link has expired") from exc
    except BadData as exc:
        raise BadToken("the signature does not match") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(part, str) for part in payload)
    ):
        raise BadToken("the token does not name a profile and a channel")
    return payload[0], payload[1]


def unsubscribe_url(base_url: str, secrets: Secrets, profile_id: str, channel: str) -> str:
    """The one-click link served by the API (``POST`` unsubscribes; ``GET`` asks first)."""
    return f"{base_url.rstrip('/')}/u/{make_token(secrets, profile_id, channel)}"


def _keys(secrets: Secrets) -> list[str]:
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys or not all(keys):
        raise ValueError("unsubscribe links need at least one non-empty secret")
    return keys


def _serializer(secrets: Secrets, now: datetime | None) -> URLSafeTimedSerializer:
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((now or datetime.now(UTC)).timestamp())

    # itsdangerous signs with the last key of its list and verifies with any.
    return URLSafeTimedSerializer(list(reversed(_keys(secrets))), salt=SALT, signer=Signer)


def _read_legacy(keys: list[str], token: str) -> tuple[str, str]:
    try:
        encoded_payload, encoded_signature = token.split(".")
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
        if not any(
            hmac.compare_digest(signature, hmac.new(key.encode(), payload, hashlib.sha256).digest())
            for key in keys
        ):
            raise BadToken("the signature does not match")
        profile_id, channel = payload.decode().split(_LEGACY_SEP)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, BadToken):
            raise
        raise BadToken("the token is malformed") from None
    return profile_id, channel


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
