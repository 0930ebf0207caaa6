"""OneID: the identities a person is known by, normalised so that the same person matches.

A person is known by identities of several types (an app user id, a store member number, a WeCom
external id, an email address, a phone number). ``Store.identify`` finds the profile that owns any
of them, creates one when none does, and merges profiles when one call carries identities of
two or more of them. This module is the pure part: the identity types, their normalisation and
the result of an identify call. It does no I/O.

Normalisation (what "the same identity" means), by well-kept libraries rather than our own rules:

- ``email``: ``email-validator`` (syntax only, no DNS or deliverability check): trimmed, Unicode
  and IDNA normalised, then the whole address lower-cased (domains are case insensitive; local
  parts almost always are in practice). Dots and ``+tags`` are kept: ``a.b@gmail.com`` and
  ``ab@gmail.com`` stay two identities, because only Gmail ignores dots and folding them would
  merge two people on every other provider.
- ``phone``: ``phonenumbers`` (Google's libphonenumber): E.164. A number written with ``+`` or
  ``00`` and its country code is read as such; a national one (``138 0013 8000``, ``(415)
  555-0100``) is read in the default region (``DEFAULT_REGION``, the ``JOURNEY_DEFAULT_REGION``
  setting), so ``(415) 555-0100`` is +14155550100 with region US. A number that is not valid
  for its country, or carries an extension, is refused.
- every other type: surrounding whitespace trimmed, Unicode NFC; case is kept (WeCom external ids
  and most app ids are case sensitive).

Errors::

    InvalidIdentity (ValueError)   an unknown type or a value that cannot be normalised; the
                                   message never repeats the value (it may be personal data)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Literal, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email

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

DEFAULT_REGION = "CN"
"""Where a phone number without a country code is read, unless the caller says otherwise."""


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


def identity(type_: str, value: str, region: str = DEFAULT_REGION) -> Identity:
    """The normalised identity; ``InvalidIdentity`` when the type is unknown or the value does
    not normalise. ``region``: ISO 3166 code where national phone numbers are read."""
    if type_ not in IDENTITY_TYPES:
        raise InvalidIdentity(f"unknown identity type {type_!r}; expected one of {IDENTITY_TYPES}")
    if type_ == "email":
        normalised = normalise_email(value)
    elif type_ == "phone":
        normalised = normalise_phone(value, region)
    else:
        normalised = _normalise_id(value)
    return Identity(type_, normalised)


def normalise_email(value: str) -> str:
    """Normalised and lower-cased; ``InvalidIdentity`` (with email-validator's reason) if it is
    not an address."""
    text = value.strip()
    if len(text) > MAX_IDENTITY_VALUE or not _plain(text):
        raise InvalidIdentity("is not an email address (too long, or control characters)")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentity(f"is not an email address: {exc}") from None
    return unicodedata.normalize("NFC", checked.normalized).lower()


def normalise_phone(value: str, region: str = DEFAULT_REGION) -> str:
    """E.164, e.g. ``+8613800138000``; national numbers are read in ``region``."""
    if len(value) > MAX_IDENTITY_VALUE or not _plain(value):
        raise InvalidIdentity("is not a phone number (too long, or control characters)")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(
            f"is not a phone number ({exc._msg}); write +<country code><number>, or a "
            f"national number of region {region}"
        ) from None
    if number.extension:
        raise InvalidIdentity("is a phone number with an extension, which no message can reach")
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity(
            f"is not a valid phone number (read in region {region} unless it starts with +)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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
