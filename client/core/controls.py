"""Controls on this device: unsend, delete for me, delete a conversation, the disappearing-messages
timer, edits and reactions (PROTOCOL.md §10).

Each is an ordinary encrypted payload (``shared.envelope.Control``) that leaves through the
outbox like a message: to every device of both users, or to this account's other devices alone
for a deletion. The sending device applies it at once with the same code every receiving device
runs (:meth:`Controls.apply`), so all of them end in the same state:

- the sender is the authenticated ``Origin`` inside the ciphertext, never the relay's label;
  ``shared.controls.may_change`` says who may do what, the conversation is derived from the
  sender, so a contact can only ever touch its own conversation with us;
- every control is applied once (``control_log``); one for a message not stored yet waits in
  ``pending_controls`` and is applied when the message arrives, in the same batch or a later one,
  from the relay or from the mailbox (:meth:`Controls.settle`);
- tombstones win (``store_controls``' triggers): a message unsent, deleted or expired is never
  stored again; an edit or reaction for it is dropped; edits carry versions, reactions and timer
  settings sequences, so a replayed or reordered control changes nothing.

What each kind of control does, once it is known to apply, is :mod:`client.core.control_appliers`.

Every control this device applies is also saved to its account's mailbox (``client/core/
expiry.py``), so a device restored later applies it too.
"""

from __future__ import annotations

import asyncio
import logging

from client.core import group_controls
from client.core.context import ClientContext
from client.core.control_appliers import ControlAppliers
from client.core.control_reading import ControlReading
from client.core.events import (
    Event,
    MessageStatus,
    StoredMessage,
)
from client.core.store_controls import HELD, SAVED, TO_SAVE
from shared.controls import (
    EDIT_WINDOW_MS,
    TIMER_CHOICES,
    Action,
    ClearConversation,
    ControlRecord,
    DeleteForMe,
    Edit,
    React,
    SetTimer,
    Unsend,
    decode_record,
    encode_record,
    is_emoji,
)
from shared.envelope import Control, encode_payload, new_message_id
from shared.errors import ProtocolError
from shared.group import is_group_thread
from shared.mailbox import SavedMessage

log = logging.getLogger("ariadne.client.controls")


class ControlRefused(ValueError):
    """The user asked for something the rules do not allow (not their message, too late)."""


