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
from client.core.relay_address import DEFAULT_RELAY_URL, RelayAddressError, check_relay_url, probe
from client.gui.style import ERROR_STYLE

# What a newcomer needs before the form: what Ariadne is, what the relay is, how to get one.
INTRO = (
    "<b>Ariadne</b> is an end-to-end encrypted messenger: only your devices and your "
    "contacts' devices can read what you write.<br>"
    "The <b>relay</b> is the server that passes the encrypted messages on; it cannot read them. "
    "No relay yet? <code>ariadne demo</code> starts one on this computer."
)

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
    def __init__(self, profile: Path, relay_url: str = DEFAULT_RELAY_URL) -> None:
        super().__init__()
        self.profile = profile
        self.setWindowTitle("Ariadne — welcome")
        self._result: asyncio.Future[AriadneClient | None] = (
            asyncio.get_event_loop().create_future()
        )
        self.intro = QLabel(INTRO)
        self.intro.setWordWrap(True)
        self.relay = QLineEdit(relay_url, placeholderText=DEFAULT_RELAY_URL)
        self.username = QLineEdit(placeholderText="e.g. alice")
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.device = QLineEdit("Desktop")
        form = QFormLayout()
        form.addRow("Relay", self.relay)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        form.addRow("This device", self.device)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(ERROR_STYLE)
        self.create = QPushButton("Create account")
        self.login = QPushButton("Log in on this device")
        self.create.clicked.connect(lambda: self._go(create=True))
        self.login.clicked.connect(lambda: self._go(create=False))
        buttons = QHBoxLayout()
        buttons.addWidget(self.login)
        buttons.addWidget(self.create)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self._task: asyncio.Task[None] | None = None

    def result_client(self) -> asyncio.Future[AriadneClient | None]:
        return self._result

    def _go(self, create: bool) -> None:
        try:
            url = check_relay_url(self.relay.text())
        except RelayAddressError as exc:
            self.error.setText(str(exc))
            return
        if len(self.password.text()) < 8:
            self.error.setText("The password needs at least 8 characters.")
            return
        self.create.setEnabled(False)
        self.login.setEnabled(False)
        self.error.setText("Connecting…")
        self._task = asyncio.ensure_future(self._register(url, create))

    async def _register(self, url: str, create: bool) -> None:
        make = AriadneClient.create_account if create else AriadneClient.add_device
        try:
            await probe(url)  # nothing is made on disk for a relay that is not there
            client = await make(
                self.profile,
                url,
                self.username.text().strip().lower(),
                self.password.text(),
                self.device.text().strip() or "Desktop",
            )
        except RelayAddressError as exc:
            self._failed(str(exc))
            return
        except (RegistrationError, ValueError, OSError) as exc:
            code = getattr(exc, "code", "")
            wait = getattr(exc, "retry_after", None)
            if code == "login_throttled" and wait is not None:
                self._failed(f"Too many attempts — try again in {math.ceil(wait)} s")
            else:
                self._failed(ERRORS.get(code, f"Could not register: {exc}"))
            return
        self._result.set_result(client)
        self.accept()

    def _failed(self, why: str) -> None:
        self.error.setText(why)
        self.create.setEnabled(True)
        self.login.setEnabled(True)

    def reject(self) -> None:
        if not self._result.done():
            self._result.set_result(None)
        super().reject()
