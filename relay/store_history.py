"""The relay store's history: each account's epochs (signed heads, boxes and per-member grants)
and its mailbox of sealed messages with the bytes it holds.

A part of :class:`relay.store.RelayStore`, which owns the connection and the group commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple


class EpochRow(NamedTuple):
    seq: int
    signed_head: bytes
    prev_root_box: bytes
    account_box: bytes


class HistoryStore:
    _db: sqlite3.Connection

    def latest_epoch(self, username: str) -> EpochRow | None:
        row = self._db.execute(
            "SELECT seq, signed_head, prev_root_box, account_box FROM epochs WHERE username = ?"
            " ORDER BY seq DESC LIMIT 1",
            (username,),
        ).fetchone()
        return EpochRow(*row) if row else None

    def epochs_after(self, username: str, since: int) -> list[EpochRow]:
        rows = self._db.execute(
            "SELECT seq, signed_head, prev_root_box, account_box FROM epochs"
            " WHERE username = ? AND seq > ? ORDER BY seq",
            (username, since),
        ).fetchall()
        return [EpochRow(*row) for row in rows]

    def add_epoch(
        self, username: str, epoch: EpochRow, grants: Iterable[tuple[str, bytes]]
    ) -> None:
        self._db.execute("INSERT INTO epochs VALUES (?, ?, ?, ?, ?)", (username, *epoch))
        self._db.executemany(
            "INSERT INTO grants VALUES (?, ?, ?, ?)",
            ((username, member_id, epoch.seq, sealed) for member_id, sealed in grants),
        )

    def grants_for(self, username: str, member_id: str, since: int) -> dict[int, bytes]:
        rows = self._db.execute(
            "SELECT seq, sealed FROM grants WHERE username = ? AND member_id = ? AND seq > ?",
            (username, member_id, since),
        ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------------ mailbox

    def save_to_mailbox(
        self, username: str, items: Iterable[tuple[bytes, int, bytes, int, bytes]]
    ) -> None:
        """Items are (thread_id, ts, message_id, epoch, sealed); a message saved twice (every
        device of the user saves what it sees) is kept once."""
        self._db.executemany(
            "INSERT OR IGNORE INTO mailbox VALUES (?, ?, ?, ?, ?, ?)",
            ((username, *item) for item in items),
        )

    def mailbox_page(
        self, username: str, thread_id: bytes, before: tuple[int, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, int, int, bytes]]:
        """Newest first: (thread_id, message_id, ts, epoch, sealed)."""
        sql = (
            "SELECT thread_id, message_id, ts, epoch, sealed FROM mailbox"
            " WHERE username = ? AND thread_id = ?"
        )
        params: list[object] = [username, thread_id]
        if before is not None:
            sql += " AND ts <= ? AND (ts, message_id) < (?, ?)"
            params += [before[0], before[0], before[1]]
        sql += " ORDER BY ts DESC, message_id DESC LIMIT ?"
        return self._db.execute(sql, [*params, limit]).fetchall()

    def mailbox_threads(self, username: str) -> list[tuple[bytes, int]]:
        return self._db.execute(
            "SELECT thread_id, count FROM mailbox_counts WHERE username = ?",
            (username,),
        ).fetchall()

    def mailbox_bytes(self, username: str) -> int:
        row = self._db.execute(
            "SELECT bytes FROM mailbox_bytes WHERE username = ?", (username,)
        ).fetchone()
        return row[0] if row else 0