class Controls(ControlReading, ControlAppliers):
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        # Wakes the control loop (client/core/control_sync.py): it saves controls to the mailbox
        # and deletes sealed copies there.
        self.wake = asyncio.Event()

    # ------------------------------------------------------------------ what the user does

    def unsend(self, message_id: bytes) -> None:
        message = self._own_message(message_id)
        self._send(message.thread, Unsend(target=message_id), [message.thread])

    def delete_for_me(self, message_ids: list[bytes]) -> None:
        if not message_ids:
            return
        first = self._ctx.store.message(message_ids[0])
        if first is None:
            raise ControlRefused("no such message")
        self._send(first.thread, DeleteForMe(targets=message_ids), [])

    def delete_conversation(self, thread: str) -> None:
        through = self._ctx.clock.now_ms() * 1000
        last = self._ctx.store.last_message(thread)
        if last is not None and last.server_ts is not None:
            through = max(through, last.server_ts)
        self._send(thread, ClearConversation(through_ts=through), [])

    def set_timer(self, thread: str, seconds: int) -> None:
        if seconds not in TIMER_CHOICES:
            raise ControlRefused(f"the timer is one of {TIMER_CHOICES} seconds")
        current = self._ctx.store.timer(thread)
        seq = current.key[0] + 1 if current else 1
        self._send(thread, SetTimer(seconds=seconds, seq=seq), [thread])  # type: ignore[arg-type]

    def edit(self, message_id: bytes, body: str) -> None:
        message = self._own_message(message_id)
        limit = self._longest(message_id)
        if not body.strip() or len(body) > limit:
            raise ControlRefused(f"a message has 1 to {limit} characters")
        if self._ctx.clock.now_ms() - message.sent_at > EDIT_WINDOW_MS:
            raise ControlRefused("a message can be edited for 15 minutes after it was sent")
        versions = self._ctx.store.edits(message_id)
        version = versions[-1][0] + 1 if versions else 2
        self._send(
            message.thread, Edit(target=message_id, version=version, body=body), [message.thread]
        )

    def react(self, message_id: bytes, emoji: str) -> None:
        """Set this user's one reaction to a message; ``""`` removes it."""
        message = self._ctx.store.message(message_id)
        if message is None or message.system or message.status is MessageStatus.UNSENT:
            raise ControlRefused("this message takes no reactions")
        if not is_emoji(emoji):
            raise ControlRefused("a reaction is an emoji")
        mine = self._ctx.store.reaction(message_id, self._ctx.username)
        seq = mine[1] + 1 if mine else 1
        self._send(message.thread, React(target=message_id, emoji=emoji, seq=seq), [message.thread])

    def _own_message(self, message_id: bytes) -> StoredMessage:
        message = self._ctx.store.message(message_id)
        if message is None or message.sender_user != self._ctx.username or message.system:
            raise ControlRefused("only your own messages can be unsent or edited")
        if message.status is MessageStatus.UNSENT:
            raise ControlRefused("this message was unsent")
        return message

    def _send(self, thread: str, action: Action, peers: list[str]) -> None:
        """Apply ``action`` here and queue it for ``peers`` and this account's other devices, in
        one transaction: it leaves in this device's order, after every message it refers to."""
        ctx = self._ctx
        changed = [p for p in peers if ctx.store.key_change(p) is not None]
        if changed:  # as for a message: nothing leaves until the user acknowledges it
            raise ControlRefused(f"{changed[0]}'s safety number changed: acknowledge it first")
        sent_at = ctx.clock.now_ms()
        with ctx.store.transaction():
            origin = ctx.origin()
            payload = Control(
                origin=origin,
                control_id=new_message_id(sent_at),
                peer=thread,
                sent_at=sent_at,
                action=action,
            )
            if is_group_thread(thread):
                group_controls.enqueue(ctx, thread, payload.control_id, sent_at, action)
            else:
                ctx.store.enqueue([*peers, ctx.username], encode_payload(payload), None)
            record = ControlRecord(
                control_id=payload.control_id,
                thread=thread,
                sender_user=ctx.username,
                sender_device=ctx.device_id,
                sent_at=sent_at,
                action=action,
            )
            events = self.apply(record, sent_at * 1000)
        for event in events:
            ctx.emit(event)
        ctx.outbox_wake.set()
        self.wake.set()

    # ------------------------------------------------------------------ applying

    def receive(self, payload: Control, server_ts: int) -> list[Event]:
        """A control from the relay, its ``origin`` already checked against the envelope. Runs
        inside the inbox's batch transaction."""
        origin = payload.origin
        from_self = origin.user == self._ctx.username
        thread = payload.peer if from_self else origin.user
        if from_self and thread == self._ctx.username:
            return []
        record = ControlRecord(
            control_id=payload.control_id,
            thread=thread,
            sender_user=origin.user,
            sender_device=origin.device,
            sent_at=payload.sent_at,
            action=payload.action,
        )
        return self.apply(record, server_ts)

    def apply(self, record: ControlRecord, ts: int, saved: bool = False) -> list[Event]:
        """Apply a control once (a replay changes nothing). One that took effect is saved to the
        mailbox later, unless it came from there (``saved``); one that was dropped or waits for
        its message is not (a restored device must not act on what no device acted on)."""
        store = self._ctx.store
        if not store.log_control(record.control_id, record.thread, ts, encode_record(record)):
            return []
        events = self._act(record, ts, from_mailbox=saved)
        if saved:
            store.mark_control(record.control_id, SAVED)
        elif events is not None:
            store.mark_control(record.control_id, TO_SAVE)
            self.wake.set()
        if isinstance(record.action, (Edit, React)):
            # Last: for a message already gone, the record is emptied and never saved.
            store.name_target(record.action.target, record.control_id, record.thread)
            self.wake.set()
        return events or []

    def settle(self) -> list[Event]:
        """Apply the waiting controls whose message has now been stored."""
        events: list[Event] = []
        for control_id, data in self._ctx.store.pending_ready():
            self._ctx.store.drop_pending(control_id)
            record = decode_record(data)
            applied = self._act(record, 0)
            if applied is not None:
                if self._ctx.store.control_state(control_id) == HELD:
                    self._ctx.store.mark_control(control_id, TO_SAVE)
                    self.wake.set()
                events.extend(applied)
        return events

    # ------------------------------------------------------------------ storing a message

    def admit(self, message: StoredMessage, expires_at: int | None) -> bool:
        """Whether a message may be stored: one that has already expired is not (and its
        sealed copy, if any, is deleted from the mailbox)."""
        if expires_at is None or expires_at > self._ctx.clock.now_ms():
            return True
        self._ctx.store.tombstone(message.message_id, message.thread, "expired")
        self._ctx.store.delete_later(message.thread, message.message_id)
        self.wake.set()
        return False

    def stored(
        self, message: StoredMessage, expires_at: int | None, reply_to: bytes | None
    ) -> None:
        if expires_at is not None:
            self._ctx.store.set_expiry(message.message_id, message.thread, expires_at)
            self.wake.set()
        if reply_to is not None:
            self._ctx.store.set_reply(message.message_id, reply_to)

    def mailbox_page(
        self, opened: list[tuple[StoredMessage, SavedMessage | None]]
    ) -> list[StoredMessage]:
        """From a mailbox page, the messages to store (controls and expired messages left out)."""
        keep = []
        for message, saved in opened:
            if saved is not None and saved.control:
                continue
            if saved is not None and not self.admit(message, saved.expires_at):
                continue
            keep.append(message)
        return keep

    def mailbox_page_stored(
        self, opened: list[tuple[StoredMessage, SavedMessage | None]]
    ) -> list[Event]:
        """After the page's messages are stored: their expiries and quotes, then its controls,
        then the controls that were waiting for these messages."""
        events: list[Event] = []
        for message, saved in opened:
            if saved is None:
                continue
            if saved.control:
                try:
                    record = decode_record(saved.control)
                except ProtocolError:
                    log.info("a saved control did not decode")
                    continue
                events.extend(self.apply(record, saved.server_ts, saved=True))
            elif (
                saved.expires_at is not None or saved.reply_to is not None
            ) and self._ctx.store.message(message.message_id) is not None:
                # (Only a message with something to record is looked up: a restore stores
                # thousands of plain ones per page.)
                self.stored(message, saved.expires_at, saved.reply_to)
        events.extend(self.settle())
        return events
