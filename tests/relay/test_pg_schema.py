"""The PostgreSQL store's schema step 4 applied to a database a relay of version 3 wrote and
filled: the mailbox it had keeps its counts and bytes right through deletions, and the blob
tables arrive."""

from __future__ import annotations

from relay import store_pg
from relay.store_blobs import BlobRow
from relay.store_pg import PgRelayStore
from relay.store_pg_schema import MIGRATIONS

THREAD = b"t" * 16


def test_a_version_3_database_gains_controls_and_blobs(postgres, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dsn = postgres.database()
    monkeypatch.setattr(store_pg, "MIGRATIONS", [step for step in MIGRATIONS if step.version <= 3])
    old = PgRelayStore(dsn)
    old.save_to_mailbox(
        "alice", [(THREAD, 10, b"1" * 16, 1, b"x" * 40), (THREAD, 20, b"2" * 16, 1, b"y" * 30)]
    )
    assert old._value("SELECT max(version) FROM schema_version") == 3
    old.close()
    monkeypatch.undo()

    store = PgRelayStore(dsn)
    try:
        assert store._value("SELECT max(version) FROM schema_version") == MIGRATIONS[-1].version
        assert store.delete_from_mailbox("alice", THREAD, [b"1" * 16], None) == 1
        assert store.mailbox_threads("alice") == [(THREAD, 1)]
        assert store.mailbox_bytes("alice") == 30
        assert store.delete_from_mailbox("alice", THREAD, [], through_ts=20) == 1
        assert store.mailbox_threads("alice") == [] and store.mailbox_bytes("alice") == 0
        store.create_blob(BlobRow(b"b" * 16, "alice", 3, 0, bytes(32), 1), ["bob"])
        store.write_blob(b"b" * 16, 0, b"abc")
        assert store.read_blob(b"b" * 16, 1, 5) == b"bc"
    finally:
        store.close()
