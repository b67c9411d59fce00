"""The relay store's attachment blobs: opaque ciphertext, who may fetch it, who still needs it.

A part of :class:`relay.store.RelayStore`, which owns the connection and the group commit. A
blob's record (owner, size, bytes received, the capability's hash, when it was made) and its
references (one per account that may fetch it) are rows; its bytes are one file in the store's
data directory, written at the offset the upload has reached, so a 100 MB blob never passes
through the database or memory whole. A blob goes when its last reference does, or when it
expires (:meth:`BlobStore.expire_blobs`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

BLOB_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    blob_id BLOB PRIMARY KEY,
    owner TEXT NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    capability_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_owner ON blobs(owner);
CREATE INDEX IF NOT EXISTS blobs_by_age ON blobs(created_at);
CREATE TABLE IF NOT EXISTS blob_refs (
    blob_id BLOB NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (blob_id, username)
) WITHOUT ROWID;
"""


class BlobRow(NamedTuple):
    blob_id: bytes
    owner: str
    size: int
    received: int
    capability_hash: bytes
    created_at: int

    @property
    def complete(self) -> bool:
        return self.received == self.size


class BlobStore:
    _db: sqlite3.Connection
    blob_dir: Path

    def _blob_path(self, blob_id: bytes) -> Path:
        return self.blob_dir / blob_id.hex()

    def create_blob(self, blob: BlobRow, readers: Iterable[str]) -> None:
        """Record a new, empty blob and a reference for its owner and each reader."""
        self._db.execute("INSERT INTO blobs VALUES (?, ?, ?, ?, ?, ?)", blob)
        self._db.executemany(
            "INSERT OR IGNORE INTO blob_refs VALUES (?, ?)",
            ((blob.blob_id, name) for name in {blob.owner, *readers}),
        )
        self._blob_path(blob.blob_id).touch()

    def blob(self, blob_id: bytes) -> BlobRow | None:
        row = self._db.execute("SELECT * FROM blobs WHERE blob_id = ?", (blob_id,)).fetchone()
        return BlobRow(*row) if row else None

    def blob_readable_by(self, blob_id: bytes, username: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM blob_refs WHERE blob_id = ? AND username = ?", (blob_id, username)
            ).fetchone()
            is not None
        )

    def write_blob(self, blob_id: bytes, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (where the received bytes end); the file is flushed
        before the record says the bytes are there."""
        with self._blob_path(blob_id).open("r+b") as file:
            file.seek(offset)
            file.write(data)
            file.truncate()
        self._db.execute(
            "UPDATE blobs SET received = ? WHERE blob_id = ?", (offset + len(data), blob_id)
        )

    def read_blob(self, blob_id: bytes, offset: int, length: int) -> bytes:
        with self._blob_path(blob_id).open("rb") as file:
            file.seek(offset)
            return file.read(length)

    def owned_blob_bytes(self, owner: str) -> int:
        row = self._db.execute("SELECT sum(size) FROM blobs WHERE owner = ?", (owner,)).fetchone()
        return int(row[0] or 0)

    def release_blob(self, blob_id: bytes, username: str) -> None:
        """Drop ``username``'s reference; the blob goes with its last one."""
        self._db.execute(
            "DELETE FROM blob_refs WHERE blob_id = ? AND username = ?", (blob_id, username)
        )
        if self._db.execute("SELECT 1 FROM blob_refs WHERE blob_id = ?", (blob_id,)).fetchone():
            return
        self.delete_blob(blob_id)

    def delete_blob(self, blob_id: bytes) -> None:
        self._db.execute("DELETE FROM blob_refs WHERE blob_id = ?", (blob_id,))
        self._db.execute("DELETE FROM blobs WHERE blob_id = ?", (blob_id,))
        self._blob_path(blob_id).unlink(missing_ok=True)

    def expire_blobs(self, unfinished_before: int, finished_before: int) -> int:
        """Delete uploads never finished by the first time and blobs made before the second."""
        rows = self._db.execute(
            "SELECT blob_id FROM blobs WHERE received < size AND created_at < ?"
            " UNION SELECT blob_id FROM blobs WHERE created_at < ?",
            (unfinished_before, finished_before),
        ).fetchall()
        for (blob_id,) in rows:
            self.delete_blob(blob_id)
        return len(rows)
