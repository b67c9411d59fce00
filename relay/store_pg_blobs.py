"""The PostgreSQL store's attachment blobs: the same records, references, quota and expiry as
:class:`relay.store_blobs.BlobStore` on SQLite, with the bytes in the database.

Several nodes share the store, so a node-local file would not do: a blob uploaded through one
node is fetched (or its upload resumed) through another. Each uploaded chunk (at most one 256 KiB
frame) is a row of ``blob_chunks`` keyed by the offset it starts at, written in the same
transaction that moves the blob's ``received`` past it, so the record never claims bytes that
are not there. A read takes the chunks that overlap the range asked for (at most two for a
frame-sized read) and cuts the range out of them; a 100 MB blob never passes through memory
whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from relay.store_blobs import BlobRow

_BLOB_COLUMNS = "blob_id, owner, size, received, capability_hash, created_at"


class PgBlobs:
    # relay.store_pg.PgRelayStore's runners, in its open transaction.
    _rows: Callable[..., list[asyncpg.Record]]
    _row: Callable[..., asyncpg.Record | None]
    _value: Callable[..., Any]
    _execute: Callable[..., None]

    def create_blob(self, blob: BlobRow, readers: Iterable[str]) -> None:
        """Record a new, empty blob and a reference for its owner and each reader."""
        self._execute(f"INSERT INTO blobs ({_BLOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)", *blob)
        self._execute(
            "INSERT INTO blob_refs SELECT $1, u FROM unnest($2::text[]) AS u"
            " ON CONFLICT DO NOTHING",
            blob.blob_id,
            sorted({blob.owner, *readers}),
        )

    def blob(self, blob_id: bytes) -> BlobRow | None:
        row = self._row(f"SELECT {_BLOB_COLUMNS} FROM blobs WHERE blob_id = $1", blob_id)
        return BlobRow(*row) if row else None

    def blob_readable_by(self, blob_id: bytes, username: str) -> bool:
        found = self._value(
            "SELECT 1 FROM blob_refs WHERE blob_id = $1 AND username = $2", blob_id, username
        )
        return found is not None

    def write_blob(self, blob_id: bytes, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (where the received bytes end). The chunks cover exactly
        the received bytes (both move in one transaction), so nothing is stored from there on."""
        self._execute("INSERT INTO blob_chunks VALUES ($1, $2, $3)", blob_id, offset, data)
        self._execute(
            "UPDATE blobs SET received = $1 WHERE blob_id = $2", offset + len(data), blob_id
        )

    def read_blob(self, blob_id: bytes, offset: int, length: int) -> bytes:
        # The chunk holding ``offset`` (the last starting at or before it) and those after it
        # that start before the range's end; both bounds are on the primary key.
        rows = self._rows(
            "SELECT start, data FROM blob_chunks WHERE blob_id = $1"
            " AND start < $2::bigint + $3::bigint AND start >= coalesce((SELECT max(start)"
            " FROM blob_chunks WHERE blob_id = $1 AND start <= $2), 0) ORDER BY start",
            blob_id,
            offset,
            length,
        )
        if not rows:
            return b""
        joined = b"".join(row[1] for row in rows)
        skip = offset - rows[0][0]
        return joined[skip : skip + length]

    def owned_blob_bytes(self, owner: str) -> int:
        return int(self._value("SELECT coalesce(sum(size), 0) FROM blobs WHERE owner = $1", owner))

    def release_blob(self, blob_id: bytes, username: str) -> None:
        """Drop ``username``'s reference; the blob goes with its last one."""
        self._execute(
            "DELETE FROM blob_refs WHERE blob_id = $1 AND username = $2", blob_id, username
        )
        if self._value("SELECT 1 FROM blob_refs WHERE blob_id = $1 LIMIT 1", blob_id) is None:
            self.delete_blob(blob_id)

    def delete_blob(self, blob_id: bytes) -> None:
        for table in ("blob_refs", "blob_chunks", "blobs"):
            self._execute(f"DELETE FROM {table} WHERE blob_id = $1", blob_id)

    def expire_blobs(self, unfinished_before: int, finished_before: int) -> int:
        """Delete uploads never finished by the first time and blobs made before the second,
        with their references and bytes, in one statement."""
        expired = self._value(
            "WITH gone AS (DELETE FROM blobs WHERE (received < size AND created_at < $1)"
            " OR created_at < $2 RETURNING blob_id),"
            " refs AS (DELETE FROM blob_refs WHERE blob_id IN (SELECT blob_id FROM gone)),"
            " chunks AS (DELETE FROM blob_chunks WHERE blob_id IN (SELECT blob_id FROM gone))"
            " SELECT count(*) FROM gone",
            unfinished_before,
            finished_before,
        )
        return int(expired)
