"""Mailbox items sealed under one key per epoch and thread (version 2) against a hostile relay,
items sealed before (version 1) restored alongside them, and a backfill that stores several
pages per transaction stopped and started again. Real relay, real profiles."""

from __future__ import annotations

import asyncio
import os

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.core.events import HistoryLoaded
from shared.boxes import expand
from shared.mailbox import ITEM_V2, SavedMessage, _ad_v1
from shared.padding import pad
from tests.conftest import eventually, history, seed_history

pytestmark = pytest.mark.backends()


async def restored(accounts, count: int):  # type: ignore[no-untyped-def]
    """Alice with ``count`` messages from Bob in her mailbox, and a new device of hers that has
    restored with her recovery code (the newest page of 100)."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    seed_history(alice, "bob", bob.device_id, count, 1_700_000_000_000_000)
    await alice.wait_saved(timeout=120)
    device = await accounts.pending("alice")
    await device.restore(code=code)
    return alice, device


@pytest.mark.backends("sqlite")  # edits the relay's SQLite file
async def test_restore_opens_old_items_and_refuses_swapped_or_downgraded_ones(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    for i in range(4):
        await bob.send_text("alice", f"new {i}")
    await eventually(
        lambda: len(history(alice, "bob")) == 4 and all(m.server_ts for m in alice.messages("bob"))
    )
    await alice.wait_saved()
    db = relay.relay.store._db
    tid = alice.mailbox.thread_id("bob")
    rows = db.execute(
        "SELECT message_id, sealed, epoch, ts FROM mailbox WHERE username = 'alice'"
        " AND thread_id = ? ORDER BY ts",
        (tid,),
    ).fetchall()
    assert len(rows) == 4 and all(sealed[:1] == ITEM_V2 for _, sealed, _, _ in rows)
    # Two items of the same thread, under the same key, trade places; a third loses its version
    # byte, as if it were an old item.
    (one, one_sealed, epoch, _), (two, two_sealed, _, _), (stripped, stripped_sealed, _, _) = rows[
        :3
    ]
    for message_id, sealed in (
        (one, two_sealed),
        (two, one_sealed),
        (stripped, stripped_sealed[1:]),
    ):
        db.execute("UPDATE mailbox SET sealed = ? WHERE message_id = ?", (sealed, message_id))
    # Two items sealed the way devices did before version 2 (a key per message), older.
    key = alice.epochs.mailbox_key(epoch)
    old_ids = [os.urandom(16), os.urandom(16)]
    for i, message_id in enumerate(old_ids):
        saved = SavedMessage("bob", "bob", bob.device_id, 1, rows[0][3] - 10 + i, f"old {i}")
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(expand(key, tid + message_id)).encrypt(
            nonce, pad(msgspec.msgpack.encode(saved)), _ad_v1("alice", tid, message_id, epoch)
        )
        db.execute(
            "INSERT INTO mailbox VALUES ('alice', ?, ?, ?, ?, ?)",
            (tid, saved.server_ts, message_id, epoch, sealed),
        )
    db.commit()

    device = await accounts.pending("alice")
    await device.restore(code=code)
    await device.backfill()
    messages = device.messages("bob")
    assert {m.message_id for m in messages if m.undecryptable} == {one, two, stripped}
    assert [m.body for m in messages if not m.undecryptable] == ["old 0", "old 1", "new 3"]


async def test_a_backfill_that_stores_several_pages_at_once_resumes_where_it_stopped(accounts):
    alice, device = await restored(accounts, 1_000)  # the newest page of 100 stored
    writes: list[HistoryLoaded] = []

    def closed_after_first_write(event: object) -> None:
        if isinstance(event, HistoryLoaded):
            writes.append(event)
            loading.cancel()  # lands at the backfill's next await

    device.add_listener(closed_after_first_write)
    # Pages of 100 stored 300 at a time; the app is closed after the first write.
    loading = asyncio.ensure_future(device.mailbox.backfill(page=100, write=300))
    await asyncio.gather(loading, return_exceptions=True)
    assert len(writes) == 1
    assert writes[0].added == 300 and writes[0].loaded == 400 and not writes[0].done
    stored = device.history.progress()[0]
    assert stored == 400 and len(device.messages("bob")) == stored

    device = await accounts.reopen(device)
    await device.wait_online()
    writes.clear()
    device.add_listener(lambda e: writes.append(e) if isinstance(e, HistoryLoaded) else None)
    await device.mailbox.backfill(page=100, write=300)
    assert writes[-1].done and writes[-1].loaded == 1_000
    assert sum(w.added for w in writes) == 1_000 - stored  # nothing fetched twice, none skipped
    assert history(device, "bob") == history(alice, "bob")


async def test_scrolling_during_a_backfill_stores_and_counts_each_message_once(accounts):
    """The user scrolls up while the backfill runs: both load pages after the same cursor. Each
    message is stored once, the progress never passes the mailbox's count, and ends at it.

    The order is fixed by the relay answering one connection's requests in turn: after the
    backfill's first write the scroll asks for four pages of 100 while the backfill, asking for
    pages of 50, needs four answers before it writes again: it then holds pages the scroll
    stored, and its place is behind the scroll's."""
    alice, device = await restored(accounts, 1_000)  # the newest page of 100 stored
    writes: list[HistoryLoaded] = []
    scrolls: list[asyncio.Task[object]] = []

    async def scroll() -> None:
        for _ in range(4):
            await device.load_older("bob")

    def on_event(event: object) -> None:
        if isinstance(event, HistoryLoaded):
            writes.append(event)
            if not scrolls:
                scrolls.append(asyncio.ensure_future(scroll()))

    device.add_listener(on_event)
    await device.mailbox.backfill(page=50, write=200)
    await asyncio.gather(*scrolls)
    assert len(writes) >= 6  # the backfill's writes and the scroll's four pages
    assert all(w.loaded <= w.total == 1_000 for w in writes)
    assert writes[-1].done and device.history.progress() == (1_000, 1_000)
    assert history(device, "bob") == history(alice, "bob")


async def test_a_scroll_that_runs_ahead_of_the_backfill_leaves_it_nothing_to_count(accounts):
    """Scrolling by pages of 50 from the backfill's first write on, while the backfill collects
    pages of 100 three at a time: the scroll stores the rest of the conversation first, and the
    backfill, reaching the end, finds all it holds stored. Nothing is counted twice, and the
    history ends finished."""
    alice, device = await restored(accounts, 600)  # the newest page of 100 stored
    scrolls: list[asyncio.Task[object]] = []

    async def scroll() -> None:
        while device.history.has_older("bob"):
            await device.load_older("bob", limit=50)

    def on_event(event: object) -> None:
        if isinstance(event, HistoryLoaded) and not scrolls:
            scrolls.append(asyncio.ensure_future(scroll()))

    device.add_listener(on_event)
    await device.mailbox.backfill(page=100, write=300)
    await asyncio.gather(*scrolls)
    assert device.history.progress() == (600, 600)
    assert not device.history.has_history_to_load()
    assert history(device, "bob") == history(alice, "bob")
