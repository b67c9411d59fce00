"""The profile's batch read of what bubbles show of controls: for a page of messages at once,
what each replies to, whether it disappears, whether it was edited, and its reactions — four
queries however many messages, where reading them one message at a time took five to seven
queries per bubble while a page of bubbles was measured.

A part of :class:`client.core.storage.ProfileStore` (through ``ControlStore``), which owns the
connection; the tables are ``CONTROLS_SCHEMA``'s (``client/core/store_controls.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlcipher3


class Marks(NamedTuple):
    """What a bubble shows of the controls on its message (read by :meth:`marks_of`)."""

    reply_to: bytes | None
    expires: bool
    edited: bool  # more than one version
    reactions: dict[str, str]  # user → emoji, removed reactions left out


_MARKS_QUERIES = {
    "replies": "SELECT message_id, reply_to FROM replies WHERE message_id IN ({})",
    "expiring": "SELECT message_id FROM message_expiry WHERE message_id IN ({})",
    "edited": "SELECT message_id FROM edits WHERE message_id IN ({})"
    " GROUP BY message_id HAVING count(*) > 1",
    "reactions": "SELECT message_id, user, emoji FROM reactions WHERE message_id IN ({})"
    " AND emoji != ''",
}


def _marks_rows(db: sqlcipher3.Connection, message_ids: list[bytes]) -> dict[str, list[Any]]:
    places = ",".join("?" * len(message_ids))
    return {
        name: db.execute(query.format(places), message_ids).fetchall()
        for name, query in _MARKS_QUERIES.items()
    }


class MarksStore:
    _db: sqlcipher3.Connection

    def marks_of(self, message_ids: list[bytes]) -> dict[bytes, Marks]:
        """Each message's controls in four queries, however many messages (a page of bubbles
        is measured at once): what it replies to, whether it disappears, whether it was edited,
        its reactions. Messages with none of them are left out."""
        marks: dict[bytes, Marks] = {}
        for start in range(0, len(message_ids), 500):  # within SQLite's bound-parameter limit
            chunk = message_ids[start : start + 500]
            found = _marks_rows(self._db, chunk)
            for message_id in {row[0] for rows in found.values() for row in rows}:
                marks[message_id] = Marks(None, False, False, {})
            for message_id, reply_to in found["replies"]:
                marks[message_id] = marks[message_id]._replace(reply_to=reply_to)
            for (message_id,) in found["expiring"]:
                marks[message_id] = marks[message_id]._replace(expires=True)
            for (message_id,) in found["edited"]:
                marks[message_id] = marks[message_id]._replace(edited=True)
            for message_id, user, emoji in found["reactions"]:
                marks[message_id].reactions[user] = emoji
        return marks
