"""Searching one's history (Ctrl+F): words typed here are looked up in the profile's full-text
index (SQLite FTS5, in the encrypted database; nothing leaves the device), newest first; choosing
a result opens its conversation at that message, loading the page around it. While it is open,
its results stand in the conversation list's place; ✕ or Esc brings the list back.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.events import StoredMessage
from client.gui.sidebar import tool_button

MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 2
RESULTS = 50


class SearchPanel(QWidget):
    jump_requested = Signal(object)  # the StoredMessage chosen
    closed = Signal()

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.field = QLineEdit(placeholderText="Search messages (Esc closes)")
        self.field.setClearButtonEnabled(True)
        self.field.textChanged.connect(lambda _text: self._timer.start())
        self.field.returnPressed.connect(self._choose_first)
        self.field.installEventFilter(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.results = QListWidget()
        self.results.setWordWrap(True)
        self.results.setSpacing(4)
        self.results.setAlternatingRowColors(True)
        self.results.itemActivated.connect(self._choose)
        self.results.itemClicked.connect(self._choose)
        self._timer = QTimer(self, singleShot=True, interval=120)
        self._timer.timeout.connect(self.search)
        self.close_button = tool_button("✕", "Close the search (Esc)", "Close the search")
        self.close_button.clicked.connect(self.close_search)
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.results, 1)

    def open(self) -> None:
        self.setVisible(True)
        self.field.setFocus()
        self.field.selectAll()

    def close_search(self) -> None:
        self.setVisible(False)
        self.closed.emit()

    def search(self) -> None:
        self._timer.stop()
        text = self.field.text()
        self.results.clear()
        if not text.strip():
            self.summary.setText("")
            return
        hits = self.client.conversations.search(text, RESULTS)
        if not hits:
            self.summary.setText(f"No messages with “{text.strip()}”.")
        elif len(hits) == RESULTS:
            self.summary.setText(f"The newest {RESULTS} matches — add a word to narrow them.")
        else:
            self.summary.setText(f"{len(hits)} match{'es' if len(hits) != 1 else ''}")
        for hit in hits:
            message = hit.message
            who = "You" if message.sender_user == self.client.username else message.sender_user
            peer = self.client.conversations.display_name(message.thread)
            when = time.strftime("%d %b %Y %H:%M", time.localtime(_seconds(message)))
            item = QListWidgetItem(f"{hit.snippet}\n{peer} · {who} · {when}")
            item.setToolTip(f"Open the conversation with {peer} at this message")
            item.setData(MESSAGE_ROLE, message)
            self.results.addItem(item)

    def _choose_first(self) -> None:
        self.search()
        if self.results.count():
            self._choose(self.results.item(0))

    def _choose(self, item: QListWidgetItem) -> None:
        self.jump_requested.emit(item.data(MESSAGE_ROLE))

    def eventFilter(self, watched: object, event: object) -> bool:
        """Down from the field goes into the results."""
        if (
            watched is self.field
            and isinstance(event, QKeyEvent)
            and event.type() == QKeyEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Down
            and self.results.count()
        ):
            self.results.setFocus()
            self.results.setCurrentRow(0)
            return True
        return False


def _seconds(message: StoredMessage) -> float:
    return message.server_ts / 1_000_000 if message.server_ts else message.sent_at / 1000
