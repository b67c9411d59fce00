"""Recovery in the GUI: showing a new recovery code once (with an optional PIN), and restoring
history on a new device with the code or the PIN. The cryptography happens in the core."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from client.core.client import AriadneClient
from client.core.events import (
    DeviceListChanged,
    Event,
    HistoryLoaded,
    PairingCodeShown,
    PairingRejected,
)
from client.core.link import Offline, RelayError
from client.core.recovery import WrongRecoveryCode
from client.gui.pairing_dialog import REFRESH_MS, asked_ago
from client.gui.style import ERROR_STYLE, code_font, fit_height
from shared.errors import ProtocolError, VerificationError
from shared.pin import MIN_PIN, NoBackup, VaultLocked, WrongPin
from shared.recovery_code import InvalidRecoveryCode, groups


def explain(exc: BaseException) -> str:
    """What a person should read when recovery fails (never a traceback)."""
    match exc:
        case WrongPin(tries_left=left):
            tries = "try" if left == 1 else "tries"
            return f"Wrong PIN — {left} {tries} left before the PIN backup is deleted."
        case VaultLocked():
            return "Too many wrong PINs: the PIN backup was deleted. Use your recovery code."
        case NoBackup():
            return "This account has no PIN backup. Use your recovery code."
        case InvalidRecoveryCode():
            return f"That is not a recovery code: {exc}."
        case WrongRecoveryCode():
            return "That recovery code does not belong to this account."
        case VerificationError():
            return f"The relay's data does not verify, so nothing was restored ({exc})."
        case Offline() | TimeoutError():
            return "The relay is unreachable — try again when it is back."
        case RelayError() | ProtocolError() | ValueError() | PermissionError():
            return f"That did not work: {exc}"
    return f"That did not work: {exc}"


class RecoveryCodeDialog(QDialog):
    """Make a recovery code (and optionally back it up under a PIN), show it once."""

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.code = ""
        self.setWindowTitle("Ariadne — protect your history")
        self.intro = QLabel(
            "Your history is stored on the relay, encrypted so that only your devices can read "
            "it. A <b>recovery code</b> lets a new device restore it if you lose this one. "
            "Optionally, a <b>PIN</b> can unlock it too (the vault allows 10 wrong guesses)."
        )
        self.intro.setWordWrap(True)
        self.pin = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="optional")
        self.pin_again = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow("PIN", self.pin)
        form.addRow("PIN again", self.pin_again)
        self.make = QPushButton("Create recovery code")
        self.make.setDefault(True)
        self.make.clicked.connect(self._make)
        self.code_label = QLabel("")
        self.code_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.code_label.setFont(code_font(1.3))
        self.code_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.copy = QPushButton("Copy")
        self.copy.clicked.connect(self._copy)
        self.save = QPushButton("Save to file…")
        self.save.clicked.connect(lambda: self.save_to(None))
        self.done_button = QPushButton("I have saved it")
        self.done_button.clicked.connect(self.accept)
        self.later = QPushButton("Later")
        self.later.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.copy)
        row.addWidget(self.save)
        row.addStretch(1)
        row.addWidget(self.later)
        row.addWidget(self.done_button)
        for widget in (self.copy, self.save, self.done_button):
            widget.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addWidget(self.make)
        layout.addWidget(self.code_label)
        layout.addWidget(self.note)
        layout.addLayout(row)
        self._task: asyncio.Task[None] | None = None

    def _make(self) -> None:
        pin = self.pin.text()
        if pin != self.pin_again.text():
            self._error("The two PINs differ.")
            return
        if pin and len(pin) < MIN_PIN:
            self._error(f"A PIN has at least {MIN_PIN} characters.")
            return
        self.make.setEnabled(False)
        self.note.setStyleSheet("")
        self.note.setText("Making the code" + (" and storing it under your PIN…" if pin else "…"))
        self._task = asyncio.ensure_future(self._setup(pin or None))

    async def _setup(self, pin: str | None) -> None:
        try:
            code = await self.client.setup_recovery(pin)
        except Exception as exc:  # shown to the user, as a sentence
            self._error(explain(exc))
            self.make.setEnabled(True)
            return
        self.code = code
        self.pin.clear()
        self.pin_again.clear()
        self.code_label.setText(_two_lines(code))
        self.note.setStyleSheet("")
        self.note.setText(
            "Write it down or save it somewhere safe. It is shown only now and is stored "
            "nowhere — not on this device, not on the relay."
            + (" Your PIN can unlock it too." if pin else "")
        )
        for widget in (self.copy, self.save, self.done_button):
            widget.setVisible(True)
        self.make.setVisible(False)
        self.later.setVisible(False)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if self._task is not None:
            self._task.cancel()
        super().closeEvent(event)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.note.setText("Copied. Paste it somewhere safe, then clear your clipboard.")

    def save_to(self, path: Path | None) -> Path | None:
        if path is None:
            name, _ = QFileDialog.getSaveFileName(
                self, "Save recovery code", f"ariadne-recovery-{self.client.username}.txt"
            )
            if not name:
                return None
            path = Path(name)
        # 0600 from the moment it exists (not written first and tightened after); an existing
        # file is tightened before the code is written into it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"Ariadne recovery code for {self.client.username}\n\n{groups(self.code)}\n")
        self.note.setText(f"Saved to {path}.")
        return path

    def _error(self, text: str) -> None:
        self.note.setStyleSheet(ERROR_STYLE)
        self.note.setText(text)


def _two_lines(code: str) -> str:
    parts = groups(code).split(" ")
    return " ".join(parts[:5]) + "\n" + " ".join(parts[5:])


class RestoreDialog(QDialog):
    """A new device (pending): restore with the recovery code or the PIN, with progress; or be
    approved from another device: it shows this device's fingerprint and when it asked (as the
    approver's dialog does), the code of the one exchange its request allows, and "The codes
    match" to confirm it (only then does it trust that exchange's account key). Closes by itself
    once approved."""

    def __init__(self, client: AriadneClient) -> None:
        super().__init__()
        self.client = client
        self.setWindowTitle(f"Ariadne — restore history on {client.device_name}")
        intro = QLabel(
            f"<b>{client.device_name}</b> is logged in to <b>{client.username}</b> but is not "
            "one of your devices yet: it receives nothing. Restore your history with your "
            "recovery code or your PIN — or approve this device from one you already use."
        )
        intro.setWordWrap(True)
        self.code = QLineEdit(placeholderText="40 characters, spaces don't matter")
        self.pin = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.with_code = QPushButton("Restore with code")
        self.with_pin = QPushButton("Restore with PIN")
        self.with_code.clicked.connect(lambda: self._go(code=self.code.text()))
        self.with_pin.clicked.connect(lambda: self._go(pin=self.pin.text()))
        form = QFormLayout()
        code_row = QHBoxLayout()
        code_row.addWidget(self.code, 1)
        code_row.addWidget(self.with_code)
        pin_row = QHBoxLayout()
        pin_row.addWidget(self.pin, 1)
        pin_row.addWidget(self.with_pin)
        form.addRow("Recovery code", code_row)
        form.addRow("PIN", pin_row)
        self.pairing = QLabel("Or approve it from a device you use: it will ask you to.")
        self.pairing.setWordWrap(True)
        self.pairing_code = QLabel("")
        self.pairing_code.setFont(code_font(2, bold=True))
        self.pairing_code.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.identity = QLabel("")
        self.identity.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._clock = QTimer(self, interval=REFRESH_MS)
        self._clock.timeout.connect(self._show_identity)
        self._clock.start()
        self.confirm = QPushButton("The codes match")
        self.confirm.setVisible(False)
        self.confirm.clicked.connect(self._confirm)
        self.ask_again = QPushButton("Ask again")
        self.ask_again.setVisible(False)
        self.ask_again.clicked.connect(self.offer)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        later = QPushButton("Not now")
        later.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.pairing)
        layout.addWidget(self.identity)
        layout.addWidget(self.pairing_code)
        answer = QHBoxLayout()
        answer.addStretch(1)
        answer.addWidget(self.ask_again)
        answer.addWidget(self.confirm)
        layout.addLayout(answer)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(later, 0, Qt.AlignmentFlag.AlignRight)
        self._task: asyncio.Task[None] | None = None
        self._offer: asyncio.Future[None] | None = None
        self._confirming: asyncio.Future[None] | None = None
        client.add_listener(self._on_event)
        self.offer()

    def offer(self) -> None:
        """Ask the account's devices to approve this one (they show a dialog). Each time is a
        new request: a code shown for the previous one is void."""
        self.ask_again.setVisible(False)
        self.confirm.setVisible(False)
        self.pairing_code.setText("")
        self.pairing.setStyleSheet("")
        self.pairing.setText("Or approve it from a device you use: it will ask you to.")
        self._offer = asyncio.ensure_future(self._offer_when_online())
        self._offer.add_done_callback(
            lambda f: (
                f.cancelled()
                or f.exception() is None
                or self.pairing.setText("Approval from another device is not available right now.")
            )
        )

    async def _offer_when_online(self) -> None:
        await self.client.wait_online(timeout=60)
        await self.client.offer_pairing()
        self._show_identity()

    def _show_identity(self) -> None:
        offered = self.client.pairing.offered
        if offered is None:
            self.identity.setText("")
            return
        self.identity.setText(
            f"This device: fingerprint {self.client.own_fingerprint} · {asked_ago(offered.at)}"
        )

    def _confirm(self) -> None:
        self.confirm.setEnabled(False)
        self._confirming = asyncio.ensure_future(self._confirmed())

    async def _confirmed(self) -> None:
        try:
            await self.client.confirm_pairing()
        except Exception as exc:  # shown to the user, as a sentence
            self.pairing.setStyleSheet(ERROR_STYLE)
            self.pairing.setText(explain(exc))
            self.confirm.setVisible(False)
            self.ask_again.setVisible(True)
            fit_height(self)
            return
        self.confirm.setVisible(False)
        self.ask_again.setVisible(False)
        if not self.client.is_member:
            self.pairing.setText("Confirmed. Now approve this device on your other device.")

    def _go(self, code: str | None = None, pin: str | None = None) -> None:
        if not (code or pin):
            return
        self.with_code.setEnabled(False)
        self.with_pin.setEnabled(False)
        self.status.setStyleSheet("")
        self.status.setText("Checking with the vault…" if pin else "Opening your history…")
        self._task = asyncio.ensure_future(self._restore(code or None, pin or None))

    async def _restore(self, code: str | None, pin: str | None) -> None:
        try:
            await self.client.wait_online(timeout=15)
            threads = await self.client.restore(code=code, pin=pin)
        except Exception as exc:  # shown to the user, as a sentence
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(explain(exc))
            self.with_code.setEnabled(True)
            self.with_pin.setEnabled(True)
            fit_height(self)
            return
        self.status.setText(
            f"This device is now one of yours. {len(threads)} conversation(s) found."
        )
        self.accept()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, PairingCodeShown):
            # One exchange per request: this code, and no other, can be confirmed.
            self.pairing.setStyleSheet("")
            self.pairing.setText(
                "Your other device asks to approve this one. Press “The codes match” only if "
                "it shows this code, and this device's fingerprint above:"
            )
            self.pairing_code.setText(event.code)
            self.confirm.setEnabled(True)
            self.confirm.setVisible(True)
            self.ask_again.setVisible(True)  # the codes differ: a new request, a new exchange
        elif isinstance(event, PairingRejected):
            self.confirm.setVisible(False)
            self.pairing_code.setText("")
            self.pairing.setStyleSheet(ERROR_STYLE)
            self.pairing.setText("Your other device rejected this request.")
            self.ask_again.setVisible(True)
        elif isinstance(event, HistoryLoaded):
            loaded, total = self.client.history_progress()
            self.progress.setVisible(True)
            self.progress.setMaximum(max(total, 1))
            self.progress.setValue(loaded)
            self.progress.setFormat(f"Restoring history… {loaded:,} of {total:,} messages")
        elif (
            isinstance(event, DeviceListChanged)
            and self.client.is_member
            and (self._task is None or self._task.done())  # not our own restore's list
        ):
            self.status.setText("Another of your devices approved this one.")
            self.accept()
            return
        fit_height(self)

    def done(self, result: int) -> None:
        self.client.remove_listener(self._on_event)
        super().done(result)
