"""What travels inside a relay ``Envelope``: the sealed ratchet message and the plaintext payload
types (PROTOCOL.md §4 "Sessions" and §5 "Fan-out and delivery").

``SealedEnvelope`` is what the relay sees: a ratchet header (public by design), an optional X3DH
header while a session is new, and AES-GCM ciphertext. The plaintext is a tagged ``Payload``,
PADMÉ-padded before encryption so its length leaks little. Every payload names its sender
(``Origin``): the relay's label on an envelope is only a routing hint, checked against it.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Literal

import msgspec

from shared.codec import decode_strict
from shared.controls import Action
from shared.device_list import DeviceId, Key32, Username
from shared.errors import WireError
from shared.padding import pad, unpad

MAX_TEXT = 16_000
MessageId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]


class X3DHHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    identity_key: Key32
    ephemeral_key: Key32
    signed_pre_key: Key32
    one_time_pre_key: Key32 | None


class SealedEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    x3dh: X3DHHeader | None
    ratchet_pub: Key32
    previous_chain_length: Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
    chain_length: Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
    ciphertext: Annotated[bytes, msgspec.Meta(min_length=16, max_length=60_000)]
    v: Literal[1] = 1


class Origin(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """Who sent a payload, as the sending device states it under the encryption. The receiver
    compares ``user`` and ``device`` with the relay's label on the envelope, and orders a device's
    messages by ``counter``, which goes up by one with every payload that device sends."""

    user: Username
    device: DeviceId
    counter: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class _Payload(
    msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    origin: Origin
    v: Literal[2] = 2


class Text(_Payload, tag="text", frozen=True):
    """A chat message. ``peer`` is the other party of the conversation from the sender's view,
    so the sender's own other devices file it under the right thread."""

    message_id: MessageId
    peer: Username
    sent_at: int
    body: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    # Controls (PROTOCOL.md §10): the message this one quotes (its quote is taken from each
    # recipient's own copy, never re-sent), and when it disappears (sender's relay-corrected
    # clock, ms).
    reply_to: MessageId | None = None
    expires_at: int | None = None


class Receipt(_Payload, tag="receipt", frozen=True):
    status: Literal["delivered", "read"]
    message_ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=1000)]


class DeviceListUpdate(_Payload, tag="device_list", frozen=True):
    """The sender's new signed device list, sent to its contacts right after a change, so that
    a relay cannot keep them encrypting to a removed device by serving them an older list."""

    signed_list: Annotated[bytes, msgspec.Meta(max_length=40 * 1024)]


class Control(_Payload, tag="control", frozen=True):
    """A control message (unsend, delete, timer, edit, reaction: ``shared.controls``). ``peer``
    names the conversation from the sender's view, as in ``Text``."""

    control_id: MessageId
    peer: Username
    sent_at: int
    action: Action


Payload = Text | Receipt | DeviceListUpdate | Control

_encoder = msgspec.msgpack.Encoder()
_sealed_decoder = msgspec.msgpack.Decoder(SealedEnvelope)
_payload_decoder = msgspec.msgpack.Decoder(Payload)


def encode_sealed(sealed: SealedEnvelope) -> bytes:
    return _encoder.encode(sealed)


_CURVE25519_P = 2**255 - 19


def decode_sealed(data: bytes) -> SealedEnvelope:
    """Decode an envelope whose public keys are all in canonical form. X25519 ignores a key's top
    bit (and reduces modulo p), so one key has several spellings; the X3DH ephemeral key is used
    only in Diffie-Hellman, so a respelt one would still decrypt: a relay could replay a session
    start as a "new" one. Only the canonical spelling is accepted."""
    sealed = decode_strict(_sealed_decoder, data, "envelope")
    keys = [sealed.ratchet_pub]
    if sealed.x3dh is not None:
        header = sealed.x3dh
        keys += [header.identity_key, header.ephemeral_key, header.signed_pre_key]
        keys += [header.one_time_pre_key] if header.one_time_pre_key is not None else []
    if any(int.from_bytes(key, "little") >= _CURVE25519_P for key in keys):
        raise WireError("malformed envelope: a public key is not in canonical form")
    return sealed


def encode_payload(payload: Payload) -> bytes:
    return pad(_encoder.encode(payload))


def decode_payload(data: bytes) -> Payload:
    return decode_strict(_payload_decoder, unpad(data), "payload")


def new_message_id(now_ms: int | None = None, entropy: bytes | None = None) -> bytes:
    """A time-ordered 16-byte id (UUIDv7 layout: 48-bit milliseconds, then randomness).

    Time order keeps SQLite's B-tree inserts sequential; randomness makes ids unguessable.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = bytearray(os.urandom(10) if entropy is None else entropy)
    rand[0] = 0x70 | (rand[0] & 0x0F)  # version 7
    rand[2] = 0x80 | (rand[2] & 0x3F)  # RFC 9562 variant
    return ms.to_bytes(6, "big") + bytes(rand)
