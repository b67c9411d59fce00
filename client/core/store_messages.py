"""The profile's messages and conversations: one row per message, threads ordered by their
latest activity, and each message's place in its sender's own order.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlcipher3

from client.core.events import MessageStatus, StoredMessage

# The per-row insert triggers that insert_messages replaces by one statement each for a batch:
# the conversation time and search entry (storage.py), and the refusal of a message that is
# gone (store_controls.py; ControlStore.not_gone).
ROW_TRIGGERS = ("thread_on_row_insert", "search_on_row_insert", "tombstones_stay")
_MESSAGE_COLUMNS = (
    "message_id, thread, sender_user, sender_device, sent_at, server_ts, body, status"
)


# Statuses by stored value: a dict lookup, not the enum's own (a scrolled window reads thousands
# of rows).
_STATUS = {status.value: status for status in MessageStatus}


def _message(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        message_id=row[0],
        thread=row[1],
        sender_user=row[2],
        sender_device=row[3],
        sent_at=row[4],
        server_ts=row[5],
        body=row[6],
        status=_STATUS[row[7]],
    )


# Rows per INSERT statement in a batch: one statement binding many rows costs less per row than
# one execution per row (restoring 100,000 messages: 0.6 µs less CPU per message), and a full
# chunk's statement text is always the same, so it is prepared once and then taken from the
# connection's statement cache. 256 rows bind 2,048 parameters, far under SQLite's limit.
ROWS_PER_INSERT = 256


@functools.cache
def _insert_rows(count: int) -> str:
    row = "(?, ?, ?, ?, ?, ?, ?, ?)"
    return f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}) VALUES {', '.join([row] * count)}"


def not_gone(db: sqlcipher3.Connection, messages: list[StoredMessage]) -> list[StoredMessage]:
    """``messages`` without those the ``tombstones_stay`` trigger (store_controls.py) refuses:
    deleted or expired here, or older than their deleted conversation. For a batch stored
    without the trigger: one range query over the batch's ids (time-ordered, so a page of
    history is a narrow range) instead of two lookups per row."""
    if not messages:
        return messages
    ids = [m.message_id for m in messages]
    gone = {
        row[0]
        for row in db.execute(
            "SELECT message_id FROM tombstones"
            " WHERE message_id BETWEEN ? AND ? AND kind != 'unsent'",
            (min(ids), max(ids)),
        )
    }
    cleared = {}
    for thread in {m.thread for m in messages}:
        row = db.execute(
            "SELECT through_ts FROM cleared_threads WHERE thread = ?", (thread,)
        ).fetchone()
        if row is not None:
            cleared[thread] = row[0]
    if not gone and not cleared:
        return messages
    return [
        m
        for m in messages
        if m.message_id not in gone
        and not (
            m.server_ts is not None and m.thread in cleared and m.server_ts <= cleared[m.thread]
        )
    ]


class MessageStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def insert_message(self, message: StoredMessage) -> bool:
        """False if a message with this id is already stored (a duplicate delivery)."""
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.message_id,
                message.thread,
                message.sender_user,
                message.sender_device,
                message.sent_at,
                message.server_ts,
                message.body,
                message.status.value,
            ),
        )
        return cursor.rowcount == 1

    def message(self, message_id: bytes) -> StoredMessage | None:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return _message(row) if row else None

    def set_status(
        self, message_id: bytes, status: MessageStatus, server_ts: int | None = None
    ) -> None:
        self._db.execute(
            "UPDATE messages SET status = ?, server_ts = coalesce(?, server_ts)"
            " WHERE message_id = ?",
            (status.value, server_ts, message_id),
        )

    def set_server_ts(self, message_id: bytes, server_ts: int) -> None:
        self._db.execute(
            "UPDATE messages SET server_ts = ? WHERE message_id = ?", (server_ts, message_id)
        )

    def record_sender_order(
        self, message_id: bytes, thread: str, sender_user: str, sender_device: str, counter: int
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sender_order VALUES (?, ?, ?, ?, ?)",
            (message_id, thread, sender_user, sender_device, counter),
        )

    def sender_counter(self, message_id: bytes) -> int | None:
        row = self._db.execute(
            "SELECT counter FROM sender_order WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row[0] if row else None

    def sender_neighbours(
        self, thread: str, sender_user: str, sender_device: str, counter: int, later: bool
    ) -> sqlcipher3.Cursor:
        """(counter, message id, relay time) of the sending device's placed messages in
        ``thread`` after ``counter`` (``later``) or before it, nearest first, read lazily."""
        comparison, direction = (">", "ASC") if later else ("<", "DESC")
        return self._db.execute(
            "SELECT o.counter, o.message_id, m.server_ts FROM sender_order o"
            " JOIN messages m USING (message_id)"
            " WHERE o.thread = ? AND o.sender_user = ? AND o.sender_device = ?"
            f" AND o.counter {comparison} ? AND m.server_ts IS NOT NULL"
            f" ORDER BY o.counter {direction}",
            (thread, sender_user, sender_device, counter),
        )

    def thread_messages(
        self, thread: str, limit: int | None = None, before: tuple[int, bytes] | None = None
    ) -> list[StoredMessage]:
        """Oldest first. Unsent messages (no relay time yet) sort after everything sent.

        ``limit`` keeps the newest ``limit`` messages; ``before`` pages further back."""
        order_key = "coalesce(server_ts, 9223372036854775807)"
        where = "thread = ?"
        params: list[object] = [thread]
        if before is not None:
            # The first term lets SQLite seek in the index; the row value makes it exact.
            where += f" AND {order_key} <= ? AND ({order_key}, message_id) < (?, ?)"
            params += [before[0], before[0], before[1]]
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where}"
            f" ORDER BY {order_key} DESC, message_id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._db.execute(sql, params).fetchall()
        return [_message(row) for row in reversed(rows)]

    def unread(self, thread: str) -> list[bytes]:
        """Ids of messages from others in ``thread`` that this user has not read yet."""
        # The status spelled out, not bound: only then may SQLite use the partial index.
        rows = self._db.execute(
            "SELECT message_id FROM messages WHERE thread = ? AND status = 'received'", (thread,)
        ).fetchall()
        return [row[0] for row in rows]

    def last_message(self, thread: str) -> StoredMessage | None:
        messages = self.thread_messages(thread, limit=1)
        return messages[0] if messages else None

    def newest_time(self, thread: str) -> int | None:
        """The latest relay time in ``thread`` (messages still sending have none)."""
        row = self._db.execute(
            "SELECT max(server_ts) FROM messages WHERE thread = ?", (thread,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def thread_messages_after(
        self, thread: str, after: tuple[int, bytes], limit: int
    ) -> list[StoredMessage]:
        """The ``limit`` messages that follow ``after`` in the thread's order, oldest first."""
        order_key = "coalesce(server_ts, 9223372036854775807)"
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread = ?"
            f" AND {order_key} >= ? AND ({order_key}, message_id) > (?, ?)"
            f" ORDER BY {order_key}, message_id LIMIT {int(limit)}",
            (thread, after[0], after[0], after[1]),
        ).fetchall()
        return [_message(row) for row in rows]

    def threads(self) -> list[str]:
        rows = self._db.execute("SELECT thread FROM threads ORDER BY last_ts DESC").fetchall()
        return [row[0] for row in rows]

    def insert_messages(self, messages: list[StoredMessage]) -> int:
        """Many at once (restored history); returns how many were new.

        The new rows' conversation times and search entries are written by one statement each
        for the batch, in the same transaction as the rows, instead of by the per-row triggers,
        which are dropped for the batch and created again before it ends (each would cost more
        than the row, even doing nothing): the batch is searchable exactly when it is stored,
        and a live message, stored between two batches, goes through the triggers. Schema
        changes are transactional in SQLite, so a batch that fails or is cut short leaves the
        triggers as they were, and nothing unindexed. New rows take rowids above the largest one
        (the connection is this profile's only writer), which is how the batch's rows are found.
        What the tombstone trigger would refuse is left out of the batch before (``not_gone``)."""
        db = self._db
        last = db.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]
        triggers = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
            f" AND name IN ({', '.join('?' * len(ROW_TRIGGERS))})",
            ROW_TRIGGERS,
        ).fetchall()
        if not db.in_transaction:  # (as the insert would): a savepoint alone commits on release
            db.execute("BEGIN")
        db.execute("SAVEPOINT insert_messages")
        try:
            messages = not_gone(db, messages)
            for name, _ in triggers:
                db.execute(f"DROP TRIGGER {name}")
            added = 0
            for start in range(0, len(messages), ROWS_PER_INSERT):
                chunk = messages[start : start + ROWS_PER_INSERT]
                values = [
                    value
                    for m in chunk
                    for value in (
                        m.message_id,
                        m.thread,
                        m.sender_user,
                        m.sender_device,
                        m.sent_at,
                        m.server_ts,
                        m.body,
                        m.status._value_,  # (the enum's value property is a descriptor call)
                    )
                ]
                # (changes() counts rows of this statement, not triggers')
                added += db.execute(_insert_rows(len(chunk)), values).rowcount
            for _, sql in triggers:
                db.execute(sql)
            # NOT INDEXED: for GROUP BY thread the planner would otherwise walk the whole
            # conversation-order index (every message stored, each batch) instead of the rowid
            # range of this batch.
            db.execute(
                "INSERT INTO threads SELECT thread, max(coalesce(server_ts, 0))"
                " FROM messages NOT INDEXED WHERE rowid > ? GROUP BY thread"
                " ON CONFLICT (thread) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)",
                (last,),
            )
            db.execute(
                "INSERT INTO message_search(rowid, body) SELECT rowid, body FROM messages"
                " WHERE rowid > ?",
                (last,),
            )
        except BaseException:
            db.execute("ROLLBACK TO insert_messages")  # the rows gone, the triggers back
            raise
        finally:
            db.execute("RELEASE insert_messages")
        return added
