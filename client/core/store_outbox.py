"""The profile's outbox: encrypted sends waiting for the relay, oldest first, each with the
id the relay uses to recognise a resend; and the messages the relay accepted that no recipient
device has confirmed yet, kept with the exact fan-out the relay accepted so it can be offered
again (a relay that lost its data takes it anew, one that has it answers as before).

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


class Unconfirmed(NamedTuple):
    message_id: bytes
    send_id: bytes
    users: tuple[str, ...]
    payload: bytes  # the plaintext payload, to encrypt again if the devices changed
    fan_out: bytes  # the envelopes the relay accepted (msgpack list of RecipientEnvelopes)


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

    def keep_unconfirmed(self, item: OutboxItem, fan_out: bytes) -> None:
        """Keep an accepted message's fan-out until a recipient device confirms it."""
        self._db.execute(
            "INSERT OR REPLACE INTO unconfirmed (message_id, send_id, users, payload, fan_out)"
            " VALUES (?, ?, ?, ?, ?)",
            (item.message_id, item.send_id, json.dumps(list(item.users)), item.payload, fan_out),
        )

    def unconfirmed(self) -> list[Unconfirmed]:
        """Accepted messages no recipient device has confirmed, in the order they were sent."""
        rows = self._db.execute(
            "SELECT message_id, send_id, users, payload, fan_out FROM unconfirmed ORDER BY id"
        ).fetchall()
        return [Unconfirmed(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4]) for r in rows]

    def confirmed(self, message_id: bytes) -> None:
        self._db.execute("DELETE FROM unconfirmed WHERE message_id = ?", (message_id,))
