"""PINs and the messages of the backup key vault (Labyrinth's HSM-backed PIN recovery).

A PIN is far too weak to derive keys from directly, so it only ever unlocks a secret held by the
**vault** (``relay.vault``), which allows a limited number of wrong guesses. The client:

1. stretches the PIN with Argon2id (salted per user) into a *verifier*, which the vault compares,
   and a *wrapping key*, which never leaves the device;
2. wraps the recovery secret under the wrapping key (so the vault holds only a wrapped secret);
3. seals every request to the vault's X25519 key with HPKE, bound to the username, and asks for
   the answer sealed to a one-time reply key. The relay forwards opaque bytes;
4. signs a backup with the account master key (AMK), so only a device holding the account key
   can replace the secret: a device that has only the password cannot (the vault checks the
   signature against the AMK public key the relay holds for the account).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from shared.boxes import StorageKey, derive, open_box, seal, seal_to
from shared.codec import decode_strict
from shared.device_list import Key32, Signature, Username
from shared.errors import DecryptionError, ProtocolError
from shared.identity import SigningKey, verify

GUESS_LIMIT = 10
MIN_PIN = 4
MAX_PIN = 64


class VaultRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    op: Literal["backup", "recover"]
    username: Username
    reply_key: Key32
    verifier: Key32
    wrapped: Annotated[bytes, msgspec.Meta(max_length=256)] | None = None
    # A backup's signature by the AMK over everything above (see backup_signed_bytes).
    amk_signature: Signature | None = None


class VaultAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Literal[
        "ok", "wrong_pin", "locked", "no_backup", "bad_request", "not_a_member", "bad_signature"
    ]
    tries_left: int = 0
    wrapped: bytes | None = None


class WrongPin(ProtocolError):
    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong PIN: {tries_left} tries left")
        self.tries_left = tries_left


class VaultLocked(ProtocolError):
    """Too many wrong PINs: the vault deleted the secret. Use the recovery code."""


class NoBackup(ProtocolError):
    """The vault holds no PIN backup for this account."""


def check_pin(pin: str) -> None:
    if not MIN_PIN <= len(pin) <= MAX_PIN or not pin.strip():
        raise ValueError(f"a PIN has {MIN_PIN} to {MAX_PIN} characters")


def request_info(username: str) -> bytes:
    return b"ariadne/vault-request/v1\x00" + username.encode()


def answer_info(username: str) -> bytes:
    return b"ariadne/vault-answer/v1\x00" + username.encode()


@dataclass(frozen=True)
class StretchedPin:
    verifier: bytes
    wrapping_key: bytes


def stretch(pin: str, username: str) -> StretchedPin:
    """Argon2id (64 MiB, t=3) of the PIN, salted by the username. Slow on purpose (~0.2 s)."""
    check_pin(pin)
    salt = hashlib.sha256(b"ariadne/pin-salt/v1\x00" + username.encode()).digest()[:16]
    stretched = Argon2id(salt=salt, length=32, iterations=3, lanes=1, memory_cost=64 * 1024).derive(
        pin.encode()
    )
    return StretchedPin(
        derive(stretched, b"ariadne/pin/verifier/v1"), derive(stretched, b"ariadne/pin/wrap/v1")
    )


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(VaultRequest)
_answer_decoder = msgspec.msgpack.Decoder(VaultAnswer)


@dataclass(frozen=True)
class SealedRequest:
    sealed: bytes
    reply: StorageKey
    username: str
    wrapping_key: bytes

    def open_answer(self, sealed_answer: bytes) -> VaultAnswer:
        opened = self.reply.open(sealed_answer, answer_info(self.username))
        return decode_strict(_answer_decoder, opened, "vault answer", DecryptionError)

    def unwrap(self, wrapped: bytes) -> str:
        return open_box(self.wrapping_key, wrapped, self.username.encode()).decode()


_BACKUP_DOMAIN = b"ariadne/vault-backup/v1"


def backup_signed_bytes(request: VaultRequest) -> bytes:
    """What the AMK signs in a backup: the user, the reply key (one request, not a template),
    the verifier and the wrapped secret."""
    return _encoder.encode((request.username, request.reply_key, request.verifier, request.wrapped))


def backup_signed_by(request: VaultRequest, amk_public: bytes) -> bool:
    """True if ``request`` is a backup signed by the account key ``amk_public``."""
    return request.amk_signature is not None and verify(
        amk_public, request.amk_signature, _BACKUP_DOMAIN, backup_signed_bytes(request)
    )


def backup_request(
    vault_public: bytes, username: str, pin: StretchedPin, secret: str, amk: SigningKey
) -> SealedRequest:
    reply = StorageKey.generate()
    unsigned = VaultRequest(
        op="backup",
        username=username,
        reply_key=reply.public,
        verifier=pin.verifier,
        wrapped=seal(pin.wrapping_key, secret.encode(), username.encode()),
    )
    request = msgspec.structs.replace(
        unsigned, amk_signature=amk.sign(_BACKUP_DOMAIN, backup_signed_bytes(unsigned))
    )
    sealed = seal_to(vault_public, _encoder.encode(request), request_info(username))
    return SealedRequest(sealed, reply, username, pin.wrapping_key)


def recover_request(vault_public: bytes, username: str, pin: StretchedPin) -> SealedRequest:
    reply = StorageKey.generate()
    request = VaultRequest(
        op="recover", username=username, reply_key=reply.public, verifier=pin.verifier
    )
    sealed = seal_to(vault_public, _encoder.encode(request), request_info(username))
    return SealedRequest(sealed, reply, username, pin.wrapping_key)


def open_request(key: StorageKey, username: str, sealed: bytes) -> VaultRequest:
    """The vault's side: open a request that must have been made for ``username``."""
    opened = key.open(sealed, request_info(username))
    request = decode_strict(_request_decoder, opened, "vault request", DecryptionError)
    if request.username != username:
        raise DecryptionError("vault request for another user")
    return request


def seal_answer(request: VaultRequest, answer: VaultAnswer) -> bytes:
    return seal_to(request.reply_key, _encoder.encode(answer), answer_info(request.username))
