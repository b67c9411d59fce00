"""Ed25519 identities: the account master key (AMK) and per-device signing keys.

Every signature in Ariadne is domain-separated: the signed bytes are ``domain || 0x00 || data``,
so a signature made for one purpose (say, a device list) can never be replayed as another (say, a
relay login).
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEVICE_ID_LENGTH = 16  # hex characters


class SigningKey:
    """An Ed25519 key pair kept as its 32-byte seed."""

    __slots__ = ("_key", "public")

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    def sign(self, domain: bytes, data: bytes) -> bytes:
        return self._key.sign(domain + b"\x00" + data)


def verify(public: bytes, signature: bytes, domain: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public``'s signature over ``data`` in ``domain``."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, domain + b"\x00" + data)
    except (InvalidSignature, ValueError):
        return False
    return True


def device_id_for(sign_public: bytes) -> str:
    """A device's id is bound to its signing key: the relay cannot give an id to another key."""
    digest = hashlib.sha256(b"ariadne/device-id/v1\x00" + sign_public).hexdigest()
    return digest[:DEVICE_ID_LENGTH]
