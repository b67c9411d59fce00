"""A message's menu in a real window against a real relay: Copy, Info (exact times, each
recipient device's state) and Retry for a message that was not sent."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMenu

from client.core.events import MessageStatus
from client.gui.chat_window import ChatWindow
from client.gui.message_menu import MessageInfoPanel
from relay.handlers import HANDLERS
from relay.session import Reject
from shared import wire
from shared.wire import ErrorCode


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def entries(menu: QMenu) -> list[tuple[str, QAction]]:
    """A menu's actions by label; a submenu's read as "<its title> <label>" ("React 👍")."""
    found = []
    for action in menu.actions():
        submenu = action.menu()
        if submenu is None:
            found.append((action.text(), action))
        else:
            found += [(f"{action.text()} {label}", a) for label, a in entries(submenu)]
    return found


def labels(menu: QMenu) -> list[str]:
    return [label for label, _action in entries(menu)]


def trigger(menu: QMenu, label: str) -> None:
    dict(entries(menu))[label].trigger()


def test_copy_and_info_show_each_recipient_device(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.second_device(bob, "Laptop")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    window.send("Lunch at one?")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)

    qtbot.waitUntil(
        lambda: len(alice.conversations.info(window.model.message_at(0).message_id).receipts) == 2,
        timeout=15_000,
    )
    menu = window.message_menu(0)
    assert labels(menu)[:2] == ["Copy", "Info"]  # then the controls (tests/gui/test_controls.py)
    trigger(menu, "Copy")
    assert QGuiApplication.clipboard().text() == "Lunch at one?"

    trigger(window.message_menu(0), "Info")
    panel = window.panel
    assert isinstance(panel, MessageInfoPanel)
    rows = sorted(panel.device_rows)
    assert [r.split(":")[0] for r in rows] == ["bob (Desktop)", "bob (Laptop)"]
    assert all(": Delivered " in r for r in rows)
    # Exact times, to the second.
    texts = " ".join(label.text() for label in panel.findChildren(QLabel))
    assert texts.count(":") >= 4


def test_a_refused_send_says_why_in_its_bubble_and_a_click_sends_it_again(
    qtbot, harness, monkeypatch
):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)

    async def refuse(session, frame):
        raise Reject(ErrorCode.INTERNAL_ERROR, "relay words the user must not see")

    forward = HANDLERS[wire.Send]
    monkeypatch.setitem(HANDLERS, wire.Send, refuse)
    window.send("Are you there?")
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == 1
            and window.model.message_at(0).status is MessageStatus.FAILED
        ),
        timeout=10_000,
    )
    message = window.model.message_at(0)
    meta = window.view.itemDelegate()._lines(message)[1]
    assert "The relay failed to store it" in meta and "click to retry" in meta
    assert "relay words" not in meta
    assert "Retry sending" in labels(window.message_menu(0))
    trigger(window.message_menu(0), "Info")
    assert "The relay failed to store it" in " ".join(
        label.text() for label in window.panel.findChildren(QLabel)
    )

    monkeypatch.setitem(HANDLERS, wire.Send, forward)
    rect = window.view.visualRect(window.model.index(0))
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(
        lambda: window.model.message_at(0).status is MessageStatus.DELIVERED, timeout=10_000
    )
    assert alice.conversations.failure(message.message_id) is None
    assert [m.body for m in bob.messages("alice")] == ["Are you there?"]
    assert len(window.model.message_at(0).body) == len("Are you there?")


def test_the_menu_key_opens_the_menu_of_the_message_the_keyboard_is_on(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "first"))
    harness.run(bob.send_text("alice", "second"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 2, timeout=10_000)
    window = open_window(qtbot, alice)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.open_conversation("bob")
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Up)
    qtbot.keyClick(window.view, Qt.Key.Key_Up)
    assert window.view.currentIndex().row() == 0
    qtbot.keyClick(window.view, Qt.Key.Key_Menu)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=5_000)
    menu = QApplication.activePopupWidget()
    trigger(menu, "Copy")
    menu.close()
    assert QGuiApplication.clipboard().text() == "first"
    qtbot.keyClick(window.view, Qt.Key.Key_Down)
    qtbot.keyClick(window.view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=5_000)
    trigger(QApplication.activePopupWidget(), "Copy")
    assert QGuiApplication.clipboard().text() == "second"
