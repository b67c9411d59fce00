"""Pairwise device sessions: X3DH key agreement and the Double Ratchet (PROTOCOL.md §4).

Configuration, fixed for the life of a session and never stored with it (the libraries do not
serialise it):

- X3DH on Curve25519 with SHA-256 and ``X3DH_INFO``. We use ``x3dh.BaseState``, not
  ``x3dh.State``: the one-time pre-key is deleted by the caller only *after* the first ratchet
  message authenticated, so a forged first message cannot burn it.
- Double Ratchet with X25519, HKDF-SHA-256 for the root chain, HMAC-SHA-256 for the message
  chains, and AES-256-GCM as the AEAD. Key and nonce come from HKDF over the single-use message
  key; the associated data is the session's X3DH associated data followed by the encoded ratchet
  header, so a header cannot be changed without the tag failing.

The libraries' async methods never suspend but are not safe under concurrent use of one session:
callers hold one lock per session (``client.core.sessions`` does).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import doubleratchet
import msgspec
import x3dh
import xeddsa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from doubleratchet.recommended import (
    HashFunction,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from shared.codec import decode_strict
from shared.envelope import SealedEnvelope, X3DHHeader
from shared.errors import DecryptionError, DuplicateMessage

X3DH_INFO = b"Ariadne X3DH v1"
_ROOT_INFO = b"Ariadne root chain v1"
_AEAD_INFO = b"Ariadne message key v1"
_MESSAGE_CHAIN_CONSTANT = b"\x01\x02"
_DOS_THRESHOLD = 1000
_MAX_SKIPPED_KEYS = 1000


class X3DHState(x3dh.BaseState):
    """A device's X3DH keys: identity key, signed pre-key and one-time pre-keys."""

    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        # One type byte then the key, as Signal does: distinct keys never encode alike.
        return b"\x05" + pub


def new_x3dh_state() -> X3DHState:
    return X3DHState.create(
        x3dh.IdentityKeyFormat.CURVE_25519, x3dh.HashFunction.SHA_256, X3DH_INFO
    )


def load_x3dh_state(serialized: str) -> X3DHState:
    state, _ = X3DHState.from_json(
        json.loads(serialized),
        x3dh.IdentityKeyFormat.CURVE_25519,
        x3dh.HashFunction.SHA_256,
        X3DH_INFO,
    )
    return state


def dump_x3dh_state(state: X3DHState) -> str:
    return json.dumps(state.json)


class _RootChainKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return _ROOT_INFO


class _MessageChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


def _aead_key_nonce(message_key: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(hashes.SHA256(), 44, salt=b"\x00" * 32, info=_AEAD_INFO).derive(message_key)
    return okm[:32], okm[32:]


class _AesGcm(doubleratchet.aead.AEAD):
    """AES-256-GCM; every message key is used exactly once, so a derived nonce is safe."""

    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aes_key, nonce = _aead_key_nonce(key)
        return AESGCM(aes_key).encrypt(nonce, plaintext, associated_data)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aes_key, nonce = _aead_key_nonce(key)
        try:
            return AESGCM(aes_key).decrypt(nonce, ciphertext, associated_data)
        except InvalidTag:
            raise doubleratchet.aead.AuthenticationFailedException("bad tag") from None


class _DoubleRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (
            struct.pack(">I", len(associated_data))
            + associated_data
            + header.ratchet_pub
            + struct.pack(">II", header.previous_sending_chain_length, header.sending_chain_length)
        )


_CONFIG: dict[str, Any] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": _RootChainKDF,
    "message_chain_kdf": _MessageChainKDF,
    "message_chain_constant": _MESSAGE_CHAIN_CONSTANT,
    "dos_protection_threshold": _DOS_THRESHOLD,
    "max_num_skipped_message_keys": _MAX_SKIPPED_KEYS,
    "aead": _AesGcm,
}

# Everything the libraries raise on hostile input: caught per message, so one bad envelope
# becomes "couldn't decrypt" and never stops the ones after it.
_BAD_INPUT = (
    doubleratchet.aead.AuthenticationFailedException,
    doubleratchet.aead.DecryptionFailedException,
    doubleratchet.diffie_hellman_ratchet.DoSProtectionException,
    doubleratchet.symmetric_key_ratchet.ChainNotAvailableException,
    x3dh.KeyAgreementException,
    xeddsa.XEdDSAException,
    ValueError,  # includes pydantic.ValidationError
)


