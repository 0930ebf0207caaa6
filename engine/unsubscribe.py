"""Signed unsubscribe tokens: who (profile) and what (channel), so a link needs no login.

A token (``engine.signing``) signs ``profile_id \\x1f channel``. It does not expire (an old
email's link must still work, as the one-click rules require) and reveals only the profile id,
never an address.
"""

from __future__ import annotations

from engine.signing import BadToken, sign, unsign

__all__ = ["BadToken", "make_token", "read_token", "unsubscribe_url"]

_SEP = "\x1f"


def make_token(secret: str, profile_id: str, channel: str) -> str:
    return sign(secret, f"{profile_id}{_SEP}{channel}".encode())


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(profile_id, channel) of a token made with ``secret``; BadToken otherwise."""
    payload = unsign(secret, token)
    try:
        profile_id, channel = payload.decode().split(_SEP)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise BadToken(str(exc)) from None
    return profile_id, channel


def unsubscribe_url(base_url: str, secret: str, profile_id: str, channel: str) -> str:
    """The one-click link served by the API (``POST`` unsubscribes; ``GET`` asks first)."""
    return f"{base_url.rstrip('/')}/u/{make_token(secret, profile_id, channel)}"
