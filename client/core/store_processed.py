"""The profile's record of envelopes already processed, so a redelivered one is dropped before
it reaches the ratchet.

The relay redelivers whatever it did not hear acknowledged (a device killed before its Ack, a
connection dropped, a relay that lost its acks). The ratchet recognises a repeat only within its
current receiving chain: a repeat from an earlier chain looks like a new ratchet step and fails,
which the user would see as "couldn't decrypt this message". So each envelope's digest is
recorded in the same transaction as the batch that processed it, with the message id it carried
(a repeat of a message still calls for its delivery receipt: the first one may have been lost).

A digest, not the relay's sequence number: a relay that lost its data (or a hostile one) hands
out the same numbers again for other envelopes. The record is kept for ``PROCESSED_MEMORY_S``,
longer than a relay remembers a fan-out it may be asked to take again.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection and
its transactions.
"""

from __future__ import annotations

import hashlib
import time
from typing import NamedTuple

import sqlcipher3

PROCESSED_MEMORY_S = 30 * 24 * 3600


class Processed(NamedTuple):
    sender_user: str
    message_id: bytes | None  # the text message it carried, if any


def envelope_digest(sender_user: str, sender_device: str, payload: bytes) -> bytes:
    """What identifies one envelope across redeliveries: who the relay says sent it, and its
    bytes (each sealed envelope is unique: its own message key and nonce)."""
    digest = hashlib.sha256()
    for part in (sender_user.encode(), sender_device.encode()):
        digest.update(len(part).to_bytes(2, "big") + part)
    digest.update(payload)
    return digest.digest()


class ProcessedStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def processed(self, digest: bytes) -> Processed | None:
        row = self._db.execute(
            "SELECT sender_user, message_id FROM processed_envelopes WHERE digest = ?", (digest,)
        ).fetchone()
        return Processed(row[0], row[1]) if row else None

    def record_processed(self, digest: bytes, sender_user: str, message_id: bytes | None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO processed_envelopes VALUES (?, ?, ?, ?)",
            (digest, sender_user, message_id, int(time.time())),
        )

    def forget_processed(self, now: float | None = None) -> None:
        """Forget digests older than the longest a redelivery can come after them."""
        now = time.time() if now is None else now
        self._db.execute(
            "DELETE FROM processed_envelopes WHERE at < ?", (int(now) - PROCESSED_MEMORY_S,)
        )
