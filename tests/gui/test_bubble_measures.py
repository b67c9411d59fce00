"""Bubbles are measured once and their heights kept (a layout pass asks for every row of the
window); a kept height must still follow what changes a bubble's size, or the bubble is drawn
clipped: the text size setting and an edit to a longer text, in a real window against a real
relay."""

from __future__ import annotations

from client.core.preferences import Preferences
from client.gui.chat_window import ChatWindow
from client.gui.settings_panel import apply_preferences

LONG = "a long line of words that wraps inside its bubble " * 6


def _height(window: ChatWindow, row: int) -> int:
    return window.view.visualRect(window.model.index(row)).height()


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
        # Larger text wraps onto more lines: the row grows with it, never keeps the old height.
        qtbot.waitUntil(lambda: _height(window, 0) > before * 1.5, timeout=5_000)
        larger = _height(window, 0)
        panel.font_size.setCurrentIndex(panel.font_size.findData(11))
        qtbot.waitUntil(lambda: _height(window, 0) < larger / 1.3, timeout=5_000)
    finally:
        apply_preferences(Preferences())  # the look other tests expect


def test_an_edit_to_a_longer_text_makes_its_bubble_taller(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    sent = harness.run(alice.send_text("bob", "short"))
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    qtbot.waitUntil(lambda: window.model is not None and _height(window, 0) > 0)
    before = _height(window, 0)
    alice.controls.edit(sent.message_id, LONG)
    qtbot.waitUntil(lambda: _height(window, 0) > before * 1.5, timeout=10_000)
