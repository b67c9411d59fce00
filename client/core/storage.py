"""One device profile's SQLite database: identity, contacts, sessions, messages and the outbox.

Writes go into a transaction that :meth:`ProfileStore.transaction` owns: callers group related
writes (a ratchet step, the message it carried, the pre-key it used) in one, so a crash never
leaves a ratchet ahead of, or behind, the message it produced. The engine's loops (inbox, outbox,
mailbox) share this one connection, so a transaction belongs to the asyncio task that opened it:
only that task commits it (see :class:`Transaction`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlcipher3

from client.core.at_rest import KeyPlace, open_database
from client.core.events import MessageStatus, StoredMessage
from shared.envelope import new_message_id

SCHEMA_VERSION = 2
DB_NAME = "ariadne.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profile (key TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS contacts (
    username TEXT PRIMARY KEY,
    amk_public BLOB NOT NULL,
    signed_list BLOB NOT NULL,
    version INTEGER NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,  -- the user compared the safety number
    changed_list BLOB  -- a list signed by a new account key, waiting for the user's acknowledgement
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer_user TEXT NOT NULL,
    peer_device TEXT NOT NULL,
    ephemeral BLOB,
    state BLOB NOT NULL,
    last_used INTEGER NOT NULL
);
DROP INDEX IF EXISTS sessions_by_peer;
CREATE INDEX IF NOT EXISTS sessions_by_user_device ON sessions(peer_user, peer_device, last_used);
CREATE TABLE IF NOT EXISTS messages (
    message_id BLOB PRIMARY KEY,
    thread TEXT NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    server_ts INTEGER,
    body TEXT NOT NULL,
    status TEXT NOT NULL
);
-- The conversation order, as an expression index: unsent messages (no relay time) sort last.
-- Queries must spell ORDER_KEY exactly like this to use it.
CREATE INDEX IF NOT EXISTS messages_in_order
    ON messages(thread, coalesce(server_ts, 9223372036854775807), message_id);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages(thread, status);
-- Conversations and their latest activity, kept by triggers: listing them never scans history.
CREATE TABLE IF NOT EXISTS threads (thread TEXT PRIMARY KEY, last_ts INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS thread_on_insert AFTER INSERT ON messages BEGIN
    INSERT INTO threads VALUES (new.thread, coalesce(new.server_ts, 0))
        ON CONFLICT (thread) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts);
END;
CREATE TRIGGER IF NOT EXISTS thread_on_time AFTER UPDATE OF server_ts ON messages
    WHEN new.server_ts IS NOT NULL BEGIN
    UPDATE threads SET last_ts = max(last_ts, new.server_ts) WHERE thread = new.thread;
END;
-- Labyrinth: the account's verified epochs and the roots this device knows; messages waiting to
-- be saved to the mailbox; and per thread, how far back the mailbox has been read.
CREATE TABLE IF NOT EXISTS epochs (
    seq INTEGER PRIMARY KEY,
    signed_head BLOB NOT NULL,
    prev_root_box BLOB NOT NULL,
    account_box BLOB NOT NULL,
    root BLOB
);
CREATE TABLE IF NOT EXISTS mailbox_pending (message_id BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS mailbox_threads (
    thread TEXT PRIMARY KEY,
    thread_id BLOB NOT NULL,
    total INTEGER NOT NULL,
    loaded INTEGER NOT NULL DEFAULT 0,
    oldest_ts INTEGER,
    oldest_id BLOB,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    send_id BLOB NOT NULL,
    message_id BLOB,
    users TEXT NOT NULL,
    payload BLOB NOT NULL
);
-- Which user's verified device list holds each device id and identity key: a device belongs to
-- one account only, so a list naming a device another user's list holds is refused.
CREATE TABLE IF NOT EXISTS contact_devices (
    username TEXT NOT NULL,
    device_id TEXT NOT NULL,
    identity_key BLOB NOT NULL,
    PRIMARY KEY (username, device_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contact_devices_by_id ON contact_devices(device_id);
CREATE INDEX IF NOT EXISTS contact_devices_by_identity ON contact_devices(identity_key);
-- Each message's place in its sending device's own order (the counter the sender authenticated),
-- to tell when the relay's timestamps contradict it.
CREATE TABLE IF NOT EXISTS sender_order (
    message_id BLOB PRIMARY KEY,
    thread TEXT NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    counter INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sender_order_by_device
    ON sender_order(thread, sender_user, sender_device, counter);
"""

_MESSAGE_COLUMNS = (
    "message_id, thread, sender_user, sender_device, sent_at, server_ts, body, status"
)


