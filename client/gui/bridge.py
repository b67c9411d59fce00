"""Core events as Qt signals, so widgets subscribe the Qt way."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from client.core.client import AriadneClient
from client.core.events import (
    ConnectionStateChanged,
    ContactKeyChanged,
    DecryptionFailed,
    DeliveryUpdated,
    DeviceListChanged,
    DeviceRemoved,
    Event,
    HistoryLoaded,
    MessageQueued,
    MessageReceived,
    MessagesChanged,
    MessagesRemoved,
    PairingRequested,
    RelayLimitReached,
    SendDeferred,
    TimerChanged,
)


class CoreBridge(QObject):
    """Re-emits the core's events. Listeners run on the Qt thread: qasync runs asyncio there."""

    message_added = Signal(object)  # StoredMessage
    delivery_updated = Signal(object)  # DeliveryUpdated
    connection_changed = Signal(object)  # ConnectionStateChanged
    devices_changed = Signal(object)  # DeviceListChanged
    decryption_failed = Signal(object)  # DecryptionFailed
    history_loaded = Signal(object)  # HistoryLoaded
    pairing_requested = Signal(object)  # PairingRequested
    device_removed = Signal(object)  # DeviceRemoved
    contact_key_changed = Signal(object)  # ContactKeyChanged
    send_deferred = Signal(object)  # SendDeferred
    relay_limit_reached = Signal(object)  # RelayLimitReached
    messages_changed = Signal(object)  # MessagesChanged (controls: unsent, edited, reacted)
    messages_removed = Signal(object)  # MessagesRemoved (controls: deleted, expired)
    timer_changed = Signal(object)  # TimerChanged (disappearing messages)

    def __init__(self, client: AriadneClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        client.add_listener(self._on_event)

    def detach(self) -> None:
        self.client.remove_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        match event:
            case MessageQueued(message=message) | MessageReceived(message=message):
                self.message_added.emit(message)
            case DeliveryUpdated():
                self.delivery_updated.emit(event)
            case ConnectionStateChanged():
                self.connection_changed.emit(event)
            case DeviceListChanged():
                self.devices_changed.emit(event)
            case DecryptionFailed():
                self.decryption_failed.emit(event)
            case HistoryLoaded():
                self.history_loaded.emit(event)
            case PairingRequested():
                self.pairing_requested.emit(event)
            case DeviceRemoved():
                self.device_removed.emit(event)
            case ContactKeyChanged():
                self.contact_key_changed.emit(event)
            case SendDeferred():
                self.send_deferred.emit(event)
            case RelayLimitReached():
                self.relay_limit_reached.emit(event)
            case MessagesChanged():
                self.messages_changed.emit(event)
            case MessagesRemoved():
                self.messages_removed.emit(event)
            case TimerChanged():
                self.timer_changed.emit(event)
