"""The main window's left column and its list of conversations: one entry per conversation with
its avatar, name, unread count, and its last message and time. A part of
:class:`~client.gui.chat_window.ChatWindow`, kept apart to keep each concern readable."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from client.core.client import AriadneClient
from client.gui.avatars import avatar_icon
from client.gui.keyboard import THREAD_ROLE
from client.gui.new_chat import ChatFinder
from client.gui.search_panel import SearchPanel
from client.gui.sidebar import OwnBar, search_icon, tool_button
from client.gui.times import clock

THREAD_AVATAR = 32


class ThreadList:
    """Mixed into the chat window (which owns ``threads``, made here)."""

    client: AriadneClient
    threads: QListWidget

    def _left_column(self) -> tuple[QWidget, QVBoxLayout]:
        """The own bar, the field that finds a chat (and the search beside it), and the list of
        conversations, which search results replace while searching."""
        self.threads = QListWidget()
        self.threads.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.threads.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.threads.setMinimumWidth(170)
        self.threads.setIconSize(QSize(THREAD_AVATAR, THREAD_AVATAR))
        self.threads.currentItemChanged.connect(
            lambda item, _: self.open_thread(item.data(THREAD_ROLE) if item else "")
        )
        self.finder = ChatFinder(self.client, self.threads)
        self.finder.chosen.connect(self._chat_chosen)
        self.new_chat, self.new_chat_note = self.finder.field, self.finder.note
        self.search = SearchPanel(self.client)
        self.search.setVisible(False)
        self.search.jump_requested.connect(self.jump_to)
        self.search.closed.connect(lambda: self.threads.setVisible(True))
        self.own_bar = OwnBar(
            self.client,
            settings=self.show_settings,
            new_group=self.show_new_group,
            devices=self.show_own_devices,
            recovery=self.show_recovery,
        )
        self.own_name = self.own_bar.name
        self.recovery_action = self.own_bar.recovery_action
        self.recovery_action.setEnabled(self.client.holds_account_key)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 6, 6)
        left_layout.addWidget(self.own_bar)
        # Beside the field that finds a chat, the one button that searches every message.
        self.search_button = tool_button("", "Search your messages (Ctrl+F)", "Search messages")
        self.search_button.setIcon(search_icon())
        self.search_button.clicked.connect(self.open_search)
        find_row = QHBoxLayout()
        find_row.addWidget(self.finder, 1)
        find_row.addWidget(self.search_button, 0, Qt.AlignmentFlag.AlignTop)
        left_layout.addLayout(find_row)
        # While searching, the results take the conversations' place (as the list's filter).
        left_layout.addWidget(self.search, 1)
        left_layout.addWidget(self.threads, 1)
        return left, left_layout

    def _row_of_thread(self, thread: str) -> int:
        for row in range(self.threads.count()):
            if self.threads.item(row).data(THREAD_ROLE) == thread:
                return row
        return -1

    def _ensure_thread(self, thread: str) -> None:
        if self._row_of_thread(thread) < 0:
            item = QListWidgetItem()
            item.setData(THREAD_ROLE, thread)
            self.threads.addItem(item)
        self._refresh_thread(thread)

    def _refresh_thread(self, thread: str) -> None:
        """The list entry: name, unread count, last message and its time."""
        row = self._row_of_thread(thread)
        if row < 0:
            return
        unread = self.client.unread_count(thread)
        last = self.client.last_message(thread)
        name = self.client.conversations.display_name(thread)
        title = f"{name}  ({unread})" if unread else name
        if last is None:
            preview = "No messages yet"
        else:
            body = (
                "Couldn't decrypt"
                if last.undecryptable
                else (last.body.splitlines() or ["📎 Attachment"])[0]  # no caption
            )
            who = "You: " if last.sender_user == self.client.username else ""
            preview = f"{who}{body[:40]}  · {clock(last)}"
        item = self.threads.item(row)
        item.setIcon(avatar_icon(name, THREAD_AVATAR, thread))
        item.setText(f"{title}\n{preview}")
        font = item.font()
        font.setBold(bool(unread))
        item.setFont(font)