class SessionRow(NamedTuple):
    id: int
    peer_user: str
    peer_device: str
    ephemeral: bytes | None
    state: bytes


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


class OutboxItem(NamedTuple):
    id: int
    send_id: bytes
    message_id: bytes | None
    users: tuple[str, ...]
    payload: bytes


def _message(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        message_id=row[0],
        thread=row[1],
        sender_user=row[2],
        sender_device=row[3],
        sent_at=row[4],
        server_ts=row[5],
        body=row[6],
        status=MessageStatus(row[7]),
    )


class Transaction:
    """One transaction on the profile's connection, entered with ``async with`` or ``with``.

    - The outermost block owns the transaction: it commits when the block ends and rolls back if
      it raises. A block nested in the same task joins the outer one (commits nothing itself).
    - ``async with`` waits while another task's transaction is open, so a task whose block spans
      awaits (the inbox's batch, the outbox's encryption) is never committed by another loop
      half-way. Use it wherever the writes must be durable before something leaves for the relay.
    - ``with`` (for code that does not await inside) owns the transaction when none is open; if
      another task's is open it joins it, to be committed with it. It runs between that task's
      awaits, so the owner's writes stay whole either way.
    - A failing owner rolls back, unless another task's writes joined: those were promised to
      their caller, so the transaction is committed as it stands. ``rollback=False`` commits a
      failing block's writes too, for state that memory already holds (a session's ratchet).
    """

    def __init__(self, store: ProfileStore, rollback: bool = True) -> None:
        self._store = store
        self._rollback = rollback
        self._owns = False
        self._locked = False

    async def __aenter__(self) -> None:
        store = self._store
        task = _current_task()
        if store._owner is task:
            store._depth += 1
            return
        await store._lock.acquire()
        self._locked = True
        store._owner, store._depth, self._owns = task, 1, True

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._leave(kind is not None)
        finally:
            if self._locked:
                self._store._lock.release()

    def __enter__(self) -> None:
        store = self._store
        if store._owner is None:
            store._owner, store._depth, self._owns = _current_task(), 1, True
        elif store._owner is _current_task():
            store._depth += 1
        else:  # another task's open transaction: these writes are committed with it
            store._joined = True

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._owns or self._store._owner is _current_task():
            self._leave(kind is not None)

    def _leave(self, failed: bool) -> None:
        store = self._store
        store._depth -= 1
        if store._depth:
            return
        store._owner = None
        if failed and self._rollback and not store._joined:
            store._db.rollback()
        else:
            store._db.commit()
        store._joined = False


_NO_TASK = object()  # the owner of a transaction opened outside an event loop


def _current_task() -> object:
    try:
        return asyncio.current_task() or _NO_TASK
    except RuntimeError:  # no event loop: a plain script or a synchronous test
        return _NO_TASK


