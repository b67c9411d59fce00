"""Notifications for new messages when the window is not in front (who wrote, never what), the
unread count in the title, a quiet option; and the settings panel, whose choices apply at once
and are kept in the profile."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QApplication, QWidget

from client.core.preferences import Preferences, Theme
from client.gui.chat_window import ChatWindow
from client.gui.settings_panel import SettingsPanel, apply_preferences
from client.gui.style import DARK, LIGHT


def _window(qtbot, client) -> ChatWindow:  # type: ignore[no-untyped-def]
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def _elsewhere(qtbot) -> QWidget:  # type: ignore[no-untyped-def]
    """Another application's window in front."""
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow, timeout=5_000)
    return other


def test_a_message_to_a_window_behind_others_notifies_without_its_text(qtbot, harness, caplog):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = _window(qtbot, alice)
    notices: list[tuple[str, str]] = []
    window.notifier.notified.connect(lambda title, text: notices.append((title, text)))
    _elsewhere(qtbot)
    caplog.set_level(logging.DEBUG)
    harness.run(bob.send_text("alice", "the secret plan"))
    qtbot.waitUntil(lambda: notices != [], timeout=10_000)
    assert notices == [("Ariadne — bob", "New message")]
    assert window.windowTitle() == "Ariadne — alice (Desktop) · 1 unread"
    assert "the secret plan" not in caplog.text

    window.activateWindow()  # in front: no notification
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    harness.run(bob.send_text("alice", "again"))
    qtbot.waitUntil(lambda: alice.unread_count("bob") == 2, timeout=10_000)
    assert len(notices) == 1
    window.open_conversation("bob")  # read: the count goes
    qtbot.waitUntil(lambda: window.windowTitle() == "Ariadne — alice (Desktop)", timeout=10_000)


def test_quiet_shows_the_count_but_no_notification(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = _window(qtbot, alice)
    panel = window.show_settings()
    assert isinstance(panel, SettingsPanel) and panel.window() is window
    panel.notifications.setChecked(False)
    assert alice.preferences.notifications is False
    notices: list[str] = []
    window.notifier.notified.connect(lambda title, _text: notices.append(title))
    _elsewhere(qtbot)
    harness.run(bob.send_text("alice", "hello"))
    qtbot.waitUntil(lambda: window.windowTitle().endswith("· 1 unread"), timeout=10_000)
    assert notices == []


def test_settings_apply_at_once_and_are_kept_in_the_profile(qtbot, harness):
    alice = harness.account("alice")
    window = _window(qtbot, alice)
    app = QApplication.instance()
    default_size = app.font().pointSize()
    try:
        panel = window.show_settings()
        panel.theme.setCurrentIndex(panel.theme.findData(Theme.DARK))
        assert app.styleSheet() == DARK
        panel.theme.setCurrentIndex(panel.theme.findData(Theme.LIGHT))
        assert app.styleSheet() == LIGHT
        panel.font_size.setCurrentIndex(panel.font_size.findData(15))
        assert app.font().pointSize() == 15
        panel.read_receipts.setChecked(False)
        alice = harness.reopen(alice)
        assert alice.preferences == Preferences(
            theme=Theme.LIGHT, font_size=15, read_receipts=False
        )
        again = SettingsPanel(alice)  # shows what was chosen
        qtbot.addWidget(again)
        assert again.theme.currentData() == Theme.LIGHT and again.font_size.currentData() == 15
        assert not again.read_receipts.isChecked() and again.notifications.isChecked()
    finally:
        apply_preferences(Preferences())  # the look other tests expect
    assert app.font().pointSize() == default_size
