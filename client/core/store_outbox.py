"""The profile's outbox: encrypted sends waiting for the relay, oldest first, each with the
id the relay uses to recognise a resend.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

import sqlcipher3

from shared.envelope import new_message_id


class OutboxItem(NamedTuple):
    id: int
    send_id: bytes
    message_id: bytes | None
    users: tuple[str, ...]
    payload: bytes


class OutboxStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def enqueue(self, users: Iterable[str], payload: bytes, message_id: bytes | None) -> None:
        self._db.execute(
            "INSERT INTO outbox (send_id, message_id, users, payload) VALUES (?, ?, ?, ?)",
            (new_message_id(), message_id, json.dumps(list(users)), payload),
        )

    def next_outgoing(self) -> OutboxItem | None:
        row = self._db.execute(
            "SELECT id, send_id, message_id, users, payload FROM outbox ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return OutboxItem(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4])

    def remove_outgoing(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
