"""Frames between a device and the relay (MessagePack, one frame per websocket message).

Every frame is a tagged msgspec Struct with a protocol version; decoding is strict (unknown
fields, wrong types, oversized values and unknown tags are all rejected), so bad input is stopped
at the edge. Requests carry a request id ``rid`` that the relay's answer repeats; ``Deliver`` and
``Notice`` frames are pushed by the relay.

Nothing in a frame is secret from the relay except envelope payloads, which are end-to-end
encrypted (see ``shared.envelope``).

The frames are defined by area (``wire_frame`` the base, ``wire_accounts``, ``wire_messaging``,
``wire_history``, ``wire_blobs``); this module gathers them into the two unions each end decodes
and the table of replies, and names every one of them, so ``wire.Send`` is the one spelling.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from shared.codec import decode_strict
from shared.errors import WireError
from shared.wire_accounts import *
from shared.wire_blobs import *
from shared.wire_frame import *
from shared.wire_history import *
from shared.wire_messaging import *

ClientFrame = (
    CreateAccount
    | AddDevice
    | Resume
    | PublishKeys
    | PublishDeviceList
    | FetchDeviceList
    | FetchBundles
    | ListDevices
    | OfferPairing
    | PairingSend
    | RejectDevice
    | Send
    | Ack
    | Inspect
    | ChangePassword
    | PublishEpoch
    | FetchEpochs
    | SaveMessages
    | FetchMailbox
    | ListMailboxThreads
    | FetchVaultKey
    | VaultCall
    | DeleteMailboxItems
    | FetchTime
    | StartUpload
    | UploadChunk
    | FetchBlob
    | ReleaseBlob
    | GroupSend
    | RebuildAccount
)
RelayFrame = (
    Challenge
    | Welcome
    | Ok
    | Error
    | Accepted
    | Mismatch
    | DeviceListReply
    | Bundles
    | Devices
    | PairingPush
    | Deliver
    | Notice
    | Inspection
    | Epochs
    | MailboxPage
    | MailboxThreads
    | VaultKey
    | VaultReply
    | RelayTime
    | UploadSlot
    | BlobProgress
    | BlobChunk
    | NotRegistered
)


# What the relay answers to each request when it takes it; any request may instead be answered
# with an ``Error``. ``Send`` is answered with ``Accepted`` once the fan-out is stored, or with a
# ``Mismatch`` naming the devices it got wrong; an ``Ack`` is not answered.
REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    **ACCOUNTS_REPLIES,
    **MESSAGING_REPLIES,
    **HISTORY_REPLIES,
    **BLOBS_REPLIES,
}

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[ClientFrame] = msgspec.msgpack.Decoder(ClientFrame)
_relay_decoder: msgspec.msgpack.Decoder[RelayFrame] = msgspec.msgpack.Decoder(RelayFrame)
_T = TypeVar("_T")


def encode(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def _decode(decoder: msgspec.msgpack.Decoder[_T], data: bytes | str) -> _T:
    if isinstance(data, str):
        raise WireError("text frames are not part of the protocol")
    if len(data) > MAX_FRAME_BYTES:
        raise WireError("frame too large")
    return decode_strict(decoder, data, "frame")


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode a frame sent by a device; raises :class:`WireError` on anything but a valid frame."""
    return _decode(_client_decoder, data)


def decode_relay_frame(data: bytes | str) -> RelayFrame:
    return _decode(_relay_decoder, data)
