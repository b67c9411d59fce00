"""A batch of restored history in the profile: its search entries and conversation times are
written once per batch (the row triggers dropped meanwhile, and back even when the batch fails),
and profiles made before that are moved over on open without indexing anything twice."""

from __future__ import annotations

import msgspec
import pytest
import sqlcipher3

from client.core.events import MessageStatus, StoredMessage
from client.core.storage import ProfileStore
from client.core.store_chat import SEARCH_AUTOMERGE
from client.core.store_messages import ROW_TRIGGERS, ROWS_PER_INSERT
from shared.envelope import new_message_id

# The row triggers as profiles made by earlier versions have them: before page inserts, and
# while a row of bulk_insert made them skip a page.
OLD_TRIGGERS = [
    """
DROP TRIGGER thread_on_row_insert;
DROP TRIGGER search_on_row_insert;
CREATE TRIGGER thread_on_insert AFTER INSERT ON messages BEGIN
    INSERT INTO threads VALUES (new.thread, coalesce(new.server_ts, 0))
        ON CONFLICT (thread) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts);
END;
CREATE TRIGGER search_on_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search(rowid, body) VALUES (new.rowid, new.body);
END;
""",
    """
DROP TRIGGER thread_on_row_insert;
DROP TRIGGER search_on_row_insert;
CREATE TABLE bulk_insert (pages INTEGER PRIMARY KEY CHECK (pages = 1));
CREATE TRIGGER thread_on_one_insert AFTER INSERT ON messages
    WHEN NOT EXISTS (SELECT 1 FROM bulk_insert) BEGIN
    INSERT INTO threads VALUES (new.thread, coalesce(new.server_ts, 0))
        ON CONFLICT (thread) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts);
END;
CREATE TRIGGER search_on_one_insert AFTER INSERT ON messages
    WHEN NOT EXISTS (SELECT 1 FROM bulk_insert) BEGIN
    INSERT INTO message_search(rowid, body) VALUES (new.rowid, new.body);
END;
""",
]


def message(body: str, i: int, thread: str = "bob") -> StoredMessage:
    return StoredMessage(
        message_id=new_message_id(now_ms=1_700_000_000_000 + i),
        thread=thread,
        sender_user=thread,
        sender_device="0" * 16,
        sent_at=1_700_000_000_000 + i,
        server_ts=1_700_000_000_000_000 + i * 1000,
        body=body,
        status=MessageStatus.READ,
    )


def indexed_once(store: ProfileStore) -> None:
    """FTS5's own check, against the messages table: the index holds exactly the rows' words
    (raises otherwise)."""
    store._db.execute(
        "INSERT INTO message_search(message_search, rank) VALUES ('integrity-check', 1)"
    )


@pytest.mark.parametrize("old_triggers", OLD_TRIGGERS)
def test_a_page_and_a_single_message_are_each_indexed_once_in_an_older_profile(
    tmp_path, old_triggers
):
    store = ProfileStore(tmp_path)
    store._db.executescript(old_triggers)
    store.close()

    store = ProfileStore(tmp_path)
    page = [message(f"restored word{i}", i) for i in range(300)]
    page.append(message("from carol", 400, "carol"))
    store.insert_messages(page)
    assert store.insert_messages(page) == 0  # a page loaded twice adds nothing
    live = message("live word", 500)
    store.insert_message(live)
    store.commit()
    indexed_once(store)
    assert len(store.search("restored", 1000)) == 300
    assert [h.message.body for h in store.search("word299")] == ["restored word299"]
    assert len(store.search("word", 1000)) == 301
    assert store.threads() == ["bob", "carol"]
    # A deleted message's words leave the index: none stay behind from a second entry.
    store._db.execute("DELETE FROM messages WHERE message_id = ?", (page[7].message_id,))
    store.commit()
    indexed_once(store)
    raw = "SELECT rowid FROM message_search WHERE message_search MATCH 'word7'"
    assert store._db.execute(raw).fetchall() == []
    last = dict(store._db.execute("SELECT thread, last_ts FROM threads").fetchall())
    assert last == {"bob": live.server_ts, "carol": page[-1].server_ts}
    store.close()


