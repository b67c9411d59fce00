"""Group chats on screen: the "New group" dialog (a name and the members, picked from this user's
contacts or typed), and the member list panel, with the admin actions (add, remove, make admin,
rename) and leaving the group. Each shows the core's verified membership and what the core
refuses, in words; the changes themselves are made, signed and checked in the core."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.events import Event, GroupChanged, StoredMessage
from client.gui.avatars import avatar_icon
from client.gui.contact_panel import ContactPanel

USER_ROLE = Qt.ItemDataRole.UserRole + 1
AVATAR = 28


def sender_names(client: AriadneClient) -> Callable[[StoredMessage], str | None]:
    """The name above each bubble of a group: who sent it (not for one's own messages)."""

    def name(message: StoredMessage) -> str | None:
        if message.sender_user in ("", client.username) or message.system:
            return None
        if client.closed:  # a window laid out again after its device closed (a style change)
            return message.sender_user
        return client.conversations.display_name(message.sender_user)

    return name


def group_name(client: AriadneClient, thread: str) -> str:
    state = client.groups.state(thread)
    return state.name if state is not None else "Group"


class _Runs:
    """Runs one core call at a time for a widget and shows what went wrong in ``note``."""

    def __init__(self, note: QLabel) -> None:
        self.note = note
        self.pending: set[asyncio.Future[Any]] = set()

    def run(
        self, call: Coroutine[Any, Any, Any], done: Callable[[Any], None] = lambda _r: None
    ) -> None:
        self.note.setText("")
        future = asyncio.ensure_future(call)
        self.pending.add(future)

        def finished(f: asyncio.Future[Any]) -> None:
            self.pending.discard(f)
            if f.cancelled():
                return
            if f.exception() is not None:
                self.note.setText(f"That did not work: {f.exception()}")
                return
            done(f.result())

        future.add_done_callback(finished)


class NewGroupDialog(QDialog):
    """A name, and members ticked from the contacts or added by username."""

    created = Signal(str)  # the new group's thread

    def __init__(self, client: AriadneClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.setWindowTitle("New group")
        self.name = QLineEdit(placeholderText="Group name")
        self.name.setMaxLength(64)
        self.members = QListWidget()
        contacts = [t for t in client.threads() if not t.startswith("#") and t != client.username]
        for contact in contacts:
            self._add_contact(contact, checked=False)
        self.other = QLineEdit(placeholderText="Add someone else (username)")
        self.other.returnPressed.connect(self._add_other)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.create_button = QPushButton("Create group")
        # Not the dialog's default: Enter in the username field adds a member, it does not
        # create the group half-picked.
        self.create_button.setAutoDefault(False)
        self.create_button.clicked.connect(self.create)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>New group</b> — everyone in it reads every message"))
        layout.addWidget(self.name)
        layout.addWidget(QLabel("Members"))
        layout.addWidget(self.members)
        layout.addWidget(self.other)
        layout.addWidget(self.note)
        layout.addWidget(self.create_button)
        self._runs = _Runs(self.note)

    def _add_contact(self, username: str, checked: bool) -> None:
        item = QListWidgetItem(avatar_icon(username, AVATAR, username), username)
        item.setData(USER_ROLE, username)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.members.addItem(item)

    def _add_other(self) -> None:
        username = self.other.text().strip().lower()
        if not username or username == self.client.username or username in self.chosen_all():
            return
        self.other.clear()
        self._add_contact(username, checked=True)

    def chosen_all(self) -> list[str]:
        return [self.members.item(i).data(USER_ROLE) for i in range(self.members.count())]

    def chosen(self) -> list[str]:
        return [
            self.members.item(i).data(USER_ROLE)
            for i in range(self.members.count())
            if self.members.item(i).checkState() == Qt.CheckState.Checked
        ]

    def create(self) -> None:
        name, members = self.name.text().strip(), self.chosen()
        if not name:
            self.note.setText("Give the group a name.")
            return
        if not members:
            self.note.setText("Pick at least one member.")
            return
        self.create_button.setEnabled(False)

        def made(state: Any) -> None:
            self.created.emit(state.thread)
            self.accept()

        self._runs.run(self.client.groups.create(name, members), made)
        for future in self._runs.pending:
            future.add_done_callback(lambda _f: self.create_button.setEnabled(True))


class MemberPanel(QWidget):
    """The group's members (admins marked) as this device verified them; admins get the actions
    that change the group."""

    def __init__(self, client: AriadneClient, thread: str) -> None:
        super().__init__()
        self.client = client
        self.thread = thread
        self.setWindowTitle(f"Members — {group_name(client, thread)}")
        self.title = QLabel()
        self.members = QListWidget()
        self.members.setObjectName("members")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.add_field = QLineEdit(placeholderText="Add a member (username)")
        self.add_field.returnPressed.connect(self.add_member)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_member)
        self.remove_button = QPushButton("Remove from group")
        self.remove_button.clicked.connect(self.remove_selected)
        self.promote_button = QPushButton("Make admin")
        self.promote_button.clicked.connect(self.promote_selected)
        self.rename_field = QLineEdit(placeholderText="New group name")
        self.rename_field.returnPressed.connect(self.rename)
        self.leave_button = QPushButton("Leave group")
        self.leave_button.clicked.connect(self.leave)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_field, 1)
        add_row.addWidget(self.add_button)
        actions = QHBoxLayout()
        actions.addWidget(self.remove_button)
        actions.addWidget(self.promote_button)
        self.admin_tools = QWidget()
        admin_layout = QVBoxLayout(self.admin_tools)
        admin_layout.setContentsMargins(0, 0, 0, 0)
        admin_layout.addLayout(add_row)
        admin_layout.addLayout(actions)
        admin_layout.addWidget(self.rename_field)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.members)
        self.safety_button = QPushButton("Safety number")
        self.safety_button.setToolTip("Compare the selected member's safety number")
        self.safety_button.clicked.connect(self.show_safety_number)
        self.safety: QWidget | None = None
        layout.addWidget(self.safety_button)
        layout.addWidget(self.admin_tools)
        layout.addWidget(self.leave_button)
        layout.addWidget(self.note)
        self._runs = _Runs(self.note)
        self.members.currentItemChanged.connect(lambda *_: self._enable())
        client.add_listener(self._on_event)
        self.refresh()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, GroupChanged) and event.thread == self.thread:
            self.refresh()

    def closeEvent(self, event: Any) -> None:
        self.client.remove_listener(self._on_event)
        super().closeEvent(event)

    @property
    def is_admin(self) -> bool:
        state = self.client.groups.state(self.thread)
        return state is not None and self.client.username in state.admins

    def refresh(self) -> None:
        state = self.client.groups.state(self.thread)
        self.members.clear()
        if state is None:
            self.title.setText("This device does not hold the group's membership yet.")
            self.admin_tools.setVisible(False)
            self.leave_button.setVisible(False)
            return
        member = self.client.username in state.members
        self.title.setText(
            f"<b>{state.name}</b> — {len(state.members)} members"
            + ("" if member else " (you are no longer a member)")
        )
        for username in state.members:
            label = "You" if username == self.client.username else username
            if username in state.admins:
                label += "  · admin"
            item = QListWidgetItem(avatar_icon(username, AVATAR, username), label)
            item.setData(USER_ROLE, username)
            self.members.addItem(item)
        self.admin_tools.setVisible(self.is_admin)
        self.leave_button.setVisible(member)
        self._enable()

    def selected(self) -> str | None:
        item = self.members.currentItem()
        return item.data(USER_ROLE) if item is not None else None

    def _enable(self) -> None:
        state = self.client.groups.state(self.thread)
        chosen = self.selected()
        other = chosen is not None and chosen != self.client.username
        self.remove_button.setEnabled(other)
        self.safety_button.setEnabled(other)
        self.promote_button.setEnabled(other and state is not None and chosen not in state.admins)

    def show_safety_number(self) -> QWidget | None:
        """The selected member's safety number (their own one-to-one one: it is per account)."""
        chosen = self.selected()
        if chosen is None or chosen == self.client.username:
            return None
        if self.safety is not None:
            self.safety.close()
        self.safety = ContactPanel(self.client, chosen)
        self.safety.show()
        return self.safety

    def add_member(self) -> None:
        username = self.add_field.text().strip().lower()
        if username:
            self._runs.run(
                self.client.groups.add(self.thread, [username]),
                lambda _s: self.add_field.clear(),
            )

    def remove_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self._runs.run(self.client.groups.remove(self.thread, [chosen]))

    def promote_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self._runs.run(self.client.groups.promote(self.thread, [chosen]))

    def rename(self) -> None:
        name = self.rename_field.text().strip()
        if name:
            self._runs.run(
                self.client.groups.rename(self.thread, name),
                lambda _s: self.rename_field.clear(),
            )

    def leave(self) -> None:
        self._runs.run(self.client.groups.leave(self.thread))
