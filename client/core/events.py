"""Events the client core emits. The GUI and the tests subscribe to the same stream."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"  # relay unreachable; retrying
    FAILED = "failed"  # the relay refused this device's login; not retrying
    CLOSED = "closed"


class MessageStatus(enum.Enum):
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    RECEIVED = "received"
    FAILED = "failed"
    UNDECRYPTABLE = "undecryptable"
    SYSTEM = "system"  # a line about the conversation itself, e.g. "bob added a device"
    UNSENT = "unsent"  # its sender unsent it: the text is gone, "alice unsent a message" stays

    @property
    def rank(self) -> int:
        return _RANK.get(self, 0)


_RANK = {
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
    MessageStatus.UNSENT: 99,  # final: no later receipt or relay answer brings the text back
}


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A message as this device stores it. Named fields only (eight, several alike). A msgspec
    Struct, not a dataclass: a restore builds one per message, hundreds of thousands, and a
    frozen dataclass costs eight times as much to build; it holds no containers, so the garbage
    collector need not track it."""

    message_id: bytes
    thread: str
    sender_user: str
    sender_device: str
    sent_at: int  # sender's clock, milliseconds
    server_ts: int | None  # relay's acceptance time, microseconds; None while unsent
    body: str
    status: MessageStatus

    @property
    def undecryptable(self) -> bool:
        return self.status is MessageStatus.UNDECRYPTABLE

    @property
    def system(self) -> bool:
        return self.status is MessageStatus.SYSTEM


@dataclass(frozen=True)
class MessageQueued:
    """This device composed a message; it is stored and will be sent when the relay is reachable."""

    message: StoredMessage


@dataclass(frozen=True)
class MessageReceived:
    """A message arrived: from a contact, or sent by another of this user's devices."""

    message: StoredMessage


@dataclass(frozen=True)
class DeliveryUpdated:
    message_id: bytes
    thread: str
    status: MessageStatus
    server_ts: int | None


@dataclass(frozen=True)
class SendDeferred:
    """The relay cannot take an outgoing message now (one of its limits): it stays queued on this
    device and is tried again later. ``reason`` is for the message's bubble."""

    message_id: bytes
    thread: str
    reason: str


@dataclass(frozen=True)
class RelayLimitReached:
    """A relay quota stopped something other than a message (``code`` is the relay's error
    code, e.g. ``mailbox_full``); ``text`` is for the status line."""

    code: str
    text: str


@dataclass(frozen=True)
class DecryptionFailed:
    """An envelope could not be decrypted; it is shown in ``thread`` as undecryptable."""

    thread: str
    sender_user: str
    sender_device: str
    reason: str


@dataclass(frozen=True)
class OutOfOrderDelivery:
    """The relay's timestamps put a sending device's messages in ``thread`` in another order than
    the one that device authenticated: the conversation shows the sender's order (the moved
    messages get ``DeliveryUpdated`` with their new place) and a system line says so."""

    thread: str
    sender_user: str
    sender_device: str


@dataclass(frozen=True)
class DeviceListChanged:
    username: str
    version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class DeviceListRefused:
    """The relay served a device list that failed verification (forged, rolled back, new AMK)."""

    username: str
    reason: str


@dataclass(frozen=True)
class HistoryLoaded:
    """A page of ``thread``'s history came from the mailbox (``loaded`` of ``total`` so far)."""

    thread: str
    added: int
    loaded: int
    total: int
    done: bool


@dataclass(frozen=True)
class EpochChainRefused:
    """The relay served an epoch chain that does not verify (forked, rolled back, truncated):
    nothing is saved to the mailbox until it does."""

    reason: str


@dataclass(frozen=True)
class PairingRequested:
    """A new device of this account asks to be approved (approver side). Two requests never look
    alike: each has its keys' fingerprint and when it asked (Unix seconds, as the relay says)."""

    device_id: str
    name: str
    fingerprint: str = ""
    asked_at: int = 0


@dataclass(frozen=True)
class PairingCodeShown:
    """An approver started pairing with this (new) device: compare ``code`` on both screens."""

    approver_device: str
    code: str


@dataclass(frozen=True)
class PairingRejected:
    approver_device: str


@dataclass(frozen=True)
class DeviceRemoved:
    """This device was removed from its account: it receives nothing more and cannot read what
    is written from now on. Its local data stays until the user deletes it."""

    username: str


@dataclass(frozen=True)
class ContactKeyChanged:
    """A contact's account key changed: sending to them is paused until the user acknowledges
    (and their safety number is no longer marked verified)."""

    username: str


@dataclass(frozen=True)
class DeliveryOverdue:
    """A message this device sent (the relay accepted it) has reached none of the recipient's
    devices after ``seconds``: they may be offline, or the relay may be holding it, which no
    cryptography prevents. The message is still on its way; ``DeliveryUpdated`` follows if it
    arrives."""

    message_id: bytes
    thread: str
    seconds: float


@dataclass(frozen=True)
class ConnectionStateChanged:
    state: ConnectionState
    detail: str = ""


@dataclass(frozen=True)
class MessagesChanged:
    """Controls changed these messages in place: unsent, edited, reacted to."""

    thread: str
    message_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class MessagesRemoved:
    """These messages are gone from this device: deleted, expired, or their conversation
    deleted."""

    thread: str
    message_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class TimerChanged:
    """The conversation's disappearing-messages timer (seconds, 0 = off)."""

    thread: str
    seconds: int


@dataclass(frozen=True)
class AttachmentChanged:
    """An attachment's file changed state here (uploaded, downloading, ready, refused, …):
    ``client.core.attachments`` has the new state; progress goes to the caller's callback."""

    message_id: bytes
    thread: str


@dataclass(frozen=True)
class DisplayNameChanged:
    """A contact (or this user, from another device) shared a new display name."""

    username: str


@dataclass(frozen=True)
class GroupChanged:
    """A group's verified membership or name changed (or it was created here)."""

    thread: str


Event = (
    MessageQueued
    | MessageReceived
    | DeliveryUpdated
    | SendDeferred
    | RelayLimitReached
    | DecryptionFailed
    | OutOfOrderDelivery
    | DeviceListChanged
    | DeviceListRefused
    | HistoryLoaded
    | EpochChainRefused
    | PairingRequested
    | PairingCodeShown
    | PairingRejected
    | DeviceRemoved
    | ContactKeyChanged
    | ConnectionStateChanged
    | AttachmentChanged
    | DisplayNameChanged
    | DeliveryOverdue
    | MessagesChanged
    | MessagesRemoved
    | TimerChanged
    | GroupChanged
)
