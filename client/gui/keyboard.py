"""The main window's keyboard: Ctrl+K jumps to a chat (the chat field filters the list as one
types; Enter opens the one left, or starts a chat with that username), Ctrl+F searches the
history, Esc closes what is open over the conversation (search, a panel) and returns to the
composer. Tab leaves the composer (see ``Composer``); Enter sends and Shift+Enter adds a line.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLineEdit, QListWidget, QWidget

from client.core.client import AriadneClient

THREAD_ROLE = Qt.ItemDataRole.UserRole + 1

SHORTCUTS = {
    "Ctrl+K": "Jump to a chat",
    "Ctrl+F": "Search messages",
    "Esc": "Close search or a panel",
    "Enter": "Send",
    "Shift+Enter": "New line",
    "Tab / Shift+Tab": "Move between the list, the conversation and the composer",
    "Menu or Shift+F10": "The message's menu",
}


class KeyboardHost(Protocol):
    def jump_to_chat(self) -> None: ...

    def open_search(self) -> None: ...

    def close_panels(self) -> None: ...


def install_shortcuts(window: QWidget, host: KeyboardHost) -> list[QShortcut]:
    made = []
    for keys, action in (
        ("Ctrl+K", host.jump_to_chat),
        ("Ctrl+F", host.open_search),
        ("Esc", host.close_panels),
    ):
        shortcut = QShortcut(QKeySequence(keys), window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(action)
        made.append(shortcut)
    return made


def filter_threads(threads: QListWidget, client: AriadneClient, text: str) -> list[str]:
    """Show only the chats whose username or given name contains ``text``; returns them."""
    wanted = text.strip().lower()
    shown = []
    for row in range(threads.count()):
        item = threads.item(row)
        thread = item.data(THREAD_ROLE)
        name = client.conversations.display_name(thread).lower()
        match = not wanted or wanted in thread or wanted in name
        item.setHidden(not match)
        if match:
            shown.append(thread)
    return shown


def focus_field(field: QLineEdit) -> None:
    field.setFocus(Qt.FocusReason.ShortcutFocusReason)
    field.selectAll()