class Session:
    """One Double Ratchet session with one peer device, plus what the libraries do not keep:
    the X3DH associated data; until the peer first answers, the X3DH header to resend; and for a
    session the peer started, the header it started with (its resends must repeat it exactly)."""

    __slots__ = ("associated_data", "pending_header", "ratchet", "started_by")

    def __init__(
        self,
        ratchet: _DoubleRatchet,
        associated_data: bytes,
        pending_header: X3DHHeader | None,
        started_by: X3DHHeader | None = None,
    ) -> None:
        self.ratchet = ratchet
        self.associated_data = associated_data
        self.pending_header = pending_header
        self.started_by = started_by

    def dump(self) -> bytes:
        return _session_encoder.encode(
            _StoredSession(
                ratchet=json.dumps(self.ratchet.json),
                associated_data=self.associated_data,
                pending_header=self.pending_header,
                started_by=self.started_by,
            )
        )

    @classmethod
    def load(cls, data: bytes) -> Session:
        stored = decode_strict(_session_decoder, data, "stored session")
        ratchet = _DoubleRatchet.from_json(json.loads(stored.ratchet), **_CONFIG)
        return cls(ratchet, stored.associated_data, stored.pending_header, stored.started_by)

    async def encrypt(self, plaintext: bytes) -> SealedEnvelope:
        message = await self.ratchet.encrypt_message(plaintext, self.associated_data)
        return _seal(message, self.pending_header)

    async def decrypt(self, sealed: SealedEnvelope) -> bytes:
        """Decrypt; the ratchet state changes only on success. Any reply proves the peer has the
        session, so the X3DH header need no longer be sent. An X3DH header that is not the one
        this session started from is refused: only its ephemeral key picks the session, and the
        ratchet does not authenticate the rest of it."""
        if sealed.x3dh is not None and sealed.x3dh != self.started_by:
            raise DecryptionError("session start header does not match this session")
        try:
            plaintext = await self.ratchet.decrypt_message(_open(sealed), self.associated_data)
        except doubleratchet.diffie_hellman_ratchet.DuplicateMessageException:
            raise DuplicateMessage("message already decrypted") from None
        except _BAD_INPUT as exc:
            raise DecryptionError(type(exc).__name__) from None
        self.pending_header = None
        return plaintext


class _StoredSession(msgspec.Struct, frozen=True):
    ratchet: str
    associated_data: bytes
    pending_header: X3DHHeader | None
    v: int = 1
    started_by: X3DHHeader | None = None


_session_encoder = msgspec.msgpack.Encoder()
_session_decoder = msgspec.msgpack.Decoder(_StoredSession)


def _seal(message: doubleratchet.EncryptedMessage, header: X3DHHeader | None) -> SealedEnvelope:
    return SealedEnvelope(
        x3dh=header,
        ratchet_pub=message.header.ratchet_pub,
        previous_chain_length=message.header.previous_sending_chain_length,
        chain_length=message.header.sending_chain_length,
        ciphertext=message.ciphertext,
    )


def _open(sealed: SealedEnvelope) -> doubleratchet.EncryptedMessage:
    return doubleratchet.EncryptedMessage(
        header=doubleratchet.Header(
            ratchet_pub=sealed.ratchet_pub,
            previous_sending_chain_length=sealed.previous_chain_length,
            sending_chain_length=sealed.chain_length,
        ),
        ciphertext=sealed.ciphertext,
    )


def session_binding(initiator: tuple[str, str], responder: tuple[str, str]) -> bytes:
    """Bound into the X3DH associated data: who (user, device) started the session with whom."""
    return msgspec.msgpack.encode((initiator, responder))


async def initiate_session(
    own: X3DHState,
    peer_identity_key: bytes,
    signed_pre_key: bytes,
    signed_pre_key_sig: bytes,
    one_time_pre_key: bytes | None,
    binding: bytes,
    first_plaintext: bytes,
) -> tuple[Session, SealedEnvelope]:
    """Start a session from a peer's pre-key bundle (whose identity key the caller checked
    against the peer's signed device list) and encrypt the first message."""
    bundle = x3dh.Bundle(
        identity_key=peer_identity_key,
        signed_pre_key=signed_pre_key,
        signed_pre_key_sig=signed_pre_key_sig,
        pre_keys=frozenset([one_time_pre_key]) if one_time_pre_key else frozenset(),
    )
    try:
        secret, associated_data, header = await own.get_shared_secret_active(
            bundle, binding, require_pre_key=False
        )
    except x3dh.KeyAgreementException as exc:
        raise DecryptionError(f"bad pre-key bundle: {exc}") from None
    ratchet, message = await _DoubleRatchet.encrypt_initial_message(
        shared_secret=secret,
        recipient_ratchet_pub=signed_pre_key,
        message=first_plaintext,
        associated_data=associated_data,
        **_CONFIG,
    )
    pending = X3DHHeader(
        identity_key=header.identity_key,
        ephemeral_key=header.ephemeral_key,
        signed_pre_key=header.signed_pre_key,
        one_time_pre_key=header.pre_key,
    )
    return Session(ratchet, associated_data, pending), _seal(message, pending)


async def accept_session(
    own: X3DHState, sealed: SealedEnvelope, binding: bytes
) -> tuple[Session, bytes]:
    """Answer a session started by a peer. The caller checks ``sealed.x3dh.identity_key``
    against the peer's signed device list, persists, and only then deletes the one-time pre-key
    (``own.delete_pre_key(sealed.x3dh.one_time_pre_key)``)."""
    header = sealed.x3dh
    if header is None:
        raise DecryptionError("not a session start")
    try:
        secret, associated_data, signed_pre_key = await own.get_shared_secret_passive(
            x3dh.Header(
                identity_key=header.identity_key,
                ephemeral_key=header.ephemeral_key,
                signed_pre_key=header.signed_pre_key,
                pre_key=header.one_time_pre_key,
            ),
            binding,
            require_pre_key=False,
        )
        ratchet, plaintext = await _DoubleRatchet.decrypt_initial_message(
            shared_secret=secret,
            own_ratchet_priv=signed_pre_key.priv,
            message=_open(sealed),
            associated_data=associated_data,
            **_CONFIG,
        )
    except _BAD_INPUT as exc:
        raise DecryptionError(type(exc).__name__) from None
    return Session(ratchet, associated_data, None, header), plaintext
