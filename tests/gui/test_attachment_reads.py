"""A page of bubbles reads its attachments in one query, and nothing read that way goes stale:
the batch lives until the event loop turns, and a change to an attachment drops its entry at
once. (The delegate against in-memory readers: one concern; the batch read against a real
profile.)"""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QImage, QPainter, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem

from client.core.attachments import Attachment
from client.core.events import MessageStatus, StoredMessage
from client.core.store_attachments import AttachmentRow, FileState
from client.gui.attachment_bubbles import AttachmentDelegate
from client.gui.conversation_model import MessageRole
from shared.envelope import new_message_id


def _message(n: int) -> StoredMessage:
    return StoredMessage(
        message_id=new_message_id(now_ms=1_700_000_000_000 + n),
        thread="bob",
        sender_user="bob",
        sender_device="0" * 16,
        sent_at=1_700_000_000_000 + n,
        server_ts=None,
        body="",
        status=MessageStatus.RECEIVED,
    )


def _file(message_id: bytes, state: FileState) -> Attachment:
    return Attachment(message_id, state, "map.pdf", "application/pdf", 1000, None, None, "")


def test_a_page_is_read_at_once_and_a_change_is_never_served_from_the_batch(qtbot):
    messages = [_message(n) for n in range(5)]
    stored = {messages[1].message_id: _file(messages[1].message_id, FileState.REMOTE)}
    batches: list[list[bytes]] = []

    def one(message_id: bytes) -> Attachment | None:
        return stored.get(message_id)

    def many(message_ids: list[bytes]) -> dict[bytes, Attachment | None]:
        batches.append(message_ids)
        return {m: stored.get(m) for m in message_ids}

    delegate = AttachmentDelegate("alice", lambda _m: None, lambda _m: None, one, many)
    delegate.prime(messages)
    assert batches == [[m.message_id for m in messages]]
    assert all(delegate.primed(m) for m in messages)
    assert delegate._attachment_of(messages[1]).state is FileState.REMOTE

    # The file finishes downloading: its entry goes at once, before the loop turns.
    stored[messages[1].message_id] = _file(messages[1].message_id, FileState.READY)
    delegate.forget_attachment(messages[1].message_id)
    assert delegate._attachment_of(messages[1]).state is FileState.READY
    # The rest of the batch is let go when the event loop turns.
    qtbot.waitUntil(lambda: not delegate.primed(messages[0]), timeout=5_000)


def test_the_batch_read_gives_what_one_read_gives(harness):
    alice = harness.account("alice")
    store = alice._store
    ids = [new_message_id(now_ms=1_700_000_000_000 + n) for n in range(1200)]
    with store.transaction():
        for n, message_id in enumerate(ids[::3]):
            state = FileState.REMOTE if n % 2 else FileState.FAILED
            store.put_attachment(AttachmentRow(message_id, b"", state, None, f"detail {n}"))
    many = alice.attachments.get_many(ids)  # three chunks of at most 500
    assert list(many) == ids
    assert many == {m: alice.attachments.get(m) for m in ids}
    assert sum(found is not None for found in many.values()) == 400


def test_painting_a_row_reads_its_attachment_once(qtbot):
    """Text, measure and thumbnail of one painted row share one read (a paint comes after the
    layout's batch was let go)."""
    message = _message(1)
    reads: list[bytes] = []

    def one(message_id: bytes) -> Attachment | None:
        reads.append(message_id)
        return _file(message_id, FileState.REMOTE)

    delegate = AttachmentDelegate("alice", lambda _m: None, lambda _m: None, one)
    model = QStandardItemModel()
    item = QStandardItem()
    item.setData(message, MessageRole)
    model.appendRow(item)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 500, 120)
    option.font = QApplication.font()
    image = QImage(500, 120, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        delegate.paint(painter, option, model.index(0, 0))
    finally:
        painter.end()
    assert reads == [message.message_id]
