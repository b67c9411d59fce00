"""Group messages on this device: sending one encrypted once under this device's sender key,
opening the others' (``shared.sender_keys``), the sender keys themselves, and receipts per member.

**Sending** (:meth:`GroupMessages.send_item`, called by the outbox in its order). The devices of
the message are the current devices on every member's *verified* device list. Before the message
is encrypted, this device's sender key is checked against them: if any device it was given to is
no longer there (a member removed or gone, or one of a member's devices removed), a new key is
made (rotation) and given only to the devices there now; devices that do not hold the key yet (a
new member, a member's new device once it is on that member's verified list) are given the key at
its current iteration, so they read nothing sent before. The key's new state is committed before
the message leaves, and the relay queues the same bytes for every device (``GroupSend``).

**Receiving.** A group message opens only with the sender key its sender gave this device over a
pairwise session, only from a device on a current member's verified list, and only once (a replay
is dropped). It carries the membership it was sent for: a device behind asks for the changes it
misses; one whose chain differs at that point refuses the message.

Receipts per member are :mod:`client.core.group_receipts`.
"""

from __future__ import annotations

import logging

from client.core.arrival import Outcome, store_arrival, store_undecryptable
from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.departure import compose, store_own
from client.core.directory import Directory, UnknownUser
from client.core.events import (
    Event,
    MessageQueued,
    StoredMessage,
)
from client.core.group_controls import GroupControls
from client.core.group_receipts import GroupReceipts
from client.core.groups import Groups
from client.core.outbox import Outbox, SendError
from client.core.port import RelayError
from client.core.reoffer import GroupFanOut
from client.core.timeline import Timeline
from shared import sender_keys, wire
from shared.envelope import Group, encode_payload
from shared.errors import DecryptionError, DuplicateMessage, WireError
from shared.group import (
    AskChanges,
    Changes,
    GroupControl,
    GroupState,
    GroupText,
    OwnControl,
    SenderKey,
    change_hash,
    decode_message,
    decode_sealed,
    encode_message,
    for_membership,
    group_id_of,
)

log = logging.getLogger("ariadne.client.groups")

SEND_ATTEMPTS = 4
Device = tuple[str, str]  # (user, device id)


