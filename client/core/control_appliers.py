"""What each kind of control does to this device's copy of a conversation (PROTOCOL.md §10): an
unsend empties its message and leaves a tombstone (or, restored from the mailbox for a message
never seen, a placeholder), a deletion removes messages or a whole conversation, a timer setting
changes the conversation's timer and adds its line, an edit adds a version and a reaction
replaces the sender's one. Each checks first that its sender may make it (``shared.controls``),
and one for a message not stored yet waits for it.

A part of :class:`client.core.controls.Controls`, which applies every control once, on the
sending device and on every receiving one, through :meth:`ControlAppliers._act`.
"""

from __future__ import annotations

import logging

from client.core.context import ClientContext
from client.core.events import (
    Event,
    MessageReceived,
    MessagesChanged,
    MessagesRemoved,
    MessageStatus,
    StoredMessage,
    TimerChanged,
)
from shared.controls import (
    EDIT_WINDOW_MS,
    ClearConversation,
    ControlRecord,
    DeleteForMe,
    Edit,
    React,
    SetTimer,
    Unsend,
    encode_record,
    is_emoji,
    may_change,
    newer,
    timer_line,
    within_step,
)
from shared.envelope import MAX_CAPTION, MAX_TEXT

log = logging.getLogger("ariadne.client.controls")


class ControlAppliers:
    """Mixed into :class:`~client.core.controls.Controls`, which sets the context."""

    _ctx: ClientContext

    def _act(
        self, record: ControlRecord, ts: int, from_mailbox: bool = False
    ) -> list[Event] | None:
        """What the control does here; None if it did nothing (dropped, or waiting)."""
        action, store, thread = record.action, self._ctx.store, record.thread
        own = self._ctx.username
        if isinstance(action, SetTimer):
            return self._timer(record, action, ts)
        if isinstance(action, (DeleteForMe, ClearConversation)):
            if not may_change(action, record.sender_user, None, own):
                log.info("dropped a deletion that is not from this account")
                return None
            if isinstance(action, ClearConversation):
                removed = store.clear_thread(thread, action.through_ts)
                store.delete_later(thread, record.control_id, action.through_ts)
                return [MessagesRemoved(thread, tuple(removed))]
            return self._delete(thread, action.targets)
        target = action.target
        message = store.message(target)
        if message is None:
            store.keep_pending(record.control_id, target, encode_record(record))
            if isinstance(action, Unsend) and from_mailbox:
                return self._placeholder(record, target, ts)
            return None
        if (
            message.thread != thread
            or message.system
            or message.undecryptable
            or not may_change(action, record.sender_user, message.sender_user, own)
        ):
            log.info("dropped a %s its sender may not make", type(action).__name__)
            return None
        if message.status is MessageStatus.UNSENT:
            return None  # unsent: nothing more happens to it
        if isinstance(action, Unsend):
            store.empty_message(target)
            store.tombstone(target, thread, "unsent")
            store.delete_later(thread, target)
            return [MessagesChanged(thread, (target,))]
        if isinstance(action, Edit):
            return self._edit(record, action, message)
        return self._react(record, action)

    def _placeholder(self, record: ControlRecord, target: bytes, ts: int) -> list[Event]:
        """An unsend from this account's mailbox (a device of the account applied it, so it was
        its sender's) for a message this restored device will never see, its sealed copies
        deleted: "… unsent a message" in its place, as on the other devices."""
        placeholder = StoredMessage(
            message_id=target,
            thread=record.thread,
            sender_user=record.sender_user,
            sender_device=record.sender_device,
            sent_at=record.sent_at,
            server_ts=ts or None,
            body="",
            status=MessageStatus.UNSENT,
        )
        store = self._ctx.store
        store.tombstone(target, record.thread, "unsent")
        store.delete_later(record.thread, target)
        if store.insert_message(placeholder):
            return [MessageReceived(placeholder)]
        return []

    def _delete(self, thread: str, targets: list[bytes]) -> list[Event]:
        store = self._ctx.store
        gone = []
        for target in targets:
            message = store.message(target)
            if message is not None and message.thread != thread:
                continue
            store.tombstone(target, thread, "deleted")
            store.delete_later(thread, target)
            gone.append(target)
        store.delete_messages(gone)
        return [MessagesRemoved(thread, tuple(gone))]

    def _timer(self, record: ControlRecord, action: SetTimer, ts: int) -> list[Event] | None:
        store, thread = self._ctx.store, record.thread
        events: list[Event] = []
        key = (action.seq, record.sender_user, record.sender_device)
        current = store.timer(thread)
        if not within_step(action.seq, current.key[0] if current else None):
            log.info("dropped a timer setting whose sequence jumps too far")
            return None
        if newer(key, current.key if current else None):
            store.set_timer(thread, action.seconds, key)
            events.append(TimerChanged(thread, action.seconds))
        line = StoredMessage(
            message_id=record.control_id,
            thread=thread,
            sender_user=record.sender_user,
            sender_device=record.sender_device,
            sent_at=record.sent_at,
            server_ts=ts or record.sent_at * 1000,
            body=timer_line(record.sender_user, action.seconds),
            status=MessageStatus.SYSTEM,
        )
        if store.insert_message(line):
            events.append(MessageReceived(line))
        return events

    def _edit(
        self, record: ControlRecord, action: Edit, message: StoredMessage
    ) -> list[Event] | None:
        if record.sent_at - message.sent_at > EDIT_WINDOW_MS:
            log.info("dropped an edit made after the edit window")
            return None
        if len(action.body) > self._longest(message.message_id):
            log.info("dropped an edit longer than its message may be")
            return None
        store = self._ctx.store
        if not store.edits(message.message_id):
            store.add_edit(
                message.message_id, 1, message.sender_device, message.body, message.sent_at
            )
        store.add_edit(
            message.message_id, action.version, record.sender_device, action.body, record.sent_at
        )
        newest = store.edits(message.message_id)[-1]
        store.set_body(message.message_id, newest[2])
        return [MessagesChanged(message.thread, (message.message_id,))]

    def _react(self, record: ControlRecord, action: React) -> list[Event] | None:
        if not is_emoji(action.emoji):
            log.info("dropped a reaction that is not an emoji")
            return None
        store = self._ctx.store
        current = store.reaction(action.target, record.sender_user)
        key = (action.seq, record.sender_user, record.sender_device)
        if current is not None and not newer(key, (current[1], record.sender_user, current[2])):
            return None
        store.set_reaction(
            action.target, record.sender_user, action.emoji, action.seq, record.sender_device
        )
        return [MessagesChanged(record.thread, (action.target,))]

    def _longest(self, message_id: bytes) -> int:
        """An edit changes the text only: for an attachment, its caption (the file stays)."""
        return MAX_CAPTION if self._ctx.store.attachment(message_id) is not None else MAX_TEXT
