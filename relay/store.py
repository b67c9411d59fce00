"""The relay's SQLite store: one schema, one connection and its group commit, over three parts
by concern: accounts and devices (``store_accounts``), delivery queues (``store_queue``), and
history, epochs and mailbox (``store_history``). Forgetting a device spans them all, so it is here.

One connection in WAL mode with ``synchronous=FULL``: every commit is on the disk before
anything that depends on it is answered, so a message the relay accepted survives a power loss,
not only a crash of the process (``NORMAL`` would lose the last commits). Writes go into an open
transaction and are committed in groups: :meth:`RelayStore.durable` returns a future that
completes after the next commit, which runs once per event-loop turn. Under load many envelopes
share one commit (and one sync), which is what lets a durable queue keep up with a bare forwarder
(``tests/benchmarks/bench_relay.py``, same run, 2 busy cores: one commit per envelope ≈ 1.1k/s
with FULL against 6.5k/s with NORMAL; commits grouped per 100 ≈ 30k/s against 55k/s).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from relay.migrations import Step, pending
from relay.store_accounts import AccountStore, BundleRow, DeviceRow
from relay.store_blobs import BLOB_SCHEMA, BlobStore
from relay.store_controls import ControlStore
from relay.store_history import EpochRow, HistoryStore
from relay.store_queue import FAN_OUT_MEMORY_US, QueuedEnvelope, QueueStore

log = logging.getLogger("ariadne.relay")

__all__ = [
    "FAN_OUT_MEMORY_US",
    "BundleRow",
    "DeviceRow",
    "EpochRow",
    "QueuedEnvelope",
    "RelayStore",
]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    amk_public BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES accounts(username),
    name TEXT NOT NULL,
    sign_public BLOB NOT NULL,
    storage_key BLOB NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    identity_key BLOB,
    signed_pre_key BLOB,
    signed_pre_key_sig BLOB,
    pairing_commitment BLOB,
    pairing_at INTEGER
);
CREATE INDEX IF NOT EXISTS devices_by_user ON devices(username);
CREATE TABLE IF NOT EXISTS one_time_pre_keys (
    device_id TEXT NOT NULL,
    pre_key BLOB NOT NULL,
    PRIMARY KEY (device_id, pre_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_lists (
    username TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    signed_list BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS list_members (
    username TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (username, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    server_ts INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_device ON queue(device_id, seq);
-- Labyrinth: epochs (signed heads and the boxes sealed under their roots), each member's grant,
-- and the mailbox of sealed messages, indexed by (mailbox, thread, time) and nothing else.
CREATE TABLE IF NOT EXISTS epochs (
    username TEXT NOT NULL,
    seq INTEGER NOT NULL,
    signed_head BLOB NOT NULL,
    prev_root_box BLOB NOT NULL,
    account_box BLOB NOT NULL,
    PRIMARY KEY (username, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    username TEXT NOT NULL,
    member_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (username, member_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailbox (
    username TEXT NOT NULL,
    thread_id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    message_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (username, thread_id, ts, message_id)
) WITHOUT ROWID;
-- Items per thread, kept by a trigger so listing threads never scans a mailbox.
CREATE TABLE IF NOT EXISTS mailbox_counts (
    username TEXT NOT NULL,
    thread_id BLOB NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (username, thread_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS mailbox_counted AFTER INSERT ON mailbox BEGIN
    INSERT INTO mailbox_counts VALUES (new.username, new.thread_id, 1)
        ON CONFLICT (username, thread_id) DO UPDATE SET count = count + 1;
END;
CREATE TABLE IF NOT EXISTS fan_outs (
    device_id TEXT NOT NULL,
    send_id BLOB NOT NULL,
    server_ts INTEGER NOT NULL,
    PRIMARY KEY (device_id, send_id)
) WITHOUT ROWID;
-- A device's identity key belongs to it alone: looked up to refuse another device claiming it.
CREATE INDEX IF NOT EXISTS devices_by_identity_key ON devices(identity_key);
-- Every device list an account published: a device that missed some fetches the ones between,
-- to check each change's author against the list before it.
CREATE TABLE IF NOT EXISTS device_list_history (
    username TEXT NOT NULL,
    version INTEGER NOT NULL,
    signed_list BLOB NOT NULL,
    PRIMARY KEY (username, version)
) WITHOUT ROWID;
-- Bytes held per mailbox, kept by a trigger so that the quota check is one lookup, not a scan
-- (recounted at open: see RelayStore._recount_quotas). Queue bytes are counted in memory.
CREATE TABLE IF NOT EXISTS mailbox_bytes (
    username TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS mailbox_bytes_added AFTER INSERT ON mailbox BEGIN
    INSERT INTO mailbox_bytes VALUES (new.username, length(new.sealed))
        ON CONFLICT (username) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
"""

