"""``ariadne demo --hostile``: Alice's and Bob's windows, and the "Relay operator" window.

The operator window has one button per attack (``client.hostile_attacks``), each with its one-line
explanation. A button makes the real relay process misbehave (its attack layer, through its
operator pipe) and lets the clients answer in their own windows; the record below the buttons
keeps, for each attack, what the relay tried and what each client showed, and whether the
clients caught it. The relay's own reports scroll in the log beside it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from client.core.events import MessageStatus
from client.gui.chat_window import ChatWindow
from client.gui.style import ERROR_STYLE
from client.hostile import Cast, OperatorLink, attacking_relay, until
from client.hostile_attacks import ATTACKS, Attack, Outcome, run_attack
from shared.operator import OperatorReport

CAUGHT = "✔ caught"
MISSED = "✘ NOT caught"


class OperatorWindow(QMainWindow):
    closed = Signal()

    def __init__(self, cast: Cast, operator: OperatorLink) -> None:
        super().__init__()
        self.cast = cast
        self.operator = operator
        self.setWindowTitle("Ariadne — Relay operator")
        intro = QLabel(
            "You run the relay. Each button makes it attack Alice and Bob; their windows show"
            " what their clients make of it."
        )
        intro.setWordWrap(True)
        grid = QGridLayout()
        self.buttons: dict[str, QPushButton] = {}
        for row, attack in enumerate(ATTACKS):
            button = QPushButton(attack.title)
            button.clicked.connect(lambda _=False, a=attack: self.run(a.key))
            explanation = QLabel(attack.explanation)
            explanation.setWordWrap(True)
            grid.addWidget(button, row, 0)
            grid.addWidget(explanation, row, 1)
            self.buttons[attack.key] = button
        grid.setColumnStretch(1, 1)
        self.status = QLabel("")
        self.record = QListWidget()  # what each attack tried and what the clients did
        self.record.setWordWrap(True)
        self.relay_log = QListWidget()  # the relay's own reports
        self.relay_log.setWordWrap(True)
        operator.listeners.append(self._on_report)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.addWidget(intro)
        top_layout.addLayout(grid)
        top_layout.addWidget(self.status)
        logs = QSplitter(Qt.Orientation.Vertical)
        logs.addWidget(_titled("What each attack tried, and what the clients did", self.record))
        logs.addWidget(_titled("The relay's log", self.relay_log))
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(logs)
        self.setCentralWidget(splitter)
        self.outcomes: dict[str, Outcome] = {}
        self.running: asyncio.Future[Outcome] | None = None

    def run(self, key: str) -> asyncio.Future[Outcome]:
        """Make the relay run one attack; the buttons wait until the clients have answered."""
        attack = next(a for a in ATTACKS if a.key == key)
        for button in self.buttons.values():
            button.setEnabled(False)
        self.status.setStyleSheet("")
        self.status.setText(f"{attack.title}: the relay attacks…")
        self.running = asyncio.ensure_future(run_attack(attack, self.cast, self.operator))
        self.running.add_done_callback(lambda done: self._finished(attack, done))
        return self.running

    def _finished(self, attack: Attack, done: asyncio.Future[Outcome]) -> None:
        for button in self.buttons.values():
            button.setEnabled(True)
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(f"{attack.title}: the attack could not run ({error})")
            return
        outcome = done.result()
        self.outcomes[attack.key] = outcome
        verdict = CAUGHT if outcome.caught else MISSED
        self.status.setText(f"{attack.title}: {verdict}")
        answers = "\n".join(f"   {who}: {what}" for who, what in outcome.answers)
        item = QListWidgetItem(f"{attack.title} — {verdict}\n   relay: {outcome.tried}\n{answers}")
        if not outcome.caught:
            item.setForeground(Qt.GlobalColor.red)
        self.record.addItem(item)
        self.record.scrollToBottom()

    def _on_report(self, report: OperatorReport) -> None:
        if report.attack == "stop":
            return  # after every attack: not news
        self.relay_log.addItem(f"{report.attack} {report.stage}: {report.detail}")
        self.relay_log.scrollToBottom()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.operator.listeners.count(self._on_report):
            self.operator.listeners.remove(self._on_report)
        if self.running is not None:
            self.running.cancel()
        self.closed.emit()
        super().closeEvent(event)


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    heading = QLabel(f"<b>{title}</b>")
    layout.addWidget(heading)
    layout.addWidget(widget)
    return box


async def hostile_demo(
    lifetime: float | None = None,
    on_ready: Callable[[list[ChatWindow], OperatorWindow], None] | None = None,
) -> int:
    """The relay with its attack layer on (a fresh one each run: the attacks leave their mark),
    Alice and Bob side by side, and the operator window below them."""
    from client.gui.app import _until_closed

    root = Path(tempfile.mkdtemp(prefix="ariadne-hostile-demo-"))
    try:
        async with attacking_relay(root / "relay") as (url, operator):
            print(f"relay: {url} with its attack layer on (data in {root})", flush=True)
            cast = await Cast.create(root, url)
            windows = [ChatWindow(cast.alice), ChatWindow(cast.bob)]
            windows[0].open_conversation("bob")
            windows[1].open_conversation("alice")
            operator_window = OperatorWindow(cast, operator)
            screen = QGuiApplication.primaryScreen().availableGeometry()
            width = min(640, screen.width() // 3)
            height = min(620, screen.height())
            for i, window in enumerate([*windows, operator_window]):
                window.resize(width, height)
                window.move(screen.left() + i * width, screen.top())
                window.show()
                print(f"window: {window.windowTitle()}", flush=True)
            # Each window marks the other's greeting read: wait for those receipts, so that
            # the first attack takes the message Alice writes for it, not a receipt.
            await until(
                lambda: all(
                    m.status is MessageStatus.READ
                    for client, peer in ((cast.alice, "bob"), (cast.bob, "alice"))
                    for m in client.messages(peer)
                    if m.sender_user == client.username
                )
            )
            if on_ready is not None:
                on_ready(windows, operator_window)
            await _until_closed([*windows, operator_window], lifetime)
            for window in [*windows, operator_window]:
                window.close()
            await cast.close()
        print("demo: closed cleanly", flush=True)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
