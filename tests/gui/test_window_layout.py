"""The main window after the app shell, the conversation, controls, attachments and groups each
added to it: the conversation pane stays narrow enough for a panel beside it in the demo's
window, and the newest message stays in view as the window is laid out again."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from client.gui.chat_window import ChatWindow
from client.gui.panels import PANEL_MIN_WIDTH
from client.gui.style import apply_style


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_conversation_pane_leaves_room_for_a_panel_in_the_demo_window(qtbot, harness, dark):
    app = QApplication.instance()
    sheet, palette = app.styleSheet(), app.palette()
    apply_style(app, dark=dark)  # measured as the app looks (its style sheet pads buttons)
    try:
        alice = harness.account("alice")
        harness.account("bob")
        window = ChatWindow(alice)
        qtbot.addWidget(window)
        window.show()
        window.open_conversation("bob")
        conversation = window.centralWidget().widget(1)
        # The demo opens two windows of 760 side by side; the list steps aside for a panel.
        assert conversation.minimumSizeHint().width() + PANEL_MIN_WIDTH <= 760
        # A long name gives way before the header's buttons do.
        alice.conversations.set_display_name("bob", "Bartholomew Okafor-Whitfield of Lagos")
        window.identity.refresh()
        assert conversation.minimumSizeHint().width() + PANEL_MIN_WIDTH <= 760
    finally:
        app.setStyleSheet(sheet)
        app.setPalette(palette)


def test_the_newest_message_stays_in_view_when_the_window_narrows(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    words = "a message long enough to wrap onto more lines when the window gets narrower"
    carol = harness.account("carol")
    for n in range(12):
        harness.run(bob.send_text("alice", f"{n}: {words}"))
        harness.run(carol.send_text("alice", f"{n}: {words}"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 12, timeout=15_000)
    qtbot.waitUntil(lambda: len(alice.messages("carol")) == 12, timeout=15_000)
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(1100, 480)
    window.show()
    window.open_conversation("bob")

    def newest_in_view() -> bool:
        last = window.model.index(window.model.rowCount() - 1)
        shown = window.view.viewport().rect()
        return shown.contains(window.view.visualRect(last))

    qtbot.waitUntil(newest_in_view, timeout=5_000)
    window.resize(700, 480)  # every bubble wraps again, taller
    qtbot.waitUntil(lambda: window.width() < 1100, timeout=5_000)
    qtbot.waitUntil(newest_in_view, timeout=5_000)

    # Scrolled up, it stays where the reader is.
    window.view.verticalScrollBar().setValue(0)
    window.resize(1000, 480)
    qtbot.waitUntil(lambda: window.width() > 700, timeout=5_000)
    assert window.view.verticalScrollBar().value() == 0

    # Another conversation opens at its newest message, and follows it again.
    window.open_conversation("carol")
    window.resize(700, 480)
    qtbot.waitUntil(lambda: window.width() < 1000, timeout=5_000)
    qtbot.waitUntil(newest_in_view, timeout=5_000)


def test_a_panel_closed_at_once_gives_the_list_its_width_back(qtbot, harness):
    alice = harness.account("alice")
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.resize(640, 520)  # narrow: the list steps aside for a panel
    window.show()
    panes = window.centralWidget()
    qtbot.waitUntil(lambda: panes.sizes()[0] > 0, timeout=5_000)
    window.show_own_devices().close()  # before the event loop turns (a dialog accepted at once)
    QApplication.processEvents()  # what the panel host deferred to the next turn runs now
    assert window.threads.isVisible() and panes.sizes()[0] >= window.threads.minimumWidth()
