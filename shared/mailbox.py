"""Saving and loading messages (Labyrinth §"Saving messages" and §"Loading messages").

Each device that sends or receives a message saves it in its user's **mailbox** on the relay:
the record is PADMÉ-padded and sealed with AES-256-GCM under a key derived from the epoch root,
the thread and the message id, with mailbox, thread, message id and epoch in the associated data.
A ciphertext moved to another thread, message id, epoch or mailbox does not open.

The relay indexes items by (mailbox, thread id, timestamp) and sees nothing else: a thread id is
an HMAC of the peer's name under the account's thread key, so even the mailbox does not name the
people one talks to (the relay's routing knows them anyway; the stored history does not repeat it).
"""

from __future__ import annotations

import hmac
from typing import Annotated

import msgspec

from shared.boxes import derive, expand, open_box, seal
from shared.codec import decode_strict
from shared.device_list import Username
from shared.envelope import MAX_TEXT
from shared.errors import DecryptionError, WireError
from shared.padding import pad, unpad

THREAD_ID = 16


class SavedMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A message as the mailbox keeps it (the sealed plaintext)."""

    thread: Username
    sender_user: Username
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


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SavedMessage)


def thread_id(thread_key: bytes, peer: str) -> bytes:
    return hmac.digest(thread_key, b"ariadne/thread-id/v1\x00" + peer.encode(), "sha256")[
        :THREAD_ID
    ]


def epoch_mailbox_key(root: bytes, username: str, epoch: int) -> bytes:
    """The epoch's mailbox key (one HKDF-Extract+Expand per epoch; per message only Expand)."""
    return derive(root, b"ariadne/mailbox/v1", username.encode() + epoch.to_bytes(8, "big"))


def _ad(username: str, thread: bytes, message_id: bytes, epoch: int) -> bytes:
    return (
        b"ariadne/mailbox-item/v1\x00"
        + username.encode()
        + b"\x00"
        + thread
        + message_id
        + epoch.to_bytes(8, "big")
    )


def seal_message(
    mailbox_key: bytes,
    username: str,
    thread: bytes,
    message_id: bytes,
    epoch: int,
    saved: SavedMessage,
) -> bytes:
    key = expand(mailbox_key, thread + message_id)
    return seal(key, pad(_encoder.encode(saved)), _ad(username, thread, message_id, epoch))


def open_message(
    mailbox_key: bytes, username: str, thread: bytes, message_id: bytes, epoch: int, sealed: bytes
) -> SavedMessage:
    key = expand(mailbox_key, thread + message_id)
    data = open_box(key, sealed, _ad(username, thread, message_id, epoch))
    try:
        record = unpad(data)
    except WireError:
        raise DecryptionError("malformed mailbox record: bad padding") from None
    return decode_strict(_decoder, record, "mailbox record", DecryptionError)
