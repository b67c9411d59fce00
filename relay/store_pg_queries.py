"""The PostgreSQL store's statements, one method per method of the storage interface, in the
order of ``relay.storage``. Each runs in the node's open transaction (``relay.store_pg``).

They return the SQLite store's row types, and keep its behaviour: a taken username or device id
is a False, not an error (``ON CONFLICT DO NOTHING``: an error would roll back the node's whole
transaction); quotas are read from counters that triggers keep exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import asyncpg

from relay.store_accounts import BundleRow, DeviceRow
from relay.store_history import EpochRow
from relay.store_queue import FAN_OUT_MEMORY_US, QueuedEnvelope

_DEVICE_COLUMNS = (
    "device_id, username, name, sign_public, storage_key, registered_at, identity_key,"
    " last_seen, pairing_commitment, pairing_at"
)
_QUEUE_COLUMNS = "seq, device_id, sender_user, sender_device, server_ts, payload"


class PgQueries:
    # The store's statement runners (relay.store_pg.PgRelayStore), in its open transaction.
    _rows: Callable[..., list[asyncpg.Record]]
    _committed_rows: Callable[..., list[asyncpg.Record]]
    _row: Callable[..., asyncpg.Record | None]
    _value: Callable[..., Any]
    _execute: Callable[..., None]
    fan_out_scope: Callable[..., AbstractContextManager[None]]

    def forget_device(self, device_id: str) -> None:
        for table in ("queue", "one_time_pre_keys", "fan_outs", "devices"):
            self._execute(f"DELETE FROM {table} WHERE device_id = $1", device_id)

    # ------------------------------------------------------------------ accounts and devices

    def create_account(
        self, username: str, password_hash: str, amk_public: bytes, first: DeviceRow
    ) -> bool:
        created = self._value(
            "INSERT INTO accounts VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
            username,
            password_hash,
            amk_public,
            first.registered_at,
        )
        return created is not None and self.add_device(first)

    def password_hash(self, username: str) -> str | None:
        value: str | None = self._value(
            "SELECT password_hash FROM accounts WHERE username = $1", username
        )
        return value

    def set_password_hash(self, username: str, password_hash: str) -> None:
        self._execute(
            "UPDATE accounts SET password_hash = $1 WHERE username = $2", password_hash, username
        )

    def amk_public(self, username: str) -> bytes | None:
        value: bytes | None = self._value(
            "SELECT amk_public FROM accounts WHERE username = $1", username
        )
        return value

    def add_device(self, device: DeviceRow) -> bool:
        added = self._value(
            "INSERT INTO devices (device_id, username, name, sign_public, storage_key,"
            " registered_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            device.device_id,
            device.username,
            device.name,
            device.sign_public,
            device.storage_key,
            device.registered_at,
        )
        return added is not None

    def device(self, device_id: str) -> DeviceRow | None:
        row = self._row(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = $1", device_id)
        return DeviceRow(*row) if row else None

    def devices_of(self, username: str) -> list[DeviceRow]:
        rows = self._rows(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE username = $1 ORDER BY registered_at",
            username,
        )
        return [DeviceRow(*row) for row in rows]

    def offer_pairing(self, device_id: str, commitment: bytes, now: int) -> None:
        self._execute(
            "UPDATE devices SET pairing_commitment = $1, pairing_at = $2 WHERE device_id = $3",
            commitment,
            now,
            device_id,
        )

    def touch(self, device_id: str, now: int) -> None:
        self._execute("UPDATE devices SET last_seen = $1 WHERE device_id = $2", now, device_id)

    # ------------------------------------------------------------------ key directory

    def set_keys(
        self,
        device_id: str,
        identity_key: bytes,
        signed_pre_key: bytes,
        signature: bytes,
        one_time_pre_keys: Iterable[bytes],
    ) -> None:
        self._execute(
            "UPDATE devices SET identity_key = $1, signed_pre_key = $2, signed_pre_key_sig = $3"
            " WHERE device_id = $4",
            identity_key,
            signed_pre_key,
            signature,
            device_id,
        )
        self._execute(
            "INSERT INTO one_time_pre_keys SELECT $1, k FROM unnest($2::bytea[]) AS k"
            " ON CONFLICT DO NOTHING",
            device_id,
            list(one_time_pre_keys),
        )

    def identity_key_owners(self, identity_key: bytes) -> set[str]:
        rows = self._rows("SELECT device_id FROM devices WHERE identity_key = $1", identity_key)
        return {row[0] for row in rows}

    def pre_key_count(self, device_id: str) -> int:
        return int(
            self._value("SELECT count(*) FROM one_time_pre_keys WHERE device_id = $1", device_id)
        )

    def take_bundle(self, device_id: str, with_pre_key: bool = True) -> BundleRow | None:
        row = self._row(
            "SELECT identity_key, signed_pre_key, signed_pre_key_sig FROM devices"
            " WHERE device_id = $1 AND identity_key IS NOT NULL",
            device_id,
        )
        if row is None:
            return None
        if not with_pre_key:
            return BundleRow(row[0], row[1], row[2], None)
        pre_key = self._value(
            "DELETE FROM one_time_pre_keys WHERE device_id = $1 AND pre_key = (SELECT pre_key"
            " FROM one_time_pre_keys WHERE device_id = $1 LIMIT 1) RETURNING pre_key",
            device_id,
        )
        return BundleRow(row[0], row[1], row[2], pre_key)

    # ------------------------------------------------------------------ device lists

    def device_list(self, username: str) -> tuple[int, bytes] | None:
        row = self._row(
            "SELECT version, signed_list FROM device_lists WHERE username = $1", username
        )
        return (row[0], row[1]) if row else None

    def set_device_list(
        self, username: str, version: int, signed_list: bytes, members: Iterable[str]
    ) -> None:
        self._execute(
            "INSERT INTO device_lists VALUES ($1, $2, $3) ON CONFLICT (username) DO UPDATE"
            " SET version = excluded.version, signed_list = excluded.signed_list",
            username,
            version,
            signed_list,
        )
        self._execute("DELETE FROM list_members WHERE username = $1", username)
        self._execute(
            "INSERT INTO list_members SELECT $1, d FROM unnest($2::text[]) AS d",
            username,
            list(members),
        )
        self._execute(
            "INSERT INTO device_list_history VALUES ($1, $2, $3) ON CONFLICT (username, version)"
            " DO UPDATE SET signed_list = excluded.signed_list",
            username,
            version,
            signed_list,
        )

    def device_lists_between(
        self, username: str, since: int, before: int, limit: int
    ) -> list[bytes]:
        rows = self._rows(
            "SELECT signed_list FROM device_list_history WHERE username = $1 AND version > $2"
            " AND version < $3 ORDER BY version LIMIT $4",
            username,
            since,
            before,
            limit,
        )
        return [row[0] for row in rows]

    def list_members(self, username: str) -> frozenset[str]:
        rows = self._rows("SELECT device_id FROM list_members WHERE username = $1", username)
        return frozenset(row[0] for row in rows)

    # ------------------------------------------------------------------ delivery queues

    def enqueue(self, rows: list[tuple[str, str, str, int, bytes]]) -> list[QueuedEnvelope]:
        if not rows:
            return []
        columns = list(zip(*rows, strict=True))
        seqs = self._rows(
            "INSERT INTO queue (device_id, sender_user, sender_device, server_ts, payload)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],"
            " $5::bytea[]) RETURNING seq",
            *(list(column) for column in columns),
        )
        # Sequence values are drawn in the order the rows are inserted: the input's order.
        ordered = sorted(row[0] for row in seqs)
        return [QueuedEnvelope(seq, *row) for seq, row in zip(ordered, rows, strict=True)]

    def fan_out_time(self, device_id: str, send_id: bytes) -> int | None:
        value: int | None = self._value(
            "SELECT server_ts FROM fan_outs WHERE device_id = $1 AND send_id = $2",
            device_id,
            send_id,
        )
        return value

    def record_fan_out(self, device_id: str, send_id: bytes, server_ts: int) -> None:
        self._execute("INSERT INTO fan_outs VALUES ($1, $2, $3)", device_id, send_id, server_ts)

    def forget_old_fan_outs(self, now_us: int) -> None:
        self._execute("DELETE FROM fan_outs WHERE server_ts < $1", now_us - FAN_OUT_MEMORY_US)

    def queued(self, device_id: str, after_seq: int, limit: int) -> list[QueuedEnvelope]:
        """Committed envelopes only: a device never gets one that could still roll back."""
        rows = self._committed_rows(
            f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE device_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            device_id,
            after_seq,
            limit,
        )
        return [QueuedEnvelope(*row) for row in rows]

    def still_queued(self, seqs: list[int]) -> set[int]:
        rows = self._rows("SELECT seq FROM queue WHERE seq = ANY($1::bigint[])", seqs)
        return {row[0] for row in rows}

    def queue_bytes(self, device_id: str) -> int:
        """Bytes queued for the device, counted from its rows."""
        value = self._value(
            "SELECT coalesce(sum(length(payload)), 0) FROM queue WHERE device_id = $1", device_id
        )
        return int(value)

    def queue_has_room(self, device_id: str, adding: int, quota: int) -> bool:
        """As the SQLite store: ``queue_bytes`` rows hold an upper bound (a trigger adds what is
        queued, nothing subtracts what is acknowledged); only when it says no is the queue
        counted from its rows and the bound made exact. Run under the queue's lock (a fan-out's
        scope), so no other transaction adds to this queue until this one commits."""
        held = self._value("SELECT bytes FROM queue_bytes WHERE device_id = $1", device_id)
        if int(held or 0) + adding <= quota:
            return True
        exact = self.queue_bytes(device_id)
        self._execute("UPDATE queue_bytes SET bytes = $2 WHERE device_id = $1", device_id, exact)
        return exact + adding <= quota

    def queue_length(self, device_id: str) -> int:
        return int(self._value("SELECT count(*) FROM queue WHERE device_id = $1", device_id))

    # ------------------------------------------------------------------ history

    def latest_epoch(self, username: str) -> EpochRow | None:
        row = self._row(
            "SELECT seq, signed_head, prev_root_box, account_box FROM epochs WHERE username = $1"
            " ORDER BY seq DESC LIMIT 1",
            username,
        )
        return EpochRow(*row) if row else None

    def epochs_after(self, username: str, since: int) -> list[EpochRow]:
        rows = self._rows(
            "SELECT seq, signed_head, prev_root_box, account_box FROM epochs"
            " WHERE username = $1 AND seq > $2 ORDER BY seq",
            username,
            since,
        )
        return [EpochRow(*row) for row in rows]

    def add_epoch(
        self, username: str, epoch: EpochRow, grants: Iterable[tuple[str, bytes]]
    ) -> None:
        self._execute("INSERT INTO epochs VALUES ($1, $2, $3, $4, $5)", username, *epoch)
        members, sealed = [], []
        for member_id, box in grants:
            members.append(member_id)
            sealed.append(box)
        self._execute(
            "INSERT INTO grants SELECT $1, m, $2, s"
            " FROM unnest($3::text[], $4::bytea[]) AS g(m, s)",
            username,
            epoch.seq,
            members,
            sealed,
        )

    def grants_for(self, username: str, member_id: str, since: int) -> dict[int, bytes]:
        rows = self._rows(
            "SELECT seq, sealed FROM grants WHERE username = $1 AND member_id = $2 AND seq > $3",
            username,
            member_id,
            since,
        )
        return {row[0]: row[1] for row in rows}

    def save_to_mailbox(
        self, username: str, items: Iterable[tuple[bytes, int, bytes, int, bytes]]
    ) -> None:
        columns: list[tuple[Any, ...]] = list(zip(*items, strict=True)) or [()] * 5
        self._execute(
            "INSERT INTO mailbox SELECT $1, * FROM unnest($2::bytea[], $3::bigint[],"
            " $4::bytea[], $5::bigint[], $6::bytea[]) ON CONFLICT DO NOTHING",
            username,
            *(list(column) for column in columns),
        )

    def mailbox_page(
        self, username: str, thread_id: bytes, before: tuple[int, bytes] | None, limit: int
    ) -> list[tuple[bytes, bytes, int, int, bytes]]:
        sql = (
            "SELECT thread_id, message_id, ts, epoch, sealed FROM mailbox"
            " WHERE username = $1 AND thread_id = $2"
        )
        params: list[object] = [username, thread_id]
        if before is not None:
            sql += " AND (ts, message_id) < ($3, $4)"
            params += [before[0], before[1]]
        sql += f" ORDER BY ts DESC, message_id DESC LIMIT ${len(params) + 1}"
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self._rows(sql, *params, limit)]

    def mailbox_threads(self, username: str) -> list[tuple[bytes, int]]:
        rows = self._rows(
            "SELECT thread_id, count FROM mailbox_counts WHERE username = $1", username
        )
        return [(row[0], row[1]) for row in rows]

    def mailbox_bytes(self, username: str) -> int:
        value = self._value("SELECT bytes FROM mailbox_bytes WHERE username = $1", username)
        return int(value or 0)
