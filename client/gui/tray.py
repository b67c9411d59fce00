"""New messages while the window is not in front: a desktop notification, and the unread count
in the window title and the tray icon's tooltip.

A notification says who wrote, not what: its text would otherwise sit in the desktop's
notification history and logs, outside the encrypted profile. The user's "notifications" choice
turns the pop-ups off (quiet: the unread count still shows). Without a system tray (some desktops,
the offscreen platform) the window asks for attention in the taskbar instead. The tray icon
brings the window to the front; closing the window still ends the device (one rule: a device
runs while its window is open).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QSystemTrayIcon

from client.core.client import AriadneClient
from client.core.events import StoredMessage
from client.gui.bridge import CoreBridge


def unread_total(client: AriadneClient) -> int:
    return sum(client.unread_count(thread) for thread in client.threads())


class Notifier(QObject):
    """Watches one window's device for new messages; ``notified(title, text)`` is each
    notification shown."""

    notified = Signal(str, str)

    def __init__(self, window: QMainWindow, client: AriadneClient, bridge: CoreBridge) -> None:
        super().__init__(window)
        self.window = window
        self.client = client
        self.title = window.windowTitle()
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(QApplication.windowIcon(), self)
            self.tray.activated.connect(lambda _reason: self.bring_to_front())
            self.tray.messageClicked.connect(self.bring_to_front)
            self.tray.show()
            self.notified.connect(
                lambda title, text: self.tray.showMessage(title, text)  # type: ignore[union-attr]
            )
        bridge.message_added.connect(self._on_message)
        bridge.delivery_updated.connect(lambda _event: self.show_count())
        self.show_count()

    def _on_message(self, message: StoredMessage) -> None:
        self.show_count()
        if message.system or message.sender_user == self.client.username:
            return
        if self.window.isActiveWindow() and not self.window.isMinimized():
            return
        if not self.client.preferences.notifications:
            return  # quiet: the count in the title says it
        self.notified.emit(f"Ariadne — {message.sender_user}", "New message")
        if self.tray is None:
            QApplication.alert(self.window)

    def show_count(self) -> None:
        """The unread count after the title (not before: the title still starts the same)."""
        unread = unread_total(self.client) if not self.client.closed else 0
        suffix = f" · {unread} unread" if unread else ""
        self.window.setWindowTitle(self.title + suffix)
        if self.tray is not None:
            self.tray.setToolTip(self.title + suffix)

    def bring_to_front(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()
        QGuiApplication.sync()
