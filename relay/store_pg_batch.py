"""The fan-out writes of a PostgreSQL transaction, held back and sent as one statement.

Why: a fan-out's writes (its envelopes, its ``send_id`` record, its rows of the "seen" log) were
a statement each, and each statement costs the node a round of the driver, a thread hand-over
and a socket write, more than the rest of the fan-out. A node's transaction holds every fan-out
of one turn of its event loop (tens under load), so their writes go in one statement instead,
sent at the last moment that keeps the transaction's meaning (``relay.store_pg``):

- before the commit, and before a commit forced by a lock it could not take: the writes are made
  while the transaction still holds the locks their fan-out read under (:meth:`WriteBatch.send`
  refuses otherwise);
- before any statement that could read them: every statement but a fan-out's first read. That
  read reads, of what fan-outs write, only ``send_id`` records and the queues' byte counters; it
  is given what the batch holds of them (:meth:`WriteBatch.unsent`) and adds it to what it read.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence

from relay.store_pg_link import Transaction
from relay.store_pg_locks import EXCLUSIVE

SEEN_PER_CONVERSATION = 500

# One statement, whatever is in the batch (empty arrays write nothing), so asyncpg prepares it
# once per connection. The "seen" trim does not see the rows added beside it, so it keeps room
# for them; rows another transaction is trimming are skipped (it deletes them): waiting for its
# row locks while holding locks of its own could deadlock two nodes.
_WRITE = (
    "WITH recorded AS (INSERT INTO fan_outs SELECT * FROM unnest($1::text[], $2::bytea[],"
    " $3::bigint[])),"
    " queued AS (INSERT INTO queue (seq, device_id, sender_user, sender_device, server_ts,"
    " payload) SELECT * FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[],"
    " $8::bigint[], $9::bytea[])),"
    " added AS (INSERT INTO seen SELECT * FROM unnest($10::text[], $11::bigint[], $12::bytea[])),"
    # Per conversation, the oldest seq to keep (the newest rows beside those added): none if
    # the added rows fill the bound, NULL (nothing to trim) if fewer rows are kept than it.
    " kept AS (SELECT users, CASE WHEN keep <= 0 THEN 9223372036854775807 ELSE"
    " (SELECT seq FROM seen WHERE seen.users = k.users ORDER BY seq DESC"
    " OFFSET keep - 1 LIMIT 1) END AS oldest"
    " FROM unnest($13::text[], $14::int[]) AS k(users, keep))"
    " DELETE FROM seen WHERE ctid IN (SELECT s.ctid FROM kept JOIN seen AS s"
    " ON s.users = kept.users AND s.seq < kept.oldest FOR UPDATE OF s SKIP LOCKED)"
)


@dataclasses.dataclass(frozen=True)
class Unsent:
    """What a fan-out's first read could not see of its transaction's held writes: the server
    time of its ``send_id`` record if held, and for each of its queues the payload bytes and
    the greatest seq held for it."""

    earlier: int | None
    queued: dict[str, int]
    last_seqs: dict[str, int]


@dataclasses.dataclass(eq=False)
class WriteBatch:
    """Fan-out writes not yet sent, and the locks (device keys) their fan-outs read under."""

    keys: set[int] = dataclasses.field(default_factory=set)
    records: list[tuple[str, bytes, int]] = dataclasses.field(default_factory=list)
    envelopes: list[tuple[int, str, str, str, int, bytes]] = dataclasses.field(default_factory=list)
    seen: list[tuple[str, int, bytes]] = dataclasses.field(default_factory=list)
    # What ``unsent`` answers, kept as rows come in (a read must not cost the whole batch).
    _recorded: dict[tuple[str, bytes], int] = dataclasses.field(default_factory=dict)
    _queued: dict[str, int] = dataclasses.field(default_factory=dict)
    _last_seqs: dict[str, int] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records or self.envelopes or self.seen)

    def add(
        self,
        keys: Iterable[int],
        records: Sequence[tuple[str, bytes, int]] = (),
        envelopes: Sequence[tuple[int, str, str, str, int, bytes]] = (),
        seen: Sequence[tuple[str, int, bytes]] = (),
    ) -> None:
        self.keys.update(keys)
        self.records += records
        self.envelopes += envelopes
        self.seen += seen
        for device_id, send_id, server_ts in records:
            self._recorded[(device_id, send_id)] = server_ts
        for seq, device_id, _, _, _, payload in envelopes:
            self._queued[device_id] = self._queued.get(device_id, 0) + len(payload)
            self._last_seqs[device_id] = max(self._last_seqs.get(device_id, 0), seq)

    def extend(self, other: WriteBatch) -> None:
        self.add(other.keys, other.records, other.envelopes, other.seen)

    def unsent(self, sender: str, send_id: bytes, queues: Iterable[str]) -> Unsent:
        """What a fan-out's first read (of ``sender``'s ``send_id`` and of ``queues``) cannot
        see of this batch, to add to what it read."""
        return Unsent(
            self._recorded.get((sender, send_id)),
            {q: self._queued[q] for q in queues if q in self._queued},
            {q: self._last_seqs[q] for q in queues if q in self._last_seqs},
        )

    def take(self) -> WriteBatch:
        """Everything held, leaving this batch empty."""
        taken = WriteBatch(self.keys, self.records, self.envelopes, self.seen)
        self.keys, self.records, self.envelopes, self.seen = set(), [], [], []
        self._recorded, self._queued, self._last_seqs = {}, {}, {}
        return taken

    async def send(self, txn: Transaction, timeout: float) -> None:
        """Write the batch in ``txn``, which must still hold the locks its fan-outs read under."""
        if not self:
            return
        batch = self.take()
        held = txn.holds
        if held != EXCLUSIVE and not (isinstance(held, frozenset) and batch.keys <= held):
            # A bug, not a database failure: the rows would commit after other nodes could
            # change what their fan-outs checked.
            raise RuntimeError("fan-out writes outside their locks")
        # Of several fan-outs of one conversation, only the newest rows within the bound.
        newest = sorted(batch.seen, key=lambda row: row[1], reverse=True)
        added: Counter[str] = Counter()
        seen = [row for row in newest if _counted(added, row[0])]
        await txn.conn.execute(
            _WRITE,
            *_columns(batch.records, 3),
            *_columns(batch.envelopes, 6),
            *_columns(seen, 3),
            list(added),
            [SEEN_PER_CONVERSATION - count for count in added.values()],
            timeout=timeout,
        )


def _counted(added: Counter[str], users: str) -> bool:
    """Count one more row of the conversation, if it stays within the bound."""
    if added[users] >= SEEN_PER_CONVERSATION:
        return False
    added[users] += 1
    return True


def _columns(rows: list[tuple], width: int) -> list[list]:  # type: ignore[type-arg]
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]
