"""Receipts in groups, per member: each member device answers "delivered" (and later "read") to
the message's author over the pairwise sessions; the author keeps the receipt per member (and per
device, for the message's info), and a message is delivered (read) once every other member has
received (read) it. A "read" also goes to the reader's own devices, whose copies turn read too.
"""

from __future__ import annotations

from collections import defaultdict

from client.core.context import ClientContext
from client.core.events import DeliveryUpdated, Event, MessageStatus
from client.core.groups import Groups
from client.core.outbox import Outbox
from shared import wire
from shared.group import GroupReceipt, group_id_of


class GroupReceipts:
    def __init__(self, ctx: ClientContext, outbox: Outbox, groups: Groups) -> None:
        self._ctx = ctx
        self._outbox = outbox
        self._groups = groups
        self._receipts: dict[tuple[bytes, str], list[bytes]] = defaultdict(list)

    def owe(self, group_id: bytes, sender: str, message_id: bytes) -> None:
        """A message from ``sender`` was stored: its "delivered" leaves with the inbox batch."""
        self._receipts[(group_id, sender)].append(message_id)

    def flush(self) -> bool:
        """Queue the "delivered" receipts an inbox batch calls for (in its transaction)."""
        pending, self._receipts = self._receipts, defaultdict(list)
        for (group_id, sender), message_ids in pending.items():
            receipt = GroupReceipt(group_id=group_id, status="delivered", message_ids=message_ids)
            self._groups.enqueue([sender], receipt)
        return bool(pending)

    def mark_read(self, thread: str, seen: set[bytes] | None = None) -> int:
        """Mark what the user has seen (all, or the messages in ``seen``) read: each message's
        author learns it, and so do this user's other devices."""
        unread = self._ctx.store.unread(thread)
        if seen is not None:
            unread = [message_id for message_id in unread if message_id in seen]
        if not unread:
            return 0
        group_id = group_id_of(thread)
        by_sender: dict[str, list[bytes]] = defaultdict(list)
        with self._ctx.store.transaction():
            for message_id in unread:
                stored = self._ctx.store.message(message_id)
                self._outbox.set_status(message_id, MessageStatus.READ, None)
                if stored is not None and stored.sender_user:
                    by_sender[stored.sender_user].append(message_id)
            for sender, ids in by_sender.items():
                receipt = GroupReceipt(group_id=group_id, status="read", message_ids=ids)
                self._groups.enqueue(sorted({sender, self._ctx.username}), receipt)
        self._ctx.outbox_wake.set()
        return len(unread)

    def of(self, message_id: bytes) -> dict[str, str]:
        """Each member's receipt for one of this user's group messages."""
        return self._ctx.store.group_receipts(message_id)

    def take(self, deliver: wire.Delivered, receipt: GroupReceipt) -> list[Event]:
        """A member's receipt for this user's messages, or this user's own "read" from
        another of its devices."""
        member = deliver.sender_user
        state = self._ctx.store.group(receipt.group_id)
        if state is None:
            return []
        events: list[Event] = []
        for message_id in receipt.message_ids:
            stored = self._ctx.store.message(message_id)
            if stored is None or stored.thread != state.thread:
                continue
            if member == self._ctx.username:
                if receipt.status == "read" and stored.status is MessageStatus.RECEIVED:
                    self._ctx.store.set_status(message_id, MessageStatus.READ)
                    events.append(
                        DeliveryUpdated(
                            message_id, stored.thread, MessageStatus.READ, stored.server_ts
                        )
                    )
                continue
            if stored.sender_user != self._ctx.username or member not in state.members:
                continue
            # Per device, for the message's info (who received and read it, on which device).
            self._ctx.store.record_receipt(
                message_id, member, deliver.sender_device, receipt.status, deliver.server_ts
            )
            if not self._ctx.store.set_group_receipt(message_id, member, receipt.status):
                continue
            got = self._ctx.store.group_receipts(message_id)
            others = set(state.members) - {self._ctx.username}
            status = MessageStatus.SENT
            if others and all(u in got for u in others):
                status = MessageStatus.DELIVERED
                if all(got[u] == "read" for u in others):
                    status = MessageStatus.READ
            if status.rank > stored.status.rank:
                self._ctx.store.set_status(message_id, status)
                if status is not MessageStatus.SENT:
                    self._ctx.store.confirmed(message_id)  # every member has it: not offered again
                events.append(DeliveryUpdated(message_id, stored.thread, status, stored.server_ts))
        return events
