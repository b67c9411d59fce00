"""Storing a message this device writes, one-to-one or in a group: the steps both paths share.

The text is checked (1 to ``MAX_TEXT`` characters); the message gets its id and this device's
relay-corrected time, and the conversation's timer decides when it disappears. Then, in the
caller's transaction (together with its outbox entry, so a crash keeps both or neither), it is
stored with its expiry and quote — which wakes the expiry loop, so it disappears on time here
too — and its place in this device's sending order is recorded.

What differs stays with the caller: who may send to the conversation, the payload, and whom it is
queued for."""

from __future__ import annotations

from client.core.context import ClientContext
from client.core.controls import Controls
from client.core.events import MessageStatus, StoredMessage
from shared.controls import expires_at
from shared.envelope import MAX_TEXT, Origin, new_message_id


def compose(ctx: ClientContext, thread: str, text: str) -> tuple[StoredMessage, int | None]:
    """A new message of ``thread`` from this device, not stored yet, and when it expires (None:
    the conversation has no timer). Raises ValueError for an empty or too long text."""
    if not text.strip() or len(text) > MAX_TEXT:
        raise ValueError(f"a message has 1 to {MAX_TEXT} characters")
    sent_at = ctx.clock.now_ms()
    timer = ctx.store.timer(thread)
    message = StoredMessage(
        message_id=new_message_id(),
        thread=thread,
        sender_user=ctx.username,
        sender_device=ctx.device_id,
        sent_at=sent_at,
        server_ts=None,
        body=text,
        status=MessageStatus.SENDING,
    )
    return message, expires_at(sent_at, timer.seconds) if timer else None


def store_own(
    ctx: ClientContext,
    controls: Controls,
    message: StoredMessage,
    expires: int | None,
    reply_to: bytes | None,
) -> Origin:
    """Store ``message`` in the caller's open transaction; returns its origin (this device and
    the next counter of its sending order) for the payload the caller queues with it."""
    origin = ctx.origin()
    ctx.store.insert_message(message)
    controls.stored(message, expires, reply_to)
    ctx.store.record_sender_order(
        message.message_id, message.thread, origin.user, origin.device, origin.counter
    )
    return origin
