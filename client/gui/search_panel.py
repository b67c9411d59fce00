"""Searching one's history (Ctrl+F): words typed here are looked up in the profile's full-text
index (SQLite FTS5, in the encrypted database; nothing leaves the device), newest first; choosing
a result opens its conversation at that message, loading the page around it. While it is open,
its results stand in the conversation list's place; ✕ or Esc brings the list back.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QKeyEvent, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.events import StoredMessage
from client.core.store_chat import MATCH_END, MATCH_START
from client.gui.sidebar import tool_button

MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 2
HTML_ROLE = Qt.ItemDataRole.UserRole + 3  # the result as drawn: the matching words in bold
RESULTS = 50


def result_html(snippet: str, where: str) -> str:
    """The snippet (escaped: it is someone's message) with its matching words in bold, and
    where it is, on a second line."""
    marked = html.escape(snippet).replace(MATCH_START, "<b>").replace(MATCH_END, "</b>")
    return f"{marked}<br><small>{html.escape(where)}</small>"


class ResultDelegate(QStyledItemDelegate):
    """Draws a result's rich text, wrapped to the list's width, over the usual row."""

    def _document(self, option: QStyleOptionViewItem, index: QModelIndex) -> QTextDocument:
        document = QTextDocument()
        document.setDefaultFont(option.font)
        document.setHtml(index.data(HTML_ROLE))
        document.setTextWidth(max(option.rect.width(), 120))
        return document

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        self.initStyleOption(option, index)
        document = self._document(option, index)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        option.text = ""  # the row's background, selection and focus; the text is drawn below
        widget = option.widget
        widget.style().drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, widget)
        context = QAbstractTextDocumentLayout.PaintContext()
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        context.palette.setColor(QPalette.ColorRole.Text, option.palette.color(role))
        painter.save()
        painter.translate(option.rect.topLeft())
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        self.initStyleOption(option, index)
        document = self._document(option, index)
        return QSize(int(document.idealWidth()), int(document.size().height()))


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
        self.results.setItemDelegate(ResultDelegate(self.results))
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
            where = f"{peer} · {who} · {when}"
            plain = hit.snippet.replace(MATCH_START, "").replace(MATCH_END, "")
            item = QListWidgetItem(f"{plain}\n{where}")  # what a screen reader says
            item.setData(HTML_ROLE, result_html(hit.snippet, where))
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
