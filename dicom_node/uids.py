"""Validation of DICOM UIDs before they are used in file names or SQL rows."""

from __future__ import annotations

import re

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_LOOSE_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidUID(ValueError):
    """A UID is missing, too long or holds characters other than digits and dots."""


def validate_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` as a clean UID string, or raise InvalidUID.

    Accepts digits and dots only, at most 64 characters (PS3.5 9.1). Leading zeros in a component
    are tolerated because real scanners send them; they are still safe as file names.
    """
    if value is None:
        raise InvalidUID(f"{what} is missing")
    text = str(value).strip().rstrip("\0").strip()
    if not text:
        raise InvalidUID(f"{what} is empty")
    if len(text) > 64:
        raise InvalidUID(f"{what} is longer than 64 characters")
    if not _LOOSE_UID_RE.match(text):
        raise InvalidUID(f"{what} {text[:70]!r} is not a valid UID (digits and dots only)")
    return text


def is_strict_uid(value: str) -> bool:
    """True if ``value`` also has no leading zeros in any component (strictly PS3.5 conformant)."""
    return bool(_UID_RE.match(value)) and len(value) <= 64
