"""Bubbles are measured once and their heights kept (a layout pass asks for every row of the
window); a kept height must still follow what changes a bubble's size, or the bubble is drawn
clipped: the text size setting and an edit to a longer text, in a real window against a real
relay."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem

from client.core.events import DeliveryUpdated, MessageStatus
from client.core.preferences import Preferences
from client.gui.attachment_bubbles import AttachmentDelegate
from client.gui.chat_window import ChatWindow
from client.gui.conversation_model import PAGE
from client.gui.settings_panel import apply_preferences
from tests.gui.test_long_conversation import long_profile

LONG = "a long line of words that wraps inside its bubble " * 6


def _height(window: ChatWindow, row: int) -> int:
    return window.view.visualRect(window.model.index(row)).height()


def _afresh(window: ChatWindow, row: int) -> int:
    """The row's height measured by a delegate that has kept nothing."""
    bubbles = window.bubbles
    fresh = AttachmentDelegate(
        window.client.username, bubbles.note, bubbles.failure, bubbles.attachment
    )
    fresh.decorations = window.bubbles.decorations  # (read again on every change: tested apart)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, window.view.visualRect(window.model.index(row)).width(), 0)
    option.font = window.view.font()
    return fresh.sizeHint(option, window.model.index(row)).height()


def _measured_right(window: ChatWindow, row: int) -> bool:
    return _height(window, row) == _afresh(window, row)


def test_a_bubble_is_measured_again_when_the_text_size_changes(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", LONG))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    qtbot.waitUntil(lambda: window.model is not None and _height(window, 0) > 0)
    before = _height(window, 0)
    try:
        panel = window.show_settings()
        panel.font_size.setCurrentIndex(panel.font_size.findData(18))
        # The setting reaches the conversation's view, and larger text wraps onto more lines:
        # the row grows with it.
        assert window.view.font().pointSize() == 18
        qtbot.waitUntil(lambda: _height(window, 0) > before * 1.5, timeout=5_000)
        qtbot.waitUntil(lambda: _measured_right(window, 0), timeout=5_000)
    finally:
        apply_preferences(Preferences())  # the look other tests expect
    # Back and forth at one width (the settings change the thread list's width too): a height
    # kept for another font never shows.
    width = window.view.viewport().width()
    for size in (11, 18, 11, 15):
        font = QFont(window.view.font())
        font.setPointSize(size)
        window.view.setFont(font)
        qtbot.waitUntil(lambda: _measured_right(window, 0), timeout=5_000)
        assert window.view.viewport().width() == width


def test_an_edit_to_a_longer_text_makes_its_bubble_taller(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    sent = harness.run(alice.send_text("bob", "short"))
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    # Its state settled first: a new state is measured anew anyway (the tick's word is longer).
    qtbot.waitUntil(
        lambda: (
            window.model is not None
            and window.model.message_at(0).status is MessageStatus.DELIVERED
            and _height(window, 0) > 0
        ),
        timeout=10_000,
    )
    before = _height(window, 0)
    alice.controls.edit(sent.message_id, LONG)
    qtbot.waitUntil(lambda: _height(window, 0) > before * 1.5, timeout=10_000)
    assert _measured_right(window, 0)


def test_every_row_keeps_its_right_height_while_paging_and_changing(qtbot, tmp_path):
    """A kept height follows what it was measured for: the first row of a page loses its day
    label when the page before it comes in, and a message that fails grows a line for why."""
    client = long_profile(tmp_path, 3 * PAGE)
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    model = window.model
    assert model is not None
    qtbot.waitUntil(lambda: _height(window, PAGE - 1) > 0)
    first = model.message_at(0)  # labelled with the day: nothing above it
    window.view.verticalScrollBar().setValue(0)
    qtbot.waitUntil(lambda: model.rowCount() == 2 * PAGE)
    assert model.row_of(first.message_id) == PAGE  # now below a row of the same day
    QApplication.processEvents()
    assert all(_measured_right(window, row) for row in range(model.rowCount()))

    own = model.message_at(PAGE + 2)
    assert own.sender_user == "alice"
    before = _height(window, PAGE + 2)
    window.bubbles.failure = lambda _id: "the relay refused it: " + "a long reason " * 12
    model.update(DeliveryUpdated(own.message_id, "bob", MessageStatus.FAILED, own.server_ts))
    qtbot.waitUntil(lambda: _height(window, PAGE + 2) > before)
    assert all(_measured_right(window, row) for row in range(model.rowCount()))
