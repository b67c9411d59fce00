"""Who is who: avatars with initials and a stable colour, names given to contacts, the verified
badge in the chat header, and the full date and time when hovering a message."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from client.gui.avatars import AVATAR_COLOURS, avatar, colour_of, initials
from client.gui.chat_window import ChatWindow
from tests.gui.test_contrast import contrast


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def test_initials_and_colours_are_stable_and_readable(qapp):
    assert initials("alice") == "AL"
    assert initials("Alice Martin") == "AM"
    assert initials("bob.smith") == "BS"
    assert initials("x") == "X"
    assert initials("") == "?"
    # The same colour for a name in every run (a CRC, not Python's per-process hash).
    assert (colour_of("alice"), colour_of("bob")) == ("#2e7d32", "#00695c")
    assert colour_of("alice") == colour_of("Alice ")
    assert len({colour_of(n) for n in ["alice", "bob", "carol", "dave", "erin", "frank"]}) >= 3
    assert all(contrast("#ffffff", c) >= 4.5 for c in AVATAR_COLOURS)
    assert avatar("alice", 32).size().width() == 32


def test_header_names_badge_and_thread_list(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "hi"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    assert window.identity.name.text() == "<b>bob</b>"
    assert not window.identity.badge.isVisible()
    assert not window.threads.item(0).icon().isNull()

    panel = window.show_contact()
    qtbot.mouseClick(panel.verify, Qt.MouseButton.LeftButton)
    assert alice.is_verified("bob")
    assert window.identity.badge.isVisible()
    qtbot.mouseClick(panel.verify, Qt.MouseButton.LeftButton)
    assert not window.identity.badge.isVisible()
    qtbot.mouseClick(panel.verify, Qt.MouseButton.LeftButton)

    qtbot.mouseClick(window.identity.rename, Qt.MouseButton.LeftButton)
    window.identity.editor.clear()
    qtbot.keyClicks(window.identity.editor, "Bob   Martin")
    qtbot.keyClick(window.identity.editor, Qt.Key.Key_Return)
    assert window.identity.name.text().startswith("<b>Bob Martin</b>")
    assert "@bob" in window.identity.name.text()
    assert window.threads.item(0).text().startswith("Bob Martin")

    # Kept across a restart, with the verified badge.
    window.close()
    again = harness.reopen(alice)
    reopened = open_window(qtbot, again)
    reopened.open_conversation("bob")
    assert reopened.identity.name.text().startswith("<b>Bob Martin</b>")
    assert reopened.identity.badge.isVisible()


def test_hovering_a_message_shows_its_full_date_and_time(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "what time is it?"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.waitUntil(lambda: window.view.visualRect(window.model.index(0)).height() > 0)
    centre = window.view.visualRect(window.model.index(0)).center()
    global_pos = window.view.viewport().mapToGlobal(centre)
    QApplication.sendEvent(
        window.view.viewport(), QHelpEvent(QEvent.Type.ToolTip, centre, global_pos)
    )
    message = alice.messages("bob")[0]
    expected = time.strftime("%A %d %B %Y, %H:%M:%S", time.localtime(message.server_ts / 1_000_000))
    qtbot.waitUntil(lambda: expected in QToolTip.text(), timeout=5_000)
