"""Controls in the window: the message menu's actions (Reply, React, Edit, Versions, Unsend,
Delete for me), the conversation's timer and "Delete conversation" in the chat header, and what a
bubble shows of them (the quote, "edited", the reactions with their counts).

The actions join the message menu (``client/gui/message_menu.py``) as :class:`MessageAction`s;
they only call the client core's :class:`~client.core.controls.Controls`, which does the work
and tells the window through events what changed.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from client.core.client import AriadneClient
from client.core.controls import ControlRefused
from client.core.events import MessageStatus, StoredMessage
from client.gui.decorations import BARE, Decoration
from client.gui.message_menu import MenuContext, MessageAction
from shared.controls import EDIT_WINDOW_MS, TIMER_CHOICES, timer_label

REACTIONS = ("👍", "❤️", "😂", "😮", "😢")
QUOTE_MARK = "↪"


class ControlHost(Protocol):
    """What the actions ask of the chat window."""

    def show_panel(self, panel: QWidget) -> QWidget: ...

    def start_reply(self, message: StoredMessage) -> None: ...

    def report(self, text: str) -> None: ...


def _live(context: MenuContext) -> bool:
    m = context.message
    return not (m.system or m.undecryptable or m.status is MessageStatus.UNSENT)


def _own_live(context: MenuContext) -> bool:
    return _live(context) and context.own


def _editable(context: MenuContext) -> bool:
    age = context.client.context.clock.now_ms() - context.message.sent_at
    return _own_live(context) and age <= EDIT_WINDOW_MS


def _run(context: MenuContext, work: str, *args: object) -> None:
    try:
        getattr(context.client.controls, work)(*args)
    except ControlRefused as exc:
        host: ControlHost = context.window  # type: ignore[assignment]
        host.report(str(exc))


def _react(emoji: str) -> MessageAction:
    def mine(context: MenuContext) -> str | None:
        return context.client.controls.reactions(context.message.message_id).get(
            context.client.username
        )

    return MessageAction(
        emoji,
        lambda c: _run(c, "react", c.message.message_id, emoji),
        lambda c: _live(c) and mine(c) != emoji,
        within="React",
    )


def _remove_reaction_offered(context: MenuContext) -> bool:
    reactions = context.client.controls.reactions(context.message.message_id)
    return _live(context) and context.client.username in reactions


def _edit(context: MenuContext) -> None:
    dialog = EditDialog(context.message.body)
    message_id = context.message.message_id
    dialog.accepted.connect(lambda: _run(context, "edit", message_id, dialog.text.text()))
    context.window.show_panel(dialog)


def _versions(context: MenuContext) -> None:
    versions = context.client.controls.versions(context.message.message_id)
    context.window.show_panel(VersionsPanel(versions))


def _reply(context: MenuContext) -> None:
    host: ControlHost = context.window  # type: ignore[assignment]
    host.start_reply(context.message)


ACTIONS: list[MessageAction] = [
    MessageAction("Reply", _reply, _live),
    *(_react(emoji) for emoji in REACTIONS),
    MessageAction(
        "Remove mine",
        lambda c: _run(c, "react", c.message.message_id, ""),
        _remove_reaction_offered,
        within="React",
    ),
    MessageAction("Edit…", _edit, _editable),
    MessageAction(
        "Versions",
        _versions,
        lambda c: _live(c) and c.client.controls.edited(c.message.message_id),
    ),
    MessageAction("Unsend", lambda c: _run(c, "unsend", c.message.message_id), _own_live),
    MessageAction(
        "Delete for me",
        lambda c: _run(c, "delete_for_me", [c.message.message_id]),
        lambda c: not c.message.system,
    ),
]


class EditDialog(QDialog):
    """A new text for one's own message; saving sends the edit."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.setWindowTitle("Edit message")
        layout = QVBoxLayout(self)
        self.text = QLineEdit(body)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class VersionsPanel(QWidget):
    """Every version of an edited message, oldest first."""

    def __init__(self, versions: list[str]) -> None:
        super().__init__()
        self.setWindowTitle("Versions")
        layout = QVBoxLayout(self)
        self.rows = [f"{n}. {text}" for n, text in enumerate(versions, 1)]
        for row in self.rows:
            label = QLabel(row)
            label.setWordWrap(True)
            layout.addWidget(label)


class TimerChoice(QComboBox):
    """The chat header's disappearing-messages timer for the open conversation."""

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self._client = client
        self.thread = ""
        for seconds in TIMER_CHOICES:
            self.addItem(f"⏱ {timer_label(seconds)}" if seconds else "⏱ Off", seconds)
        self.setToolTip("Disappearing messages")
        self.activated.connect(self._chosen)

    def show_thread(self, thread: str) -> None:
        self.thread = thread
        self.setEnabled(bool(thread))
        self.show_seconds(self._client.controls.timer(thread) if thread else 0)

    def show_seconds(self, seconds: int) -> None:
        self.blockSignals(True)
        self.setCurrentIndex(max(0, self.findData(seconds)))
        self.blockSignals(False)

    def _chosen(self, index: int) -> None:
        if self.thread:
            self._client.controls.set_timer(self.thread, int(self.itemData(index)))


def decorations(client: AriadneClient, messages: list[StoredMessage]) -> dict[bytes, Decoration]:
    """Each message's quote line and what follows its time ("edited", reactions and counts),
    read for many messages at once (a page of bubbles being measured). Nothing once the client
    is closed (a closed window can still be laid out again)."""
    if client.closed:
        return {m.message_id: BARE for m in messages}
    shown = [
        m for m in messages if not (m.system or m.undecryptable or m.status is MessageStatus.UNSENT)
    ]
    marks = client.controls.marks([m.message_id for m in shown])
    found = {m.message_id: BARE for m in messages}
    for message_id, mark in marks.items():
        quote, sender = "", ""
        quoted = client.controls.quote(message_id) if mark.reply_to is not None else None
        if quoted is not None:
            _original, sender, snippet = quoted
            quote = (
                f"{QUOTE_MARK} {sender}: {snippet}"
                if sender
                else f"{QUOTE_MARK} an earlier message"
            )
        notes = []
        if mark.expires:
            notes.append("⏱")
        if mark.edited:
            notes.append("edited")
        counts = Counter(mark.reactions.values())
        if counts:
            notes.append(" ".join(f"{emoji} {n}" for emoji, n in sorted(counts.items())))
        waiting = quoted is not None and not sender
        found[message_id] = Decoration(quote, "  ".join(notes), mark.reply_to, waiting)
    return found
