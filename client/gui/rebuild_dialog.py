"""Re-creating the account on a relay that lost its data: offered by a device that holds the
account key when the relay does not know it. It asks for the account password (the relay keeps
its hash so that new devices can join), then the device uploads what it holds
(:mod:`client.core.rebuild`); contacts check all of it as usual."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QPushButton, QVBoxLayout

from client.core.client import AriadneClient
from client.core.port import RelayError
from client.gui.recovery_dialog import explain
from client.gui.style import ERROR_STYLE, fit_height
from shared import wire

INTRO = (
    "The relay does not know this device or its account — it may have lost its data. This "
    "device can create the account on it again from what it holds: its devices, the keys of "
    "its history and its messages. Your contacts check all of it as usual, and your other "
    "devices log in again by themselves."
)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, RelayError) and exc.code == wire.ErrorCode.USERNAME_TAKEN:
        return (
            "This relay already has an account of that name: it did not lose yours, or "
            "someone else took the name. Nothing was changed."
        )
    return explain(exc)


class RebuildDialog(QDialog):
    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.setWindowTitle("Ariadne — re-create the account")
        self.intro = QLabel(INTRO)
        self.intro.setWordWrap(True)
        self.password = QLineEdit(placeholderText="Account password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.make = QPushButton("Re-create the account")
        self.make.clicked.connect(self._make)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        for widget in (self.intro, self.password, self.make, self.note):
            layout.addWidget(widget)
        self._task: asyncio.Task[None] | None = None
        self.resize(480, 0)
        fit_height(self)

    def _make(self) -> None:
        password = self.password.text()
        if not password:
            self._error("Type the account password the relay should keep.")
            return
        self.make.setEnabled(False)
        self.note.setStyleSheet("")
        self.note.setText("Re-creating the account on the relay…")
        self._task = asyncio.ensure_future(self._rebuild(password))

    async def _rebuild(self, password: str) -> None:
        try:
            await self.client.rebuild_account(password)
        except Exception as exc:  # shown to the user, as a sentence
            self._error(_explain(exc))
            self.make.setEnabled(True)
            return
        self.password.clear()
        self.note.setText("The relay knows this account again; your history is being saved.")
        self.accept()

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if self._task is not None:
            self._task.cancel()
        super().closeEvent(event)

    def _error(self, text: str) -> None:
        self.note.setStyleSheet(ERROR_STYLE)
        self.note.setText(text)
        fit_height(self)
