"""A long conversation opens on its newest page and scrolls through it in a bounded window."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from client.core.client import AriadneClient
from client.core.events import MessageStatus, StoredMessage
from client.core.login import new_profile
from client.gui.chat_window import ChatWindow
from client.gui.conversation_model import PAGE, WINDOW
from shared.envelope import new_message_id

COUNT = 1_500


def long_profile(root, count: int = COUNT) -> AriadneClient:
    """``count`` messages of one day with bob, alternating senders."""
    store = new_profile(root, "ws://127.0.0.1:9", "alice", "Desktop", "done", with_amk=True)
    base = 1_700_000_000_000
    for i in range(count):
        store.insert_message(
            StoredMessage(
                message_id=new_message_id(now_ms=base + i),
                thread="bob",
                sender_user="bob" if i % 2 else "alice",
                sender_device="0" * 16,
                sent_at=base + i,
                server_ts=(base + i) * 1000,
                body=f"line {i}",
                status=MessageStatus.READ,
            )
        )
    store.commit()
    return AriadneClient(root, store)  # not started: reading history needs no relay


def test_scrolling_to_the_top_and_back_keeps_a_bounded_window(qtbot, tmp_path):
    client = long_profile(tmp_path)
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    window.open_conversation("bob")
    model = window.model
    assert model.rowCount() == PAGE
    assert model.message_at(PAGE - 1).body == f"line {COUNT - 1}"

    bar = window.view.verticalScrollBar()
    for _ in range(COUNT // PAGE + 5):
        bar.setValue(0)
        QApplication.processEvents()  # the layout pass; fetching ran in setValue already
        assert model.rowCount() <= WINDOW
    assert model.message_at(0).body == "line 0"
    assert not model.can_fetch_older()

    for _ in range(COUNT // PAGE + 5):
        bar.setValue(bar.maximum())
        QApplication.processEvents()  # the layout pass; fetching ran in setValue already
        assert model.rowCount() <= WINDOW
    assert model.message_at(model.rowCount() - 1).body == f"line {COUNT - 1}"
    assert not model.has_newer
    bodies = [model.message_at(r).body for r in range(model.rowCount())]
    assert bodies == [f"line {i}" for i in range(COUNT - model.rowCount(), COUNT)]
