"""The relay store's queue: the seqs ``enqueue`` hands back are the rows it stored, in order, for
a fan-out of any size (the writer pushes them to devices by these numbers before reading back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import store_queue
from relay.store import RelayStore


@pytest.mark.parametrize("rows_per_statement", [store_queue.ENQUEUE_ROWS, 2])
async def test_enqueue_returns_each_row_with_its_own_seq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_statement: int
):
    monkeypatch.setattr(store_queue, "ENQUEUE_ROWS", rows_per_statement)
    store = RelayStore(tmp_path / "relay.sqlite3")
    earlier = store.enqueue([("dev0", "alice", "a1", 1, b"first")])
    store.acknowledge("dev0", [earlier[0].seq])  # a seq is never given twice
    rows = [(f"dev{i % 3}", "alice", "a1", 2, bytes([i]) * (i + 1)) for i in range(7)]
    queued = store.enqueue(rows)
    assert [e[1:] for e in queued] == rows
    assert [e.seq for e in queued] == sorted({e.seq for e in queued})
    assert queued[0].seq > earlier[0].seq
    await store.durable()  # a backlog is read from committed rows only
    for device in ("dev0", "dev1", "dev2"):
        assert store.queued(device, 0, 100) == [e for e in queued if e.device_id == device]
    store.close()
