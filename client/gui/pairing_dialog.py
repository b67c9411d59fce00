"""Approving a new device: the dialog on a device the user already has. It runs the pairing
exchange, shows the code the new device must also show, and approves or rejects. Two requests
never look alike: each shows when it was made and its device's fingerprint, which the new device
shows on its own screen too."""

from __future__ import annotations

import asyncio
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from client.core.client import AriadneClient
from client.core.link import RelayError
from client.gui.style import ERROR_STYLE, code_font, fit_height
from shared.errors import VerificationError

REFRESH_MS = 15_000  # how often "asked … ago" is brought up to date


def asked_ago(at: float, now: float | None = None) -> str:
    """When a request was made, as people say it ("asked 3 minutes ago")."""
    seconds = max(0, int((time.time() if now is None else now) - at))
    if seconds < 60:
        return "asked just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"asked {minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    return f"asked {hours} hour{'s' if hours != 1 else ''} ago"


class ApprovalDialog(QDialog):
    def __init__(
        self,
        client: AriadneClient,
        device_id: str,
        name: str,
        fingerprint: str = "",
        asked_at: int = 0,
    ) -> None:
        super().__init__()
        self.client = client
        self.device_id = device_id
        self.fingerprint = fingerprint
        self.asked_at = asked_at
        self.setWindowTitle(f"Ariadne — approve '{name}'?")
        intro = QLabel(
            f"A new device, <b>{name}</b>, logged in to <b>{client.username}</b> with your "
            "password and asks to join. Approve it only if it is yours and it shows the same "
            "code:"
        )
        intro.setWordWrap(True)
        self.identity = QLabel("")
        self.identity.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._show_identity()
        self._clock = QTimer(self, interval=REFRESH_MS)
        self._clock.timeout.connect(self._show_identity)
        self._clock.start()
        self.code = QLabel("…")
        self.code.setFont(code_font(2, bold=True))
        self.code.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel("Exchanging keys with the new device…")
        self.status.setWordWrap(True)
        self.approve = QPushButton("Codes match — approve")
        self.approve.setEnabled(False)
        self.approve.clicked.connect(lambda: self._run(self._approve()))
        self.reject_button = QPushButton("Reject")
        self.reject_button.clicked.connect(lambda: self._run(self._reject()))
        buttons = QHBoxLayout()
        buttons.addWidget(self.reject_button)
        buttons.addStretch(1)
        buttons.addWidget(self.approve)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.identity)
        layout.addWidget(self.code)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._task: asyncio.Future[None] | None = None
        self._run(self._exchange())

    def _run(self, coroutine) -> None:  # type: ignore[no-untyped-def]
        self._task = asyncio.ensure_future(coroutine)

    async def _exchange(self) -> None:
        try:
            code = await self.client.pairing_code(self.device_id)
        except VerificationError:
            self._error(
                "The new device's keys do not match what it committed to: someone may be in "
                "the middle. Do not approve; reject it."
            )
            return
        except RelayError as exc:
            self._error(_busy.get(exc.code, f"Could not reach the new device ({exc})."))
            return
        except LookupError:  # no longer pending: approved, rejected or gone meanwhile
            self._error(_busy["no_offer"])
            return
        except Exception as exc:  # shown as a sentence
            self._error(f"Could not reach the new device ({exc}). Is it still open?")
            return
        self.code.setText(code)
        self.status.setText(
            "Does the new device show exactly this code, and this fingerprint for itself?"
        )
        self.approve.setEnabled(True)
        fit_height(self)

    async def _approve(self) -> None:
        self.approve.setEnabled(False)
        self.status.setText("Approving: adding it to your devices and sharing your history…")
        try:
            await self.client.approve_device(self.device_id)
        except Exception as exc:  # shown as a sentence
            self._error(f"That did not work: {exc}")
            return
        self.accept()

    async def _reject(self) -> None:
        try:
            await self.client.reject_device(self.device_id)
        finally:
            self.reject()

    def _show_identity(self) -> None:
        parts = [asked_ago(self.asked_at)] if self.asked_at else []
        if self.fingerprint:
            parts.append(f"fingerprint {self.fingerprint}")
        text = " · ".join(parts)
        self.identity.setText(text[:1].upper() + text[1:])

    def _error(self, text: str) -> None:
        if self.code.text() == "…":
            self.code.setText("")  # no exchange, no code (not "…" as if one were coming)
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(text)
        fit_height(self)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().closeEvent(event)


_busy = {
    "pairing_busy": "Another of your devices is approving this one: compare the code there.",
    "no_offer": "This request was already answered or expired: ask again on the new device.",
}
