"""What the window's status bar says: the relay connection's state (or this device's standing,
when the relay refuses it) and how this device's data is kept at rest, with why in its tooltip.
Kept apart from the window so the words are in one place."""

from __future__ import annotations

from client.core.at_rest import KeyPlace
from client.core.client import AriadneClient
from client.core.events import ConnectionState, ConnectionStateChanged

CONNECTION_TEXT = {
    ConnectionState.CONNECTING: "Connecting to the relay…",
    ConnectionState.ONLINE: "Online",
    ConnectionState.OFFLINE: "Relay unreachable — retrying",
    ConnectionState.FAILED: "The relay refused this device",
    ConnectionState.CLOSED: "Closed",
}

# What the status bar says about this device's data at rest (the tooltip says why).
AT_REST_TEXT = {
    KeyPlace.KEYRING: (
        "Encrypted on this device",
        "Messages and keys on this device are encrypted; the key is in the system keyring.",
    ),
    KeyPlace.FILE: (
        "⚠ Encryption key stored beside the data",
        "No system keyring was found, so the key that encrypts this device's messages and keys "
        "is stored in the same folder: they are protected only by that folder's permissions.",
    ),
    KeyPlace.NONE: (
        "⚠ Not encrypted on this device",
        "Messages and keys on this device are stored unencrypted.",
    ),
}


def connection_text(client: AriadneClient, event: ConnectionStateChanged) -> str:
    """The connection's state as the status bar says it; a removed or unknown device says so."""
    text = CONNECTION_TEXT[event.state]
    if event.state is ConnectionState.OFFLINE and event.detail:
        text = f"{text} ({event.detail})"
    if client.removed:
        text = "Device removed"
    elif client.unknown_to_relay:
        text = "The relay does not know this device"
    return text
