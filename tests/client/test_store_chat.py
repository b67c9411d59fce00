"""The conversation screen's tables in the profile (SQLCipher): the FTS5 search index kept by
triggers and built once for an older profile, drafts, and per-device receipts."""

from __future__ import annotations

from client.core.events import MessageStatus, StoredMessage
from client.core.storage import ProfileStore
from client.core.store_chat import search_query
from shared.envelope import new_message_id


def message(body: str, i: int, thread: str = "bob") -> StoredMessage:
    return StoredMessage(
        message_id=new_message_id(now_ms=1_700_000_000_000 + i),
        thread=thread,
        sender_user="bob",
        sender_device="0" * 16,
        sent_at=1_700_000_000_000 + i,
        server_ts=1_700_000_000_000_000 + i * 1000,
        body=body,
        status=MessageStatus.RECEIVED,
    )


def test_search_in_an_encrypted_profile_follows_inserts_and_deletes(tmp_path):
    store = ProfileStore(tmp_path)  # encrypted at rest: FTS5 works inside SQLCipher
    first, second = message("Meet at the old harbour", 1), message("harbour lights", 2)
    store.insert_messages([first, second, message("nothing here", 3, "carol")])
    store.commit()
    hits = store.search("harb")
    assert [h.message.body for h in hits] == ["harbour lights", "Meet at the old harbour"]
    assert hits[1].snippet == "Meet at the old \x02harbour\x03"
    assert [h.message.body for h in store.search("old harbour")] == ["Meet at the old harbour"]
    assert store.search("   ") == []
    store._db.execute("DELETE FROM messages WHERE message_id = ?", (second.message_id,))
    store._db.execute("UPDATE messages SET body = 'gone' WHERE message_id = ?", (first.message_id,))
    store.commit()
    assert store.search("harbour") == []
    assert [h.message.message_id for h in store.search("gone")] == [first.message_id]
    store.close()


def test_an_older_profile_gets_its_history_indexed_once(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    store.insert_messages([message("before the index existed", 1)])
    store.commit()
    # As a profile from before the index: its content is not in the index, nor marked built.
    store._db.execute("INSERT INTO message_search(message_search) VALUES ('delete-all')")
    store._db.execute("DELETE FROM profile WHERE key = 'search_index_built'")
    store.commit()
    assert store.search("existed") == []
    store.close()
    again = ProfileStore(tmp_path, encrypt=False)
    assert [h.message.body for h in again.search("existed")] == ["before the index existed"]
    again.close()


def test_an_index_that_kept_row_sizes_is_made_again_without_them(tmp_path):
    """Earlier versions' index wrote a row of token counts per message; a profile that has one
    gets the lighter index, holding the same words, and searches and unsends as before."""
    store = ProfileStore(tmp_path)
    store._db.executescript(
        "DROP TABLE message_search;"
        "CREATE VIRTUAL TABLE message_search"
        " USING fts5(body, content='messages', content_rowid='rowid');"
        "INSERT INTO message_search(message_search, rank) VALUES ('secure-delete', 1);"
    )
    kept = [message(f"kept word{i}", i) for i in range(3)]
    store.insert_messages(kept)
    store.commit()
    assert store._db.execute("SELECT count(*) FROM message_search_docsize").fetchone()[0] == 3
    store.close()

    store = ProfileStore(tmp_path)
    tables = {n for (n,) in store._db.execute("SELECT name FROM sqlite_master")}
    assert "message_search_docsize" not in tables
    store._db.execute(
        "INSERT INTO message_search(message_search, rank) VALUES ('integrity-check', 1)"
    )
    assert sorted(h.message.body for h in store.search("word")) == [m.body for m in kept]
    store.delete_messages([kept[1].message_id])
    store.commit()
    assert sorted(h.message.body for h in store.search("kept")) == ["kept word0", "kept word2"]
    store.close()


def test_the_users_words_are_words_not_query_syntax():
    assert search_query('a "b" NOT c*') == '"a" """b""" "NOT" "c*"*'
    assert search_query('"') is None
    assert search_query("") is None


def test_drafts_and_receipts(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    store.set_draft("bob", "half")
    store.set_draft("carol", "other")
    store.set_draft("carol", "")
    assert (store.draft("bob"), store.draft("carol")) == ("half", "")
    mid = new_message_id()
    store.record_receipt(mid, "bob", "d1", "delivered", 10)
    store.record_receipt(mid, "bob", "d1", "read", 20)
    store.record_receipt(mid, "bob", "d1", "delivered", 30)  # late, must not undo "read"
    store.record_receipt(mid, "bob", "d2", "delivered", 15)
    assert [(r.device_id, r.status, r.at) for r in store.receipts(mid)] == [
        ("d1", "read", 20),
        ("d2", "delivered", 15),
    ]
    store.close()
