"""Storing a message that arrived, one-to-one or in a group: the steps both paths share, in the
order that keeps them safe. A message that expired on the way is never stored; a duplicate (or
one unsent, deleted or expired here, whose tombstone refuses it) is never shown twice; the
controls that waited for it, and its place in its sending device's order, are recorded before
anything shows it; and it is queued for this account's mailbox.

What differs stays with the caller: the thread it belongs to, the receipt it owes (a pairwise
receipt is sent again for a duplicate, whose first one may have been lost), and an attachment's
pointer. A message that could not be opened is stored too, as a placeholder that says so."""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol

import msgspec

from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.events import (
    DecryptionFailed,
    Event,
    MessageReceived,
    MessageStatus,
    StoredMessage,
)
from client.core.timeline import Timeline
from shared import wire
from shared.envelope import Origin, new_message_id


class Arriving(Protocol):
    """What a ``Text``, an ``AttachmentMessage`` and a ``GroupText`` have in common."""

    @property
    def origin(self) -> Origin: ...
    @property
    def message_id(self) -> bytes: ...
    @property
    def sent_at(self) -> int: ...
    @property
    def body(self) -> str: ...
    @property
    def reply_to(self) -> bytes | None: ...
    @property
    def expires_at(self) -> int | None: ...


class Outcome(enum.Enum):
    STORED = "stored"
    EXPIRED = "expired"  # before it arrived: not stored, its sealed copy deleted
    REFUSED = "refused"  # a duplicate, or a tombstone here: not shown again


@dataclasses.dataclass(frozen=True)
class Arrival:
    outcome: Outcome
    events: list[Event]


def store_arrival(
    ctx: ClientContext,
    controls: Controls,
    timeline: Timeline,
    deliver: wire.Delivered,
    thread: str,
    content: Arriving,
) -> Arrival:
    from_self = deliver.sender_user == ctx.username
    message = StoredMessage(
        message_id=content.message_id,
        thread=thread,
        sender_user=deliver.sender_user,
        sender_device=deliver.sender_device,
        sent_at=content.sent_at,
        server_ts=deliver.server_ts,
        body=content.body,
        status=MessageStatus.SENT if from_self else MessageStatus.RECEIVED,
    )
    if not controls.admit(message, content.expires_at):
        return Arrival(Outcome.EXPIRED, [])
    if not ctx.store.insert_message(message):
        return Arrival(Outcome.REFUSED, [])
    controls.stored(message, content.expires_at, content.reply_to)
    counter = content.origin.counter
    ctx.store.record_sender_order(
        message.message_id, thread, message.sender_user, message.sender_device, counter
    )
    server_ts, reordered = timeline.in_sender_order(message, counter, deliver.server_ts)
    ctx.store.save_later([message.message_id])
    ctx.mailbox_wake.set()
    placed = msgspec.structs.replace(message, server_ts=server_ts)
    return Arrival(Outcome.STORED, [*reordered, MessageReceived(placed)])


def store_undecryptable(
    ctx: ClientContext, deliver: wire.Delivered, thread: str, reason: str
) -> list[Event]:
    """A message that could not be opened is shown as such, in its place, never dropped."""
    placeholder = StoredMessage(
        message_id=new_message_id(),
        thread=thread,
        sender_user=deliver.sender_user,
        sender_device=deliver.sender_device,
        sent_at=deliver.server_ts // 1000,
        server_ts=deliver.server_ts,
        body="",
        status=MessageStatus.UNDECRYPTABLE,
    )
    ctx.store.insert_message(placeholder)
    return [
        MessageReceived(placeholder),
        DecryptionFailed(thread, deliver.sender_user, deliver.sender_device, reason),
    ]
