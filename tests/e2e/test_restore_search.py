"""Search over restored history: every restored message is found, the conversation is listed,
whether the restore ran in one go or the app was closed half-way and started again, and a
message that arrives while the history is loading is found too. Real relay, real profiles."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import eventually, seed_history

pytestmark = pytest.mark.backends()

SEEDED = 1_400  # three background pages of 500, the last one short


def found(client, word: str) -> set[bytes]:  # type: ignore[no-untyped-def]
    return {hit.message.message_id for hit in client.conversations.search(word, 10_000)}


async def test_search_finds_every_restored_message_after_an_interrupted_restore(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    await alice.send_text("bob", "hello before the backup")
    await eventually(lambda: len(bob.messages("alice")) == 1, message="first message arrived")
    seed_history(alice, "bob", bob.device_id, SEEDED, alice.messages("bob")[-1].server_ts)
    await alice.wait_saved(timeout=120)
    saved = {m.message_id for m in alice.messages("bob")}

    device = await accounts.pending("alice")
    assert await device.restore(code=code) == ["bob"]
    assert device.threads() == ["bob"]  # listed from the first page on
    assert found(device, "old") == {m.message_id for m in device.messages("bob")}

    # The app is closed while the history loads: some pages are stored, the rest are not (a
    # write per page here; by default a write holds several).
    loading = asyncio.ensure_future(device.mailbox.backfill(write=500))
    await eventually(lambda: device.history.progress()[0] >= 600, message="half restored")
    loading.cancel()
    await asyncio.gather(loading, return_exceptions=True)
    assert device.history.progress()[0] < SEEDED
    restored = {m.message_id for m in device.messages("bob")}
    assert found(device, "old") | found(device, "hello") == restored

    device = await accounts.reopen(device)
    assert device.is_member
    await device.wait_online()
    loading = asyncio.ensure_future(device.backfill())
    # A message that arrives while the history loads is found as soon as it is stored.
    sent = await bob.send_text("alice", "arrived during the restore")
    await eventually(
        lambda: found(device, "arrived") == {sent.message_id}, message="live message indexed"
    )
    await loading
    assert not device.has_history_to_load()
    assert {m.message_id for m in device.messages("bob")} == saved | {sent.message_id}
    assert found(device, "old") | found(device, "hello") == saved
    assert found(device, "old 1399") and found(device, "hello before")
    assert device.threads() == ["bob"]
    # FTS5's own check against the messages table: every row indexed, and only once.
    device._store._db.execute(
        "INSERT INTO message_search(message_search, rank) VALUES ('integrity-check', 1)"
    )
