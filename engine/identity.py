"""OneID: the identities a person is known by, normalised so that the same person matches.

A person is known by identities of several types (an app user id, a store member number, a WeCom
external id, an email address, a phone number). ``Store.identify`` finds the profile that owns any
of them, creates one when none does, and merges profiles when one call carries identities of
two or more of them. This module is the pure part: the identity types, their normalisation and
the result of an identify call. It does no I/O.

Normalisation (what "the same identity" means):

- ``email``: surrounding whitespace trimmed, then the whole address lower-cased (domains are case
  insensitive; local parts almost always are in practice). Dots and ``+tags`` are kept:
  ``a.b@gmail.com`` and ``ab@gmail.com`` stay two identities, because only Gmail ignores dots and
  folding them would merge two people on every other provider.
- ``phone``: E.164 (``+`` and 8-15 digits). Spaces, dashes, dots and parentheses are dropped; a
  leading ``00`` becomes ``+``. A number without a country code is accepted only when it is
  unambiguous: an 11-digit Chinese mobile number (``1[3-9]`` + 9 digits) gets ``+86``; ``86``
  followed by such a number also gets its ``+``. Anything else without ``+`` is refused rather
  than guessed at.
- every other type: surrounding whitespace trimmed, Unicode NFC; case is kept (WeCom external ids
  and most app ids are case sensitive).

Errors::

    InvalidIdentity (ValueError)   an unknown type or a value that cannot be normalised; the
                                   message never repeats the value (it may be personal data)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal, get_args

IdentityType = Literal[
    "email",
    "phone",
    "wecom_external_id",
    "app_user_id",
    "store_member_no",
    "wechat_unionid",
    "miniprogram_openid",
]
"""Where a person is known: email, phone, WeCom (企业微信) external contact id, the brand's app
user id, the store's member number, the WeChat union id and a mini-program open id."""

IDENTITY_TYPES: tuple[str, ...] = get_args(IdentityType)
MAX_IDENTITY_VALUE = 254
"""Characters, after normalisation (the longest valid email address)."""

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
_CN_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


class InvalidIdentity(ValueError):
    """An identity that cannot be used: unknown type, or a value that does not normalise."""


@dataclass(frozen=True, order=True)
class Identity:
    """A normalised identity; build it with :func:`identity` so the value is normalised."""

    type: str
    value: str


@dataclass(frozen=True)
class IdentifyResult:
    profile_id: str
    """The person's profile id (the survivor, when profiles were merged)."""
    created: bool
    """A new profile was made (no identity was known, and no existing profile id was given)."""
    merged: tuple[str, ...] = field(default=())
    """Profile ids merged into ``profile_id`` by this call (they now resolve to it)."""


def identity(type_: str, value: str) -> Identity:
    """The normalised identity; ``InvalidIdentity`` when the type is unknown or the value does
    not normalise."""
    if type_ not in IDENTITY_TYPES:
        raise InvalidIdentity(f"unknown identity type {type_!r}; expected one of {IDENTITY_TYPES}")
    if type_ == "email":
        normalised = normalise_email(value)
    elif type_ == "phone":
        normalised = normalise_phone(value)
    else:
        normalised = _normalise_id(value)
    return Identity(type_, normalised)


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased; ``InvalidIdentity`` if it does not look like an address."""
    email = unicodedata.normalize("NFC", value.strip()).lower()
    if len(email) > MAX_IDENTITY_VALUE or not _EMAIL.match(email) or not _plain(email):
        raise InvalidIdentity("is not an email address (expected name@domain.tld)")
    return email


def normalise_phone(value: str) -> str:
    """E.164, e.g. ``+8613800138000``; see the module docstring for the accepted forms."""
    raw = _PHONE_SEPARATORS.sub("", value.strip())
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if raw.startswith("+"):
        phone = raw
    elif _CN_MOBILE.match(raw):
        phone = "+86" + raw
    elif raw.startswith("86") and _CN_MOBILE.match(raw[2:]):
        phone = "+" + raw
    else:
        raise InvalidIdentity(
            "is not a phone number in E.164 (+<country><number>) or an 11-digit Chinese mobile"
        )
    if not _E164.match(phone):
        raise InvalidIdentity("is not a phone number in E.164 (+ then 8 to 15 digits)")
    return phone


def _normalise_id(value: str) -> str:
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise InvalidIdentity("is empty")
    if len(text) > MAX_IDENTITY_VALUE:
        raise InvalidIdentity(f"is longer than {MAX_IDENTITY_VALUE} characters")
    if not _plain(text):
        raise InvalidIdentity("contains control characters or invalid Unicode")
    return text


def _plain(text: str) -> bool:
    """No control characters and no unpaired surrogates (neither backend stores them)."""
    if any(char < " " or char == "\x7f" for char in text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
