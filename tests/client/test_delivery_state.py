"""Delivery state of one's own messages, against a real relay."""

from __future__ import annotations

from client.core.events import MessageStatus
from tests.conftest import eventually


async def test_receipt_overtaking_the_relays_answer_keeps_the_relay_timestamp(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    message = await alice.send_text("bob", "hello")
    await eventually(
        lambda: alice._store.message(message.message_id).status is MessageStatus.DELIVERED
    )
    stored = alice._store.message(message.message_id)
    # As after a reconnect: the receipt was applied first, then the resend's answer arrives.
    alice._store.set_status(message.message_id, MessageStatus.DELIVERED, None)
    alice._store._db.execute(
        "UPDATE messages SET server_ts = NULL WHERE message_id = ?", (message.message_id,)
    )
    alice.outbox.set_status(message.message_id, MessageStatus.SENT, stored.server_ts)
    again = alice._store.message(message.message_id)
    assert again.status is MessageStatus.DELIVERED
    assert again.server_ts == stored.server_ts
    assert alice.messages("bob")[0].server_ts == bob.messages("alice")[0].server_ts
