"""The profile's part in controls (``client/core/controls.py``): the controls this device has
applied (and must save to the mailbox), controls waiting for their message, tombstones,
deleted conversations, each message's expiry, replies, edits, reactions, timers, and the mailbox
items this account still has to delete on the relay.

Tombstones are enforced by the database itself (:data:`CONTROLS_SCHEMA`'s triggers), so no path
that stores a message — the inbox, a mailbox page, a restore — can bring back a message that was
unsent, deleted or expired here.

A part of :class:`client.core.storage.ProfileStore`, which owns the connection and its
transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import sqlcipher3

from client.core.store_marks import MarksStore

CONTROLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS control_log (
    control_id BLOB PRIMARY KEY,
    thread TEXT NOT NULL,
    ts INTEGER NOT NULL,
    record BLOB NOT NULL,
    saved INTEGER NOT NULL DEFAULT 2  -- 0 to save to the mailbox, 1 saved, 2 held (no effect)
);
CREATE INDEX IF NOT EXISTS control_log_unsaved ON control_log(saved) WHERE saved = 0;
CREATE TABLE IF NOT EXISTS pending_controls (
    control_id BLOB PRIMARY KEY,
    target BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_target ON pending_controls(target);
-- kind: unsent (the row stays, emptied), deleted, expired (the row is gone for good).
CREATE TABLE IF NOT EXISTS tombstones (
    message_id BLOB PRIMARY KEY,
    thread TEXT NOT NULL,
    kind TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cleared_threads (thread TEXT PRIMARY KEY, through_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS message_expiry (
    message_id BLOB PRIMARY KEY,
    thread TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS expiry_by_time ON message_expiry(expires_at);
CREATE TABLE IF NOT EXISTS replies (message_id BLOB PRIMARY KEY, reply_to BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS edits (
    message_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    device TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, version, device)
);
CREATE TABLE IF NOT EXISTS reactions (
    message_id BLOB NOT NULL,
    user TEXT NOT NULL,
    emoji TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (message_id, user)
);
CREATE TABLE IF NOT EXISTS timers (
    thread TEXT PRIMARY KEY,
    seconds INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    device TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    offset_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mailbox_deletions (
    thread TEXT NOT NULL,
    message_id BLOB NOT NULL,
    through_ts INTEGER,
    PRIMARY KEY (thread, message_id)
);
-- A message deleted or expired here, or older than its deleted conversation, is never stored
-- again, whoever offers it (a redelivery, a mailbox page, a restore).
CREATE TRIGGER IF NOT EXISTS tombstones_stay BEFORE INSERT ON messages
    WHEN EXISTS (
        SELECT 1 FROM tombstones WHERE message_id = new.message_id AND kind != 'unsent'
    ) OR new.server_ts <= (SELECT through_ts FROM cleared_threads WHERE thread = new.thread)
BEGIN
    SELECT RAISE(IGNORE);
END;
-- Nor is it saved to the mailbox again (the relay's answer to an unsent message comes later).
CREATE TRIGGER IF NOT EXISTS tombstones_stay_unsaved BEFORE INSERT ON mailbox_pending
    WHEN EXISTS (SELECT 1 FROM tombstones WHERE message_id = new.message_id)
BEGIN
    SELECT RAISE(IGNORE);
END;
-- The controls that name a message (edits, reactions). When the message is unsent, deleted,
-- expired or cleared, their records go with it, here and in the mailbox: an edit's record
-- carries a version of the text. Its control_log row stays (emptied, never saved), so a replay
-- is still recognised; one that arrives later for a message already gone is emptied at once.
CREATE TABLE IF NOT EXISTS control_targets (
    target BLOB NOT NULL,
    control_id BLOB NOT NULL,
    thread TEXT NOT NULL,
    PRIMARY KEY (target, control_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS controls_go_with_tombstone AFTER INSERT ON tombstones BEGIN
    UPDATE control_log SET record = x'', saved = 1
        WHERE control_id IN (SELECT control_id FROM control_targets WHERE target = new.message_id);
    DELETE FROM pending_controls WHERE target = new.message_id;
    INSERT OR IGNORE INTO mailbox_deletions
        SELECT thread, control_id, NULL FROM control_targets WHERE target = new.message_id;
END;
CREATE TRIGGER IF NOT EXISTS controls_go_with_message AFTER DELETE ON messages BEGIN
    UPDATE control_log SET record = x'', saved = 1
        WHERE control_id IN (SELECT control_id FROM control_targets WHERE target = old.message_id);
    DELETE FROM pending_controls WHERE target = old.message_id;
    INSERT OR IGNORE INTO mailbox_deletions
        SELECT thread, control_id, NULL FROM control_targets WHERE target = old.message_id;
END;
CREATE TRIGGER IF NOT EXISTS control_for_a_message_gone AFTER INSERT ON control_targets
    WHEN EXISTS (SELECT 1 FROM tombstones WHERE message_id = new.target)
BEGIN
    UPDATE control_log SET record = x'', saved = 1 WHERE control_id = new.control_id;
    DELETE FROM pending_controls WHERE control_id = new.control_id;
    INSERT OR IGNORE INTO mailbox_deletions VALUES (new.thread, new.control_id, NULL);
END;
-- An unsent, deleted or expired message's words leave the search index at once: without this,
-- FTS5 only marks them deleted, and they stay readable in the index's older segments.
INSERT INTO message_search(message_search, rank) VALUES ('secure-delete', 1);
CREATE TRIGGER IF NOT EXISTS message_gone AFTER DELETE ON messages BEGIN
    DELETE FROM edits WHERE message_id = old.message_id;
    DELETE FROM reactions WHERE message_id = old.message_id;
    DELETE FROM replies WHERE message_id = old.message_id;
    DELETE FROM message_expiry WHERE message_id = old.message_id;
    DELETE FROM mailbox_pending WHERE message_id = old.message_id;
END;
"""


