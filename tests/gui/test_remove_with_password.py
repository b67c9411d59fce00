"""Removing a device from the devices panel, with a new account password in the same step: the
device is removed, and a device that logged in with the old password is forgotten with it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox

from client.core.client import AriadneClient, RegistrationError
from client.gui.chat_window import ChatWindow
from tests.conftest import PASSWORD


def test_remove_a_device_and_change_the_password_in_one_step(qtbot, harness):
    alice = harness.account("alice")
    laptop = harness.second_device(alice, "Laptop")
    stranger = harness.run(
        AriadneClient.add_device(harness.root / "stranger", harness.url, "alice", PASSWORD, "X")
    )
    harness.clients.append(stranger)
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    panel = desktop.show_own_devices()
    qtbot.addWidget(panel)

    panel.ask_remove(laptop.device_id, "Laptop", confirm=False, new_password="short")
    qtbot.waitUntil(lambda: "8 to 256 characters" in panel.status.text(), timeout=10_000)
    assert laptop.device_id in alice.own_devices().device_ids  # a refused password removes nothing

    panel.ask_remove(laptop.device_id, "Laptop", confirm=False, new_password="a new password")
    qtbot.waitUntil(lambda: laptop.removed, timeout=15_000)
    qtbot.waitUntil(lambda: "password changed" in panel.status.text(), timeout=10_000)
    qtbot.waitUntil(lambda: harness.relay.store.device(stranger.device_id) is None, timeout=10_000)
    with pytest.raises(RegistrationError):
        harness.run(
            AriadneClient.add_device(harness.root / "old", harness.url, "alice", PASSWORD, "Y")
        )


def test_the_remove_confirmation_has_the_password_field(qtbot, harness):
    alice = harness.account("alice")
    laptop = harness.second_device(alice, "Laptop")
    stranger = harness.run(
        AriadneClient.add_device(harness.root / "stranger", harness.url, "alice", PASSWORD, "X")
    )
    harness.clients.append(stranger)
    desktop = ChatWindow(alice)
    qtbot.addWidget(desktop)
    panel = desktop.show_own_devices()
    qtbot.addWidget(panel)
    seen: list[tuple[list[QLineEdit.EchoMode], list[str]]] = []

    def answer() -> None:  # the user, in the modal confirmation (always answered: no hang)
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        fields = box.findChildren(QLineEdit)
        labels = [label.text() for label in box.findChildren(QLabel)]
        seen.append(([field.echoMode() for field in fields], labels))
        for field in fields:
            field.setText("typed in the dialog")
        box.button(QMessageBox.StandardButton.Ok).click()

    QTimer.singleShot(0, answer)
    panel.ask_remove(laptop.device_id, "Laptop")
    ((modes, labels),) = seen
    assert modes == [QLineEdit.EchoMode.Password]
    assert any("change the account password" in text for text in labels)
    qtbot.waitUntil(lambda: laptop.removed, timeout=15_000)
    qtbot.waitUntil(lambda: harness.relay.store.device(stranger.device_id) is None, timeout=10_000)
