"""A fan-out on the PostgreSQL store in one round trip: what the fan-out handler reads (the
sender's ``send_id`` record, the device lists it checks, the bytes queued for each recipient) and
the sequence numbers its envelopes will take, read in one statement at the start of the handler;
its writes are then held, and sent with the transaction's next statement or its commit in one
statement with the other fan-outs' (``relay.store_pg_batch``).

Why the reads may be kept for the rest of the handler: the statement is the first of the
handler's scope (``PgRelayStore.fan_out_scope``), so it runs under the scope's locks, held to the
commit: ``GROUP_LOCK`` shared (a device list changes only under it exclusively), the sender's
lock (its ``send_id`` records) and each recipient queue's lock (its rows and its ``queue_bytes``).
Nothing it read can change before the handler's rows commit. The sequence numbers are drawn
under the queues' locks too, so a queue's order is still its commit order.

The handler calls the storage interface unchanged; outside such a scope (and on SQLite) every
method reads as before. Only the handler that read them can see the reads: a scope's body never
yields to the event loop (the handler runs from its first statement to its last without an
``await`` that suspends, see ``tests/relay/test_scopes_do_not_yield.py``), and the scope puts
back what was there before when it ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from relay.store_pg_queries import PgQueries
from relay.store_queue import QueuedEnvelope


@dataclasses.dataclass(frozen=True)
class FanOutReads:
    """What one fan-out handler read at its start, under its scope's locks."""

    sender: str
    send_id: bytes
    earlier: int | None  # the server time of a fan-out already stored with this send_id
    members: dict[str, frozenset[str]]  # each user's current device list
    queued_bytes: dict[str, int]  # the bound on each recipient queue's bytes
    seqs: list[int]  # drawn for its envelopes, ascending
    last_seqs: dict[str, int]  # each recipient queue's greatest seq before its envelopes (or 0)
    record: tuple[str, bytes, int] | None = None  # its send_id record, sent with its envelopes


class PgFanOut(PgQueries):
    _row: Callable[..., asyncpg.Record | None]
    _execute: Callable[..., None]
    _reads: FanOutReads | None  # set by the scope (relay.store_pg.PgRelayStore)
    _run: Callable[..., Any]
    hold: Callable[..., None]  # writes sent with the next statement (relay.store_pg_batch)
    follows: Callable[[int, int | None], None]  # what precedes an envelope in its queue

    def read_fan_out(
        self, sender: str, send_id: bytes, users: Iterable[str], queues: list[str]
    ) -> None:
        """Read what a fan-out from ``sender`` to ``queues`` checks, as its first statement."""
        users = sorted(set(users))
        row, unsent = self._run(
            "fetchrow",
            "SELECT (SELECT server_ts FROM fan_outs WHERE device_id = $1 AND send_id = $2),"
            " (SELECT array_agg(username ORDER BY username, device_id) FROM list_members"
            "  WHERE username = ANY($3::text[])),"
            " (SELECT array_agg(device_id ORDER BY username, device_id) FROM list_members"
            "  WHERE username = ANY($3::text[])),"
            " (SELECT array_agg(device_id ORDER BY device_id) FROM queue_bytes"
            "  WHERE device_id = ANY($4::text[])),"
            " (SELECT array_agg(bytes ORDER BY device_id) FROM queue_bytes"
            "  WHERE device_id = ANY($4::text[])),"
            " ARRAY(SELECT nextval(pg_get_serial_sequence('queue', 'seq'))"
            "  FROM generate_series(1, $5)),"
            " ARRAY(SELECT coalesce((SELECT max(seq) FROM queue WHERE queue.device_id = q), 0)"
            "  FROM unnest($4::text[]) WITH ORDINALITY AS u(q, i) ORDER BY i)",
            sender,
            send_id,
            users,
            queues,
            len(queues),
            # The transaction's held writes are not sent first: what it holds of these.
            apart=lambda held: held.unsent(sender, send_id, queues),
        )
        assert row is not None
        members: dict[str, set[str]] = {user: set() for user in users}
        for user, device_id in zip(row[1] or [], row[2] or [], strict=True):
            members[user].add(device_id)
        queued_bytes = dict.fromkeys(queues, 0)  # no row: nothing was ever queued
        queued_bytes.update(zip(row[3] or [], row[4] or [], strict=True))
        # What this transaction wrote but has not sent yet, so the read could not see it.
        for device_id in queued_bytes:
            queued_bytes[device_id] += unsent.queued.get(device_id, 0)
        earlier = row[0] if row[0] is not None else unsent.earlier
        last_seqs = dict(zip(queues, row[6], strict=True))
        for device_id, seq in unsent.last_seqs.items():
            if device_id in last_seqs:
                last_seqs[device_id] = max(last_seqs[device_id], seq)
        self._reads = FanOutReads(
            sender=sender,
            send_id=send_id,
            earlier=earlier,
            members={user: frozenset(devices) for user, devices in members.items()},
            queued_bytes=queued_bytes,
            seqs=sorted(row[5]),
            last_seqs=last_seqs,
        )

    def _fan_out_reads(self) -> FanOutReads | None:
        return self._reads

    def fan_out_time(self, device_id: str, send_id: bytes) -> int | None:
        reads = self._fan_out_reads()
        if reads is not None and (reads.sender, reads.send_id) == (device_id, send_id):
            return reads.earlier
        return super().fan_out_time(device_id, send_id)

    def list_members(self, username: str) -> frozenset[str]:
        reads = self._fan_out_reads()
        if reads is not None and username in reads.members:
            return reads.members[username]
        return super().list_members(username)

    def queue_has_room(self, device_id: str, adding: int, quota: int) -> bool:
        reads = self._fan_out_reads()
        held = reads.queued_bytes.get(device_id) if reads is not None else None
        if held is not None and held + adding <= quota:
            return True
        return super().queue_has_room(device_id, adding, quota)  # counted exactly

    def record_fan_out(self, device_id: str, send_id: bytes, server_ts: int) -> None:
        reads = self._fan_out_reads()
        if reads is None or reads.record is not None:
            super().record_fan_out(device_id, send_id, server_ts)
            return
        # Written with the envelopes (``enqueue``), or when the scope ends without them.
        self._reads = dataclasses.replace(reads, record=(device_id, send_id, server_ts))

    def write_fan_out_record(self) -> None:
        """The send_id record kept back for the envelopes, if none came (the scope's end)."""
        reads = self._reads
        if reads is not None and reads.record is not None:
            self._reads = dataclasses.replace(reads, record=None)
            self.hold(records=[reads.record])

    def enqueue(self, rows: list[tuple[str, str, str, int, bytes]]) -> list[QueuedEnvelope]:
        reads = self._fan_out_reads()
        if reads is None or not rows or len(rows) > len(reads.seqs) or reads.record is None:
            return super().enqueue(rows)
        seqs = reads.seqs[: len(rows)]
        last_seqs = dict(reads.last_seqs)
        for seq, row in zip(seqs, rows, strict=True):
            self.follows(seq, last_seqs.get(row[0]))
            last_seqs[row[0]] = seq
        self._reads = dataclasses.replace(
            reads, seqs=reads.seqs[len(rows) :], record=None, last_seqs=last_seqs
        )
        self.hold(
            records=[reads.record],
            envelopes=[(seq, *row) for seq, row in zip(seqs, rows, strict=True)],
        )
        return [QueuedEnvelope(seq, *row) for seq, row in zip(seqs, rows, strict=True)]