# A control's place in the mailbox: to be saved, saved, or held (it did nothing here, yet).
TO_SAVE, SAVED, HELD = 0, 1, 2


class Timer(NamedTuple):
    seconds: int
    key: tuple[int, str, str]  # (seq, user, device): last writer wins


class Deletion(NamedTuple):
    thread: str
    message_id: bytes
    through_ts: int | None


class ControlStore(MarksStore):
    _db: sqlcipher3.Connection

    # ------------------------------------------------------------------ the log

    def log_control(self, control_id: bytes, thread: str, ts: int, record: bytes) -> bool:
        """False if this control was applied before (a replay)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO control_log (control_id, thread, ts, record) VALUES (?,?,?,?)",
            (control_id, thread, ts, record),
        )
        return cursor.rowcount == 1

    def unsaved_controls(self, limit: int) -> list[tuple[bytes, str, int, bytes]]:
        return self._db.execute(
            "SELECT control_id, thread, ts, record FROM control_log WHERE saved = 0 LIMIT ?",
            (limit,),
        ).fetchall()

    def controls_saved(self, control_ids: Iterable[bytes]) -> None:
        self._db.executemany(
            "UPDATE control_log SET saved = 1 WHERE control_id = ?", ((c,) for c in control_ids)
        )

    def mark_control(self, control_id: bytes, state: int) -> None:
        self._db.execute(
            "UPDATE control_log SET saved = ? WHERE control_id = ?", (state, control_id)
        )

    def name_target(self, target: bytes, control_id: bytes, thread: str) -> None:
        """Remember that a control names ``target``: its record goes when the message goes."""
        self._db.execute(
            "INSERT OR IGNORE INTO control_targets VALUES (?, ?, ?)", (target, control_id, thread)
        )

    def control_state(self, control_id: bytes) -> int | None:
        row = self._db.execute(
            "SELECT saved FROM control_log WHERE control_id = ?", (control_id,)
        ).fetchone()
        return row[0] if row else None

    def keep_pending(self, control_id: bytes, target: bytes, record: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO pending_controls VALUES (?, ?, ?)", (control_id, target, record)
        )

    def pending_ready(self) -> list[tuple[bytes, bytes]]:
        """(control id, record) of waiting controls whose message is now stored."""
        return self._db.execute(
            "SELECT p.control_id, p.record FROM pending_controls p"
            " JOIN messages m ON m.message_id = p.target ORDER BY p.rowid"
        ).fetchall()

    def drop_pending(self, control_id: bytes) -> None:
        self._db.execute("DELETE FROM pending_controls WHERE control_id = ?", (control_id,))

    # ------------------------------------------------------------------ tombstones

    def tombstone(self, message_id: bytes, thread: str, kind: str) -> None:
        self._db.execute(
            "INSERT INTO tombstones VALUES (?, ?, ?) ON CONFLICT (message_id) DO UPDATE"
            " SET kind = excluded.kind WHERE tombstones.kind = 'unsent'",
            (message_id, thread, kind),
        )

    def empty_message(self, message_id: bytes) -> None:
        """Unsent: the text and everything hanging on it go; the row stays as a placeholder."""
        self._db.execute(
            "UPDATE messages SET body = '', status = 'unsent' WHERE message_id = ?", (message_id,)
        )
        for table in ("edits", "reactions", "replies", "message_expiry", "mailbox_pending"):
            self._db.execute(f"DELETE FROM {table} WHERE message_id = ?", (message_id,))

    def delete_messages(self, message_ids: list[bytes]) -> None:
        self._db.executemany(
            "DELETE FROM messages WHERE message_id = ?", ((m,) for m in message_ids)
        )

    def clear_thread(self, thread: str, through_ts: int) -> list[bytes]:
        """Delete ``thread``'s messages up to ``through_ts``; later ones to come are refused.
        A message of this device whose file was still uploading when the conversation was
        deleted (it has no relay time yet) goes too: it would otherwise leave afterwards."""
        self._db.execute(
            "INSERT INTO cleared_threads VALUES (?, ?) ON CONFLICT (thread) DO UPDATE"
            " SET through_ts = max(through_ts, excluded.through_ts)",
            (thread, through_ts),
        )
        ids = [
            row[0]
            for row in self._db.execute(
                "SELECT message_id FROM messages WHERE thread = ? AND (server_ts <= ?"
                " OR server_ts IS NULL AND sent_at <= ? / 1000"
                " AND message_id IN (SELECT message_id FROM pending_uploads))",
                (thread, through_ts, through_ts),
            )
        ]
        self.delete_messages(ids)
        self._db.execute(
            "DELETE FROM threads WHERE thread = ?"
            " AND NOT EXISTS (SELECT 1 FROM messages WHERE thread = ?)",
            (thread, thread),
        )
        return ids

    # ------------------------------------------------------------------ expiry

    def set_expiry(self, message_id: bytes, thread: str, expires_at: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO message_expiry VALUES (?, ?, ?)",
            (message_id, thread, expires_at),
        )

    def expiry_of(self, message_id: bytes) -> int | None:
        row = self._db.execute(
            "SELECT expires_at FROM message_expiry WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row[0] if row else None

    def due(self, now_ms: int, limit: int) -> list[tuple[bytes, str]]:
        return self._db.execute(
            "SELECT message_id, thread FROM message_expiry WHERE expires_at <= ?"
            " ORDER BY expires_at LIMIT ?",
            (now_ms, limit),
        ).fetchall()

    def next_expiry(self) -> int | None:
        row = self._db.execute("SELECT min(expires_at) FROM message_expiry").fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ replies, edits, reactions

    def set_reply(self, message_id: bytes, reply_to: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO replies VALUES (?, ?)", (message_id, reply_to))

    def reply_of(self, message_id: bytes) -> bytes | None:
        row = self._db.execute(
            "SELECT reply_to FROM replies WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row[0] if row else None

    def add_edit(self, message_id: bytes, version: int, device: str, body: str, at: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO edits VALUES (?, ?, ?, ?, ?)",
            (message_id, version, device, body, at),
        )

    def edits(self, message_id: bytes) -> list[tuple[int, str, str, int]]:
        """(version, device, body, sent_at), oldest version first; the last one is shown."""
        return self._db.execute(
            "SELECT version, device, body, sent_at FROM edits WHERE message_id = ?"
            " ORDER BY version, device",
            (message_id,),
        ).fetchall()

    def set_body(self, message_id: bytes, body: str) -> None:
        self._db.execute("UPDATE messages SET body = ? WHERE message_id = ?", (body, message_id))

    def reaction(self, message_id: bytes, user: str) -> tuple[str, int, str] | None:
        row = self._db.execute(
            "SELECT emoji, seq, device FROM reactions WHERE message_id = ? AND user = ?",
            (message_id, user),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def set_reaction(self, message_id: bytes, user: str, emoji: str, seq: int, device: str) -> None:
        self._db.execute(
            "INSERT INTO reactions VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id, user)"
            " DO UPDATE SET emoji = excluded.emoji, seq = excluded.seq, device = excluded.device",
            (message_id, user, emoji, seq, device),
        )

    def reactions(self, message_id: bytes) -> dict[str, str]:
        """user → emoji, removed reactions left out."""
        rows = self._db.execute(
            "SELECT user, emoji FROM reactions WHERE message_id = ? AND emoji != ''",
            (message_id,),
        ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------------ timers

    def timer(self, thread: str) -> Timer | None:
        row = self._db.execute(
            "SELECT seconds, seq, user, device FROM timers WHERE thread = ?", (thread,)
        ).fetchone()
        return Timer(row[0], (row[1], row[2], row[3])) if row else None

    def set_timer(self, thread: str, seconds: int, key: tuple[int, str, str]) -> None:
        self._db.execute(
            "INSERT INTO timers VALUES (?, ?, ?, ?, ?) ON CONFLICT (thread) DO UPDATE SET"
            " seconds = excluded.seconds, seq = excluded.seq, user = excluded.user,"
            " device = excluded.device",
            (thread, seconds, *key),
        )

    def clock_offset(self) -> int:
        row = self._db.execute("SELECT offset_ms FROM relay_clock").fetchone()
        return row[0] if row else 0

    def set_clock_offset(self, offset_ms: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO relay_clock VALUES (1, ?)", (offset_ms,))

    # ------------------------------------------------------------------ mailbox deletions

    def delete_later(self, thread: str, message_id: bytes, through_ts: int | None = None) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO mailbox_deletions VALUES (?, ?, ?)",
            (thread, message_id, through_ts),
        )

    def deletions(self, limit: int) -> list[Deletion]:
        rows = self._db.execute(
            "SELECT thread, message_id, through_ts FROM mailbox_deletions ORDER BY thread LIMIT ?",
            (limit,),
        ).fetchall()
        return [Deletion(*row) for row in rows]

    def deleted(self, done: Iterable[Deletion]) -> None:
        self._db.executemany(
            "DELETE FROM mailbox_deletions WHERE thread = ? AND message_id = ?",
            ((d.thread, d.message_id) for d in done),
        )
