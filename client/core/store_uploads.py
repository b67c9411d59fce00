"""The profile's unfinished attachment uploads: what a sent file's upload needs to go on after
the app was closed — the attachment's key and capability, the relay's blob, the file and what
it held when it was attached (a SHA-256 per 64 KiB chunk) — until its message is queued.

A row is written in the transaction that stores the message, so a message shown as sending
always has what it needs to finish. It goes in the transaction that queues the message (or marks
it failed or cancelled), and with the attachment's row when the message is removed: a trigger
then notes its partial blob for release, so whatever removed the message (the user, a control
from another device, expiry on time or while the app was closed) and whenever the app closes,
the relay is told to forget that blob.
The key is here, so it lives only in the encrypted profile database, like the pointer later.

An upload given up (cancelled, or failed) leaves its partial blob to be released: the blob's id
and capability wait in ``abandoned_blobs``, written in the transaction that gives the upload up,
until the relay confirmed it forgot the blob — so a release the app closed on goes at the next
start rather than leaving the blob to count against the account's quota until it expires.

A part of :class:`client.core.storage.ProfileStore`, which owns the connection and its
transactions.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlcipher3

UPLOADS_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_uploads (
    message_id BLOB PRIMARY KEY,
    peer TEXT NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunk_digests BLOB,  -- NULL until the file was read once (nothing was sent before)
    key BLOB NOT NULL,
    capability BLOB NOT NULL,
    blob_id BLOB,  -- NULL until the relay gave a blob (no chunk is sent before)
    content_type TEXT NOT NULL,
    thumbnail BLOB,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS abandoned_blobs (
    blob_id BLOB PRIMARY KEY,
    capability BLOB NOT NULL
) WITHOUT ROWID;
-- An attachment goes with its message (unsent, deleted, in a deleted conversation, expired:
-- store_releases' triggers), whichever path removes it: an upload still under way goes with it,
-- and its partial blob is noted for release in that same transaction (one the relay has not
-- given yet has a NULL blob_id, which OR IGNORE leaves out: the blob given later is released
-- by attachment_upload when the answer comes).
DROP TRIGGER IF EXISTS upload_of_removed_attachment;
CREATE TRIGGER IF NOT EXISTS upload_goes_with_its_attachment AFTER DELETE ON attachments BEGIN
    INSERT OR IGNORE INTO abandoned_blobs
        SELECT blob_id, capability FROM pending_uploads WHERE message_id = old.message_id;
    DELETE FROM pending_uploads WHERE message_id = old.message_id;
END;
"""


class PendingUpload(NamedTuple):
    message_id: bytes
    peer: str
    source: str  # the user's own file, read again on every attempt
    size: int
    chunk_digests: bytes | None  # SHA-256 of each 64 KiB chunk of the file, in order
    key: bytes
    capability: bytes
    blob_id: bytes | None
    content_type: str
    thumbnail: bytes | None
    expires_at: int | None


_COLUMNS = (
    "message_id, peer, source, size, chunk_digests, key, capability, blob_id, content_type,"
    " thumbnail, expires_at"
)


class UploadStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def put_upload(self, upload: PendingUpload) -> None:
        marks = ", ".join("?" * len(upload))
        self._db.execute(f"INSERT INTO pending_uploads ({_COLUMNS}) VALUES ({marks})", upload)

    def pending_upload(self, message_id: bytes) -> PendingUpload | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM pending_uploads WHERE message_id = ?", (message_id,)
        ).fetchone()
        return PendingUpload(*row) if row else None

    def pending_uploads(self) -> list[PendingUpload]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM pending_uploads").fetchall()
        return [PendingUpload(*row) for row in rows]

    def uploads_without_record(self) -> list[bytes]:
        """Attachments still uploading with nothing to go on from (a profile that was closed
        mid-upload before uploads were recorded)."""
        rows = self._db.execute(
            "SELECT message_id FROM attachments WHERE state = 'uploading' AND message_id"
            " NOT IN (SELECT message_id FROM pending_uploads)"
        ).fetchall()
        return [row[0] for row in rows]

    def set_upload_digests(self, message_id: bytes, chunk_digests: bytes) -> None:
        self._db.execute(
            "UPDATE pending_uploads SET chunk_digests = ? WHERE message_id = ?",
            (chunk_digests, message_id),
        )

    def set_upload_blob(self, message_id: bytes, blob_id: bytes) -> None:
        self._db.execute(
            "UPDATE pending_uploads SET blob_id = ? WHERE message_id = ?", (blob_id, message_id)
        )

    def drop_upload(self, message_id: bytes) -> None:
        self._db.execute("DELETE FROM pending_uploads WHERE message_id = ?", (message_id,))

    def abandon_blob(self, blob_id: bytes, capability: bytes) -> None:
        """The relay is to forget this partial blob (its upload was given up)."""
        self._db.execute(
            "INSERT OR IGNORE INTO abandoned_blobs (blob_id, capability) VALUES (?, ?)",
            (blob_id, capability),
        )

    def abandoned_blobs(self) -> list[tuple[bytes, bytes]]:
        """Each blob the relay is still to be told to forget, as (blob id, capability)."""
        return self._db.execute("SELECT blob_id, capability FROM abandoned_blobs").fetchall()

    def forget_abandoned_blob(self, blob_id: bytes) -> None:
        self._db.execute("DELETE FROM abandoned_blobs WHERE blob_id = ?", (blob_id,))
