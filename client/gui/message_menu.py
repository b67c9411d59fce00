"""The menu a message opens (right click, the Menu key or Shift+F10 on a message): a list of
actions, each saying for which messages it is offered, and the Info panel.

Actions plug in by adding a :class:`MessageAction` to :data:`ACTIONS` (or passing a list to
:func:`build_menu`): the menu shows the ones whose ``offered`` accepts the message, in list order,
those that name a submenu (``within``) gathered in it.
An action gets a :class:`MenuContext` — the message, the client and the window — and nothing
else, so a new action needs no change here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFormLayout, QLabel, QMenu, QPushButton, QVBoxLayout, QWidget

from client.core.client import AriadneClient
from client.core.conversation import MessageInfo
from client.core.events import MessageStatus, StoredMessage
from client.gui.times import full_time


class ChatHost(Protocol):
    """What an action may ask of the chat window."""

    def show_panel(self, panel: QWidget) -> QWidget: ...

    def retry(self, message_id: bytes) -> None: ...


@dataclass(frozen=True)
class MenuContext:
    message: StoredMessage
    client: AriadneClient
    window: ChatHost

    @property
    def own(self) -> bool:
        return self.message.sender_user == self.client.username


@dataclass(frozen=True)
class MessageAction:
    label: str
    run: Callable[[MenuContext], object]
    offered: Callable[[MenuContext], bool] = lambda _context: True
    within: str = ""  # a submenu's title (actions sharing it form one, where the first is)


def _copy(context: MenuContext) -> None:
    QGuiApplication.clipboard().setText(context.message.body)


def _retry(context: MenuContext) -> None:
    context.window.retry(context.message.message_id)


def _info(context: MenuContext) -> QWidget | None:
    info = context.client.conversations.info(context.message.message_id)
    if info is None:
        return None
    panel = MessageInfoPanel(context.client, info)
    return context.window.show_panel(panel)


ACTIONS: list[MessageAction] = [
    MessageAction(
        "Copy",
        _copy,
        lambda c: not c.message.undecryptable and not c.message.system,
    ),
    MessageAction(
        "Retry sending",
        _retry,
        # (Not a file's: it is sent again by attaching it again.)
        lambda c: (
            c.own
            and c.message.status is MessageStatus.FAILED
            and c.client.attachments.get(c.message.message_id) is None
        ),
    ),
    MessageAction("Info", _info, lambda c: not c.message.system),
]


def build_menu(
    context: MenuContext, actions: list[MessageAction] | None = None, parent: QWidget | None = None
) -> QMenu:
    menu = QMenu(parent)
    submenus: dict[str, QMenu] = {}
    for action in ACTIONS if actions is None else actions:
        if not action.offered(context):
            continue
        target = menu
        if action.within:
            target = submenus.get(action.within) or menu.addMenu(action.within)
            submenus[action.within] = target
        target.addAction(action.label, lambda a=action: a.run(context))
    return menu


STATE_TEXT = {
    MessageStatus.SENDING: "Waiting to be sent",
    MessageStatus.SENT: "Sent to the relay; no device has confirmed it yet",
    MessageStatus.DELIVERED: "Delivered",
    MessageStatus.READ: "Read",
    MessageStatus.FAILED: "Not sent",
    MessageStatus.RECEIVED: "Received",
    MessageStatus.UNDECRYPTABLE: "Could not be decrypted",
}


class MessageInfoPanel(QWidget):
    """A message's exact times and, for one's own messages, each recipient device's state."""

    def __init__(self, client: AriadneClient, info: MessageInfo) -> None:
        super().__init__()
        self.setWindowTitle("Message info")
        message = info.message
        own = message.sender_user == client.username
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow(
            "From:", QLabel(_device_name(client, message.sender_user, message.sender_device))
        )
        form.addRow("Written:", QLabel(full_time(message.sent_at)))
        if message.server_ts is not None:
            form.addRow("Relay received it:", QLabel(full_time(message.server_ts, micros=True)))
        form.addRow("State:", QLabel(STATE_TEXT.get(message.status, message.status.value)))
        if info.failure:
            form.addRow("Why:", QLabel(info.failure))
        layout.addLayout(form)
        self.device_rows: list[str] = []
        if own:
            layout.addWidget(QLabel(f"<b>{message.thread}'s devices</b>"))
            for receipt in info.receipts:
                name = _device_name(client, receipt.username, receipt.device_id)
                state = "Read" if receipt.status == "read" else "Delivered"
                self.device_rows.append(f"{name}: {state} {full_time(receipt.at, micros=True)}")
            if not self.device_rows:
                self.device_rows.append("No device has confirmed it yet")
            for row in self.device_rows:
                label = QLabel(row)
                label.setWordWrap(True)
                layout.addWidget(label)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        layout.addWidget(close)


def _device_name(client: AriadneClient, username: str, device_id: str) -> str:
    devices = client.directory.known(username)
    entry = devices.entry(device_id) if devices is not None else None
    return f"{username} ({entry.name})" if entry is not None else f"{username} ({device_id[:8]})"
