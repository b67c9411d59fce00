"""The profile's side of the history backup: the account's verified epochs and the roots this
device knows, messages waiting to be saved to the mailbox, and per thread how far back the
mailbox has been read.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import sqlcipher3

from client.core.events import StoredMessage
from client.core.store_messages import _MESSAGE_COLUMNS, _message


class KeptEpoch(NamedTuple):
    """An epoch as this device keeps it: what the relay stores, and its root once opened."""

    seq: int
    signed_head: bytes
    prev_root_box: bytes
    account_box: bytes
    root: bytes | None


class MailboxCursor(NamedTuple):
    thread: str
    thread_id: bytes
    total: int
    loaded: int
    oldest: tuple[int, bytes] | None
    done: bool


class HistoryStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def latest_epoch_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM epochs").fetchone()[0])

    def epoch(self, seq: int) -> KeptEpoch | None:
        row = self._db.execute(
            "SELECT seq, signed_head, prev_root_box, account_box, root FROM epochs WHERE seq = ?",
            (seq,),
        ).fetchone()
        return KeptEpoch(*row) if row else None

    def add_epoch(
        self,
        seq: int,
        signed_head: bytes,
        prev_root_box: bytes,
        account_box: bytes,
        root: bytes | None,
    ) -> None:
        self._db.execute(
            "INSERT INTO epochs VALUES (?, ?, ?, ?, ?) ON CONFLICT(seq) DO UPDATE"
            " SET root = coalesce(epochs.root, excluded.root)",
            (seq, signed_head, prev_root_box, account_box, root),
        )

    def set_epoch_root(self, seq: int, root: bytes) -> None:
        self._db.execute("UPDATE epochs SET root = ? WHERE seq = ?", (root, seq))

    # ------------------------------------------------------------------ mailbox

    def save_later(self, message_ids: Iterable[bytes]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO mailbox_pending VALUES (?)", ((m,) for m in message_ids)
        )

    def unsaved(self, limit: int) -> list[StoredMessage]:
        rows = self._db.execute(
            f"SELECT {', '.join('m.' + c for c in _MESSAGE_COLUMNS.split(', '))}"
            " FROM mailbox_pending p JOIN messages m USING (message_id) LIMIT ?",
            (limit,),
        ).fetchall()
        return [_message(row) for row in rows]

    def saved(self, message_ids: Iterable[bytes]) -> None:
        self._db.executemany(
            "DELETE FROM mailbox_pending WHERE message_id = ?", ((m,) for m in message_ids)
        )

    def save_all_later(self) -> None:
        """Queue every message this device holds for the mailbox again (a relay that lost the
        mailbox is given the history back)."""
        self._db.execute(
            "INSERT OR IGNORE INTO mailbox_pending SELECT message_id FROM messages"
            " WHERE status NOT IN ('sending', 'failed', 'undecryptable', 'system')"
            " AND server_ts IS NOT NULL"
        )

    def unsaved_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM mailbox_pending").fetchone()[0])

    def mailbox_cursor(self, thread: str) -> MailboxCursor | None:
        row = self._db.execute(
            "SELECT thread, thread_id, total, loaded, oldest_ts, oldest_id, done"
            " FROM mailbox_threads WHERE thread = ?",
            (thread,),
        ).fetchone()
        if row is None:
            return None
        oldest = (row[4], row[5]) if row[4] is not None else None
        return MailboxCursor(row[0], row[1], row[2], row[3], oldest, bool(row[6]))

    def mailbox_cursors(self) -> list[MailboxCursor]:
        threads = self._db.execute("SELECT thread FROM mailbox_threads").fetchall()
        return [c for (t,) in threads if (c := self.mailbox_cursor(t)) is not None]

    def set_mailbox_cursor(self, cursor: MailboxCursor) -> None:
        self._db.execute(
            "INSERT INTO mailbox_threads VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(thread) DO UPDATE"
            " SET thread_id = excluded.thread_id, total = excluded.total, loaded = excluded.loaded,"
            " oldest_ts = excluded.oldest_ts, oldest_id = excluded.oldest_id, done = excluded.done",
            (
                cursor.thread,
                cursor.thread_id,
                cursor.total,
                cursor.loaded,
                cursor.oldest[0] if cursor.oldest else None,
                cursor.oldest[1] if cursor.oldest else None,
                int(cursor.done),
            ),
        )
