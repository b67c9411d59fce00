"""Who is at the other end: the safety number to compare (digits and QR code) and the devices on
a user's verified device list. The same panel lists one's own devices, this one marked."""

from __future__ import annotations

import time

import segno
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QListWidget, QVBoxLayout, QWidget

from client.core.client import AriadneClient


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
            mono = QFont("monospace")
            mono.setStyleHint(QFont.StyleHint.Monospace)
            mono.setPointSizeF(mono.pointSizeF() * 1.3)
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
        layout.addWidget(QLabel(f"<b>{peer}'s devices</b>"))
        self.devices = QListWidget()
        self.devices.addItems(_device_rows(client, peer))
        layout.addWidget(self.devices)


class OwnDevicesPanel(QWidget):
    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.setWindowTitle(f"{client.username} — my devices")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Devices that can read your conversations</b>"))
        self.devices = QListWidget()
        self.devices.addItems(_device_rows(client, client.username))
        layout.addWidget(self.devices)
