"""The relay store's delivery queues: one durable queue per device, fan-outs remembered for
resends, and the bytes each queue holds (an upper bound in memory, see ``queue_has_room``).

A device's backlog is read only from committed rows, through a second connection that reads
(``_reader``): the writing connection sees its own open transaction, and an envelope handed to a
device before its commit could be lost with that commit (a power loss) after the device had shown
it, and then be sent again by its sender.

A part of :class:`relay.store.RelayStore`, which owns the connection and the group commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

FAN_OUT_MEMORY_US = 7 * 24 * 3600 * 1_000_000  # how long a resend is recognised
ENQUEUE_ROWS = 1000  # rows per INSERT: 5 parameters each, within SQLite's 32,766


class QueuedEnvelope(NamedTuple):
    seq: int
    device_id: str
    sender_user: str
    sender_device: str
    server_ts: int
    payload: bytes


class QueueStore:
    _db: sqlite3.Connection
    _queue_bytes: dict[str, int]
    _acknowledged: set[str]

    _reader: sqlite3.Connection  # reads only what is committed
    _schedule_commit: Callable[[], None]  # the store's group commit

    def enqueue(self, rows: list[tuple[str, str, str, int, bytes]]) -> list[QueuedEnvelope]:
        queued: list[QueuedEnvelope] = []
        for start in range(0, len(rows), ENQUEUE_ROWS):
            chunk = rows[start : start + ENQUEUE_ROWS]
            # One statement for the whole fan-out, whose last rowid comes with it (no second
            # query per fan-out). This connection is the only writer, so one statement's rows
            # get consecutive seqs, in the order of its VALUES.
            last = self._db.execute(
                "INSERT INTO queue (device_id, sender_user, sender_device, server_ts, payload)"
                " VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            ).lastrowid
            assert last is not None
            first = last - len(chunk) + 1
            queued.extend(QueuedEnvelope(first + i, *row) for i, row in enumerate(chunk))
        for row in rows:
            self._queue_bytes[row[0]] = self._queue_bytes.get(row[0], 0) + len(row[4])
        return queued

    def fan_out_time(self, device_id: str, send_id: bytes) -> int | None:
        """The timestamp of a fan-out this device already sent with ``send_id``, if any."""
        row = self._db.execute(
            "SELECT server_ts FROM fan_outs WHERE device_id = ? AND send_id = ?",
            (device_id, send_id),
        ).fetchone()
        return row[0] if row else None

    def record_fan_out(self, device_id: str, send_id: bytes, server_ts: int) -> None:
        self._db.execute("INSERT INTO fan_outs VALUES (?, ?, ?)", (device_id, send_id, server_ts))

    def forget_old_fan_outs(self, now_us: int) -> None:
        self._db.execute("DELETE FROM fan_outs WHERE server_ts < ?", (now_us - FAN_OUT_MEMORY_US,))

    def queued(self, device_id: str, after_seq: int, limit: int) -> list[QueuedEnvelope]:
        """The device's committed envelopes after ``after_seq``, oldest first."""
        rows = self._reader.execute(
            "SELECT seq, device_id, sender_user, sender_device, server_ts, payload FROM queue"
            " WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (device_id, after_seq, limit),
        ).fetchall()
        return [QueuedEnvelope(*row) for row in rows]

    def acknowledge(self, device_id: str, seqs: list[int]) -> None:
        self._db.executemany(
            "DELETE FROM queue WHERE seq = ? AND device_id = ?", ((s, device_id) for s in seqs)
        )
        self._acknowledged.add(device_id)
        self._schedule_commit()

    def still_queued(self, seqs: list[int]) -> set[int]:
        found: set[int] = set()
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT seq FROM queue WHERE seq IN ({marks})", chunk)
            found.update(row[0] for row in rows)
        return found

    def queue_bytes(self, device_id: str) -> int:
        """Bytes queued for the device, counted from its rows."""
        row = self._db.execute(
            "SELECT coalesce(sum(length(payload)), 0) FROM queue WHERE device_id = ?", (device_id,)
        ).fetchone()
        return int(row[0])

    def queue_has_room(self, device_id: str, adding: int, quota: int) -> bool:
        """Whether ``adding`` more bytes keep the device's queue within ``quota``.

        The count is kept in memory as an upper bound: ``enqueue`` adds to it, an acknowledgement
        does not subtract (that would cost every acknowledged row a read of its length). Only
        when the bound says no, and the device acknowledged something since it was last made
        exact, is it counted from the rows: for a device that is online that is once per quota's
        worth of traffic, and a full offline device is refused without counting."""
        held = self._queue_bytes.get(device_id, 0)
        if held + adding > quota and device_id in self._acknowledged:
            held = self._queue_bytes[device_id] = self.queue_bytes(device_id)
            self._acknowledged.discard(device_id)
        return held + adding <= quota

    def queue_length(self, device_id: str) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM queue WHERE device_id = ?", (device_id,)
            ).fetchone()[0]
        )
