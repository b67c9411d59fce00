"""The profile's contacts (each user's verified account key and device list, which device
belongs to whom, whether the user compared the safety number) and the ratchet sessions with
their devices.

A part of :class:`client.core.storage.ProfileStore`, which owns the schema, the connection
and its transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, cast

import sqlcipher3


class SessionRow(NamedTuple):
    id: int
    peer_user: str
    peer_device: str
    ephemeral: bytes | None
    state: bytes


class ContactStore:
    _db: sqlcipher3.Connection  # the store's connection; its transaction is the store's

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
