"""The profile's attachments whose message is gone: unsent, deleted for me, in a deleted
conversation, or expired. Each waits here until this device has deleted its files and told the
relay that this account no longer needs the blob (``client/core/attachment_release.py``).

The database moves an attachment here itself (:data:`RELEASES_SCHEMA`'s triggers), in the
transaction that removes its message, whichever path removes it (a control from the relay or
the mailbox, a control waiting for its message, expiry on time or on start). A tombstoned message
never gets an attachment row again, so neither a redelivery nor a restore shows its thumbnail.

A part of :class:`client.core.storage.ProfileStore`, which owns the connection and its
transactions.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlcipher3

RELEASES_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_releases (
    message_id BLOB PRIMARY KEY,
    pointer BLOB NOT NULL,  -- empty if the upload never finished (its own path releases it)
    path TEXT
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS attachment_of_deleted_message AFTER DELETE ON messages BEGIN
    INSERT OR IGNORE INTO blob_releases
        SELECT message_id, pointer, path FROM attachments WHERE message_id = old.message_id;
    DELETE FROM attachments WHERE message_id = old.message_id;
END;
CREATE TRIGGER IF NOT EXISTS attachment_of_unsent_message AFTER UPDATE OF status ON messages
    WHEN new.status = 'unsent'
BEGIN
    INSERT OR IGNORE INTO blob_releases
        SELECT message_id, pointer, path FROM attachments WHERE message_id = new.message_id;
    DELETE FROM attachments WHERE message_id = new.message_id;
END;
CREATE TRIGGER IF NOT EXISTS no_attachment_for_tombstones BEFORE INSERT ON attachments
    WHEN EXISTS (SELECT 1 FROM tombstones WHERE message_id = new.message_id)
BEGIN
    SELECT RAISE(IGNORE);
END;
"""


class Release(NamedTuple):
    message_id: bytes
    pointer: bytes  # shared.attachment.encode_pointer; empty if never uploaded
    path: str | None  # where this device kept the file (the sender's own file for a sender)


class ReleaseStore:
    _db: sqlcipher3.Connection

    def releases(self, limit: int) -> list[Release]:
        rows = self._db.execute(
            "SELECT message_id, pointer, path FROM blob_releases LIMIT ?", (limit,)
        ).fetchall()
        return [Release(*row) for row in rows]

    def released(self, message_id: bytes) -> None:
        self._db.execute("DELETE FROM blob_releases WHERE message_id = ?", (message_id,))
