"""The main window's list of conversations: one entry per conversation with its avatar, name,
unread count, and its last message and time. A part of :class:`~client.gui.chat_window.ChatWindow`,
kept apart to keep each concern readable."""

from __future__ import annotations

from PySide6.QtWidgets import QListWidget, QListWidgetItem

from client.core.client import AriadneClient
from client.gui.avatars import avatar_icon
from client.gui.bubbles import clock
from client.gui.keyboard import THREAD_ROLE

THREAD_AVATAR = 32


class ThreadList:
    """Mixed into the chat window (which owns ``threads``)."""

    client: AriadneClient
    threads: QListWidget

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
