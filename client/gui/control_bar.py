"""The chat window's controls around the conversation: the header's disappearing-messages timer
and "Delete conversation", the bar above the composer while replying, and jumping to a quoted
message (loading older pages of the conversation until it is there).

Built once by the chat window (:class:`ConversationControls`), which calls it when a conversation
opens, a message is sent, or a bubble is clicked.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QModelIndex
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
    QPushButton,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.events import StoredMessage, TimerChanged
from client.gui.control_actions import TimerChoice
from client.gui.conversation_model import ConversationModel

JUMP_PAGES = 50  # pages loaded at most looking for a quoted message


class ConversationControls:
    def __init__(self, client: AriadneClient, view: QListView) -> None:
        self._client = client
        self._view = view
        self.model: ConversationModel | None = None
        self.timer = TimerChoice(client)
        self.timer.setEnabled(False)
        self.delete_action = QAction("Delete conversation…", view)
        self.delete_action.setEnabled(False)
        self.delete_action.triggered.connect(self.ask_to_delete)
        self.confirm: QMessageBox | None = None  # "Delete this conversation?" while asked
        self.reply_to: StoredMessage | None = None
        self.reply_bar = QWidget()
        row = QHBoxLayout(self.reply_bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.reply_label = QLabel("")
        self.reply_label.setWordWrap(True)
        cancel = QPushButton("✕")
        cancel.setToolTip("Do not reply")
        cancel.clicked.connect(self.cancel_reply)
        row.addWidget(self.reply_label, 1)
        row.addWidget(cancel)
        self.reply_bar.setVisible(False)
        self.jumping: asyncio.Future[None] | None = None  # loading pages to reach a quote

    def show_conversation(self, model: ConversationModel) -> None:
        self.model = model
        self.timer.show_thread(model.thread)
        self.delete_action.setEnabled(True)
        self.cancel_reply()

    def on_timer(self, event: TimerChanged) -> None:
        if self.model is not None and event.thread == self.model.thread:
            self.timer.show_seconds(event.seconds)

    # ---------------------------------------------------------------- replies

    def start_reply(self, message: StoredMessage) -> None:
        self.reply_to = message
        self.reply_label.setText(f"Replying to {message.sender_user}: {message.body[:80]}")
        self.reply_bar.setVisible(True)

    def cancel_reply(self) -> None:
        self.reply_to = None
        self.reply_bar.setVisible(False)

    def take_reply(self) -> bytes | None:
        """The message the next send quotes (once)."""
        target = self.reply_to.message_id if self.reply_to else None
        self.cancel_reply()
        return target

    def jump_to_quote(self, index: QModelIndex) -> bool:
        """A click on a reply's bubble shows the message it quotes, loading older pages of the
        conversation as needed — from this device, then from the mailbox; False if the click
        was not on a reply."""
        model = self.model
        if model is None or not index.isValid():
            return False
        quoted = self._client.controls.quote(model.message_at(index.row()).message_id)
        if quoted is None:
            return False
        original = quoted[0]
        if not self.jump_to(original) and self._client.has_older(model.thread):
            self.jumping = asyncio.ensure_future(self._from_mailbox(model, original))
        return True

    def jump_to(self, original: bytes) -> bool:
        """Scroll to ``original`` if this device holds it, reading older pages into the view."""
        model = self.model
        if model is None:
            return False
        for _page in range(JUMP_PAGES):
            row = model.row_of(original)
            if row is not None:
                self._view.scrollTo(model.index(row), QListView.ScrollHint.PositionAtCenter)
                self._view.setCurrentIndex(model.index(row))
                return True
            if not model.can_fetch_older() or not model.fetch_older():
                break
        return False

    async def _from_mailbox(self, model: ConversationModel, original: bytes) -> None:
        thread = model.thread
        for _page in range(JUMP_PAGES):
            if self._client.message(original) is not None or not self._client.has_older(thread):
                break
            await self._client.load_older(thread)
        if model is self.model:
            model.older_available()
            self.jump_to(original)

    # ---------------------------------------------------------------- the conversation

    def ask_to_delete(self) -> None:
        if self.model is None:
            return
        thread = self.model.thread
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete conversation",
            f"Delete your conversation with {thread} from all your devices?\n"
            f"{thread} keeps their copy.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self._view.window(),
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.accepted.connect(lambda: self.delete_conversation(thread))
        self.confirm = box
        box.open()

    def delete_conversation(self, thread: str) -> None:
        self._client.controls.delete_conversation(thread)
