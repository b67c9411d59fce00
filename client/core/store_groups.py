"""The profile's groups: each group's verified state and its chain of signed changes, this
device's sender key per group (with the devices it was given to), the sender keys of the other
member devices, and who has received or read each group message this user sent.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

import json

import msgspec
import sqlcipher3

from shared.group import GroupState
from shared.sender_keys import (
    OwnSenderKey,
    PeerSenderKey,
    decode_own,
    decode_peer,
    encode_state,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (group_id BLOB PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS group_changes (
    group_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    signed BLOB NOT NULL,
    PRIMARY KEY (group_id, seq)
) WITHOUT ROWID;
-- This device's sender key per group and the (user, device) pairs it was distributed to.
CREATE TABLE IF NOT EXISTS group_own_keys (
    group_id BLOB PRIMARY KEY,
    state BLOB NOT NULL,
    given_to TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS group_peer_keys (
    group_id BLOB NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    key_id INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (group_id, sender_user, sender_device, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_receipts (
    message_id BLOB NOT NULL,
    username TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (message_id, username)
) WITHOUT ROWID;
"""

_state_decoder = msgspec.msgpack.Decoder(GroupState)


class GroupStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

    def group(self, group_id: bytes) -> GroupState | None:
        row = self._db.execute(
            "SELECT state FROM groups WHERE group_id = ?", (group_id,)
        ).fetchone()
        return _state_decoder.decode(row[0]) if row else None

    def groups(self) -> list[GroupState]:
        rows = self._db.execute("SELECT state FROM groups").fetchall()
        return [_state_decoder.decode(row[0]) for row in rows]

    def put_group(self, state: GroupState, signed: bytes) -> None:
        """Store ``state`` and the change that led to it."""
        self._db.execute(
            "INSERT OR REPLACE INTO groups VALUES (?, ?)",
            (state.group_id, msgspec.msgpack.encode(state)),
        )
        self._db.execute(
            "INSERT OR REPLACE INTO group_changes VALUES (?, ?, ?)",
            (state.group_id, state.seq, signed),
        )

    def group_changes(self, group_id: bytes, after: int = 0) -> list[bytes]:
        rows = self._db.execute(
            "SELECT signed FROM group_changes WHERE group_id = ? AND seq > ? ORDER BY seq",
            (group_id, after),
        ).fetchall()
        return [row[0] for row in rows]

    def group_change(self, group_id: bytes, seq: int) -> bytes | None:
        row = self._db.execute(
            "SELECT signed FROM group_changes WHERE group_id = ? AND seq = ?", (group_id, seq)
        ).fetchone()
        return row[0] if row else None

    def group_member_users(self) -> set[str]:
        return {user for state in self.groups() for user in state.members}

    def own_sender_key(self, group_id: bytes) -> tuple[OwnSenderKey, set[tuple[str, str]]] | None:
        row = self._db.execute(
            "SELECT state, given_to FROM group_own_keys WHERE group_id = ?", (group_id,)
        ).fetchone()
        if row is None:
            return None
        return decode_own(row[0]), {(u, d) for u, d in json.loads(row[1])}

    def put_own_sender_key(self, key: OwnSenderKey, given_to: set[tuple[str, str]]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO group_own_keys VALUES (?, ?, ?)",
            (key.group_id, encode_state(key), json.dumps(sorted(given_to))),
        )

    def peer_sender_key(
        self, group_id: bytes, user: str, device: str, key_id: int
    ) -> PeerSenderKey | None:
        row = self._db.execute(
            "SELECT state FROM group_peer_keys WHERE group_id = ? AND sender_user = ?"
            " AND sender_device = ? AND key_id = ?",
            (group_id, user, device, key_id),
        ).fetchone()
        return decode_peer(row[0]) if row else None

    def put_peer_sender_key(self, key: PeerSenderKey) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO group_peer_keys VALUES (?, ?, ?, ?, ?)",
            (key.group_id, key.sender_user, key.sender_device, key.key_id, encode_state(key)),
        )

    def forget_peer_sender_keys(self, group_id: bytes, user: str, keep_devices: set[str]) -> None:
        """Delete ``user``'s sender keys in the group but those of ``keep_devices``."""
        marks = ",".join("?" * len(keep_devices))
        self._db.execute(
            "DELETE FROM group_peer_keys WHERE group_id = ? AND sender_user = ?"
            f" AND sender_device NOT IN ({marks})",
            (group_id, user, *sorted(keep_devices)),
        )

    def set_group_receipt(self, message_id: bytes, username: str, status: str) -> bool:
        """Record ``username``'s receipt; True if it moved forward (read after delivered)."""
        row = self._db.execute(
            "SELECT status FROM group_receipts WHERE message_id = ? AND username = ?",
            (message_id, username),
        ).fetchone()
        if row is not None and (row[0] == "read" or row[0] == status):
            return False
        self._db.execute(
            "INSERT OR REPLACE INTO group_receipts VALUES (?, ?, ?)", (message_id, username, status)
        )
        return True

    def group_receipts(self, message_id: bytes) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT username, status FROM group_receipts WHERE message_id = ?", (message_id,)
        ).fetchall()
        return {row[0]: row[1] for row in rows}
