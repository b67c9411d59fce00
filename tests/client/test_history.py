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
from shared.mailbox import SavedMessage
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


async def test_a_page_stored_after_another_load_reached_the_end_leaves_the_history_ended(alice):
    """The user's scroll asks for a page; before it comes, the backfill reaches the end of the
    conversation. The page, when stored, must neither count again what the backfill stored nor
    make the history look unfinished."""
    mailbox = alice.history._mailbox
    tid = mailbox.thread_id("bob")
    seq = alice.epochs.latest_seq()
    box = mailbox.box(seq, tid)
    items = []
    for i in range(50):
        message_id = new_message_id(now_ms=1_000 + i)
        saved = SavedMessage("bob", "bob", "0" * 16, 1_000 + i, 1_000_000 + i, f"old {i}")
        items.append(
            wire.MailboxItem(tid, message_id, 1_000_000 + i, seq, box.seal(message_id, saved))
        )
    items.reverse()  # newest first, as the relay pages
    newest_loaded = (2_000_000, new_message_id(now_ms=2_000))
    with alice.store.transaction():
        alice.store.set_mailbox_cursor(MailboxCursor("bob", tid, 300, 100, newest_loaded, False))

    def page_while_the_backfill_ends(frame: wire.Frame) -> wire.Frame:
        with alice.store.transaction():  # the backfill's last write, meanwhile
            alice.store.set_mailbox_cursor(
                MailboxCursor("bob", tid, 300, 300, (1, bytes(16)), True)
            )
        return wire.MailboxPage(rid=0, items=items)

    alice.relay.answer(wire.FetchMailbox, page_while_the_backfill_ends)
    await alice.history.load_older("bob", limit=50)
    cursor = alice.store.mailbox_cursor("bob")
    assert cursor.done and cursor.loaded == 300 and cursor.oldest == (1, bytes(16))
    assert alice.history.progress() == (300, 300)
    assert not alice.history.has_history_to_load()
