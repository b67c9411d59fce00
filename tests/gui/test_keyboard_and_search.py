"""The keyboard and search, in a real window against a real relay: Tab leaves the composer, a
visible focus ring, Ctrl+K jumps to a chat, Ctrl+F searches the history (SQLite FTS5 in the
profile) and a result opens its page far back, Esc closes."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from client.core.events import MessageStatus, StoredMessage
from client.gui.chat_window import ChatWindow
from client.gui.conversation_model import WINDOW
from client.gui.search_panel import HTML_ROLE
from shared.envelope import new_message_id


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def test_tab_leaves_the_composer_with_a_visible_ring(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.keyClicks(window.composer, "draft")
    window.composer.setFocus()
    qtbot.waitUntil(window.composer.hasFocus)
    focused = window.composer.grab().toImage()
    qtbot.keyClick(window.composer, Qt.Key.Key_Tab)
    qtbot.waitUntil(lambda: not window.composer.hasFocus())
    assert window.composer.toPlainText() == "draft"  # no tab typed into it
    assert QApplication.focusWidget() is window.send_button
    assert window.composer.grab().toImage() != focused  # the ring went with the focus


def test_ctrl_k_jumps_to_a_chat_by_part_of_its_name(qtbot, harness):
    alice = harness.account("alice")
    for name in ("bob", "carol", "dave"):
        harness.account(name)
        harness.run(alice.send_text(name, f"hello {name}"))
    window = open_window(qtbot, alice)
    assert window.threads.count() == 3
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.new_chat.hasFocus()
    qtbot.keyClicks(window.new_chat, "ar")
    visible = [
        window.threads.item(r).text()
        for r in range(window.threads.count())
        if not window.threads.item(r).isHidden()
    ]
    assert len(visible) == 1 and visible[0].startswith("carol")
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    assert window.model.thread == "carol"
    assert window.composer.hasFocus()
    assert window.new_chat.text() == ""
    assert all(not window.threads.item(r).isHidden() for r in range(window.threads.count()))


def test_ctrl_f_finds_a_message_far_back_and_opens_its_page(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    # A long history (stored as a restore would store it), the needle near its start.
    base = 1_700_000_000_000_000
    history = [
        StoredMessage(
            message_id=new_message_id(now_ms=base // 1000 + i),
            thread="bob",
            sender_user="bob" if i % 2 else "alice",
            sender_device="0" * 16,
            sent_at=base // 1000 + i,
            server_ts=base + i * 1000,
            body="the quokka photo from the trip" if i == 7 else f"ordinary message {i}",
            status=MessageStatus.READ,
        )
        for i in range(3 * WINDOW)
    ]
    alice._store.insert_messages(history)
    alice._store.commit()
    harness.run(bob.send_text("alice", "and a new one about a Quokka"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 3 * WINDOW + 1, timeout=10_000)
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    assert window.model.row_of(history[7].message_id) is None  # not loaded

    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.search.isVisible() and window.search.field.hasFocus()
    qtbot.keyClicks(window.search.field, "quok")
    qtbot.waitUntil(lambda: window.search.results.count() == 2, timeout=5_000)
    assert window.search.results.item(0).text().startswith("and a new one about a Quokka\nbob")
    assert "<b>Quokka</b><br>" in window.search.results.item(0).data(HTML_ROLE)
    assert "<b>quokka</b>" in window.search.results.item(1).data(HTML_ROLE)
    assert window.search.summary.text() == "2 matches"

    qtbot.keyClick(window.search.field, Qt.Key.Key_Down)
    qtbot.keyClick(window.search.results, Qt.Key.Key_Down)
    qtbot.keyClick(window.search.results, Qt.Key.Key_Return)
    row = window.model.row_of(history[7].message_id)
    assert row is not None and window.model.rowCount() <= WINDOW
    viewport = window.view.viewport().rect()
    assert window.view.visualRect(window.model.index(row)).intersects(viewport)
    assert window.view.itemDelegate().highlight == history[7].message_id

    # Paging on from there: scrolling down reaches the newest message again.
    def newest_shown() -> bool:
        window.view.scrollToBottom()
        last = window.model.message_at(window.model.rowCount() - 1)
        return last.body == "and a new one about a Quokka"

    assert not newest_shown()
    qtbot.waitUntil(newest_shown, timeout=10_000)

    # A word that is an FTS5 operator is searched as a word; quotes cannot break the query.
    window.search.field.setText('NOT "')
    window.search.search()
    assert window.search.summary.text().startswith("No messages")

    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.search.isVisible()
    assert window.composer.hasFocus()


def test_esc_closes_an_open_panel(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "hi"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    panel = window.message_menu(0)
    next(a for a in panel.actions() if a.text() == "Info").trigger()
    info = window.panel
    assert info is not None and info.isVisible()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not info.isVisible() and window.panel is None
