"""Frames of messaging: a fan-out (``Send``, one envelope per current device of each user) and a
group message (``GroupSend``, one payload for every listed device), the relay's ``Accepted`` or
``Mismatch``, queued envelopes pushed (``Deliver``) and acknowledged (``Ack``), the relay's clock,
and ``Inspect``, what the relay holds of a conversation. Gathered with the other areas in
:mod:`shared.wire`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.device_list import DeviceId, Username
from shared.wire_frame import Frame, Rid, SealedPayload, Seq

__all__ = [
    "MAX_ACKS",
    "MAX_DELIVER",
    "MAX_ENVELOPES_PER_USER",
    "MAX_GROUP_USERS",
    "MAX_RECIPIENT_USERS",
    "MESSAGING_REPLIES",
    "Accepted",
    "Ack",
    "Deliver",
    "Delivered",
    "DeviceMismatch",
    "Envelope",
    "FetchTime",
    "GroupRecipient",
    "GroupSend",
    "Inspect",
    "Inspection",
    "Mismatch",
    "RecipientEnvelopes",
    "RelayTime",
    "SeenEnvelope",
    "Send",
]


MAX_RECIPIENT_USERS = 8
MAX_ENVELOPES_PER_USER = 64
MAX_ACKS = 1000
MAX_DELIVER = 256


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    payload: SealedPayload


class RecipientEnvelopes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    envelopes: Annotated[list[Envelope], msgspec.Meta(max_length=MAX_ENVELOPES_PER_USER)]


class DeviceMismatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    missing: list[DeviceId]
    extra: list[DeviceId]


class Send(Frame, tag="send", frozen=True):
    """One fan-out: for each named user, exactly one envelope per current device.

    ``send_id`` makes a resend idempotent: if the relay stored this fan-out but the answer was
    lost, the resend gets the original ``Accepted`` and nothing is queued twice."""

    rid: Rid
    send_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    recipients: Annotated[
        list[RecipientEnvelopes], msgspec.Meta(min_length=1, max_length=MAX_RECIPIENT_USERS)
    ]


class Inspect(Frame, tag="inspect", frozen=True):
    """Ask what the relay holds and has seen of this user's conversation with ``peer``."""

    rid: Rid
    peer: Username


class Ack(Frame, tag="ack", frozen=True):
    seqs: Annotated[list[Seq], msgspec.Meta(min_length=1, max_length=MAX_ACKS)]


MAX_GROUP_USERS = 100


class GroupRecipient(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    device_ids: Annotated[list[DeviceId], msgspec.Meta(max_length=MAX_ENVELOPES_PER_USER)]


class GroupSend(Frame, tag="group_send", frozen=True):
    """One group message (``shared.sender_keys``), encrypted once: the relay queues the same
    bytes for every listed device. As with ``Send``, each user's devices must be exactly the
    user's current ones (else ``Mismatch``), and ``send_id`` makes a resend idempotent."""

    rid: Rid
    send_id: Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
    payload: SealedPayload
    recipients: Annotated[
        list[GroupRecipient], msgspec.Meta(min_length=1, max_length=MAX_GROUP_USERS)
    ]


class Accepted(Frame, tag="accepted", frozen=True):
    rid: Rid
    server_ts: int


class Mismatch(Frame, tag="mismatch", frozen=True):
    rid: Rid
    users: list[DeviceMismatch]


class Delivered(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One queued envelope; ``seq`` is what the device acknowledges."""

    seq: Seq
    sender_user: Username
    sender_device: DeviceId
    server_ts: int
    payload: SealedPayload


class Deliver(Frame, tag="deliver", frozen=True):
    """Queued envelopes in queue order; as many as are ready, so a busy device gets few frames."""

    envelopes: Annotated[list[Delivered], msgspec.Meta(min_length=1, max_length=MAX_DELIVER)]


class SeenEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One envelope as the relay saw it: everything it knows about it, nothing more."""

    seq: Seq
    server_ts: int
    sender_user: Username
    sender_device: DeviceId
    recipient_user: Username
    device_id: DeviceId
    size: int
    excerpt: bytes  # the last bytes of what the relay holds (mostly ciphertext), to look at
    queued: bool  # still in the device's queue (not yet acknowledged)


class Inspection(Frame, tag="inspection", frozen=True):
    rid: Rid
    envelopes: list[SeenEnvelope]


class FetchTime(Frame, tag="fetch_time", frozen=True):
    """The relay's clock, which decides when disappearing messages expire (PROTOCOL.md §10)."""

    rid: Rid


class RelayTime(Frame, tag="relay_time", frozen=True):
    rid: Rid
    now_us: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


# What the relay answers to each of these requests when it takes it (gathered in
# ``shared.wire.REPLIES``).
MESSAGING_REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    Send: (Accepted, Mismatch),
    Ack: (),
    Inspect: (Inspection,),
    FetchTime: (RelayTime,),
    GroupSend: (Accepted, Mismatch),
}
