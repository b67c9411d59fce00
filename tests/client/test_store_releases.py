"""The profile moves an attachment to the release queue in the transaction that removes its
message (deleted, in a cleared conversation, expired, unsent), and never files an attachment for
a tombstoned message again (a redelivery, a mailbox page a hostile relay reordered)."""

from __future__ import annotations

from client.core.events import MessageStatus, StoredMessage
from client.core.storage import ProfileStore
from client.core.store_attachments import AttachmentRow, FileState
from client.core.store_releases import Release
from shared.envelope import new_message_id


def message(i: int) -> StoredMessage:
    return StoredMessage(
        message_id=new_message_id(now_ms=1_700_000_000_000 + i),
        thread="bob",
        sender_user="bob",
        sender_device="0" * 16,
        sent_at=1_700_000_000_000 + i,
        server_ts=1_700_000_000_000_000 + i * 1000,
        body=f"caption {i}",
        status=MessageStatus.RECEIVED,
    )


def with_attachment(store: ProfileStore, i: int) -> bytes:
    m = message(i)
    store.insert_messages([m])
    store.put_attachment(
        AttachmentRow(m.message_id, b"pointer", FileState.READY, f"/profile/{i}.jpg", "")
    )
    return m.message_id


def test_removing_a_message_queues_its_attachment_once(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    deleted, cleared, unsent, kept = (with_attachment(store, i) for i in range(4))
    store.delete_messages([deleted])
    store.empty_message(unsent)
    store.clear_thread("bob", message(1).server_ts or 0)
    store.commit()
    assert store.releases(-1) == [
        Release(m, b"pointer", f"/profile/{i}.jpg")
        for i, m in sorted(enumerate([deleted, cleared, unsent]), key=lambda p: p[1])
    ]
    assert all(store.attachment(m) is None for m in (deleted, cleared, unsent))
    assert store.attachment(kept) is not None
    store.released(deleted)
    assert deleted not in {r.message_id for r in store.releases(-1)}
    store.close()


def test_a_tombstoned_message_never_gets_its_attachment_back(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    for kind in ("unsent", "deleted", "expired"):
        m = message(len(kind))
        store.tombstone(m.message_id, "bob", kind)
        store.put_attachment(AttachmentRow(m.message_id, b"pointer", FileState.REMOTE, None, ""))
        assert store.attachment(m.message_id) is None, kind
    store.close()
