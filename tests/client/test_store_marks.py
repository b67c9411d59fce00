"""A page of bubbles reads its messages' controls in one batch (``ProfileStore.marks_of``): each
message must get exactly what the one-message reads say — a reaction, an edit or a quote shown
on the wrong bubble would misreport what a contact did."""

from __future__ import annotations

import pytest

from client.core.events import MessageStatus, StoredMessage
from client.core.storage import ProfileStore
from client.core.store_marks import Marks


@pytest.fixture
def store(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    yield store
    store.close()


def _message(n: int) -> StoredMessage:
    return StoredMessage(
        message_id=n.to_bytes(16, "big"),
        thread="bob",
        sender_user="bob",
        sender_device="0" * 16,
        sent_at=1_700_000_000_000 + n,
        server_ts=1_700_000_000_000_000 + n * 1000,
        body=f"message {n}",
        status=MessageStatus.RECEIVED,
    )


def test_a_batch_gives_each_message_its_own_controls_across_chunks(store):
    ids = [_message(n).message_id for n in range(1200)]  # more than one chunk of 500
    for n, message_id in enumerate(ids):
        store.insert_message(_message(n))
        if n % 7 == 0:
            store.set_reaction(message_id, "bob", "👍", 1, "0" * 16)
            store.set_reaction(message_id, "carol", "🎉" if n % 2 else "", 1, "1" * 16)
        if n % 11 == 0:
            store.add_edit(message_id, 1, "0" * 16, "first", 1)
            if n % 2:
                store.add_edit(message_id, 2, "0" * 16, "second", 2)
        if n % 13 == 0:
            store.set_reply(message_id, ids[n // 2])
        if n % 17 == 0:
            store.set_expiry(message_id, "bob", 2_000_000_000_000 + n)
    store.commit()
    marks = store.marks_of(ids)
    for message_id in ids:
        expected = Marks(
            store.reply_of(message_id),
            store.expiry_of(message_id) is not None,
            len(store.edits(message_id)) > 1,
            store.reactions(message_id),
        )
        bare = Marks(None, False, False, {})
        assert marks.get(message_id, bare) == expected, message_id
    assert len(marks) < len(ids)  # messages without controls are left out
