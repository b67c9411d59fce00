"""Safety numbers: what two people compare to know they talk to each other's account.

Derived only from the two users' account master keys (AMK), so adding or removing a device does
not change it. The construction follows Signal's numeric fingerprint: per user, 5200 iterations
of SHA-512 over the key and username give 30 digits; the two halves are ordered so both sides see
the same 60 digits.
"""

from __future__ import annotations

import hashlib

_ITERATIONS = 5200
_VERSION = b"\x00\x01"


def _fingerprint_digits(username: str, amk_public: bytes) -> str:
    digest = _VERSION + amk_public + username.encode()
    for _ in range(_ITERATIONS):
        digest = hashlib.sha512(digest + amk_public).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def safety_number(user_a: str, amk_a: bytes, user_b: str, amk_b: bytes) -> str:
    """60 digits, the same whichever side computes it."""
    halves = sorted([_fingerprint_digits(user_a, amk_a), _fingerprint_digits(user_b, amk_b)])
    return "".join(halves)


def format_groups(number: str) -> list[str]:
    """The number as twelve groups of five digits, for display."""
    return [number[i : i + 5] for i in range(0, len(number), 5)]
