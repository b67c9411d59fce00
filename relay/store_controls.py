"""The relay store's part in controls (PROTOCOL.md §10): deleting items from an account's
mailbox when a message is unsent, deleted or expires. Each account deletes its own sealed copy;
the relay never learns why.

A part of :class:`relay.store.RelayStore`, which owns the connection, the schema (the triggers
that keep the per-thread counts and the bytes held right on delete) and the group commit.
"""

from __future__ import annotations

import sqlite3


class ControlStore:
    _db: sqlite3.Connection

    def delete_from_mailbox(
        self, username: str, thread_id: bytes, message_ids: list[bytes], through_ts: int | None
    ) -> int:
        """Delete the listed items of one thread (and, with ``through_ts``, every item up to that
        time); returns how many went. Ids that are not there are no error: another device of the
        account may have deleted them first."""
        deleted = 0
        for message_id in message_ids:
            deleted += self._db.execute(
                "DELETE FROM mailbox WHERE username = ? AND thread_id = ? AND message_id = ?",
                (username, thread_id, message_id),
            ).rowcount
        if through_ts is not None:
            deleted += self._db.execute(
                "DELETE FROM mailbox WHERE username = ? AND thread_id = ? AND ts <= ?",
                (username, thread_id, through_ts),
            ).rowcount
        self._db.execute("DELETE FROM mailbox_counts WHERE count <= 0")
        return deleted
