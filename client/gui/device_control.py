"""The main window's handling of this device's standing: a device asking to be approved (its
panel), this device removed from its account or unknown to the relay, a contact's changed safety
number (the banner above the conversation and its one button), deleting local data, and the
recovery code. A part of :class:`~client.gui.chat_window.ChatWindow`, kept apart to keep each
concern readable; it uses the window's widgets."""

from __future__ import annotations

import asyncio

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QWidget

from client.core.client import AriadneClient
from client.gui.conversation_model import ConversationModel
from client.gui.panels import PanelHost

UNKNOWN_TO_RELAY = (
    "The relay does not know this device — it may have lost its data. Everything on this "
    "device is kept; what you write waits here until the relay knows it again."
)


class DeviceControl:
    """Mixed into the chat window (which owns the widgets below)."""

    client: AriadneClient
    model: ConversationModel | None
    panels: PanelHost
    approvals: dict[str, QWidget]
    banner: QLabel
    banner_button: QPushButton
    rebuild_button: QPushButton
    rebuild_dialog: QWidget | None
    recovery_action: QAction
    composer: QPlainTextEdit
    connection: QLabel
    _pending: set[asyncio.Future[object]]

    def _on_pairing_request(self, event) -> None:  # type: ignore[no-untyped-def]
        from client.gui.pairing_dialog import ApprovalDialog

        open_dialog = self.approvals.get(event.device_id)
        if open_dialog is not None and open_dialog.isVisible():
            return
        dialog = ApprovalDialog(
            self.client, event.device_id, event.name, event.fingerprint, event.asked_at
        )
        self.approvals[event.device_id] = dialog
        # In this window's panel (not over the middle of the screen, where the new device's
        # own screen, with the code to compare, may be).
        self.panels.show_panel(dialog)

    def _banner_row(self) -> QHBoxLayout:
        """Above the conversation: what is wrong with this device or a contact, and the one
        thing to do about it (hidden while nothing is)."""
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel#banner { background: #fff3cd; color: #5c4400; padding: 8px;"
            " border-radius: 6px; }"
        )
        self.banner_button = QPushButton("")
        self.banner_button.clicked.connect(self._banner_action)
        banner_row = QHBoxLayout()
        banner_row.addWidget(self.banner, 1)
        banner_row.addWidget(self.banner_button)
        # Offered when the relay does not know this device (see rebuild_dialog).
        self.rebuild_button = QPushButton("Re-create the account…")
        self.rebuild_button.clicked.connect(self.show_rebuild)
        self.rebuild_dialog = None
        banner_row.addWidget(self.rebuild_button)
        self.banner.setVisible(False)
        self.banner_button.setVisible(False)
        self.rebuild_button.setVisible(False)
        return banner_row

    def _show_removed(self) -> None:
        self.banner.setText(
            f"This device was removed from {self.client.username}'s account. It receives "
            "nothing any more and cannot read anything written from now on."
        )
        self.banner_button.setText("Delete local data…")
        self.banner.setVisible(True)
        self.banner_button.setVisible(True)
        self.composer.setEnabled(False)
        self.composer.setPlaceholderText("This device was removed: it can no longer send")
        self.recovery_action.setEnabled(False)
        self.connection.setText("Device removed")

    def show_rebuild(self) -> QWidget:
        from client.gui.rebuild_dialog import RebuildDialog

        self.rebuild_dialog = RebuildDialog(self.client)
        self.rebuild_dialog.show()
        return self.rebuild_dialog

    def _update_banner(self) -> None:
        self.rebuild_button.setVisible(
            self.client.unknown_to_relay and self.client.holds_account_key
        )
        if self.client.removed:
            return
        if self.client.unknown_to_relay:
            # The relay's word alone: the device keeps everything and offers to try again.
            self.banner.setText(UNKNOWN_TO_RELAY)
            self.banner_button.setText("Retry")
            self.banner.setVisible(True)
            self.banner_button.setVisible(True)
            self.composer.setEnabled(self.model is not None)  # what is typed waits in the outbox
            return
        peer = self.model.thread if self.model is not None else None
        changed = peer is not None and self.client.key_changed(peer)
        if changed:
            self.banner.setText(
                f"{peer}'s safety number changed: their account key is new. Sending is paused "
                "until you acknowledge it — compare the new safety number first."
            )
            self.banner_button.setText("Acknowledge")
        self.banner.setVisible(changed)
        self.banner_button.setVisible(changed)
        self.composer.setEnabled(self.model is not None and not changed)

    def _banner_action(self) -> None:
        if self.client.removed:
            self.delete_local_data()
        elif self.client.unknown_to_relay:
            self.client.retry_connection()
        elif self.model is not None and self.client.key_changed(self.model.thread):
            self.client.acknowledge_key_change(self.model.thread)
            self.open_thread(self.model.thread)

    def delete_local_data(self, confirm: bool = True) -> None:
        from PySide6.QtWidgets import QMessageBox

        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete local data",
                "Delete every message and key this device holds? This cannot be undone.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        future = asyncio.ensure_future(self.client.delete_local_data())
        self._pending.add(future)
        future.add_done_callback(lambda _f: self.close())

    def show_recovery(self) -> QWidget:
        from client.gui.recovery_dialog import RecoveryCodeDialog

        return self._show_panel(RecoveryCodeDialog(self.client))
