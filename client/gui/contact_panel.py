"""Who is at the other end: the safety number to compare (digits and QR code) and the devices on
a user's verified device list. The same panel lists one's own devices, this one marked."""

from __future__ import annotations

import asyncio
import time

import segno
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from client.core.client import AriadneClient
from client.gui.style import code_font


class QrCode(QWidget):
    def __init__(self, data: str) -> None:
        super().__init__()
        self.matrix = [list(row) for row in segno.make(data, error="m").matrix]
        self.setFixedSize(QSize(180, 180))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("white"))
        quiet = 2
        cells = len(self.matrix) + 2 * quiet
        size = min(self.width(), self.height()) / cells
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("black"))
        for y, row in enumerate(self.matrix):
            for x, dark in enumerate(row):
                if dark:
                    painter.drawRect(
                        int((x + quiet) * size),
                        int((y + quiet) * size),
                        int(size + 1),
                        int(size + 1),
                    )


def _device_rows(client: AriadneClient, username: str) -> list[str]:
    devices = client.directory.known(username)
    if devices is None:
        return []
    rows = []
    for entry in devices.devices:
        added = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.added_at))
        mark = "  — this device" if entry.device_id == client.device_id else ""
        rows.append(f"{entry.name}  ·  {entry.device_id}  ·  added {added}{mark}")
    return rows


