"""The open conversation's header: the contact's avatar, their display name (the one they chose,
or one this user gave them) with their username beside it, a "Verified" badge once their safety
number was marked verified, and a pencil to rename them (on this device only). And the field
where this user sets the name their contacts see."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from client.core.client import AriadneClient
from client.core.groups import is_group_thread
from client.gui.avatars import avatar

AVATAR_SIZE = 36


class ChatHeader(QWidget):
    renamed = Signal(str)  # the username whose name changed

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.peer: str | None = None
        self.picture = QLabel()
        self.picture.setFixedSize(AVATAR_SIZE, AVATAR_SIZE)
        self.name = QLabel("No conversation open")
        self.name.setObjectName("header")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.badge = QLabel("✓ Verified")
        self.badge.setObjectName("verified")
        self.badge.setToolTip("You compared this contact's safety number and marked it verified.")
        self.badge.setVisible(False)
        self.rename = QToolButton(text="✎", toolTip="Rename this contact (on this device only)")
        self.rename.setObjectName("bar")  # a glyph button, as ⋮ and ⚙
        self.rename.setAccessibleName("Rename contact")
        self.rename.setVisible(False)
        self.rename.clicked.connect(self.start_rename)
        self.editor = QLineEdit(placeholderText="Name for this contact")
        self.editor.setVisible(False)
        self.editor.editingFinished.connect(self.finish_rename)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture)
        layout.addWidget(self.name)
        layout.addWidget(self.editor)
        layout.addWidget(self.rename)
        layout.addWidget(self.badge)
        layout.addStretch(1)

    def show_peer(self, peer: str) -> None:
        self.peer = peer
        self.refresh()

    def refresh(self) -> None:
        peer = self.peer
        if peer is None:
            return
        shown = self.client.conversations.display_name(peer)
        self.picture.setPixmap(avatar(shown, AVATAR_SIZE, peer))
        suffix = f"  <span style='font-weight: normal'>@{peer}</span>" if shown != peer else ""
        group = self.client.groups.state(peer) if is_group_thread(peer) else None
        if is_group_thread(peer):  # a group: its name and how many are in it
            count = f"{len(group.members)} members" if group is not None else "members unknown"
            suffix = f"  <span style='font-weight: normal'>· {count}</span>"
        self.name.setText(f"<b>{shown}</b>{suffix}")
        self.name.setToolTip(
            f"{shown} (group chat)" if is_group_thread(peer) else f"{shown}, username: {peer}"
        )
        self.badge.setVisible(not is_group_thread(peer) and self.client.is_verified(peer))
        self.rename.setVisible(not is_group_thread(peer))  # an admin renames a group, for all

    def start_rename(self) -> None:
        if self.peer is None:
            return
        self.editor.setText(self.client.conversations.display_name(self.peer))
        self.name.setVisible(False)
        self.editor.setVisible(True)
        self.editor.setFocus()
        self.editor.selectAll()

    def finish_rename(self) -> None:
        if self.peer is None or not self.editor.isVisible():
            return
        self.client.conversations.set_display_name(self.peer, self.editor.text())
        self.editor.setVisible(False)
        self.name.setVisible(True)
        self.refresh()
        self.renamed.emit(self.peer)


class OwnNameField(QLineEdit):
    """This user's display name: sent end to end to their contacts and other devices."""

    def __init__(self, client: AriadneClient) -> None:
        super().__init__(client.conversations.own_name)
        self.client = client
        self.setPlaceholderText("Your name")
        self.setToolTip(
            "The name your contacts see beside your username. It travels encrypted, like a "
            "message: the relay never sees it."
        )
        self.setAccessibleName("Your display name")
        self.editingFinished.connect(self._save)
        self.setCursorPosition(0)  # a narrow field shows the name's start, not its end

    def _save(self) -> None:
        if self.text().strip() != self.client.conversations.own_name:
            self.client.conversations.set_own_name(self.text())
            self.setText(self.client.conversations.own_name)
            self.setCursorPosition(0)