class GroupMessages:
    def __init__(
        self,
        ctx: ClientContext,
        directory: Directory,
        outbox: Outbox,
        timeline: Timeline,
        groups: Groups,
        controls: Controls,
    ) -> None:
        self._ctx = ctx
        self._controls = controls
        self.group_controls = GroupControls(ctx, controls)
        self._directory = directory
        self._outbox = outbox
        self._timeline = timeline
        self._groups = groups
        self.receipts = GroupReceipts(ctx, outbox, groups)

    # ------------------------------------------------------------------ sending

    async def send_text(
        self, thread: str, text: str, reply_to: bytes | None = None
    ) -> StoredMessage:
        """Store and queue a group text quoting ``reply_to``; it disappears after the group's
        timer, if one is set."""
        state = self._groups.state(thread)
        if state is None or self._ctx.username not in state.members:
            raise SendError("you are not a member of this group")
        message, expires = compose(self._ctx, thread, text)
        with self._ctx.store.transaction():
            origin = store_own(self._ctx, self._controls, message, expires, reply_to)
            payload = GroupText(
                origin=origin,
                message_id=message.message_id,
                sent_at=message.sent_at,
                body=message.body,
                seq=0,  # set when it leaves: the membership it is encrypted for
                head=bytes(32),
                reply_to=reply_to,
                expires_at=expires,
            )
            self._ctx.store.enqueue([thread], encode_message(payload), message.message_id)
        self._ctx.emit(MessageQueued(message))
        self._ctx.outbox_wake.set()
        return message

    async def send_item(
        self, send_id: bytes, thread: str, plaintext: bytes
    ) -> tuple[int, GroupFanOut]:
        """Encrypt one queued group text or control for the group's current devices and send it;
        returns the relay's time and what it accepted. Called by the outbox loop."""
        group_id = group_id_of(thread)
        for _attempt in range(SEND_ATTEMPTS):
            state = self._ctx.store.group(group_id)
            if state is None or self._ctx.username not in state.members:
                raise SendError("you are no longer a member of this group")
            devices = await self._devices(state)
            await self._give_keys(group_id, devices)
            try:
                sealed_text = for_membership(plaintext, state.seq, state.head)
            except DecryptionError:
                raise SendError("the queued group message is unreadable") from None
            async with self._ctx.store.transaction(rollback=False):
                held = self._ctx.store.own_sender_key(group_id)
                assert held is not None
                sealed, advanced = sender_keys.encrypt(
                    held[0], self._ctx.username, self._ctx.device_id, sealed_text
                )
                self._ctx.store.put_own_sender_key(advanced, held[1])
            recipients = _recipients(devices, self._ctx.username)

            def send(
                rid: int, r: list[wire.GroupRecipient] = recipients, p: bytes = sealed
            ) -> wire.Frame:
                return wire.GroupSend(rid=rid, send_id=send_id, payload=p, recipients=r)

            try:
                answer = await self._ctx.port.request(send, expect=(wire.Accepted, wire.Mismatch))
            except RelayError as exc:
                raise SendError(str(exc)) from None
            if isinstance(answer, wire.Accepted):
                return answer.server_ts, GroupFanOut(sealed, recipients)
            for mismatch in answer.users:
                await self._directory.refresh(mismatch.username)
        raise SendError("the relay's device lists do not match the signed ones")

    async def _devices(self, state: GroupState) -> set[Device]:
        """Every device on the members' verified lists, but this one."""
        devices: set[Device] = set()
        for user in state.members:
            try:
                listed = await self._directory.get(user)
            except UnknownUser:
                continue
            devices |= {(user, d.device_id) for d in listed.devices}
        return devices - {(self._ctx.username, self._ctx.device_id)}

    async def _give_keys(self, group_id: bytes, devices: set[Device]) -> None:
        """Rotate this device's sender key if a device it was given to is gone; give it to the
        devices that do not hold it yet."""
        held = self._ctx.store.own_sender_key(group_id)
        if held is None or held[1] - devices:
            key, given = sender_keys.new_sender_key(group_id), set[Device]()
            log.info("new sender key for a group (%s)", "rotated" if held else "first")
        else:
            key, given = held
        missing = devices - given
        if not missing and held is not None and key is held[0]:
            return
        with self._ctx.store.transaction():
            self._ctx.store.put_own_sender_key(key, given)
        if not missing:
            return
        users = tuple(sorted({user for user, _ in missing}))
        body = encode_message(SenderKey(group_id=group_id, distribution=key.distribution()))
        for start in range(0, len(users), wire.MAX_RECIPIENT_USERS):
            chunk = users[start : start + wire.MAX_RECIPIENT_USERS]
            with self._ctx.store.transaction():
                payload = encode_payload(Group(origin=self._ctx.origin(), body=body))
            await self._outbox.fan_out_now(chunk, payload)
            # The key went to every current device of these users (the verified lists).
            given |= {d for d in devices if d[0] in chunk}
            with self._ctx.store.transaction():
                self._ctx.store.put_own_sender_key(key, given)

    # ------------------------------------------------------------------ receiving

    def claims(self, data: bytes) -> bool:
        try:
            sender_keys.decode_message(data)
        except WireError:
            return False
        return True

    async def open_group_message(self, deliver: wire.Delivered) -> list[Event]:
        message = sender_keys.decode_message(deliver.payload)
        thread = "#" + message.group_id.hex()
        state = self._ctx.store.group(message.group_id)
        if state is None or message.sender_user not in state.members:
            return self._undecryptable(deliver, thread, "the sender is not a member of the group")
        listed = await self._directory.get(message.sender_user)
        if listed.entry(message.sender_device) is None:
            return self._undecryptable(deliver, thread, "the sender device is not on its list")
        key = self._ctx.store.peer_sender_key(
            message.group_id, message.sender_user, message.sender_device, message.key_id
        )
        if key is None:
            return self._undecryptable(deliver, thread, "no sender key for this message")
        try:
            plaintext, advanced = sender_keys.decrypt(key, message)
            text = decode_sealed(plaintext)
        except DuplicateMessage:
            return []
        except DecryptionError as exc:
            return self._undecryptable(deliver, thread, str(exc))
        self._ctx.store.put_peer_sender_key(advanced)
        if (text.origin.user, text.origin.device) != (deliver.sender_user, deliver.sender_device):
            return self._undecryptable(deliver, thread, "the message names another sender")
        events: list[Event] = []
        if text.seq > state.seq:
            events += self._groups.ask_missing(message.group_id, state, deliver.sender_user)
        elif (held := self._ctx.store.group_change(message.group_id, text.seq)) is None or (
            change_hash(held) != text.head
        ):
            return self._undecryptable(
                deliver, thread, "sent for a membership this device does not hold"
            )
        if isinstance(text, GroupControl):
            return events + self.group_controls.take_sealed(thread, text, deliver.server_ts)
        return events + self._store_text(deliver, thread, message.group_id, text)

    def _store_text(
        self, deliver: wire.Delivered, thread: str, group_id: bytes, text: GroupText
    ) -> list[Event]:
        arrival = store_arrival(self._ctx, self._controls, self._timeline, deliver, thread, text)
        if arrival.outcome is Outcome.STORED and deliver.sender_user != self._ctx.username:
            self.receipts.owe(group_id, deliver.sender_user, text.message_id)
        return arrival.events

    async def open_pairwise(self, deliver: wire.Delivered, body: bytes) -> list[Event]:
        """A group's pairwise message (its session authenticated the sender)."""
        try:
            message = decode_message(body)
        except DecryptionError:
            return []
        if isinstance(message, Changes):
            return await self._groups.take_changes(deliver.sender_user, message, deliver.server_ts)
        if isinstance(message, OwnControl):
            return self.group_controls.take_own(
                deliver.sender_user, deliver.sender_device, message, deliver.server_ts
            )
        if isinstance(message, AskChanges):
            self._groups.answer_ask(deliver.sender_user, message)
            return []
        if isinstance(message, SenderKey):
            distribution = message.distribution
            # A key id already held is not replaced: its chain here only moves forward (given
            # again at an older iteration, spent iterations would open again).
            if (
                self._ctx.store.peer_sender_key(
                    distribution.group_id,
                    deliver.sender_user,
                    deliver.sender_device,
                    distribution.key_id,
                )
                is None
            ):
                self._ctx.store.put_peer_sender_key(
                    sender_keys.accept_distribution(
                        distribution, deliver.sender_user, deliver.sender_device
                    )
                )
            return []
        return self.receipts.take(deliver, message)

    # ------------------------------------------------------------------ receipts

    def flush_receipts(self) -> bool:
        return self.receipts.flush()

    def mark_read(self, thread: str, seen: set[bytes] | None = None) -> int:
        return self.receipts.mark_read(thread, seen)

    def _undecryptable(self, deliver: wire.Delivered, thread: str, reason: str) -> list[Event]:
        log.info("could not open group message %d: %s", deliver.seq, reason)
        return store_undecryptable(self._ctx, deliver, thread, reason)


def _recipients(devices: set[Device], own_user: str) -> list[wire.GroupRecipient]:
    """By user; this user always (with its other devices, perhaps none)."""
    by_user: dict[str, list[str]] = {own_user: []}
    for user, device in sorted(devices):
        by_user.setdefault(user, []).append(device)
    return [wire.GroupRecipient(username=u, device_ids=d) for u, d in by_user.items()]
