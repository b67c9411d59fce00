"""First run: create an account, or log in to an existing one as a new (pending) device."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from client.core.client import AriadneClient, RegistrationError
from client.gui.style import ERROR_STYLE

ERRORS = {
    "username_taken": "That username is taken.",
    "bad_credentials": "Wrong username or password.",
    "unreachable": "The relay could not be reached.",
    "too_many_pending": (
        "Too many new devices of this account wait for approval — approve or reject them on a"
        " device you use, or wait until they expire."
    ),
}


class AccountDialog(QDialog):
    def __init__(self, profile: Path, relay_url: str) -> None:
        super().__init__()
        self.profile = profile
        self.setWindowTitle("Ariadne — welcome")
        self._result: asyncio.Future[AriadneClient | None] = (
            asyncio.get_event_loop().create_future()
        )
        self.relay = QLineEdit(relay_url)
        self.username = QLineEdit(placeholderText="e.g. alice")
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.device = QLineEdit("Desktop")
        form = QFormLayout()
        form.addRow("Relay", self.relay)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        form.addRow("This device", self.device)
        self.error = QLabel("")
        self.error.setStyleSheet(ERROR_STYLE)
        self.create = QPushButton("Create account")
        self.login = QPushButton("Log in on this device")
        self.create.clicked.connect(lambda: self._go(create=True))
        self.login.clicked.connect(lambda: self._go(create=False))
        buttons = QHBoxLayout()
        buttons.addWidget(self.login)
        buttons.addWidget(self.create)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self._task: asyncio.Task[None] | None = None

    def result_client(self) -> asyncio.Future[AriadneClient | None]:
        return self._result

    def _go(self, create: bool) -> None:
        if len(self.password.text()) < 8:
            self.error.setText("The password needs at least 8 characters.")
            return
        self.create.setEnabled(False)
        self.login.setEnabled(False)
        self.error.setText("Connecting…")
        self._task = asyncio.ensure_future(self._register(create))

    async def _register(self, create: bool) -> None:
        make = AriadneClient.create_account if create else AriadneClient.add_device
        try:
            client = await make(
                self.profile,
                self.relay.text().strip(),
                self.username.text().strip().lower(),
                self.password.text(),
                self.device.text().strip() or "Desktop",
            )
        except (RegistrationError, ValueError, OSError) as exc:
            code = getattr(exc, "code", "")
            wait = getattr(exc, "retry_after", None)
            if code == "login_throttled" and wait is not None:
                self.error.setText(f"Too many attempts — try again in {math.ceil(wait)} s")
            else:
                self.error.setText(ERRORS.get(code, f"Could not register: {exc}"))
            self.create.setEnabled(True)
            self.login.setEnabled(True)
            return
        self._result.set_result(client)
        self.accept()

    def reject(self) -> None:
        if not self._result.done():
            self._result.set_result(None)
        super().reject()
