"""The outbox without a relay: what sending, reading and a paused contact leave in the store."""

from __future__ import annotations

import pytest

from client.core.events import MessageQueued, MessageStatus, StoredMessage
from client.core.outbox import SendBlocked
from shared.envelope import Receipt, Text, decode_payload
from tests.client.engine import committed_reader, engine
from tests.client.fake_relay import FakeRelay


@pytest.fixture
def alice(tmp_path):
    made = engine(tmp_path, FakeRelay())
    yield made
    made.store.close()


async def test_a_sent_message_is_stored_and_queued_in_one_commit(alice, tmp_path):
    message = await alice.outbox.send_text("bob", "hello")
    reader = committed_reader(tmp_path)  # only what was committed
    try:
        assert reader.message(message.message_id).status is MessageStatus.SENDING
        item = reader.next_outgoing()
        assert item is not None and item.users == ("bob", "alice")
        payload = decode_payload(item.payload)
        assert isinstance(payload, Text) and payload.body == "hello"
        assert payload.origin.counter == 1 and item.message_id == message.message_id
    finally:
        reader.close()
    assert alice.events == [MessageQueued(message)] and alice.context.outbox_wake.is_set()
    assert alice.relay.requests == []  # nothing leaves before the outbox loop runs


async def test_the_sender_counter_follows_the_order_payloads_enter_the_outbox(alice):
    for text in ("one", "two", "three"):
        await alice.outbox.send_text("bob", text)
    counters = []
    while (item := alice.store.next_outgoing()) is not None:
        counters.append(decode_payload(item.payload).origin.counter)
        with alice.store.transaction():
            alice.store.remove_outgoing(item.id)
    assert counters == [1, 2, 3]


async def test_a_contact_whose_key_changed_gets_nothing_until_acknowledged(alice):
    with alice.store.transaction():
        alice.store.save_contact("bob", b"k" * 32, b"list", 1)
        alice.store.set_key_change("bob", b"new list")
    with pytest.raises(SendBlocked):
        await alice.outbox.send_text("bob", "hello")
    assert alice.store.thread_messages("bob") == [] and alice.store.next_outgoing() is None


def test_reading_a_conversation_tells_the_sender_and_this_users_other_devices(alice):
    received = [
        StoredMessage(
            message_id=bytes([i]) * 16,
            thread="bob",
            sender_user="bob",
            sender_device="b" * 16,
            sent_at=i,
            server_ts=i,
            body=f"message {i}",
            status=MessageStatus.RECEIVED,
        )
        for i in range(1, 4)
    ]
    with alice.store.transaction():
        for message in received:
            alice.store.insert_message(message)
    assert alice.outbox.mark_read("bob") == 3
    assert alice.store.unread("bob") == []
    item = alice.store.next_outgoing()
    receipt = decode_payload(item.payload)
    assert isinstance(receipt, Receipt) and receipt.status == "read"
    assert set(receipt.message_ids) == {m.message_id for m in received}
    assert item.users == ("bob", "alice") and not alice.store.in_transaction
    assert alice.outbox.mark_read("bob") == 0  # nothing new to tell
