"""The field above the chat list (Ctrl+K): typing filters the list; Enter opens the one chat left,
or starts a chat with the username typed — once the relay has confirmed that user exists (their
signed device list, which a first message needs anyway). An unknown or misspelt name, or a relay
that cannot be asked now, is said beside the field, and the text stays to be corrected.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QLineEdit, QListWidget, QVBoxLayout, QWidget

from client.core.client import AriadneClient
from client.core.conversation import UserCheckFailed
from client.gui.keyboard import filter_threads
from client.gui.style import ERROR_STYLE


class ChatFinder(QWidget):
    chosen = Signal(str)  # the username whose chat to open

    def __init__(self, client: AriadneClient, threads: QListWidget) -> None:
        super().__init__()
        self.client = client
        self.threads = threads
        self.field = QLineEdit(placeholderText="Find or start a chat")
        self.field.setToolTip(
            "Type a name to filter your chats, or a username and Enter to start one (Ctrl+K)"
        )
        self.field.returnPressed.connect(self.start)
        self.field.textChanged.connect(lambda text: filter_threads(threads, client, text))
        self.note = QLabel("")  # why a chat did not start
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        self._pending: set[asyncio.Future[bool]] = set()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.field)
        layout.addWidget(self.note)

    def start(self) -> None:
        username = self.field.text().strip().lower()
        if not username or username == self.client.username:
            self._say("That is you — type someone else's username." if username else "", True)
            return
        shown = filter_threads(self.threads, self.client, username)
        if username in shown or len(shown) == 1:
            self._open(username if username in shown else shown[0])
            return
        self._say(f"Looking for {username}…")
        future = asyncio.ensure_future(self.client.conversations.user_exists(username))
        self._pending.add(future)
        future.add_done_callback(lambda f: self._checked(username, f))

    def _checked(self, username: str, future: asyncio.Future[bool]) -> None:
        self._pending.discard(future)
        if future.cancelled() or self.field.text().strip().lower() != username:
            return  # the user typed on meanwhile
        failed = future.exception()
        if isinstance(failed, UserCheckFailed):
            self._say(f"Could not check {username} now ({failed}). Try again.", True)
        elif failed is not None:
            self._say(f"Could not check {username} now. Try again.", True)
        elif not future.result():
            self._say(f"There is no user “{username}” on this relay. Check the spelling.", True)
        else:
            self._open(username)

    def _open(self, username: str) -> None:
        self._say("")
        self.field.clear()
        self.chosen.emit(username)

    def _say(self, text: str, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet(ERROR_STYLE if error else "")
        self.note.setVisible(bool(text))
