"""What a new user is told along the way: what to do in an empty window, and that a skipped
recovery code is still missing (asked again a day later, not at every start).

The recovery button says "Set up a recovery code…" until this device made one, "New recovery
code…" after: no one is offered to replace what they never had.
"""

from __future__ import annotations

import time

import msgspec
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
)

from client.core.client import AriadneClient
from client.core.preferences import REMINDER_DELAY

NO_CONVERSATION = (
    "<b>No conversation open.</b><br>To write to someone, type their username in "
    "“Find or start a chat” on the left and press Enter. They need an Ariadne account on the "
    "same relay. Only you and they can read what you write."
)
REMINDER = (
    "<b>Your history has no recovery code yet.</b> If you lose this device, a new one cannot "
    "restore your conversations without it."
)


def empty_conversation(peer: str) -> str:
    return (
        f"<b>No messages with {peer} yet.</b><br>Write below: Enter sends, Shift+Enter starts "
        "a new line. Messages are end-to-end encrypted."
    )


def recovery_action_text(client: AriadneClient) -> str:
    return "New recovery code…" if client.has_recovery_code else "Set up a recovery code…"


def remind_later(client: AriadneClient, delay: float = REMINDER_DELAY) -> None:
    """The user skipped the recovery code: ask again after ``delay`` seconds."""
    when = int(time.time() + delay)
    client.set_preferences(msgspec.structs.replace(client.preferences, recovery_reminder_at=when))


def reminder_due(client: AriadneClient) -> bool:
    return (
        client.holds_account_key
        and not client.removed
        and not client.has_recovery_code
        and time.time() >= client.preferences.recovery_reminder_at
    )


class Onboarding:
    """The hint over an empty conversation pane and the recovery reminder, in one window."""

    def __init__(self, window: QMainWindow, left: QVBoxLayout, right: QVBoxLayout) -> None:
        self.window = window
        self.client: AriadneClient = window.client  # type: ignore[attr-defined]
        self.hint = QLabel(NO_CONVERSATION)
        self.hint.setObjectName("emptyHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setContentsMargins(24, 24, 24, 24)
        right.insertWidget(right.indexOf(window.view), self.hint)  # type: ignore[attr-defined]

        self.reminder = QFrame()
        self.reminder.setObjectName("reminder")
        self.reminder.setFrameShape(QFrame.Shape.StyledPanel)
        text = QLabel(REMINDER)
        text.setWordWrap(True)
        self.set_up = QPushButton("Set up now…")
        self.set_up.clicked.connect(self._set_up_now)
        self.later = QPushButton("Later")
        self.later.clicked.connect(self.snooze)
        buttons = QHBoxLayout()
        buttons.addWidget(self.later)
        buttons.addWidget(self.set_up)
        box = QVBoxLayout(self.reminder)
        box.addWidget(text)
        box.addLayout(buttons)
        left.insertWidget(0, self.reminder)
        # After the window's own slots (connected first): the model is the new one by then.
        window.threads.currentItemChanged.connect(lambda *_: self.refresh())  # type: ignore[attr-defined]
        bridge = window.bridge  # type: ignore[attr-defined]
        for changed in (
            bridge.message_added,
            bridge.history_loaded,
            bridge.delivery_updated,
            bridge.device_removed,
        ):
            changed.connect(lambda *_: self.refresh())
        window.recovery_action.triggered.connect(self._watch_recovery)  # type: ignore[attr-defined]
        self.refresh()

    def _set_up_now(self) -> None:
        self.window.show_recovery()  # type: ignore[attr-defined]
        self._watch_recovery()

    def _watch_recovery(self) -> None:
        """Once the recovery panel closes (a code made, or not), the buttons say so."""
        panel = getattr(self.window, "panel", None)
        if panel is not None:
            panel.finished.connect(lambda _code: self.refresh())

    def refresh(self) -> None:
        model = getattr(self.window, "model", None)
        if model is None:
            self.hint.setText(NO_CONVERSATION)
        else:
            self.hint.setText(empty_conversation(model.thread))
        empty = model is None or model.rowCount() == 0
        self.hint.setVisible(empty and not self.client.removed)  # (the banner says why)
        self.reminder.setVisible(reminder_due(self.client))
        action: QAction = self.window.recovery_action  # type: ignore[attr-defined]
        action.setText(recovery_action_text(self.client))

    def snooze(self) -> None:
        remind_later(self.client)
        self.refresh()