class ContactPanel(QWidget):
    def __init__(self, client: AriadneClient, peer: str) -> None:
        super().__init__()
        self.client = client
        self.peer = peer
        self.setWindowTitle(f"{peer} — safety number and devices")
        layout = QVBoxLayout(self)
        number = client.safety_number(peer)
        layout.addWidget(QLabel(f"<b>Safety number with {peer}</b>"))
        if number is None:
            layout.addWidget(QLabel("Not available until a message has been exchanged."))
            self.groups: list[str] = []
        else:
            self.groups = [number[i : i + 5] for i in range(0, 60, 5)]
            grid = QGridLayout()
            mono = code_font(1.3)
            for i, group in enumerate(self.groups):
                label = QLabel(group)
                label.setFont(mono)
                grid.addWidget(label, i // 4, i % 4)
            layout.addLayout(grid)
            layout.addWidget(QrCode(number), alignment=Qt.AlignmentFlag.AlignHCenter)
            hint = QLabel(
                f"Compare these digits with {peer}'s screen, or scan the code. They "
                "change only if an account key changes, never when a device is added."
            )
            hint.setWordWrap(True)
            layout.addWidget(hint)
            self.verify = QPushButton()
            self.verify.setCheckable(True)
            self.verify.setChecked(client.is_verified(peer))
            self.verify.toggled.connect(lambda on: self._set_verified(on))
            layout.addWidget(self.verify, alignment=Qt.AlignmentFlag.AlignHCenter)
            self._set_verified(client.is_verified(peer))
        layout.addWidget(QLabel(f"<b>{peer}'s devices</b>"))
        self.devices = QListWidget()
        self.devices.addItems(_device_rows(client, peer))
        layout.addWidget(self.devices)

    def _set_verified(self, on: bool) -> None:
        self.client.mark_verified(self.peer, on)
        self.verify.setText("Verified ✓ (click to clear)" if on else "Mark as verified")


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "never"


def link_steps(client: AriadneClient) -> str:
    """How to add a computer to this account, step by step (approving happens here)."""
    return (
        "<ol style='margin-left: -20px'>"
        "<li>On the new computer, install Ariadne and start it: <code>ariadne</code>.</li>"
        f"<li>Choose <b>Log in on this device</b> with the username <b>{client.username}</b>, "
        f"your account password and the relay address <code>{client.relay_url}</code>.</li>"
        "<li>A request then opens here, in this window, with a code. Approve it only if the "
        "new computer shows the same code.</li>"
        "<li>On the new computer, enter your recovery code to bring your history over (or "
        "skip it: it then receives new messages only).</li></ol>"
    )


class OwnDevicesPanel(QWidget):
    """Each device of the account: name, when added, when last seen (the relay's record), and
    Remove. Removing asks first, and offers a new recovery code and a new account password."""

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.setWindowTitle(f"{client.username} — my devices")
        self.resize(560, 320)
        self.rows = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Devices that can read your conversations</b>"))
        layout.addLayout(self.rows)
        self.link_button = QPushButton("Link a new device…")
        self.link_button.clicked.connect(lambda: self.link_steps.setVisible(True))
        layout.addWidget(self.link_button)
        self.link_steps = QLabel(link_steps(client))
        self.link_steps.setWordWrap(True)
        self.link_steps.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.link_steps.setVisible(False)
        layout.addWidget(self.link_steps)
        layout.addStretch(1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.remove_buttons: dict[str, QPushButton] = {}
        self._tasks: set[asyncio.Future[object]] = set()
        self.refresh()

    def refresh(self) -> None:
        """Fill from the verified list at once, then add last-seen times from the relay."""
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.remove_buttons.clear()
        own = self.client.own_devices()
        for entry in own.devices if own else ():
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            label = QLabel(f"<b>{entry.name}</b><br>added {_when(entry.added_at)}")
            label.setObjectName(entry.device_id)
            label.setWordWrap(True)
            line.addWidget(label, 1)
            if entry.device_id == self.client.device_id:
                line.addWidget(QLabel("this device"))
            elif self.client.holds_account_key:
                remove = QPushButton("Remove")
                remove.clicked.connect(
                    lambda _=False, e=entry: self.ask_remove(e.device_id, e.name)
                )
                line.addWidget(remove)
                self.remove_buttons[entry.device_id] = remove
            self.rows.addWidget(row)
        self._run(self._last_seen())

    async def _last_seen(self) -> None:
        seen = {d.registration.device_id: d.last_seen for d in await self.client.devices()}
        for label in self.findChildren(QLabel):
            if label.objectName() in seen:
                label.setText(f"{label.text()} · last seen {_when(seen[label.objectName()])}")

    def ask_remove(
        self, device_id: str, name: str, confirm: bool = True, new_password: str = ""
    ) -> None:
        """Ask, then remove. The removed device may know the account password (it logged in
        with it), so the same question offers a new one, which ends every login made with it."""
        new_code = QCheckBox("Also make a new recovery code (the old one stops working)")
        if confirm:
            box = QMessageBox(self)
            box.setWindowTitle("Remove device")
            box.setText(
                f"Remove '{name}'? It will be signed out, and it will not be able to read "
                "anything written from now on — even with a copy of the relay's data."
            )
            box.setCheckBox(new_code)
            password = QLineEdit()
            password.setEchoMode(QLineEdit.EchoMode.Password)
            password.setPlaceholderText("new password (optional)")
            extra = QWidget()
            row = QVBoxLayout(extra)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(QLabel(f"Also change the account password ('{name}' may know it):"))
            row.addWidget(password)
            box.setStandardButtons(
                QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Ok
            )
            # The buttons say what they do (not OK): removing cannot be undone.
            box.button(QMessageBox.StandardButton.Ok).setText("Remove")
            box.button(QMessageBox.StandardButton.Cancel).setText("Cancel")
            grid = box.layout()
            assert isinstance(grid, QGridLayout)
            # Above OK / Cancel (the box puts its buttons in the last row): the buttons move down.
            buttons = box.findChild(QDialogButtonBox)
            row = grid.getItemPosition(grid.indexOf(buttons))[0]
            grid.removeWidget(buttons)
            grid.addWidget(extra, row, 0, 1, grid.columnCount())
            grid.addWidget(buttons, row + 1, 0, 1, grid.columnCount())
            if box.exec() != QMessageBox.StandardButton.Ok:
                return
            new_password = password.text()
        self.status.setText(f"Removing '{name}'…")
        self._run(self.remove(device_id, name, new_code.isChecked(), new_password or None))

    async def remove(
        self, device_id: str, name: str, new_code: bool = False, new_password: str | None = None
    ) -> None:
        if new_password is not None:
            # First, so that a password the relay refuses leaves the device where it was.
            await self.client.change_password(new_password)
        await self.client.remove_device(device_id)
        done = f"'{name}' was removed. What is written from now on uses new keys it never gets."
        if new_password is not None:
            done += " The password changed: every login made with the old one has ended."
        self.status.setText(done)
        self.refresh()
        if new_code:
            from client.gui.panels import show_beside
            from client.gui.recovery_dialog import RecoveryCodeDialog

            self.code_dialog = RecoveryCodeDialog(self.client)
            show_beside(self, self.code_dialog)

    def _run(self, coroutine) -> None:  # type: ignore[no-untyped-def]
        future = asyncio.ensure_future(coroutine)
        self._tasks.add(future)

        def done(f: asyncio.Future[object]) -> None:
            self._tasks.discard(f)
            # The panel may have been closed (and its widgets deleted) while this ran.
            if not f.cancelled() and f.exception() is not None and isValid(self.status):
                self.status.setText(f"That did not work: {f.exception()}")

        future.add_done_callback(done)