def test_a_batch_that_fails_leaves_the_row_triggers_and_no_rows(tmp_path):
    store = ProfileStore(tmp_path)
    batch = [message(f"batch word{i}", i) for i in range(10)]
    # A value SQLite cannot take, half-way: five rows are in before the batch fails.
    batch[5] = msgspec.structs.replace(batch[5], body=object())  # type: ignore[arg-type]
    with pytest.raises(sqlcipher3.Error):
        store.insert_messages(batch)
    store.commit()
    names = {
        n for (n,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    assert set(ROW_TRIGGERS) <= names
    assert store._db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    live = message("live word", 500)
    store.insert_message(live)  # through the row triggers
    store.commit()
    indexed_once(store)
    assert [h.message.body for h in store.search("word")] == ["live word"]
    assert store.threads() == ["bob"]
    store.close()


def test_a_batch_is_part_of_the_transaction_it_is_stored_in(tmp_path):
    """The cursor and the rows of a restored batch are one transaction: if what follows the
    insert fails, the rows go too."""
    store = ProfileStore(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_messages([message(f"batch word{i}", i) for i in range(10)])
        raise RuntimeError("the page's controls failed")
    assert store._db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store.search("word") == [] and store.threads() == []
    store.close()


@pytest.mark.parametrize("batch", [False, True], ids=["one by one", "in a batch"])
def test_what_is_gone_stays_gone_one_by_one_or_in_a_batch(tmp_path, batch):
    """A batch is stored without the tombstone trigger; what it leaves out must be exactly what
    the trigger refuses row by row: deleted and expired messages (not unsent ones, which stay
    as placeholders) and what is older than a deleted conversation."""
    store = ProfileStore(tmp_path)
    bob = [message(f"bob {i}", i) for i in range(6)]
    carol = [message(f"carol {i}", 100 + i, "carol") for i in range(3)]
    unsent_later = msgspec.structs.replace(message("carol sending", 200, "carol"), server_ts=None)
    store.tombstone(bob[1].message_id, "bob", "deleted")
    store.tombstone(bob[2].message_id, "bob", "expired")
    store.tombstone(bob[3].message_id, "bob", "unsent")
    store.tombstone(message("not offered", 300).message_id, "bob", "deleted")
    store.clear_thread("carol", carol[1].server_ts)  # carol 0 and 1 are gone
    # (Two batches: carol's ids are a range with no tombstone, only a deleted conversation.)
    for offered in ([*bob], [*carol, unsent_later]):
        if batch:
            store.insert_messages(offered)
        else:
            for m in offered:
                store.insert_message(m)
    store.commit()
    stored = {m.body for t in ("bob", "carol") for m in store.thread_messages(t, limit=100)}
    assert stored == {"bob 0", "bob 3", "bob 4", "bob 5", "carol 2", "carol sending"}
    store.close()


def test_after_batches_a_single_message_goes_through_the_triggers_again(tmp_path):
    """A single message (a live one) stored after batches goes through the row triggers: it
    is indexed, dated in its conversation, and refused if it is gone."""
    store = ProfileStore(tmp_path)
    for batch in range(2):
        store.insert_messages([message(f"restored {batch} {i}", batch * 10 + i) for i in range(5)])
    store.commit()
    gone = message("deleted here", 100)
    store.tombstone(gone.message_id, "bob", "deleted")
    assert not store.insert_message(gone)
    live = message("live word", 200, "carol")
    assert store.insert_message(live)
    store.commit()
    indexed_once(store)
    assert [h.message.body for h in store.search("live")] == ["live word"]
    assert store.threads() == ["carol", "bob"]
    assert [m.body for m in store.thread_messages("bob", limit=20)][-1] == "restored 1 4"
    store.close()


def test_a_batch_longer_than_one_insert_statement_stores_and_counts_every_new_row(tmp_path):
    """A batch is bound ROWS_PER_INSERT rows per statement: every chunk is stored, the last
    one short, and rows already known count for nothing in whichever chunk they fall."""
    store = ProfileStore(tmp_path)
    rows = [message(f"row {i}", i) for i in range(2 * ROWS_PER_INSERT + 7)]
    known = rows[ROWS_PER_INSERT - 3 : ROWS_PER_INSERT + 4]  # across the first boundary
    assert store.insert_messages(known) == len(known)
    assert store.insert_messages(rows) == len(rows) - len(known)
    store.commit()
    assert store.thread_messages("bob") == sorted(rows, key=lambda m: m.server_ts or 0)
    indexed_once(store)
    assert len(store.search("row", 10_000)) == len(rows)
    store.close()


def test_the_search_index_merges_less_eagerly_in_new_and_older_profiles(tmp_path):
    """Merging segments is most of what indexing a restored page costs: every profile, also one
    made before, has the search index merge only when SEARCH_AUTOMERGE segments share a level."""

    def automerge(store: ProfileStore) -> int:
        row = store._db.execute("SELECT v FROM message_search_config WHERE k = 'automerge'")
        return int(row.fetchone()[0])

    store = ProfileStore(tmp_path)
    assert automerge(store) == SEARCH_AUTOMERGE
    store._db.execute("INSERT INTO message_search(message_search, rank) VALUES ('automerge', 4)")
    store.close()
    store = ProfileStore(tmp_path)
    assert automerge(store) == SEARCH_AUTOMERGE
    store.close()