# Version 3: controls (a mailbox item deleted — unsent, deleted, expired — leaves its thread's
# count and its account's bytes: relay/store_controls.py) and attachment blobs (store_blobs).
_SCHEMA_3 = """
CREATE TRIGGER IF NOT EXISTS mailbox_deleted AFTER DELETE ON mailbox BEGIN
    UPDATE mailbox_counts SET count = count - 1
        WHERE username = old.username AND thread_id = old.thread_id;
    UPDATE mailbox_bytes SET bytes = bytes - length(old.sealed) WHERE username = old.username;
END;
"""


# Versioned migrations (relay.migrations): the schema above is version 2, the first shipped;
# later changes are appended as steps with the next version.
MIGRATIONS = [Step(2, _SCHEMA), Step(3, _SCHEMA_3 + BLOB_SCHEMA)]


class RelayStore(AccountStore, QueueStore, HistoryStore, ControlStore, BlobStore):
    shared_between_nodes = False  # one process owns the file

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB: queues and indexes stay in memory
        self._migrate()
        self.blob_dir = path.with_name(path.name + ".blobs")  # attachment bytes, one file each
        self.blob_dir.mkdir(exist_ok=True)
        self._queue_bytes: dict[str, int] = {}  # per device, an upper bound (queue_has_room)
        self._acknowledged: set[str] = set()  # devices whose bound may be above the truth
        self._recount_quotas()
        self._db.commit()
        # Reads of committed rows only (a device's backlog, see store_queue); autocommit, so
        # each read sees the last commit.
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._waiters: list[asyncio.Future[None]] = []
        self._after_commit: list[Callable[[BaseException | None], None]] = []
        self._commit_scheduled = False

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for step in pending(MIGRATIONS, version):
            self._db.executescript(step.sql)
            self._db.execute(f"PRAGMA user_version={step.version}")
            self._db.commit()

    def close(self) -> None:
        self._commit_now()
        self._reader.close()
        self._db.close()

    def _recount_quotas(self) -> None:
        """Count the bytes held from the rows themselves, at open: the queue's in memory (see
        ``queue_has_room``), the mailbox's in its table (a store written before the trigger
        existed, or edited by hand, starts with the right figures)."""
        self._queue_bytes = dict(
            self._db.execute(
                "SELECT device_id, sum(length(payload)) FROM queue GROUP BY device_id"
            ).fetchall()
        )
        self._db.execute("DELETE FROM mailbox_bytes")
        self._db.execute(
            "INSERT INTO mailbox_bytes SELECT username, sum(length(sealed)) FROM mailbox"
            " GROUP BY username"
        )

    # ------------------------------------------------------------------ group commit

    def durable(self) -> asyncio.Future[None]:
        """A future that completes once everything written so far is committed."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        self._schedule_commit()
        return waiter

    def when_durable(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback`` right after the commit that makes everything written so far
        durable, with the commit's error if it failed: ``durable`` without a future and a turn
        of the event loop per caller (every fan-out is answered this way)."""
        self._after_commit.append(callback)
        self._schedule_commit()

    def _schedule_commit(self) -> None:
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_now)

    def _commit_now(self) -> None:
        self._commit_scheduled = False
        waiters, self._waiters = self._waiters, []
        callbacks, self._after_commit = self._after_commit, []
        error: sqlite3.Error | None = None
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            error = exc
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        for callback in callbacks:
            try:
                callback(error)
            except Exception:
                # One answer's bug must not keep the others of this commit from being sent.
                log.exception("internal error after a commit")

    # ------------------------------------------------------------------ revocation

    def forget_device(self, device_id: str) -> None:
        """Revocation on the relay's side: credentials, keys and queue go."""
        self._db.execute("DELETE FROM queue WHERE device_id = ?", (device_id,))
        self._db.execute("DELETE FROM one_time_pre_keys WHERE device_id = ?", (device_id,))
        self._db.execute("DELETE FROM fan_outs WHERE device_id = ?", (device_id,))
        self._db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
        self._queue_bytes.pop(device_id, None)
        self._acknowledged.discard(device_id)
