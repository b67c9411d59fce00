"""Approving a new device: the dialog on a device the user already has. It runs the pairing
exchange, shows the code the new device must also show, and approves or rejects."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from client.core.client import AriadneClient
from client.gui.style import ERROR_STYLE, code_font
from shared.errors import VerificationError


class ApprovalDialog(QDialog):
    def __init__(self, client: AriadneClient, device_id: str, name: str) -> None:
        super().__init__()
        self.client = client
        self.device_id = device_id
        self.setWindowTitle(f"Ariadne — approve '{name}'?")
        intro = QLabel(
            f"A new device, <b>{name}</b>, logged in to <b>{client.username}</b> with your "
            "password and asks to join. Approve it only if it is yours and it shows the same "
            "code:"
        )
        intro.setWordWrap(True)
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
        except Exception as exc:  # shown as a sentence
            self._error(f"Could not reach the new device ({exc}). Is it still open?")
            return
        self.code.setText(code)
        self.status.setText("Does the new device show exactly this code?")
        self.approve.setEnabled(True)

    async def _approve(self) -> None:
        self.approve.setEnabled(False)
        self.status.setText("Approving: new device list, new epoch for it…")
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

    def _error(self, text: str) -> None:
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(text)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().closeEvent(event)
