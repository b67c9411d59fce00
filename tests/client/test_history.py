"""History against the fake relay: what the save loop makes of the relay's refusals, and what
restoring and loading refuse or report."""

from __future__ import annotations

import asyncio

import pytest

from client.core.events import EpochChainRefused, MessageStatus, RelayLimitReached, StoredMessage
from client.core.history import MAILBOX_FULL_TEXT
from client.core.storage import MailboxCursor
from shared import wire
from shared.envelope import new_message_id
from tests.client.account_engine import account_engine
from tests.client.fake_relay import FakeRelay
from tests.conftest import eventually


@pytest.fixture
async def alice(tmp_path):
    relay = FakeRelay()
    relay.answer(wire.PublishDeviceList, wire.Ok(rid=0))
    made = account_engine(tmp_path, relay, first_device=True)
    await made.devices.publish_first_device_list()
    loop = asyncio.create_task(made.history.run())
    yield made
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    made.store.close()


def keep_one(alice) -> StoredMessage:
    message = StoredMessage(
        message_id=new_message_id(),
        thread="bob",
        sender_user="alice",
        sender_device=alice.context.device_id,
        sent_at=1,
        server_ts=1_000,
        body="hello",
        status=MessageStatus.SENT,
    )
    with alice.store.transaction():
        alice.store.insert_message(message)
        alice.store.save_later([message.message_id])
    alice.context.mailbox_wake.set()
    return message


async def test_saved_items_are_unmarked_once_the_relay_took_them(alice):
    alice.relay.answer(wire.SaveMessages, wire.Ok(rid=0))
    message = keep_one(alice)
    await eventually(lambda: alice.store.unsaved_count() == 0)
    (saved,) = alice.relay.requested(wire.SaveMessages)
    assert [i.message_id for i in saved.items] == [message.message_id]
    assert saved.items[0].epoch == alice.epochs.latest_seq() == 1


async def test_a_full_mailbox_is_said_and_the_items_stay_marked(alice):
    alice.relay.answer(wire.SaveMessages, wire.Error(rid=0, code=wire.ErrorCode.MAILBOX_FULL))
    keep_one(alice)
    await eventually(lambda: RelayLimitReached("mailbox_full", MAILBOX_FULL_TEXT) in alice.events)
    assert alice.store.unsaved_count() == 1


async def test_a_stale_epoch_with_no_newer_one_shown_is_refused_not_retried(alice):
    alice.relay.answer(wire.SaveMessages, wire.Error(rid=0, code=wire.ErrorCode.STALE_EPOCH))
    alice.relay.answer(wire.FetchEpochs, wire.Epochs(rid=0, epochs=[]))
    keep_one(alice)
    await eventually(lambda: any(isinstance(e, EpochChainRefused) for e in alice.events))
    assert alice.relay.requested(wire.FetchEpochs)  # it looked for the newer epoch first
    assert len(alice.relay.requested(wire.SaveMessages)) == 1
    assert alice.store.unsaved_count() == 1


async def test_a_member_cannot_restore(alice):
    with pytest.raises(PermissionError):
        await alice.history.restore(code="anything")
    assert alice.relay.requested(wire.FetchEpochs) == []


async def test_restore_wants_a_code_or_a_pin_not_both(tmp_path):
    made = account_engine(tmp_path, FakeRelay(), first_device=False)
    try:
        for code, pin in ((None, None), ("code", "1234")):
            with pytest.raises(ValueError):
                await made.history.restore(code=code, pin=pin)
        assert made.relay.requests == []
    finally:
        made.store.close()


async def test_progress_sums_every_conversation(alice):
    with alice.store.transaction():
        alice.store.set_mailbox_cursor(MailboxCursor("bob", b"b" * 32, 300, 100, None, False))
        alice.store.set_mailbox_cursor(MailboxCursor("carol", b"c" * 32, 50, 50, None, True))
    assert alice.history.progress() == (150, 350)
    assert alice.history.has_history_to_load() and alice.history.has_older("bob")
    assert not alice.history.has_older("carol")
