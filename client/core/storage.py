"""One device profile's SQLite database: identity, contacts, sessions, messages and the outbox.

Writes go into a transaction that :meth:`ProfileStore.transaction` owns: callers group related
writes (a ratchet step, the message it carried, the pre-key it used) in one, so a crash never
leaves a ratchet ahead of, or behind, the message it produced. The engine's loops (inbox, outbox,
mailbox) share this one connection, so a transaction belongs to the asyncio task that opened it:
only that task commits it (see :class:`Transaction`).

This module owns the schema, the connection and its transactions; the queries live in parts by
concern, which :class:`ProfileStore` combines: contacts, device ownership and sessions
(``store_contacts``), messages and threads (``store_messages``), the outbox (``store_outbox``),
epochs, the mailbox queue and mailbox cursors (``store_history``), and drafts, per-device
receipts, send failures and the search index (``store_chat``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from client.core.at_rest import KeyPlace, open_database
from client.core.profile_lock import hold
from client.core.store_attachments import AttachmentStore
from client.core.store_chat import ChatStore
from client.core.store_contacts import ContactStore, SessionRow
from client.core.store_controls import CONTROLS_SCHEMA, ControlStore
from client.core.store_groups import SCHEMA as GROUP_SCHEMA
from client.core.store_groups import GroupStore
from client.core.store_history import HistoryStore, KeptEpoch, MailboxCursor
from client.core.store_messages import MessageStore
from client.core.store_outbox import OutboxItem, OutboxStore, Unconfirmed
from client.core.store_processed import ProcessedStore
from client.core.store_releases import RELEASES_SCHEMA, ReleaseStore
from client.core.store_uploads import UPLOADS_SCHEMA, UploadStore

__all__ = [
    "DB_NAME",
    "KeptEpoch",
    "MailboxCursor",
    "OutboxItem",
    "ProfileStore",
    "SessionRow",
    "Transaction",
    "Unconfirmed",
]

SCHEMA_VERSION = 2
# SQLite's page cache for the profile (allocated only as pages are read): SQLCipher decrypts a
# page each time it is read from the file, so a cache smaller than the message indexes (about
# 15 MiB at 100,000 messages) decrypts the same pages again and again while history is stored
# (restoring 100,000 messages: 2 MiB, SQLite's default, cost a third more CPU per message).
PAGE_CACHE_KIB = 32 * 1024
# The write-ahead log is copied into the database (with two fsyncs) once it holds this many
# pages, 32 MiB, instead of SQLite's 1,000 (4 MiB), which a restore of 100,000 messages passed
# every few writes: with the larger log the restore took 0.5 µs less CPU and 1 µs less time per
# message, and its longest write held the event loop 25–30 ms instead of 30–38.
WAL_CHECKPOINT_PAGES = 8192
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
-- Unread messages per thread: only rows still 'received' are in it, so storing restored history
-- (read or sent) never touches it.
DROP INDEX IF EXISTS messages_by_status;
CREATE INDEX IF NOT EXISTS messages_unread ON messages(thread) WHERE status = 'received';
-- Conversations and their latest activity, kept by triggers: listing them never scans history.
CREATE TABLE IF NOT EXISTS threads (thread TEXT PRIMARY KEY, last_ts INTEGER NOT NULL);
-- Restored history (insert_messages) drops the per-row insert triggers (ROW_TRIGGERS) for its
-- batch and writes the batch's threads and search entries once: row by row, even a trigger
-- that does nothing (the WHEN of an earlier version) costs more than the insert.
DROP TRIGGER IF EXISTS thread_on_insert;
DROP TRIGGER IF EXISTS thread_on_one_insert;
DROP TABLE IF EXISTS bulk_insert;
CREATE TRIGGER IF NOT EXISTS thread_on_row_insert AFTER INSERT ON messages BEGIN
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
-- The conversation screen (store_chat): drafts, each recipient device's receipts, why a send
-- failed, and the full-text index over the messages (kept by triggers, as the threads are).
CREATE TABLE IF NOT EXISTS drafts (thread TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_receipts (
    message_id BLOB NOT NULL,
    username TEXT NOT NULL,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (message_id, username, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS send_failures (message_id BLOB PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS display_names (username TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shared_names (username TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names_sent (username TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS message_search
    USING fts5(body, content='messages', content_rowid='rowid', columnsize=0);
DROP TRIGGER IF EXISTS search_on_insert;
DROP TRIGGER IF EXISTS search_on_one_insert;
CREATE TRIGGER IF NOT EXISTS search_on_row_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search(rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER IF NOT EXISTS search_on_delete AFTER DELETE ON messages BEGIN
    INSERT INTO message_search(message_search, rowid, body) VALUES ('delete', old.rowid, old.body);
END;
CREATE TRIGGER IF NOT EXISTS search_on_edit AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO message_search(message_search, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO message_search(rowid, body) VALUES (new.rowid, new.body);
END;
-- Attachments (store_attachments): each one's pointer and where this device stands with its file.
CREATE TABLE IF NOT EXISTS attachments (
    message_id BLOB PRIMARY KEY,
    pointer BLOB NOT NULL,
    state TEXT NOT NULL,
    path TEXT,
    detail TEXT NOT NULL
);
-- Envelopes already processed (see store_processed), so a redelivered one is dropped unopened.
CREATE TABLE IF NOT EXISTS processed_envelopes (
    digest BLOB PRIMARY KEY,
    sender_user TEXT NOT NULL,
    message_id BLOB,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS processed_envelopes_by_time ON processed_envelopes(at);
-- Messages the relay accepted and no recipient device has confirmed yet, with the fan-out the
-- relay accepted: offered again after every reconnect (see store_outbox).
CREATE TABLE IF NOT EXISTS unconfirmed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id BLOB NOT NULL UNIQUE,
    send_id BLOB NOT NULL,
    users TEXT NOT NULL,
    payload BLOB NOT NULL,
    fan_out BLOB NOT NULL
);
"""
_SCHEMA += CONTROLS_SCHEMA  # unsend, delete, expiry, replies, edits, reactions, timers
_SCHEMA += GROUP_SCHEMA
_SCHEMA += RELEASES_SCHEMA  # attachments whose message is gone, until their blob is released
_SCHEMA += UPLOADS_SCHEMA  # unfinished attachment uploads, to go on after a restart


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


class ProfileStore(
    ContactStore,
    MessageStore,
    OutboxStore,
    HistoryStore,
    ChatStore,
    ControlStore,
    AttachmentStore,
    GroupStore,
    ProcessedStore,
    ReleaseStore,
    UploadStore,
):
    def __init__(self, directory: Path, *, encrypt: bool = True) -> None:
        """Open or create the profile in ``directory``: a private folder and an encrypted
        database (see :mod:`client.core.at_rest`; raises its ``ProfileLocked`` if the database
        cannot be opened). ``encrypt=False`` keeps a new profile plain, for benchmarks."""
        self.path = directory / DB_NAME
        self.key_place: KeyPlace  # where the database key is kept
        self._held = hold(directory)  # one process per profile (raises ProfileInUse)
        try:
            self._db, self.key_place = open_database(directory, self.path, encrypt)
        except BaseException:
            self._held.close()
            raise
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"profile database has schema {version}, expected {SCHEMA_VERSION}")
        self.forget_older_search_index()
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.forget_processed()
        self._db.commit()
        self.build_search_index()
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
        self._held.close()

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
