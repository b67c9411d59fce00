"""The relay store's accounts and devices: credentials, registered devices, the key directory
(identity keys, signed and one-time pre-keys) and each account's signed device lists.

A part of :class:`relay.store.RelayStore`, which owns the connection and the group commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple


class DeviceRow(NamedTuple):
    device_id: str
    username: str
    name: str
    sign_public: bytes
    storage_key: bytes
    registered_at: int
    identity_key: bytes | None
    last_seen: int = 0
    pairing_commitment: bytes | None = None
    pairing_at: int | None = None


_DEVICE_COLUMNS = (
    "device_id, username, name, sign_public, storage_key, registered_at, identity_key,"
    " last_seen, pairing_commitment, pairing_at"
)


class BundleRow(NamedTuple):
    identity_key: bytes
    signed_pre_key: bytes
    signed_pre_key_sig: bytes
    one_time_pre_key: bytes | None


class AccountStore:
    _db: sqlite3.Connection

    def create_account(
        self, username: str, password_hash: str, amk_public: bytes, first: DeviceRow
    ) -> bool:
        try:
            self._db.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?)",
                (username, password_hash, amk_public, first.registered_at),
            )
        except sqlite3.IntegrityError:
            return False
        return self.add_device(first)

    def password_hash(self, username: str) -> str | None:
        row = self._db.execute(
            "SELECT password_hash FROM accounts WHERE username = ?", (username,)
        ).fetchone()
        return row[0] if row else None

    def set_password_hash(self, username: str, password_hash: str) -> None:
        self._db.execute(
            "UPDATE accounts SET password_hash = ? WHERE username = ?", (password_hash, username)
        )

    def amk_public(self, username: str) -> bytes | None:
        row = self._db.execute(
            "SELECT amk_public FROM accounts WHERE username = ?", (username,)
        ).fetchone()
        return row[0] if row else None

    def add_device(self, device: DeviceRow) -> bool:
        try:
            self._db.execute(
                "INSERT INTO devices (device_id, username, name, sign_public, storage_key,"
                " registered_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    device.device_id,
                    device.username,
                    device.name,
                    device.sign_public,
                    device.storage_key,
                    device.registered_at,
                    device.registered_at,
                ),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def device(self, device_id: str) -> DeviceRow | None:
        row = self._db.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = ?",
            (device_id,),
        ).fetchone()
        return DeviceRow(*row) if row else None

    def devices_of(self, username: str) -> list[DeviceRow]:
        rows = self._db.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE username = ? ORDER BY registered_at",
            (username,),
        ).fetchall()
        return [DeviceRow(*row) for row in rows]

    def offer_pairing(self, device_id: str, commitment: bytes, now: int) -> None:
        self._db.execute(
            "UPDATE devices SET pairing_commitment = ?, pairing_at = ? WHERE device_id = ?",
            (commitment, now, device_id),
        )

    def touch(self, device_id: str, now: int) -> None:
        self._db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ?", (now, device_id))

    # ------------------------------------------------------------------ key directory

    def set_keys(
        self,
        device_id: str,
        identity_key: bytes,
        signed_pre_key: bytes,
        signature: bytes,
        one_time_pre_keys: Iterable[bytes],
    ) -> None:
        self._db.execute(
            "UPDATE devices SET identity_key = ?, signed_pre_key = ?, signed_pre_key_sig = ?"
            " WHERE device_id = ?",
            (identity_key, signed_pre_key, signature, device_id),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO one_time_pre_keys VALUES (?, ?)",
            ((device_id, key) for key in one_time_pre_keys),
        )

    def identity_key_owners(self, identity_key: bytes) -> set[str]:
        """The devices that published ``identity_key``."""
        rows = self._db.execute(
            "SELECT device_id FROM devices WHERE identity_key = ?", (identity_key,)
        ).fetchall()
        return {row[0] for row in rows}

    def pre_key_count(self, device_id: str) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM one_time_pre_keys WHERE device_id = ?", (device_id,)
            ).fetchone()[0]
        )

    def take_bundle(self, device_id: str, with_pre_key: bool = True) -> BundleRow | None:
        """The device's bundle with one one-time pre-key, which is removed: each goes out once.
        Without ``with_pre_key``, the bundle goes without one and none is used up."""
        row = self._db.execute(
            "SELECT identity_key, signed_pre_key, signed_pre_key_sig FROM devices"
            " WHERE device_id = ? AND identity_key IS NOT NULL",
            (device_id,),
        ).fetchone()
        if row is None:
            return None
        if not with_pre_key:
            return BundleRow(row[0], row[1], row[2], None)
        pre_key = self._db.execute(
            "DELETE FROM one_time_pre_keys WHERE device_id = ? AND pre_key = (SELECT pre_key"
            " FROM one_time_pre_keys WHERE device_id = ? LIMIT 1) RETURNING pre_key",
            (device_id, device_id),
        ).fetchone()
        return BundleRow(row[0], row[1], row[2], pre_key[0] if pre_key else None)

    # ------------------------------------------------------------------ device lists

    def device_list(self, username: str) -> tuple[int, bytes] | None:
        row = self._db.execute(
            "SELECT version, signed_list FROM device_lists WHERE username = ?", (username,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def set_device_list(
        self, username: str, version: int, signed_list: bytes, members: Iterable[str]
    ) -> None:
        self._db.execute(
            "INSERT INTO device_lists VALUES (?, ?, ?) ON CONFLICT(username) DO UPDATE"
            " SET version = excluded.version, signed_list = excluded.signed_list",
            (username, version, signed_list),
        )
        self._db.execute("DELETE FROM list_members WHERE username = ?", (username,))
        self._db.executemany(
            "INSERT INTO list_members VALUES (?, ?)", ((username, d) for d in members)
        )
        self._db.execute(
            "INSERT OR REPLACE INTO device_list_history VALUES (?, ?, ?)",
            (username, version, signed_list),
        )

    def device_lists_between(
        self, username: str, since: int, before: int, limit: int
    ) -> list[bytes]:
        """The user's lists with ``since < version < before``, oldest first."""
        rows = self._db.execute(
            "SELECT signed_list FROM device_list_history WHERE username = ? AND version > ?"
            " AND version < ? ORDER BY version LIMIT ?",
            (username, since, before, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def list_members(self, username: str) -> frozenset[str]:
        rows = self._db.execute(
            "SELECT device_id FROM list_members WHERE username = ?", (username,)
        ).fetchall()
        return frozenset(row[0] for row in rows)
