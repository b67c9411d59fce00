"""Proof of device possession for relay logins.

On every connection the relay sends a fresh random nonce; the device answers with its signing
key's signature over the nonce, its username and its device id. The relay then knows it talks to
the holder of that device key, not just someone who knows the password.
"""

from __future__ import annotations

import msgspec

from shared.identity import SigningKey, verify

_DOMAIN = b"ariadne/relay-login/v1"
NONCE_LENGTH = 32

_encoder = msgspec.msgpack.Encoder()


def _transcript(nonce: bytes, username: str, device_id: str) -> bytes:
    return _encoder.encode((nonce, username, device_id))


def sign_login(key: SigningKey, nonce: bytes, username: str, device_id: str) -> bytes:
    return key.sign(_DOMAIN, _transcript(nonce, username, device_id))


def verify_login(
    sign_public: bytes, signature: bytes, nonce: bytes, username: str, device_id: str
) -> bool:
    return verify(sign_public, signature, _DOMAIN, _transcript(nonce, username, device_id))
