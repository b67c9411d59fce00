"""Control handlers against a real store, without websockets: deleting mailbox items (members
only, one's own account only, the thread counts and the bytes held follow) and the relay's
clock; on SQLite and PostgreSQL (where a trigger of its own keeps the counts)."""

from __future__ import annotations

import os
import time

import pytest

from shared import wire

pytestmark = pytest.mark.backends()


def _item(ts: int, thread: bytes = b"t" * 16, size: int = 40) -> wire.MailboxItem:
    return wire.MailboxItem(
        thread_id=thread, message_id=os.urandom(16), ts=ts, epoch=1, sealed=os.urandom(size)
    )


async def test_a_member_deletes_its_own_accounts_items_and_counts_follow(kit):
    alice = await kit.create("alice")
    bob = await kit.create("bob")
    items = [_item(ts) for ts in (10, 20, 30, 40)]
    other = _item(50, thread=b"u" * 16)
    await kit.call(alice, wire.SaveMessages(rid=1, items=[*items, other]))
    await kit.call(bob, wire.SaveMessages(rid=1, items=[items[0]]))  # the same id, bob's copy
    before = kit.store.mailbox_bytes("alice")

    delete = wire.DeleteMailboxItems(
        rid=2, thread_id=b"t" * 16, message_ids=[items[0].message_id, os.urandom(16)]
    )
    assert isinstance(await kit.call(alice, delete), wire.Ok)
    page = await kit.call(alice, wire.FetchMailbox(rid=3, thread_id=b"t" * 16))
    assert [i.ts for i in page.items] == [40, 30, 20]
    assert kit.store.mailbox_bytes("alice") == before - 40
    # Bob's copy is bob's: only bob deletes it.
    assert len((await kit.call(bob, wire.FetchMailbox(rid=4, thread_id=b"t" * 16))).items) == 1

    through = wire.DeleteMailboxItems(rid=5, thread_id=b"t" * 16, message_ids=[], through_ts=40)
    assert isinstance(await kit.call(alice, through), wire.Ok)
    threads = (await kit.call(alice, wire.ListMailboxThreads(rid=6))).threads
    assert [(t.thread_id, t.count) for t in threads] == [(b"u" * 16, 1)]
    assert kit.store.mailbox_bytes("alice") == 40


async def test_a_pending_device_deletes_nothing(kit):
    alice = await kit.create("alice")
    item = _item(10)
    await kit.call(alice, wire.SaveMessages(rid=1, items=[item]))
    laptop = await kit.pending("alice")
    delete = wire.DeleteMailboxItems(rid=2, thread_id=b"t" * 16, message_ids=[item.message_id])
    assert await kit.refused(laptop, delete) == "pending_device"
    everything = wire.DeleteMailboxItems(rid=3, thread_id=b"t" * 16, message_ids=[], through_ts=99)
    assert await kit.refused(laptop, everything) == "pending_device"
    page = await kit.call(alice, wire.FetchMailbox(rid=4, thread_id=b"t" * 16))
    assert [i.message_id for i in page.items] == [item.message_id]


async def test_the_relay_tells_its_time(kit):
    alice = await kit.create("alice")
    before = time.time_ns() // 1000
    answer = await kit.call(alice, wire.FetchTime(rid=1))
    assert isinstance(answer, wire.RelayTime)
    assert before <= answer.now_us <= time.time_ns() // 1000
