"""The inbox: envelopes pushed by the relay, decrypted in order, in batches.

Each batch is one transaction the inbox owns (:meth:`ProfileStore.transaction`): the ratchet
steps, used one-time pre-keys, messages, the delivery receipts they call for and the digest of
every envelope processed are committed together, and only then acknowledged, so a crash at any
point loses nothing, and no other loop of the client can commit half a batch. The relay
redelivers what it did not hear acknowledged; a redelivered envelope is recognised by its digest
and dropped before the ratchet sees it (see :mod:`client.core.store_processed`), and its text
message's receipt is sent again.

An Ack goes only over the connection the envelopes came on: the relay's sequence numbers mean
nothing to another connection (a relay restarted without its data numbers new envelopes the
same), so the Ack of a batch whose connection dropped is not sent, and the redelivery is dropped
by digest and acknowledged then.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from client.core.arrival import Outcome, store_arrival, store_undecryptable
from client.core.attachments import received
from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.directory import Directory, UnknownUser
from client.core.events import (
    DeliveryUpdated,
    DisplayNameChanged,
    Event,
    MessageStatus,
)
from client.core.port import Offline, RelayError
from client.core.sessions import SessionBook
from client.core.store_chat import clean_name
from client.core.store_processed import envelope_digest
from client.core.timeline import Timeline
from shared import wire
from shared.attachment import encode_pointer
from shared.device_list import DeviceEntry
from shared.envelope import (
    AttachmentMessage,
    Control,
    DeviceListUpdate,
    Group,
    Payload,
    ProfileName,
    Receipt,
    Text,
    decode_payload,
    decode_sealed,
    encode_payload,
)
from shared.errors import DecryptionError, DuplicateMessage, WireError

log = logging.getLogger("ariadne.client")


class GroupInbox(Protocol):
    """What the inbox hands to the groups concern (client.core.group_send)."""

    def claims(self, data: bytes) -> bool: ...
    async def open_group_message(self, deliver: wire.Delivered) -> list[Event]: ...
    async def open_pairwise(self, deliver: wire.Delivered, body: bytes) -> list[Event]: ...
    def flush_receipts(self) -> bool: ...


INBOX_BATCH = 200


class Inbox:
    def __init__(
        self,
        ctx: ClientContext,
        directory: Directory,
        sessions: SessionBook,
        timeline: Timeline,
        controls: Controls,
    ) -> None:
        self._ctx = ctx
        self._directory = directory
        self._sessions = sessions
        self._timeline = timeline
        self._controls = controls
        # Group messages and group payloads (client.core.group_send), once groups are wired in.
        self.groups: GroupInbox | None = None
        # Envelopes with the connection they came on (see connection_lost).
        self._queue: asyncio.Queue[tuple[int, wire.Delivered]] = asyncio.Queue()
        self._connection = 0

    def put(self, envelopes: list[wire.Delivered]) -> None:
        for envelope in envelopes:
            self._queue.put_nowait((self._connection, envelope))

    def connection_lost(self) -> None:
        """The connection the relay pushed on is gone: what it pushed is not acknowledged on
        another one."""
        self._connection += 1

    @property
    def waiting(self) -> int:
        """Envelopes received from the relay that no batch has taken yet."""
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < INBOX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            done: list[tuple[int, int]] = []  # (connection, seq)
            events: list[Event] = []
            receipts: dict[str, list[bytes]] = {}
            # One transaction for the batch, owned by this loop: ratchets, pre-keys, messages,
            # their receipts and the envelopes' digests are committed together, and only then
            # acknowledged.
            async with self._ctx.store.transaction():
                try:
                    for connection, deliver in batch:
                        with self._timeline.during_delivery(deliver.server_ts):
                            events.extend(await self._process(deliver, receipts))
                        done.append((connection, deliver.seq))
                except Offline:
                    pass  # what is not acknowledged is redelivered after reconnecting
                # Controls that came before their message (in this batch or an earlier one).
                events.extend(self._controls.settle())
                for sender, message_ids in receipts.items():
                    self._ctx.store.enqueue(
                        [sender],
                        encode_payload(
                            Receipt(
                                origin=self._ctx.origin(),
                                status="delivered",
                                message_ids=message_ids,
                            )
                        ),
                        None,
                    )
                self._timeline.report_reordering(events)
                if self.groups is not None and self.groups.flush_receipts():
                    receipts.setdefault(self._ctx.username, [])  # wakes the outbox below
            # Checked here, after the batch's awaits: the connection may have changed meanwhile.
            seqs = [seq for connection, seq in done if connection == self._connection]
            if seqs:
                await self._ctx.port.send(wire.Ack(seqs=seqs))
            if len(seqs) < len(batch):
                log.info("%d envelopes left to be redelivered", len(batch) - len(seqs))
            for event in events:
                self._ctx.emit(event)
            if receipts:
                self._ctx.outbox_wake.set()

    async def _process(
        self, deliver: wire.Delivered, receipts: dict[str, list[bytes]]
    ) -> list[Event]:
        """Open one envelope, unless it was processed before (then it is dropped unopened)."""
        store = self._ctx.store
        digest = envelope_digest(deliver.sender_user, deliver.sender_device, deliver.payload)
        seen = store.processed(digest)
        if seen is not None:
            log.debug("dropped a redelivered envelope %d", deliver.seq)
            if seen.message_id is not None and seen.sender_user != self._ctx.username:
                receipts.setdefault(seen.sender_user, []).append(seen.message_id)
            return []
        carried: list[bytes] = []
        events = await self._open(deliver, receipts, carried)
        store.record_processed(digest, deliver.sender_user, carried[0] if carried else None)
        return events

    async def _open(
        self, deliver: wire.Delivered, receipts: dict[str, list[bytes]], carried: list[bytes]
    ) -> list[Event]:
        try:
            sealed = decode_sealed(deliver.payload)
        except WireError:
            if self.groups is not None and self.groups.claims(deliver.payload):
                return await self.groups.open_group_message(deliver)
            return self._undecryptable(deliver, "malformed envelope")
        peer = await self._sender_entry(deliver.sender_user, deliver.sender_device)
        if peer is None:
            return self._undecryptable(deliver, "sender device is not on its signed device list")
        async with self._sessions.locks[(deliver.sender_user, deliver.sender_device)]:
            try:
                plaintext = await self._sessions.decrypt(deliver.sender_user, peer, sealed)
            except DuplicateMessage:
                log.debug("dropped a duplicate envelope %d", deliver.seq)
                return []
            except DecryptionError as exc:
                return self._undecryptable(deliver, str(exc))
        try:
            payload = decode_payload(plaintext)
        except WireError:
            return self._undecryptable(deliver, "unreadable payload")
        origin = payload.origin
        if (origin.user, origin.device) != (deliver.sender_user, deliver.sender_device):
            return self._undecryptable(
                deliver,
                f"the relay says {deliver.sender_user}'s device {deliver.sender_device} sent"
                f" this, the message says {origin.user}'s device {origin.device}",
            )
        if isinstance(payload, Group):
            if self.groups is None:
                return []
            return await self.groups.open_pairwise(deliver, payload.body)
        return self._apply(deliver, payload, receipts, carried)

    async def _sender_entry(self, username: str, device_id: str) -> DeviceEntry | None:
        known = self._directory.known(username)
        if known is not None and (entry := known.entry(device_id)) is not None:
            return entry
        try:
            fresh = await self._directory.refresh(username)
        except (RelayError, UnknownUser):
            return None
        return fresh.entry(device_id)

    def _apply(
        self,
        deliver: wire.Delivered,
        payload: Payload,
        receipts: dict[str, list[bytes]],
        carried: list[bytes],
    ) -> list[Event]:
        from_self = deliver.sender_user == self._ctx.username
        if isinstance(payload, Text | AttachmentMessage):
            thread = payload.peer if from_self else deliver.sender_user
            if from_self and thread == self._ctx.username:
                return []
            carried.append(payload.message_id)
            arrival = store_arrival(
                self._ctx, self._controls, self._timeline, deliver, thread, payload
            )
            if arrival.outcome is Outcome.STORED and isinstance(payload, AttachmentMessage):
                self._ctx.store.put_attachment(
                    received(payload.message_id, encode_pointer(payload.attachment))
                )
            # A duplicate's sender may have offered it again because our receipt was lost: the
            # receipt goes again (one that expired on the way is owed none).
            if arrival.outcome is not Outcome.EXPIRED and not from_self:
                receipts.setdefault(deliver.sender_user, []).append(payload.message_id)
            return arrival.events
        if isinstance(payload, Control):
            return self._controls.receive(payload, deliver.server_ts)
        if isinstance(payload, ProfileName):
            # Authenticated by the session: only a user can name themselves.
            self._ctx.store.set_shared_name(deliver.sender_user, clean_name(payload.name))
            return [DisplayNameChanged(deliver.sender_user)]
        if isinstance(payload, DeviceListUpdate):
            # Verified like any list (the sender's own, pinned key, version, chain).
            self._directory.accept(deliver.sender_user, payload.signed_list)
            return []
        if isinstance(payload, Receipt) and from_self and payload.status == "read":
            # Read on another of this user's devices: the same messages are read here too.
            synced: list[Event] = []
            for message_id in payload.message_ids:
                stored = self._ctx.store.message(message_id)
                if stored is not None and stored.status is MessageStatus.RECEIVED:
                    self._ctx.store.set_status(message_id, MessageStatus.READ)
                    synced.append(
                        DeliveryUpdated(
                            message_id, stored.thread, MessageStatus.READ, stored.server_ts
                        )
                    )
            return synced
        if isinstance(payload, Receipt) and not from_self:
            status = MessageStatus(payload.status)
            if status is MessageStatus.READ and not self._ctx.state.preferences.read_receipts:
                return []  # read receipts off: others' are not shown either (as Signal)
            events: list[Event] = []
            for message_id in payload.message_ids:
                stored = self._ctx.store.message(message_id)
                if (
                    stored is None
                    or stored.sender_user != self._ctx.username
                    or stored.thread != deliver.sender_user
                ):
                    continue
                self._ctx.store.record_receipt(
                    message_id,
                    deliver.sender_user,
                    deliver.sender_device,
                    payload.status,
                    deliver.server_ts,
                )
                if status.rank <= stored.status.rank:
                    continue
                self._ctx.store.set_status(message_id, status)
                self._ctx.store.confirmed(message_id)  # no need to offer it again
                events.append(DeliveryUpdated(message_id, stored.thread, status, stored.server_ts))
            return events
        return []

    def _undecryptable(self, deliver: wire.Delivered, reason: str) -> list[Event]:
        log.info(
            "could not decrypt envelope %d from %s: %s", deliver.seq, deliver.sender_device, reason
        )
        return store_undecryptable(self._ctx, deliver, deliver.sender_user, reason)
