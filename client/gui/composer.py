"""Where a message is written: Enter sends, Shift+Enter starts a new line, Tab leaves.

Nothing typed is lost here. Sending clears the composer only once the text was taken (the
window's ``send`` answers whether it was); a message over the length limit is never sent nor
cleared: a counter appears as the text nears the limit, and past it the composer offers to send
the text as several messages, split at line or word ends. A long paste goes in whole, the same
way. The window keeps each conversation's draft (see ``ChatWindow.open_thread``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QWidget

from client.gui.style import chat_colours
from shared.envelope import MAX_TEXT

# The counter shows from this share of the limit on: far enough ahead to be a warning.
COUNTER_FROM = 0.9


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut after a line end or a space when
    there is one in the part's second half (words stay whole), else exactly at the limit."""
    parts = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n"), window.rfind(" "))
        cut = cut + 1 if cut >= limit // 2 else limit
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        parts.append(rest)
    return [p for p in parts if p.strip()]


class Composer(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line; Tab and Shift+Tab move the focus on."""

    submitted = Signal(str)

    def __init__(self, placeholderText: str = "") -> None:
        super().__init__(placeholderText=placeholderText)
        self.setTabChangesFocus(True)
        self.limit = MAX_TEXT

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            text = self.toPlainText()
            if text.strip():
                self.submitted.emit(text)  # the window clears what it took
            return
        super().keyPressEvent(event)


class LengthCounter(QWidget):
    """Under the composer: how many characters are left near the limit, and past it why the
    text is not sent and a button that sends it as several messages."""

    split_requested = Signal(list)  # the parts to send, in order

    def __init__(self, composer: Composer) -> None:
        super().__init__()
        self.composer = composer
        self.label = QLabel("")
        self.label.setObjectName("counter")
        self.split_button = QPushButton("")
        self.split_button.clicked.connect(self._split)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.split_button)
        composer.textChanged.connect(self.update_count)
        self.update_count()

    @property
    def over(self) -> int:
        """How many characters the text is over the limit (0 if it fits)."""
        return max(0, len(self.composer.toPlainText()) - self.composer.limit)

    def update_count(self) -> None:
        length, limit = len(self.composer.toPlainText()), self.composer.limit
        near = length >= limit * COUNTER_FROM
        self.setVisible(near)
        over = self.over
        if over:
            parts = len(split_text(self.composer.toPlainText(), limit))
            self.label.setText(
                f"{length:,} / {limit:,} characters: {over:,} too many for one message."
                " Shorten it, or send it in parts."
            )
            dark = self.palette().color(QPalette.ColorRole.Window).lightness() < 128
            self.label.setStyleSheet(f"color: {chat_colours(dark).error}; font-weight: bold;")
            self.split_button.setText(f"Send as {parts} messages")
        else:
            self.label.setText(f"{length:,} / {limit:,} characters")
            self.label.setStyleSheet("")
        self.split_button.setVisible(bool(over))

    def _split(self) -> None:
        self.split_requested.emit(split_text(self.composer.toPlainText(), self.composer.limit))
