"""Saving and loading messages (Labyrinth §"Saving messages" and §"Loading messages").

Each device that sends or receives a message saves it in its user's **mailbox** on the relay:
the record is PADMÉ-padded and sealed with AES-256-GCM under the key of its (epoch, thread),
with a random 96-bit nonce and mailbox, thread, message id and epoch in the associated data. A
ciphertext moved to another thread, message id, epoch or mailbox does not open.

Items are versioned (PROTOCOL.md §6, "Item format"): version 2, sealed today, starts with
``0x02`` and uses one key per (epoch, thread), so a restore derives one key and sets up one
AES-GCM object per thread instead of per message (:class:`ThreadBox`); version 1 items, sealed
before, used one key per message and still open. A relay that changes or strips the version
byte gets an item that opens under neither version.

The relay indexes items by (mailbox, thread id, timestamp) and sees nothing else: a thread id is
an HMAC of the peer's name under the account's thread key, so even the mailbox does not name the
people one talks to (the relay's routing knows them anyway; the stored history does not repeat it).
"""

from __future__ import annotations

import hmac
import os
import re
from typing import Annotated, get_args

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.boxes import GCM_NONCE, derive, expand, open_box
from shared.codec import decode_strict
from shared.device_list import Username
from shared.envelope import MAX_TEXT
from shared.errors import DecryptionError, WireError
from shared.padding import pad, unpad

THREAD_ID = 16
# A conversation: a peer's username, or a group's thread ("#" and the group id in hex).
ThreadName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=33, pattern=r"^([a-z0-9_.-]+|#[0-9a-f]{32})$")
]


class _NameCheck:
    """Whether a string matches the pattern of ``kind`` (an ``Annotated`` name type), each
    distinct string matched once: a restore decodes a record per message, and the regular
    expressions cost half the decoding, yet a history names only a few threads and people. At
    most ``remember`` names are remembered, so records naming ever new ones cost memory no more
    than time."""

    def __init__(self, kind: object, remember: int = 10_000) -> None:
        self._pattern = re.compile(get_args(kind)[1].pattern)
        self._remember = remember
        self.matched: set[str] = set()

    def __call__(self, name: str) -> bool:
        if name in self.matched:
            return True
        if self._pattern.search(name) is None:
            return False
        if len(self.matched) < self._remember:
            self.matched.add(name)
        return True


_thread_name = _NameCheck(ThreadName)
_username = _NameCheck(Username)


class SavedMessage(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True, gc=False
):
    """A message as the mailbox keeps it (the sealed plaintext). ``thread`` is a ThreadName and
    ``sender_user`` a Username: their lengths are checked by the decoder, their patterns by
    :meth:`__post_init__` (see :class:`_NameCheck`)."""

    thread: Annotated[str, msgspec.Meta(min_length=1, max_length=33)]
    sender_user: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    sender_device: str
    sent_at: int
    server_ts: int
    body: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    v: int = 1
    # Controls (PROTOCOL.md §10): a saved control (``shared.controls.ControlRecord``; ``body`` is
    # then empty), when a disappearing message expires, and the message a reply quotes.
    control: bytes = b""
    expires_at: int | None = None
    reply_to: bytes | None = None
    # The message's attachment pointer (shared.attachment.encode_pointer), thumbnail included.
    attachment: Annotated[bytes, msgspec.Meta(max_length=48 * 1024)] | None = None

    def __post_init__(self) -> None:
        if not _thread_name(self.thread):
            raise ValueError("not a thread name")
        if not _username(self.sender_user):
            raise ValueError("not a username")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SavedMessage)


def thread_id(thread_key: bytes, peer: str) -> bytes:
    return hmac.digest(thread_key, b"ariadne/thread-id/v1\x00" + peer.encode(), "sha256")[
        :THREAD_ID
    ]


def epoch_mailbox_key(root: bytes, username: str, epoch: int) -> bytes:
    """The epoch's mailbox key (one HKDF-Extract+Expand per epoch; per message only Expand)."""
    return derive(root, b"ariadne/mailbox/v1", username.encode() + epoch.to_bytes(8, "big"))


ITEM_V2 = b"\x02"
_GCM_TAG = 16


def thread_key(mailbox_key: bytes, thread: bytes) -> bytes:
    """The key of one thread's items under one epoch (version 2): one HKDF-Expand per thread."""
    return expand(mailbox_key, b"ariadne/mailbox-thread/v2\x00" + thread)


def item_ad(username: str, thread: bytes, message_id: bytes, epoch: int) -> bytes:
    """A version 2 item's associated data: its place. The thread id and message id are 16 bytes
    and the username has no NUL, so no two places share an encoding."""
    return (
        b"ariadne/mailbox-item/v2\x00"
        + username.encode()
        + b"\x00"
        + thread
        + message_id
        + epoch.to_bytes(8, "big")
    )


def _ad_v1(username: str, thread: bytes, message_id: bytes, epoch: int) -> bytes:
    return (
        b"ariadne/mailbox-item/v1\x00"
        + username.encode()
        + b"\x00"
        + thread
        + message_id
        + epoch.to_bytes(8, "big")
    )


class ThreadBox:
    """One thread's items under one epoch: its key derived and its AES-GCM object set up once,
    for every item sealed or opened (a restore opens hundreds per page of one thread)."""

    __slots__ = ("_ad_head", "_ad_tail", "_aead", "_mailbox_key", "_place")

    def __init__(self, mailbox_key: bytes, username: str, thread: bytes, epoch: int) -> None:
        self._aead = AESGCM(thread_key(mailbox_key, thread))
        head = item_ad(username, thread, b"", epoch)
        self._ad_head, self._ad_tail = head[:-8], head[-8:]
        self._mailbox_key = mailbox_key  # for version 1 items
        self._place = (username, thread, epoch)

    def seal(self, message_id: bytes, saved: SavedMessage) -> bytes:
        nonce = os.urandom(GCM_NONCE)
        ad = self._ad_head + message_id + self._ad_tail
        return ITEM_V2 + nonce + self._aead.encrypt(nonce, pad(_encoder.encode(saved)), ad)

    def open(self, message_id: bytes, sealed: bytes) -> SavedMessage:
        """The record sealed at this place (either version); raises
        :class:`~shared.errors.DecryptionError` if it does not authenticate here or is malformed."""
        data = None
        if sealed[:1] == ITEM_V2 and len(sealed) >= 1 + GCM_NONCE + _GCM_TAG:
            ad = self._ad_head + message_id + self._ad_tail
            try:
                data = self._aead.decrypt(sealed[1 : 1 + GCM_NONCE], sealed[1 + GCM_NONCE :], ad)
            except InvalidTag:  # perhaps a version 1 item whose random nonce starts with 0x02
                data = None
        if data is None:
            username, thread, epoch = self._place
            key = expand(self._mailbox_key, thread + message_id)
            data = open_box(key, sealed, _ad_v1(username, thread, message_id, epoch))
        try:
            record = unpad(data)
        except WireError:
            raise DecryptionError("malformed mailbox record: bad padding") from None
        return decode_strict(_decoder, record, "mailbox record", DecryptionError)


def seal_message(
    mailbox_key: bytes,
    username: str,
    thread: bytes,
    message_id: bytes,
    epoch: int,
    saved: SavedMessage,
) -> bytes:
    return ThreadBox(mailbox_key, username, thread, epoch).seal(message_id, saved)


def open_message(
    mailbox_key: bytes, username: str, thread: bytes, message_id: bytes, epoch: int, sealed: bytes
) -> SavedMessage:
    return ThreadBox(mailbox_key, username, thread, epoch).open(message_id, sealed)
