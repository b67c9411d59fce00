"""Sender Keys: how one group message is encrypted once for every member device (PROTOCOL.md §12).

Each sending device holds, per group, a **sender key**: a chain key and an Ed25519 signing key,
named by a random ``key_id``. It hands the chain key (at its current iteration) and the signing
key's public half to every member device in a :class:`SenderKeyDistribution`, over the pairwise
Double Ratchet sessions. Then:

- **Ratchet.** Message ``i``'s key comes from chain key ``i`` by HMAC-SHA-256 (``0x01``), and chain
  key ``i + 1`` from chain key ``i`` (``0x02``), as in Signal's sender keys. A holder of chain key
  ``i`` opens messages ``i`` and later, never earlier ones: a device given the key today reads
  nothing sent before. The AES-256-GCM key and nonce are HKDF-SHA-256 of the message key.
- **Signature.** The whole message (group, sender, key id, iteration, ciphertext) is signed with
  the sender key's signing key, so another member holding the same chain key cannot forge a
  message as this sender.
- **Out of order, replay.** A receiver keeps the next iteration it expects and the message keys of
  at most :data:`MAX_SKIP` skipped iterations (deleted once used). A message below the chain whose
  key is not kept (already opened, or too old) is refused as a duplicate; one more than
  :data:`MAX_SKIP` ahead is refused.
- **Rotation.** A new sender key (new ``key_id``, chain and signing key) is made whenever a member
  or a member's device leaves; it is distributed only to the remaining devices.

The relay sees a :class:`SealedGroupMessage`'s header: the group id, the sender, the key id and
the iteration; the text is inside the ciphertext.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Annotated, Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.codec import decode_strict
from shared.device_list import DeviceId, Key32, Signature, Username
from shared.errors import DecryptionError, DuplicateMessage
from shared.identity import SigningKey, verify

MAX_SKIP = 2000  # message keys a receiver keeps for messages that arrive out of order
MAX_GROUP_CIPHERTEXT = 60_000
GroupId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
KeyId = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
Iteration = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]

_SIGN_DOMAIN = b"ariadne/sender-key-message/v1"
_MESSAGE_INFO = b"ariadne/sender-key/message-key/v1"
_MESSAGE_KEY_SEED = b"\x01"
_CHAIN_KEY_SEED = b"\x02"


class SenderKeyDistribution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a member device is given (over a pairwise session) to read one sender's messages."""

    group_id: GroupId
    key_id: KeyId
    iteration: Iteration
    chain_key: Key32
    signing_public: Key32


class SealedGroupMessage(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="k", tag="group"
):
    """One group message as it travels: encrypted once, signed by the sender key."""

    group_id: GroupId
    sender_user: Username
    sender_device: DeviceId
    key_id: KeyId
    iteration: Iteration
    ciphertext: Annotated[bytes, msgspec.Meta(min_length=16, max_length=MAX_GROUP_CIPHERTEXT)]
    signature: Signature
    v: Literal[1] = 1


class OwnSenderKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """This device's sender key in one group: the next iteration it will use."""

    group_id: GroupId
    key_id: KeyId
    iteration: Iteration
    chain_key: Key32
    signing_seed: Key32

    def distribution(self) -> SenderKeyDistribution:
        return SenderKeyDistribution(
            group_id=self.group_id,
            key_id=self.key_id,
            iteration=self.iteration,
            chain_key=self.chain_key,
            signing_public=SigningKey(self.signing_seed).public,
        )


class PeerSenderKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Another device's sender key as this device holds it: the next iteration it expects and
    the message keys of skipped iterations (by iteration)."""

    group_id: GroupId
    sender_user: Username
    sender_device: DeviceId
    key_id: KeyId
    iteration: Iteration
    chain_key: Key32
    signing_public: Key32
    skipped: dict[int, bytes] = {}


_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(SealedGroupMessage)
_distribution_decoder = msgspec.msgpack.Decoder(SenderKeyDistribution)
_own_decoder = msgspec.msgpack.Decoder(OwnSenderKey)
_peer_decoder = msgspec.msgpack.Decoder(PeerSenderKey)


def new_sender_key(group_id: bytes) -> OwnSenderKey:
    """A fresh sender key: random key id, chain key and signing key, at iteration 0."""
    return OwnSenderKey(
        group_id=group_id,
        key_id=int.from_bytes(os.urandom(4), "big"),
        iteration=0,
        chain_key=os.urandom(32),
        signing_seed=SigningKey.generate().seed,
    )


def accept_distribution(
    distribution: SenderKeyDistribution, sender_user: str, sender_device: str
) -> PeerSenderKey:
    """The receiving state for a distribution that came over ``sender_device``'s pairwise
    session (the session authenticates who gave it)."""
    return PeerSenderKey(
        group_id=distribution.group_id,
        sender_user=sender_user,
        sender_device=sender_device,
        key_id=distribution.key_id,
        iteration=distribution.iteration,
        chain_key=distribution.chain_key,
        signing_public=distribution.signing_public,
    )


def step(chain_key: bytes) -> tuple[bytes, bytes]:
    """(message key, next chain key) of one chain key."""
    message_key = hmac.digest(chain_key, _MESSAGE_KEY_SEED, hashlib.sha256)
    return message_key, hmac.digest(chain_key, _CHAIN_KEY_SEED, hashlib.sha256)


def _cipher(message_key: bytes) -> tuple[AESGCM, bytes]:
    material = HKDF(hashes.SHA256(), 44, None, _MESSAGE_INFO).derive(message_key)
    return AESGCM(material[:32]), material[32:]


def _header(
    group_id: bytes, sender_user: str, sender_device: str, key_id: int, iteration: int
) -> bytes:
    return _encoder.encode((group_id, sender_user, sender_device, key_id, iteration))


def encrypt(
    state: OwnSenderKey, sender_user: str, sender_device: str, plaintext: bytes
) -> tuple[bytes, OwnSenderKey]:
    """Encrypt and sign one message; returns its bytes and the state after it (the caller
    stores the new state before the message leaves: a message key is never used twice)."""
    message_key, next_chain = step(state.chain_key)
    header = _header(state.group_id, sender_user, sender_device, state.key_id, state.iteration)
    aead, nonce = _cipher(message_key)
    ciphertext = aead.encrypt(nonce, plaintext, header)
    signature = SigningKey(state.signing_seed).sign(_SIGN_DOMAIN, header + ciphertext)
    message = SealedGroupMessage(
        group_id=state.group_id,
        sender_user=sender_user,
        sender_device=sender_device,
        key_id=state.key_id,
        iteration=state.iteration,
        ciphertext=ciphertext,
        signature=signature,
    )
    advanced = msgspec.structs.replace(state, iteration=state.iteration + 1, chain_key=next_chain)
    return _encoder.encode(message), advanced


def decode_message(data: bytes) -> SealedGroupMessage:
    return decode_strict(_message_decoder, data, "group message")


def decrypt(state: PeerSenderKey, message: SealedGroupMessage) -> tuple[bytes, PeerSenderKey]:
    """Verify and decrypt ``message`` with the sender key it names; returns the plaintext and
    the state after it. Raises :class:`DuplicateMessage` for an iteration already opened (or too
    old to have its key kept) and :class:`DecryptionError` for anything that does not verify."""
    if (
        message.group_id != state.group_id
        or (message.sender_user, message.sender_device) != (state.sender_user, state.sender_device)
        or message.key_id != state.key_id
    ):
        raise DecryptionError("the message names another sender key")
    header = _header(
        message.group_id,
        message.sender_user,
        message.sender_device,
        message.key_id,
        message.iteration,
    )
    if not verify(
        state.signing_public, message.signature, _SIGN_DOMAIN, header + message.ciphertext
    ):
        raise DecryptionError("the sender key's signature does not verify")
    skipped = dict(state.skipped)
    chain_key, iteration = state.chain_key, state.iteration
    if message.iteration < iteration:
        message_key = skipped.pop(message.iteration, None)
        if message_key is None:
            raise DuplicateMessage("this sender-key iteration was already opened")
    else:
        if message.iteration - iteration > MAX_SKIP:
            raise DecryptionError("the message is too far ahead of its sender's chain")
        while iteration < message.iteration:
            skipped[iteration], chain_key = step(chain_key)
            iteration += 1
        message_key, chain_key = step(chain_key)
        iteration += 1
        # Only the newest MAX_SKIP skipped keys are kept: older ones are deleted.
        for old in sorted(skipped)[: max(0, len(skipped) - MAX_SKIP)]:
            del skipped[old]
    aead, nonce = _cipher(message_key)
    try:
        plaintext = aead.decrypt(nonce, message.ciphertext, header)
    except InvalidTag:
        raise DecryptionError("the group message does not authenticate") from None
    advanced = msgspec.structs.replace(
        state, iteration=iteration, chain_key=chain_key, skipped=skipped
    )
    return plaintext, advanced


def encode_state(state: OwnSenderKey | PeerSenderKey | SenderKeyDistribution) -> bytes:
    return _encoder.encode(state)


def decode_own(data: bytes) -> OwnSenderKey:
    return decode_strict(_own_decoder, data, "sender key")


def decode_peer(data: bytes) -> PeerSenderKey:
    return decode_strict(_peer_decoder, data, "sender key")


def decode_distribution(data: bytes) -> SenderKeyDistribution:
    return decode_strict(_distribution_decoder, data, "sender key distribution", DecryptionError)
