"""What the screens look like, as far as a test can tell: the dark look reaches every widget (not
only those the style sheet names), long system lines wrap, the remove confirmation's password
field sits above its buttons, and the approval screens say what state a request is in."""

from __future__ import annotations

import time

from PySide6.QtCore import QRect, QTimer
from PySide6.QtGui import QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QApplication,
    QLineEdit,
    QMessageBox,
    QStyleOptionViewItem,
    QWidget,
)

from client.core.events import MessageStatus, StoredMessage
from client.gui.bubbles import BubbleDelegate
from client.gui.chat_window import ChatWindow
from client.gui.conversation_model import MessageRole
from client.gui.pairing_dialog import ApprovalDialog
from client.gui.style import THEME_VARIABLE, apply_style, is_dark
from shared.envelope import new_message_id
from tests.gui.test_device_control import new_device


def test_the_dark_look_reaches_widgets_the_style_sheet_does_not_name(qapp, monkeypatch):
    monkeypatch.setenv(THEME_VARIABLE, "dark")
    assert is_dark()
    try:
        apply_style(qapp)
        panel = QWidget()  # a plain panel, as the devices panel is
        window = panel.palette().color(QPalette.ColorRole.Window)
        text = panel.palette().color(QPalette.ColorRole.WindowText)
        assert window.lightness() < 64 and text.lightness() > 192
    finally:
        apply_style(qapp, dark=False)
    monkeypatch.setenv(THEME_VARIABLE, "light")
    assert not is_dark()


def test_a_long_system_line_wraps_instead_of_being_cut(qapp):
    now = time.time_ns() // 1000
    line = (
        "the relay delivered bob's messages out of order; they are shown in the order bob sent them"
    )
    model = QStandardItemModel()
    for body in ("short", line):
        item = QStandardItem()
        message = StoredMessage(
            message_id=new_message_id(),
            thread="bob",
            sender_user="",
            sender_device="",
            sent_at=now // 1000,
            server_ts=now,
            body=body,
            status=MessageStatus.SYSTEM,
        )
        item.setData(message, MessageRole)
        model.appendRow(item)
    delegate = BubbleDelegate("alice")
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, 300, 40)
    option.font = qapp.font()
    # The first row is the day's label and a one-line system line; the second, the long line.
    first, second = (delegate.sizeHint(option, model.index(row, 0)).height() for row in (0, 1))
    assert second > first // 2 + 5  # more than one line


def test_the_password_field_sits_above_ok_and_cancel(qtbot, harness):
    alice = harness.account("alice")
    laptop = harness.second_device(alice, "Laptop")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    panel = desktop.show_own_devices()
    qtbot.addWidget(panel)
    places: list[tuple[int, int]] = []

    def look_then_cancel() -> None:  # always answered: no hang
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, look_then_cancel)
            return
        (field,) = box.findChildren(QLineEdit)
        ok = box.button(QMessageBox.StandardButton.Ok)
        places.append(
            (field.mapTo(box, field.rect().bottomLeft()).y(), ok.mapTo(box, ok.pos()).y())
        )
        box.button(QMessageBox.StandardButton.Cancel).click()

    QTimer.singleShot(0, look_then_cancel)
    panel.ask_remove(laptop.device_id, "Laptop")
    ((field_bottom, ok_top),) = places
    assert field_bottom < ok_top
    assert laptop.device_id in alice.own_devices().device_ids  # cancelled: nothing removed


def test_the_new_device_screen_grows_for_the_code_and_a_late_dialog_says_it_is_answered(
    qtbot, harness
):
    alice = harness.account("alice")
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    desktop.show()
    tablet, waiting = new_device(qtbot, harness, "Tablet")
    waiting.resize(560, 120)  # smaller than what is about to appear
    qtbot.waitUntil(lambda: tablet.device_id in desktop.approvals, timeout=10_000)
    approval = desktop.approvals[tablet.device_id]
    qtbot.addWidget(approval)
    qtbot.waitUntil(lambda: waiting.pairing_code.text() != "", timeout=10_000)
    layout = waiting.layout()
    assert waiting.height() >= layout.totalHeightForWidth(waiting.width())
    qtbot.waitUntil(lambda: approval.approve.isEnabled(), timeout=10_000)
    waiting.confirm.click()
    approval.approve.click()
    qtbot.waitUntil(lambda: tablet.is_member, timeout=15_000)

    late = ApprovalDialog(alice, tablet.device_id, "Tablet", approval.fingerprint, int(time.time()))
    qtbot.addWidget(late)
    late.show()
    late.resize(440, 100)
    qtbot.waitUntil(lambda: "already answered" in late.status.text(), timeout=10_000)
    assert late.height() >= late.layout().totalHeightForWidth(late.width())
    assert late.code.text() == "" and not late.approve.isEnabled()
