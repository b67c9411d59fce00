"""The relay store's byte counts behind the quotas: kept by triggers as rows come and go, and
recounted from the rows when a store is opened (a store written before the counts existed)."""

from __future__ import annotations

from pathlib import Path

from relay.store import RelayStore


async def test_queue_and_mailbox_bytes_follow_the_rows_and_are_recounted_at_open(tmp_path: Path):
    path = tmp_path / "relay.sqlite3"
    store = RelayStore(path)
    queued = store.enqueue(
        [("dev1", "bob", "dev2", 1, b"x" * 100), ("dev1", "bob", "dev2", 2, b"y" * 50)]
    )
    store.save_to_mailbox("alice", [(bytes(16), 1, bytes(16), 1, b"z" * 70)])
    assert (store.queue_bytes("dev1"), store.queue_bytes("dev9")) == (150, 0)
    assert store.mailbox_bytes("alice") == 70
    store.acknowledge("dev1", [queued[0].seq])
    assert store.queue_bytes("dev1") == 50
    store.acknowledge("dev1", [queued[0].seq, 10**9])  # acknowledged twice, or never queued
    assert store.queue_bytes("dev1") == 50
    # Counted again from the rows at open (a mailbox count missing: a store from before).
    store._db.execute("DELETE FROM mailbox_bytes")
    store.close()
    store = RelayStore(path)
    assert (store.queue_bytes("dev1"), store.mailbox_bytes("alice")) == (50, 70)
    store.forget_device("dev1")
    assert store.queue_bytes("dev1") == 0
    store.close()
