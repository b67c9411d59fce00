"""The user's choices for this device: look, notifications, read receipts, text size, and when
to remind them of a recovery code they skipped. Kept in the profile (encrypted at rest with
everything else), one typed record with its defaults here, so a profile from before a choice
existed reads as the default."""

from __future__ import annotations

import enum

import msgspec


class Theme(enum.StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


FONT_SIZES = (0, 9, 11, 13, 15, 18)  # points; 0 is the system's size
REMINDER_DELAY = 24 * 3600  # a skipped recovery code is asked about again a day later


class Preferences(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    theme: Theme = Theme.SYSTEM
    notifications: bool = True  # desktop notifications for new messages
    # Off: this device sends no read receipts to contacts and shows none of theirs (as Signal);
    # the user's own devices still learn what was read, so unread counts agree.
    read_receipts: bool = True
    font_size: int = 0
    recovery_reminder_at: int = 0  # unix seconds; 0 is "not yet asked to wait"


def decode_preferences(data: bytes | None) -> Preferences:
    """A stored record, or the defaults (no record yet, or one this version cannot read)."""
    if not data:
        return Preferences()
    try:
        return msgspec.msgpack.decode(data, type=Preferences)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return Preferences()


def encode_preferences(preferences: Preferences) -> bytes:
    return msgspec.msgpack.encode(preferences)
