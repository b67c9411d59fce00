"""Boxes: the few ways Ariadne seals bytes outside the Double Ratchet, each built from one audited
primitive of ``cryptography`` and used everywhere the same way.

- :func:`seal` / :func:`open_box`: AES-256-GCM with a random 96-bit nonce (prefixed) and
  associated data. Used for epoch records and mailbox items, under keys from :func:`derive`.
- :func:`seal_to` / :func:`open_sealed_to`: HPKE base mode (RFC 9180; X25519, HKDF-SHA-256,
  AES-256-GCM) to an X25519 public key, with ``info`` binding the box to its context. The sender
  stays anonymous; where the sender matters (epoch entropy), what is inside is checked against an
  AMK-signed commitment.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.errors import DecryptionError

GCM_NONCE = 12
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def derive(key: bytes, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
    """HKDF-SHA-256 of ``key`` for one purpose (``label``) and one object (``context``)."""
    return HKDF(hashes.SHA256(), length, None, label + b"\x00" + context).derive(key)


def expand(prk: bytes, info: bytes) -> bytes:
    """HKDF-Expand only: a per-object key from a key that is already uniformly random (one
    extract per epoch, one cheap expand per message).

    A 32-byte output is HKDF-SHA-256's first block, T(1) = HMAC-SHA-256(PRK, info || 0x01)
    (RFC 5869 §2.3), computed as that one HMAC: building an ``HKDFExpand`` object per message
    cost more than the hash (a restore expands once per stored message). The RFC's vector and
    ``HKDFExpand`` itself check it (tests/shared/test_primitives.py)."""
    return hmac.digest(prk, info + b"\x01", "sha256")


def seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(GCM_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


def open_box(key: bytes, box: bytes, ad: bytes) -> bytes:
    if len(box) < GCM_NONCE + 16:
        raise DecryptionError("box too short")
    try:
        return AESGCM(key).decrypt(box[:GCM_NONCE], box[GCM_NONCE:], ad)
    except InvalidTag:
        raise DecryptionError("box does not authenticate") from None


class StorageKey:
    """An X25519 key pair for receiving sealed boxes (a device's epoch-storage key, the vault's
    key, a virtual device's key), kept as its 32 private bytes."""

    __slots__ = ("_key", "public")

    def __init__(self, private: bytes) -> None:
        self._key = X25519PrivateKey.from_private_bytes(private)
        self.public: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> StorageKey:
        return cls(os.urandom(32))

    @property
    def private(self) -> bytes:
        return self._key.private_bytes_raw()

    def open(self, box: bytes, info: bytes) -> bytes:
        try:
            return _SUITE.decrypt(box, self._key, info=info)
        except Exception:  # HPKE raises several types for bad input
            raise DecryptionError("sealed box does not open with this key") from None


def seal_to(public: bytes, plaintext: bytes, info: bytes) -> bytes:
    try:
        recipient = X25519PublicKey.from_public_bytes(public)
    except ValueError:
        raise DecryptionError("not an X25519 public key") from None
    return _SUITE.encrypt(plaintext, recipient, info=info)
