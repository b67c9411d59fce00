"""Account passwords, hashed with Argon2id (RFC 9106's second recommended option: 19 MiB, t=2).

The password only lets a device talk to the relay; it never makes a device an end of any
conversation (that takes a place on the AMK-signed device list).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id


def hash_password(password: str) -> str:
    """A PHC-encoded Argon2id hash with a fresh salt."""
    kdf = Argon2id(salt=os.urandom(16), length=32, iterations=2, lanes=1, memory_cost=19 * 1024)
    return kdf.derive_phc_encoded(password.encode())


def check_password(password: str, encoded: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode(), encoded)
    except (InvalidKey, ValueError):
        return False
    return True
