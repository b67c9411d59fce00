"""What the conversation screen keeps in the profile beyond the messages themselves: a draft per
conversation (so text typed for one contact never follows the user into another, and survives a
restart), the names the user gave contacts, each recipient device's receipts (a message's info),
why a send failed (its bubble says so after a restart too), and the full-text search index over
the history (SQLite FTS5, in the same encrypted database: the index is as private as the
messages).

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import sqlcipher3

from client.core.events import StoredMessage
from client.core.store_messages import _MESSAGE_COLUMNS, _message
from shared.envelope import MAX_NAME

# Set once the search index holds the messages stored before it existed.
_SEARCH_BUILT = "search_index_built"
# FTS5 writes each transaction's entries as a new segment and merges segments once this many
# share a level (its default is 4). Merging is most of what indexing costs: restoring 100,000
# messages with 8 took about 1 µs less CPU per message (a fifth of a restore's), and a search
# over them took as long (0.8 ms), the index then holding at most a few more segments.
SEARCH_AUTOMERGE = 8


class DeviceReceipt(NamedTuple):
    username: str
    device_id: str
    status: str  # "delivered" or "read"
    at: int  # the relay's time of the receipt, microseconds


# Around the matching words in a snippet: control characters, so a bracket a message contains is
# never taken for a mark (the window draws the words in bold).
MATCH_START, MATCH_END = "\x02", "\x03"


class SearchHit(NamedTuple):
    message: StoredMessage
    snippet: str  # the matching words between MATCH_START and MATCH_END


def clean_name(name: str) -> str:
    """A display name as shown: printable characters only, spaces collapsed, at most
    ``MAX_NAME`` characters (a contact's name never carries line breaks or direction marks)."""
    spaced = "".join(" " if c.isspace() else c for c in name)
    printable = "".join(c for c in spaced if c.isprintable() and unicodedata.category(c) != "Cf")
    return " ".join(printable.split())[:MAX_NAME]


def search_query(text: str) -> str | None:
    """The user's words as an FTS5 query: every word must occur, the last one as a prefix (so
    results follow typing). Each word is quoted, so FTS5 operators typed by the user are words."""
    words = [w.replace('"', '""') for w in text.split() if w.strip('"')]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


class ChatStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def forget_older_search_index(self) -> None:
        """Drop a search index made by an earlier version, which kept every row's token count
        (FTS5's default ``columnsize=1``: a B-tree row per message, read only by ranking
        functions, which search does not use). The schema then creates it anew and
        :meth:`build_search_index` fills it."""
        row = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'message_search'"
        ).fetchone()
        if row is not None and "columnsize=0" not in row[0]:
            self._db.execute("DROP TABLE message_search")
            self._db.execute("DELETE FROM profile WHERE key = ?", (_SEARCH_BUILT,))

    def build_search_index(self) -> None:
        """Index the messages a profile held before the index existed (once), and set how eagerly
        the index merges its segments (on every open: a profile made earlier has the default)."""
        automerge = self._db.execute(
            "SELECT v FROM message_search_config WHERE k = 'automerge'"
        ).fetchone()
        if automerge is None or automerge[0] != SEARCH_AUTOMERGE:
            self._db.execute(
                "INSERT INTO message_search(message_search, rank) VALUES ('automerge', ?)",
                (SEARCH_AUTOMERGE,),
            )
            self._db.commit()
        row = self._db.execute("SELECT value FROM profile WHERE key = ?", (_SEARCH_BUILT,))
        if row.fetchone() is None:
            self._db.execute("INSERT INTO message_search(message_search) VALUES ('rebuild')")
            self._db.execute("INSERT INTO profile VALUES (?, 1)", (_SEARCH_BUILT,))
            self._db.commit()

    # ------------------------------------------------------------------ drafts

    def draft(self, thread: str) -> str:
        row = self._db.execute("SELECT body FROM drafts WHERE thread = ?", (thread,)).fetchone()
        return str(row[0]) if row else ""

    def set_draft(self, thread: str, body: str) -> None:
        if body:
            self._db.execute(
                "INSERT INTO drafts VALUES (?, ?) ON CONFLICT(thread) DO UPDATE SET body = ?",
                (thread, body, body),
            )
        else:
            self._db.execute("DELETE FROM drafts WHERE thread = ?", (thread,))

    # ------------------------------------------------------------------ display names

    def display_name(self, username: str) -> str | None:
        row = self._db.execute(
            "SELECT name FROM display_names WHERE username = ?", (username,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_display_name(self, username: str, name: str) -> None:
        if name:
            self._db.execute(
                "INSERT INTO display_names VALUES (?, ?)"
                " ON CONFLICT(username) DO UPDATE SET name = ?",
                (username, name, name),
            )
        else:
            self._db.execute("DELETE FROM display_names WHERE username = ?", (username,))

    def shared_name(self, username: str) -> str | None:
        """The name ``username`` chose and shared end to end (their own devices' too)."""
        row = self._db.execute(
            "SELECT name FROM shared_names WHERE username = ?", (username,)
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def set_shared_name(self, username: str, name: str) -> None:
        self._db.execute(
            "INSERT INTO shared_names VALUES (?, ?) ON CONFLICT(username) DO UPDATE SET name = ?",
            (username, name, name),
        )

    def name_sent(self, username: str) -> str | None:
        """The own name last sent to ``username`` (None: never)."""
        row = self._db.execute(
            "SELECT name FROM names_sent WHERE username = ?", (username,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_name_sent(self, username: str, name: str) -> None:
        self._db.execute(
            "INSERT INTO names_sent VALUES (?, ?) ON CONFLICT(username) DO UPDATE SET name = ?",
            (username, name, name),
        )

    # ------------------------------------------------------------------ receipts and failures

    def record_receipt(
        self, message_id: bytes, username: str, device_id: str, status: str, at: int
    ) -> None:
        """A recipient device's receipt; "read" replaces "delivered", never the other way."""
        self._db.execute(
            "INSERT INTO device_receipts VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(message_id, username, device_id) DO UPDATE SET status = excluded.status,"
            " at = excluded.at WHERE excluded.status = 'read' AND status != 'read'",
            (message_id, username, device_id, status, at),
        )

    def receipts(self, message_id: bytes) -> list[DeviceReceipt]:
        rows = self._db.execute(
            "SELECT username, device_id, status, at FROM device_receipts WHERE message_id = ?"
            " ORDER BY username, device_id",
            (message_id,),
        ).fetchall()
        return [DeviceReceipt(*row) for row in rows]

    def set_send_failure(self, message_id: bytes, reason: str | None) -> None:
        if reason is None:
            self._db.execute("DELETE FROM send_failures WHERE message_id = ?", (message_id,))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO send_failures VALUES (?, ?)", (message_id, reason)
            )

    def renumber_sender_order(self, message_id: bytes, counter: int) -> None:
        """A retried message leaves with a new counter: its place in this device's order."""
        self._db.execute(
            "UPDATE sender_order SET counter = ? WHERE message_id = ?", (counter, message_id)
        )

    def send_failure(self, message_id: bytes) -> str | None:
        row = self._db.execute(
            "SELECT reason FROM send_failures WHERE message_id = ?", (message_id,)
        ).fetchone()
        return str(row[0]) if row else None

    # ------------------------------------------------------------------ search

    def search(self, text: str, limit: int = 50, thread: str | None = None) -> list[SearchHit]:
        """Messages whose words match ``text``: the ``limit`` stored last, newest first (see
        :func:`search_query`)."""
        query = search_query(text)
        if query is None:
            return []
        columns = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        where = "message_search MATCH ? AND m.status NOT IN ('system', 'undecryptable')"
        params: list[object] = [MATCH_START, MATCH_END, query]
        if thread is not None:
            where += " AND m.thread = ?"
            params.append(thread)
        # Newest stored first, in the index's own order: FTS5 then stops after ``limit`` matches
        # instead of sorting every match (a common word matches most of a long history).
        rows = self._db.execute(
            f"SELECT {columns}, snippet(message_search, 0, ?, ?, '…', 12)"
            " FROM message_search JOIN messages m ON m.rowid = message_search.rowid"
            f" WHERE {where} ORDER BY message_search.rowid DESC LIMIT {int(limit)}",
            params,
        ).fetchall()
        hits = [SearchHit(_message(row[:8]), row[8]) for row in rows]
        return sorted(
            hits, key=lambda h: h.message.server_ts or h.message.sent_at * 1000, reverse=True
        )
