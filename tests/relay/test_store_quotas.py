"""The relay store's byte counts behind the quotas: the queue's kept in memory as an upper bound
made exact when it matters, the mailbox's by a trigger; both counted from the rows at open."""

from __future__ import annotations

from pathlib import Path

from relay.store import RelayStore


def _queue(store: RelayStore, device_id: str, sizes: list[int]) -> list[int]:
    rows = [(device_id, "bob", "dev2", 1, b"x" * size) for size in sizes]
    return [envelope.seq for envelope in store.enqueue(rows)]


async def test_a_queue_has_room_again_once_its_device_acknowledges(tmp_path: Path):
    store = RelayStore(tmp_path / "relay.sqlite3")
    seqs = _queue(store, "dev1", [100, 50])
    assert store.queue_has_room("dev1", 0, 150) and not store.queue_has_room("dev1", 1, 150)
    assert store.queue_has_room("dev9", 150, 150)  # per device
    store.acknowledge("dev1", [seqs[0], 10**9])  # and a seq that was never queued
    assert store.queue_has_room("dev1", 100, 150) and not store.queue_has_room("dev1", 101, 150)
    store.forget_device("dev1")
    assert store.queue_has_room("dev1", 150, 150)
    store.close()


async def test_queue_and_mailbox_bytes_are_counted_from_the_rows_at_open(tmp_path: Path):
    path = tmp_path / "relay.sqlite3"
    store = RelayStore(path)
    seqs = _queue(store, "dev1", [100, 50])
    store.acknowledge("dev1", [seqs[0]])
    store.save_to_mailbox("alice", [(bytes(16), 1, bytes(16), 1, b"z" * 70)])
    assert store.mailbox_bytes("alice") == 70
    store._db.execute("DELETE FROM mailbox_bytes")  # a store from before the count existed
    store.close()
    store = RelayStore(path)
    assert store.queue_bytes("dev1") == 50
    assert not store.queue_has_room("dev1", 101, 150) and store.queue_has_room("dev1", 100, 150)
    assert store.mailbox_bytes("alice") == 70
    store.close()