class ProfileStore:
    def __init__(self, directory: Path, *, encrypt: bool = True) -> None:
        """Open or create the profile in ``directory``: a private folder and an encrypted
        database (see :mod:`client.core.at_rest`; raises its ``ProfileLocked`` if the database
        cannot be opened). ``encrypt=False`` keeps a new profile plain, for benchmarks."""
        self.path = directory / DB_NAME
        self.key_place: KeyPlace  # where the database key is kept
        self._db, self.key_place = open_database(directory, self.path, encrypt)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"profile database has schema {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.commit()
        self._lock = asyncio.Lock()
        self._owner: object = None  # the task whose transaction is open
        self._depth = 0
        self._joined = False  # another task's writes joined the open transaction

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / DB_NAME).exists()

    def transaction(self, *, rollback: bool = True) -> Transaction:
        """``async with store.transaction():`` (or ``with``): see :class:`Transaction`."""
        return Transaction(self, rollback)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def commit(self) -> None:
        """Commit what was written outside any transaction (tests and scripts). Refused while a
        transaction is open: only its owner commits it."""
        if self._depth:
            raise RuntimeError("a transaction is open: only its owner commits")
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    # ------------------------------------------------------------------ profile values

    def get(self, key: str) -> bytes | str | int | None:
        row = self._db.execute("SELECT value FROM profile WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: bytes | str | int | None) -> None:
        self._db.execute(
            "INSERT INTO profile VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ------------------------------------------------------------------ contacts

    def contact(self, username: str) -> tuple[bytes, bytes, int] | None:
        row = self._db.execute(
            "SELECT amk_public, signed_list, version FROM contacts WHERE username = ?", (username,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def save_contact(
        self, username: str, amk_public: bytes, signed_list: bytes, version: int
    ) -> None:
        self._db.execute(
            "INSERT INTO contacts (username, amk_public, signed_list, version) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(username) DO UPDATE SET"
            " amk_public = excluded.amk_public, signed_list = excluded.signed_list,"
            " version = excluded.version",
            (username, amk_public, signed_list, version),
        )

    def forget_contact(self, username: str) -> None:
        self._db.execute("DELETE FROM contacts WHERE username = ?", (username,))
        self._db.execute("DELETE FROM contact_devices WHERE username = ?", (username,))

    def set_contact_devices(self, username: str, devices: Iterable[tuple[str, bytes]]) -> None:
        """The (device id, identity key) pairs of ``username``'s verified list, replacing any."""
        self._db.execute("DELETE FROM contact_devices WHERE username = ?", (username,))
        self._db.executemany(
            "INSERT INTO contact_devices VALUES (?, ?, ?)",
            ((username, device_id, key) for device_id, key in devices),
        )

    def device_holders(self, device_id: str, identity_key: bytes) -> set[str]:
        """Users whose verified list names this device id or this identity key."""
        rows = self._db.execute(
            "SELECT username FROM contact_devices WHERE device_id = ?"
            " UNION SELECT username FROM contact_devices WHERE identity_key = ?",
            (device_id, identity_key),
        ).fetchall()
        return {row[0] for row in rows}

    def verified(self, username: str) -> bool:
        row = self._db.execute(
            "SELECT verified FROM contacts WHERE username = ?", (username,)
        ).fetchone()
        return bool(row and row[0])

    def set_verified(self, username: str, verified: bool) -> None:
        self._db.execute(
            "UPDATE contacts SET verified = ? WHERE username = ?", (int(verified), username)
        )

    def key_change(self, username: str) -> bytes | None:
        row = self._db.execute(
            "SELECT changed_list FROM contacts WHERE username = ?", (username,)
        ).fetchone()
        return row[0] if row else None

    def set_key_change(self, username: str, signed_list: bytes | None) -> None:
        self._db.execute(
            "UPDATE contacts SET changed_list = ? WHERE username = ?", (signed_list, username)
        )

    # ------------------------------------------------------------------ sessions

    def sessions_with(self, peer_user: str, peer_device: str) -> list[SessionRow]:
        """Newest-used first."""
        rows = self._db.execute(
            "SELECT id, peer_user, peer_device, ephemeral, state FROM sessions"
            " WHERE peer_user = ? AND peer_device = ? ORDER BY last_used DESC, id DESC",
            (peer_user, peer_device),
        ).fetchall()
        return [SessionRow(*row) for row in rows]

    def insert_session(
        self, peer_user: str, peer_device: str, ephemeral: bytes | None, state: bytes, now: int
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO sessions (peer_user, peer_device, ephemeral, state, last_used)"
            " VALUES (?, ?, ?, ?, ?)",
            (peer_user, peer_device, ephemeral, state, now),
        )
        return cast(int, cursor.lastrowid)  # an INSERT always sets it

    def update_session(self, session_id: int, state: bytes, now: int) -> None:
        self._db.execute(
            "UPDATE sessions SET state = ?, last_used = ? WHERE id = ?", (state, now, session_id)
        )

    def delete_sessions(self, ids: Iterable[int]) -> None:
        self._db.executemany("DELETE FROM sessions WHERE id = ?", ((i,) for i in ids))

    def forget_device_sessions(self, peer_user: str, peer_device: str) -> None:
        self._db.execute(
            "DELETE FROM sessions WHERE peer_user = ? AND peer_device = ?", (peer_user, peer_device)
        )

    # ------------------------------------------------------------------ messages

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
        rows = self._db.execute(
            "SELECT message_id FROM messages WHERE thread = ? AND status = ?",
            (thread, MessageStatus.RECEIVED.value),
        ).fetchall()
        return [row[0] for row in rows]

    def last_message(self, thread: str) -> StoredMessage | None:
        messages = self.thread_messages(thread, limit=1)
        return messages[0] if messages else None

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

    # ------------------------------------------------------------------ outbox

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

    # ------------------------------------------------------------------ epochs

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

    def insert_messages(self, messages: list[StoredMessage]) -> int:
        """Many at once (restoring history); returns how many were new."""
        cursor = self._db.executemany(
            f"INSERT OR IGNORE INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    m.message_id,
                    m.thread,
                    m.sender_user,
                    m.sender_device,
                    m.sent_at,
                    m.server_ts,
                    m.body,
                    m.status.value,
                )
                for m in messages
            ),
        )
        return cursor.rowcount  # (changes() counts rows of this statement, not of triggers)
