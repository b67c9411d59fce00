"""The red banner that tells the user the relay was caught misbehaving.

The core refuses what does not verify (a forged or rolled-back device list, an epoch chain that
does not hold) and notices a message that reaches nobody; this widget says so above the
conversation, in the words of ``client.core.relay_alerts``, until the user dismisses it. A
refusal is red (something was refused); a message that waits is amber (nothing was refused: the
relay may simply be slow, or the contact offline).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from client.core.client import AriadneClient
from client.core.events import DeliveryOverdue, Event
from client.core.relay_alerts import alert_text

REFUSED_STYLE = (
    "QLabel#relayAlert { background: #c62828; color: white; padding: 8px; border-radius: 6px;"
    " font-weight: bold; }"
)
WAITING_STYLE = (
    "QLabel#relayAlert { background: #ffe0b2; color: #5d3a00; padding: 8px; border-radius: 6px; }"
)


class _Relay(QObject):
    """Core events to the Qt thread's signal (qasync runs the core there too)."""

    alert = Signal(object)


class RelayAlertBanner(QWidget):
    def __init__(self, client: AriadneClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.text = QLabel("")
        self.text.setObjectName("relayAlert")
        self.text.setWordWrap(True)
        dismiss = QPushButton("Dismiss")
        dismiss.clicked.connect(lambda: self.setVisible(False))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.text, 1)
        row.addWidget(dismiss)
        self.setVisible(False)
        self._signals = _Relay(self)
        self._signals.alert.connect(self._show)
        client.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if alert_text(event) is not None:
            self._signals.alert.emit(event)

    def _show(self, event: Event) -> None:
        self.text.setStyleSheet(
            WAITING_STYLE if isinstance(event, DeliveryOverdue) else REFUSED_STYLE
        )
        self.text.setText(alert_text(event) or "")
        self.setVisible(True)

    def detach(self) -> None:
        self.client.remove_listener(self._on_event)
