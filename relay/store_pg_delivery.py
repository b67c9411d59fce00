"""What a PostgreSQL node does per delivered envelope beyond the fan-out: the acknowledgements of
a turn deleted in one statement, and for each envelope queued the seq its queue held before it,
which lets a committed envelope be pushed to a connection of the same node without reading its
queue back (``relay.nodes.Nodes.deliver_here``).

Why acknowledgements can wait for the end of the turn: no answer waits for them, and the
statements that could read the rows they delete (anything but a fan-out's first read, which reads
no queue rows) send them first (``PgRelayStore._run``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

PRECEDING_KEPT = 100_000  # envelopes committing or to deliver, far more than a turn queues


class PgDelivery:
    # The store's (relay.store_pg.PgRelayStore).
    _acks: list[tuple[str, int]]  # acknowledged envelopes not deleted yet
    _preceding: dict[int, int]  # envelope seq → the greatest seq its queue held before it
    _execute: Callable[..., None]
    _schedule_commit: Callable[[], None]
    fan_out_scope: Callable[..., AbstractContextManager[None]]

    def follows(self, seq: int, previous: int | None) -> None:
        """Remember that envelope ``seq`` was queued when its queue's greatest seq was
        ``previous`` (committed, or of the same transaction): see ``preceding``."""
        if previous is None:
            return
        if len(self._preceding) >= PRECEDING_KEPT:
            # Envelopes whose transaction failed are never delivered nor asked about: forget
            # all (the envelopes still to deliver are read from the queue instead).
            self._preceding.clear()
        self._preceding[seq] = previous

    def preceding(self, seq: int) -> int | None:
        """Asked once, when envelope ``seq`` is delivered after its commit: the greatest seq its
        queue held before it. A connection that was handed that one has everything before it
        (a queue commits in seq order) and can be handed this one without reading the queue."""
        return self._preceding.pop(seq, None)

    def acknowledge(self, device_id: str, seqs: list[int]) -> None:
        """Deleted with the other acknowledgements of this turn, in one statement before the
        commit or the next statement that may read the queue (no answer waits for it)."""
        self._acks += [(device_id, seq) for seq in seqs]
        self._schedule_commit()

    def _delete_acknowledged(self) -> None:
        acks, self._acks = self._acks, []
        # Committed rows of its own queue, and no counter (see queue_has_room): no device lock.
        with self.fan_out_scope():
            self._execute(
                "DELETE FROM queue AS q USING unnest($1::text[], $2::bigint[]) AS a(device, seq)"
                " WHERE q.seq = a.seq AND q.device_id = a.device",
                [device_id for device_id, _ in acks],
                [seq for _, seq in acks],
            )
