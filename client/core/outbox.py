"""The outbox: what this device sends, and what becomes of it.

A composed message is stored first (state "sending"), then encrypted to every device on the
recipient's and on our own verified device lists; the advanced ratchets are committed *before*
the envelopes leave, so a message key is never used twice. If the relay says the fan-out does not
match the current devices, the signed lists are fetched again and the send retried. Receipts
("delivered", "read") and device lists shared end to end leave through the same queue, in the
order they entered it (the sender's counter).

A message the relay accepted is kept, with the exact fan-out the relay took, until a recipient
device confirms it (a delivery or read receipt), and offered again after every reconnect under
the same ``send_id``: a relay that still has it answers as before and queues nothing, one that
lost it (a power loss, a restore from an older copy) takes it anew. The same envelopes, not new
ones: envelopes a relay drops would otherwise leave gaps in the recipients' ratchets, and a device
that already has one drops the repeat by its digest.

Encrypting one item and reading the relay's answer to it is :mod:`client.core.fan_out`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from client.core.context import ClientContext
from client.core.departure import compose, store_own
from client.core.directory import Directory
from client.core.events import (
    DeliveryUpdated,
    MessageQueued,
    MessageStatus,
    SendDeferred,
    StoredMessage,
)
from client.core.fan_out import FanOut, failure_text
from client.core.fan_out import SendBlocked as SendBlocked  # (the callers' errors too)
from client.core.fan_out import SendError as SendError
from client.core.fan_out import SendLater as SendLater
from client.core.port import Offline
from client.core.reoffer import GroupFanOut, offer_each, unconfirmed
from client.core.sessions import SessionBook
from client.core.timeline import Timeline
from shared import wire
from shared.envelope import (
    DeviceListUpdate,
    ProfileName,
    Receipt,
    Text,
    encode_payload,
    new_message_id,
)
from shared.group import group_text, is_group_thread

if TYPE_CHECKING:  # (controls imports, through attachments, this module)
    from client.core.controls import Controls

log = logging.getLogger("ariadne.client")

# (send_id, thread, plaintext) -> the relay's time and what it accepted
GroupSender = Callable[[bytes, str, bytes], Awaitable[tuple[int, GroupFanOut]]]

# A message the relay cannot take yet (a full queue, too many new sessions at once) is tried
# again after this many seconds, doubling up to the longest.
LATER_FIRST = 1.0
LATER_LONGEST = 60.0


class Outbox(FanOut):
    def __init__(
        self,
        ctx: ClientContext,
        directory: Directory,
        sessions: SessionBook,
        timeline: Timeline,
        controls: Controls,
    ) -> None:
        self._ctx = ctx
        self._controls = controls  # an own message's expiry and quote
        self._directory = directory
        self._sessions = sessions
        self._timeline = timeline
        # Why an outgoing message still waits (a relay limit), by message id, for its bubble.
        self.send_notes: dict[bytes, str] = {}
        # Sends a group thread's item (client.core.group_send), once groups are wired in.
        self.group_sender: GroupSender | None = None
        self._reoffer_due = False

    def connected(self) -> None:
        """A new connection: offer the unconfirmed messages again before anything new."""
        self._reoffer_due = True
        self._ctx.outbox_wake.set()

    async def send_text(self, peer: str, text: str, reply_to: bytes | None = None) -> StoredMessage:
        """Store a message to ``peer`` (quoting ``reply_to``) and queue it; it leaves as soon as
        the relay is reachable. It disappears after the conversation's timer, if one is set.
        Raises :class:`SendBlocked` while ``peer``'s changed account key is unacknowledged."""
        if self._directory.key_changed(peer):
            raise SendBlocked(f"{peer}'s safety number changed: acknowledge it to send again")
        if peer == self._ctx.username:
            raise ValueError("notes to self are not supported")
        message, expires = compose(self._ctx, peer, text)
        with self._ctx.store.transaction():
            origin = store_own(self._ctx, self._controls, message, expires, reply_to)
            payload = Text(
                origin=origin,
                message_id=message.message_id,
                peer=peer,
                sent_at=message.sent_at,
                body=text,
                reply_to=reply_to,
                expires_at=expires,
            )
            self._ctx.store.enqueue(
                [peer, self._ctx.username], encode_payload(payload), message.message_id
            )
        self._ctx.emit(MessageQueued(message))
        self._ctx.outbox_wake.set()
        return message

    def retry(self, message_id: bytes) -> bool:
        """Queue a failed message of this device again, under the same id (its bubble goes back
        to "sending"). False if it is not a failed message of this device."""
        message = self._ctx.store.message(message_id)
        if (
            message is None
            or message.status is not MessageStatus.FAILED
            or message.sender_device != self._ctx.device_id
        ):
            return False
        if self._directory.key_changed(message.thread):
            raise SendBlocked(f"{message.thread}'s safety number changed: acknowledge it first")
        with self._ctx.store.transaction():
            origin = self._ctx.origin()
            payload = Text(
                origin=origin,
                message_id=message_id,
                peer=message.thread,
                sent_at=message.sent_at,
                body=message.body,
            )
            users, encoded = [message.thread, self._ctx.username], encode_payload(payload)
            if is_group_thread(message.thread):  # sent again under the group's sender key
                users, encoded = [message.thread], group_text(payload)
            self._ctx.store.set_send_failure(message_id, None)
            self._ctx.store.renumber_sender_order(message_id, origin.counter)
            self._ctx.store.set_status(message_id, MessageStatus.SENDING, None)
            self._ctx.store.enqueue(users, encoded, message_id)
        self._ctx.emit(DeliveryUpdated(message_id, message.thread, MessageStatus.SENDING, None))
        self._ctx.outbox_wake.set()
        return True

    def mark_read(self, thread: str, seen: set[bytes] | None = None) -> int:
        """Mark what the user has now seen in ``thread`` as read (all of it, or the messages in
        ``seen``): the sender's devices learn it (read receipts) and so do this user's other
        devices (their unread counts clear too)."""
        unread = self._ctx.store.unread(thread)
        if seen is not None:
            unread = [message_id for message_id in unread if message_id in seen]
        if not unread:
            return 0
        # Read receipts off: only this user's own devices learn it (their unread counts clear).
        users = [self._ctx.username]
        if self._ctx.state.preferences.read_receipts:
            users.insert(0, thread)
        with self._ctx.store.transaction():
            for message_id in unread:
                self.set_status(message_id, MessageStatus.READ, None)
            self._ctx.store.enqueue(
                users,
                encode_payload(
                    Receipt(origin=self._ctx.origin(), status="read", message_ids=unread)
                ),
                None,
            )
        self._ctx.outbox_wake.set()
        return len(unread)

    def share_name(self, users: list[str], name: str) -> None:
        """Send this user's display name end to end to ``users`` (and this user's other
        devices, which are always among the recipients)."""
        users = [u for u in users if u != self._ctx.username]
        with self._ctx.store.transaction():
            for start in range(0, max(1, len(users)), wire.MAX_RECIPIENT_USERS - 1):
                chunk = users[start : start + wire.MAX_RECIPIENT_USERS - 1]
                self._ctx.store.enqueue(
                    [self._ctx.username, *chunk],
                    encode_payload(ProfileName(origin=self._ctx.origin(), name=name)),
                    None,
                )
                for user in chunk:
                    self._ctx.store.set_name_sent(user, name)
        self._ctx.outbox_wake.set()

    def share_device_list(self, signed: bytes) -> None:
        """Send the new list end to end to this user's other devices and every contact: a relay
        cannot hold it back from them (and serve them the older list) without holding back
        everything this user sends."""
        others = {t for t in self._ctx.store.threads() if not is_group_thread(t)}
        others |= self._ctx.store.group_member_users()
        contacts = [self._ctx.username, *sorted(others - {self._ctx.username})]
        with self._ctx.store.transaction():
            for start in range(0, len(contacts), wire.MAX_RECIPIENT_USERS):
                self._ctx.store.enqueue(
                    contacts[start : start + wire.MAX_RECIPIENT_USERS],
                    encode_payload(DeviceListUpdate(origin=self._ctx.origin(), signed_list=signed)),
                    None,
                )
        self._ctx.outbox_wake.set()

    async def run(self) -> None:
        later = LATER_FIRST
        while True:
            await self._ctx.outbox_wake.wait()
            await self._ctx.port.online.wait()
            if self._reoffer_due:
                self._reoffer_due = False
                try:
                    await self._reoffer()
                except Offline:
                    self._reoffer_due = True  # the next connection offers them again
                    await asyncio.sleep(0.05)
                    continue
            # Waits while another loop's transaction is open: the item read is a committed one.
            async with self._ctx.store.transaction():
                item = self._ctx.store.next_outgoing()
            if item is None:
                self._ctx.outbox_wake.clear()
                continue
            try:
                # What the relay accepted is kept, to offer again if the relay loses it.
                fan_out: GroupFanOut | list[wire.RecipientEnvelopes]
                if self.group_sender is not None and is_group_thread(item.users[0]):
                    server_ts, fan_out = await self.group_sender(
                        item.send_id, item.users[0], item.payload
                    )
                else:
                    server_ts, fan_out = await self._fan_out(item.send_id, item.users, item.payload)
            except Offline:
                await asyncio.sleep(0.05)  # the link reconnects; online clears meanwhile
                continue
            except SendLater as exc:
                log.info("the relay cannot take an outgoing item yet: %s", exc)
                message = self._ctx.store.message(item.message_id) if item.message_id else None
                if message is not None:
                    self.send_notes[message.message_id] = exc.reason
                    self._ctx.emit(SendDeferred(message.message_id, message.thread, exc.reason))
                await asyncio.sleep(later)
                later = min(later * 2, LATER_LONGEST)
                continue
            except SendError as exc:
                log.warning("giving up on an outgoing item: %s", exc)
                with self._ctx.store.transaction():
                    self._ctx.store.remove_outgoing(item.id)
                    if item.message_id is not None:
                        self.send_notes.pop(item.message_id, None)
                        self._ctx.store.set_send_failure(item.message_id, failure_text(exc))
                        self.set_status(item.message_id, MessageStatus.FAILED, None)
                continue
            later = LATER_FIRST
            with self._ctx.store.transaction():
                self._ctx.store.remove_outgoing(item.id)
                if item.message_id is not None:
                    self.send_notes.pop(item.message_id, None)
                    server_ts = self._sent_in_order(item.message_id, server_ts)
                    self.set_status(item.message_id, MessageStatus.SENT, server_ts)
                    self._ctx.store.save_later([item.message_id])
                    self._ctx.mailbox_wake.set()
                    if unconfirmed(self._ctx, item.message_id):
                        self._ctx.store.keep_unconfirmed(item, msgspec.msgpack.encode(fan_out))

    async def _reoffer(self) -> None:
        """Offer every unconfirmed message again, oldest first, as the relay accepted it."""
        accepted: list[tuple[bytes, int]] = []
        try:
            await offer_each(self._ctx, accepted)
        finally:
            # Newest first: a relay that took them anew gave each a later time than the one
            # before, and placed so, none is ever behind a later message of ours still holding
            # its old time (which would read as a relay reordering our messages).
            with self._ctx.store.transaction():
                for message_id, server_ts in reversed(accepted):
                    placed = self._sent_in_order(message_id, server_ts)
                    self.set_status(message_id, MessageStatus.SENT, placed)

    def _sent_in_order(self, message_id: bytes, server_ts: int) -> int:
        """The relay accepted one of this device's messages at ``server_ts``: place it in this
        device's own order (the relay's answer could contradict it too)."""
        message = self._ctx.store.message(message_id)
        counter = self._ctx.store.sender_counter(message_id)
        if message is None or counter is None:
            return server_ts
        placed, reordered = self._timeline.in_sender_order(message, counter, server_ts)
        for event in reordered:
            self._ctx.emit(event)
        self._timeline.report_reordering(reordered)
        return placed

    async def fan_out_now(self, users: tuple[str, ...], payload: bytes) -> int:
        """Send ``payload`` to every current device of ``users`` now, outside the queue (a sender
        key that must reach its devices before the group message the outbox is sending)."""
        server_ts, _ = await self._fan_out(new_message_id(), users, payload)
        return server_ts

    def set_status(self, message_id: bytes, status: MessageStatus, server_ts: int | None) -> None:
        """Record the relay's timestamp whenever it comes, and move the status only forward: a
        receipt can overtake the relay's answer (after a reconnect), and must not hide it."""
        message = self._ctx.store.message(message_id)
        if message is None:
            return
        if status is MessageStatus.FAILED:
            forward = message.status is MessageStatus.SENDING
        else:
            forward = status.rank > message.status.rank
        new_status = status if forward else message.status
        new_ts = server_ts if server_ts is not None else message.server_ts
        if new_status is message.status and new_ts == message.server_ts:
            return
        self._ctx.store.set_status(message_id, new_status, new_ts)
        self._ctx.emit(DeliveryUpdated(message_id, message.thread, new_status, new_ts))
