"""What the relay store promises about power loss: commits are synced (``synchronous=FULL``), and
a device's backlog is read only from committed rows, never from the store's open transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay.store import RelayStore

ROW = ("dev1", "bob", "dev2", 1, b"sealed")


async def test_commits_are_synced_to_the_disk(tmp_path: Path):
    store = RelayStore(tmp_path / "relay.sqlite3")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


async def test_a_backlog_holds_only_committed_envelopes(tmp_path: Path):
    path = tmp_path / "relay.sqlite3"
    store = RelayStore(path)
    committed = store.enqueue([ROW])
    await store.durable()
    pending = store.enqueue([ROW, ROW])  # written, in the open transaction, not yet committed
    outside = sqlite3.connect(path)  # what a restarted relay would read after a power loss now
    assert [r[0] for r in outside.execute("SELECT seq FROM queue")] == [committed[0].seq]
    assert store.queued("dev1", 0, 100) == committed
    assert store.queued("dev1", committed[0].seq, 100) == []
    await store.durable()
    assert store.queued("dev1", 0, 100) == committed + pending
    outside.close()
    store.close()
