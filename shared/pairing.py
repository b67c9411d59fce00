"""Pairing: approving a new device with a short authentication string (PROTOCOL.md §7).

A relay in the middle could show the approving device other keys than the new device's, and the
new device another account key than the real one. Both devices therefore compute a six-digit
code from *the keys each of them sees* — the new device's keys and the approver's device key and
account key — and two nonces; the user approves only if the codes match.

The nonces make the code unpredictable to the relay, and the order makes it unsteerable: the new
device first publishes a **commitment** to its keys and nonce (with its pairing offer), the
approver then sends its nonce, and only then does the new device reveal its own. Each party's
nonce is fixed before it sees the other's, so whatever the relay substitutes on either side, the
last honest nonce makes that side's code uniform: 1 chance in a million per exchange. An offer is
**single use**: the new device reveals its nonce once, and a further exchange needs a new offer
with a new nonce and commitment (a reused nonce, once revealed, would let the relay grind its own
nonce until the codes match). PROTOCOL.md §7 gives the argument.

:func:`fingerprint` tells two pending devices apart (same name, say): both the approver and the
new device show it, computed over the same keys the code covers.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

import msgspec

from shared.codec import decode_strict
from shared.device_list import DeviceId, Key32
from shared.errors import VerificationError

NONCE = 32
Nonce = Annotated[bytes, msgspec.Meta(min_length=NONCE, max_length=NONCE)]
SessionId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]


class NewDeviceKeys(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    device_id: DeviceId
    sign_public: Key32
    storage_key: Key32
    identity_key: Key32


class ApproverKeys(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    device_id: DeviceId
    sign_public: Key32
    amk_public: Key32


class _Message(msgspec.Struct, tag_field="kind", frozen=True, forbid_unknown_fields=True):
    session: SessionId


class Start(_Message, tag="start", frozen=True):
    """Approver → new device: its keys and its nonce (after it saw the commitment)."""

    approver: ApproverKeys
    nonce: Nonce


class Reveal(_Message, tag="reveal", frozen=True):
    """New device → approver: the nonce it committed to."""

    nonce: Nonce


class Outcome(_Message, tag="outcome", frozen=True):
    """Approver → new device: the user rejected the request (approval shows as the list)."""

    approved: bool


PairingMessage = Start | Reveal | Outcome

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PairingMessage)


def encode(message: PairingMessage) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> PairingMessage:
    return decode_strict(_decoder, data, "pairing message")


def commitment(nonce: bytes, keys: NewDeviceKeys) -> bytes:
    return hashlib.sha256(
        b"ariadne/pairing-commitment/v1\x00" + nonce + _encoder.encode(keys)
    ).digest()


def check_commitment(commitment_: bytes, nonce: bytes, keys: NewDeviceKeys) -> None:
    if not hmac.compare_digest(commitment_, commitment(nonce, keys)):
        raise VerificationError("the new device's nonce or keys do not match its commitment")


def code(
    new: NewDeviceKeys, approver: ApproverKeys, new_nonce: bytes, approver_nonce: bytes
) -> str:
    """Six digits, shown as "123 456"."""
    digest = hashlib.sha256(
        b"ariadne/pairing-code/v1\x00"
        + _encoder.encode(new)
        + _encoder.encode(approver)
        + new_nonce
        + approver_nonce
    ).digest()
    number = int.from_bytes(digest[:8], "big") % 1_000_000
    return f"{number // 1000:03d} {number % 1000:03d}"


def fingerprint(keys: NewDeviceKeys) -> str:
    """Twelve digits in three groups ("0412 7730 1985") naming a new device's keys: shown next
    to its request on the approver and on the new device's own screen, so two requests never
    look alike. 40 bits: finding other keys with the same fingerprint takes ~10^12 key pairs."""
    digest = hashlib.sha256(b"ariadne/device-fingerprint/v1\x00" + _encoder.encode(keys)).digest()
    number = int.from_bytes(digest[:8], "big") % 10**12
    text = f"{number:012d}"
    return " ".join(text[i : i + 4] for i in range(0, 12, 4))
