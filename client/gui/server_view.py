"""The "server view": exactly what the relay holds and has seen of one conversation.

Fetched from the relay itself (an ``Inspect`` request), so an audience can check that the server
never holds plaintext: device ids, sizes, times, whether an envelope is still queued, and the
last bytes of each envelope as the relay stores them.
"""

from __future__ import annotations

import asyncio
import time

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.link import Offline, RelayError

COLUMNS = [
    "relay time",
    "from",
    "to",
    "bytes",
    "state",
    "what the relay holds: last 48 bytes (hex)",
]


class ServerView(QWidget):
    def __init__(self, client: AriadneClient, peer: str) -> None:
        super().__init__()
        self.client = client
        self.peer = peer
        self.setWindowTitle(f"What the relay sees — {client.username} ↔ {peer}")
        self.resize(900, 420)
        self.summary = QLabel("Asking the relay…")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(
            len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch
        )
        self.table.verticalHeader().setVisible(False)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(refresh)
        self.loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.refresh()

    def refresh(self) -> None:
        self.loaded.clear()
        self._task = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        try:
            seen = await self.client.inspect(self.peer)
        except (Offline, RelayError) as exc:
            self.summary.setText(f"The relay could not be asked: {exc or 'offline'}")
            self.loaded.set()
            return
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.table.setRowCount(len(seen))
        for row, envelope in enumerate(reversed(seen)):
            when = time.strftime("%H:%M:%S", time.localtime(envelope.server_ts / 1e6))
            cells = [
                f"{when}.{envelope.server_ts % 1_000_000 // 1000:03d}",
                f"{envelope.sender_user} · {envelope.sender_device}",
                f"{envelope.recipient_user} · {envelope.device_id}",
                str(envelope.size),
                "queued" if envelope.queued else "delivered, deleted",
                "… " + envelope.excerpt.hex(" "),
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == len(cells) - 1:
                    item.setFont(mono)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.summary.setText(
            f"{len(seen)} envelopes between {self.client.username} and {self.peer}. The relay "
            "knows who, when, to which device and how big (padded) — the content is ciphertext."
        )
        self.loaded.set()

    def cell_texts(self) -> list[str]:
        return [
            self.table.item(r, c).text()
            for r in range(self.table.rowCount())
            for c in range(self.table.columnCount())
        ]
