"""What relay nodes sharing a PostgreSQL store must agree on beyond the storage interface, kept
in the store rather than a node's memory: each device's newest connection, token buckets and
login failures, who started each pairing, and what the relay saw of each conversation.

Each class here has the interface of the in-memory object it replaces in one process
(``relay.limits.KeyedBuckets``, ``LoginThrottle``, a dict of pairings, the "server view" log), so
the handlers do not know which they use. Their statements run in the node's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping

import msgspec

from relay.limits import Limits, SharedLimits
from relay.store_pg import PgRelayStore
from relay.store_pg_batch import SEEN_PER_CONVERSATION
from shared import wire


def conversation_key(users: frozenset[str]) -> str:
    return "\n".join(sorted(users))


class StoredBuckets:
    """Token buckets per key, in the store: a key's tokens are taken and refilled in one
    statement, so nodes taking from the same bucket at once each see the other's take."""

    def __init__(self, store: PgRelayStore, kind: str, rate: float, burst: float) -> None:
        self._store, self._kind, self.rate, self.burst = store, kind, rate, burst

    def take(self, key: str, cost: float = 1.0) -> bool:
        now = time.time()
        taken = self._store._value(
            "INSERT INTO buckets AS b SELECT $1, $2, $3::float8 - $5::float8, $6 WHERE $3 >= $5"
            " ON CONFLICT (kind, key) DO UPDATE"
            " SET tokens = least($3, b.tokens + ($6 - b.at) * $4) - $5, at = $6"
            " WHERE least($3, b.tokens + ($6 - b.at) * $4) >= $5 RETURNING 1",
            self._kind,
            key,
            self.burst,
            self.rate,
            cost,
            now,
        )
        return taken is not None


class StoredThrottle:
    """:class:`relay.limits.LoginThrottle`'s rules over rows of the store."""

    def __init__(
        self, store: PgRelayStore, kind: str, free: int, first: float, longest: float
    ) -> None:
        self._store, self._kind = store, kind
        self.free, self.first, self.longest = free, first, longest
        self.forget_after = 3600.0

    def _delay(self, count: int) -> float:
        if count <= self.free:
            return 0.0
        return min(self.longest, self.first * 2.0 ** (count - self.free - 1))

    def wait(self, key: str) -> float:
        now = time.time()
        row = self._store._row(
            "SELECT count, at FROM login_failures WHERE key = $1", f"{self._kind}:{key}"
        )
        if row is None or now - row[1] > self.forget_after:
            return 0.0
        delay = self._delay(int(row[0]))
        # No wait owed: return none even if another node's clock (or a statement sent after
        # this ``now`` was read) put the failure's time a little ahead of ours.
        return max(0.0, float(row[1]) + delay - now) if delay else 0.0

    def failed(self, key: str) -> None:
        self._store._execute(
            "INSERT INTO login_failures AS f VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE"
            " SET count = CASE WHEN $2 - f.at > $3 THEN 1 ELSE f.count + 1 END, at = $2",
            f"{self._kind}:{key}",
            time.time(),
            self.forget_after,
        )

    def answered(self, key: str) -> None:
        self._store._execute(
            "UPDATE login_failures SET at = $2 WHERE key = $1", f"{self._kind}:{key}", time.time()
        )

    def uncounted(self, key: str) -> None:
        self._store._execute(
            "UPDATE login_failures SET count = count - 1 WHERE key = $1", f"{self._kind}:{key}"
        )
        self._store._execute(
            "DELETE FROM login_failures WHERE key = $1 AND count <= 0", f"{self._kind}:{key}"
        )

    def succeeded(self, key: str) -> None:
        self._store._execute("DELETE FROM login_failures WHERE key = $1", f"{self._kind}:{key}")


def stored_limits(limits: Limits, store: PgRelayStore) -> SharedLimits:
    """The relay's shared limits with what must hold across nodes kept in the store; what
    protects one node (password hashes running at once, connections logging in) stays local."""
    shared = SharedLimits(limits)
    shared.bundle_fetches = StoredBuckets(  # type: ignore[assignment]
        store, "bundles", limits.bundle_fetches_per_second, limits.bundle_fetch_burst
    )
    shared.pre_keys_handed_out = StoredBuckets(  # type: ignore[assignment]
        store, "pre_keys", limits.pre_keys_per_second, limits.pre_key_burst
    )
    shared.vault_calls = StoredBuckets(  # type: ignore[assignment]
        store, "vault", limits.vault_calls_per_second, limits.vault_call_burst
    )
    shared.account_logins = StoredThrottle(  # type: ignore[assignment]
        store,
        "account",
        limits.free_login_failures_per_account,
        limits.login_wait_first,
        limits.login_wait_longest,
    )
    shared.source_logins = StoredThrottle(  # type: ignore[assignment]
        store,
        "source",
        limits.free_login_failures_per_source,
        limits.login_wait_first,
        limits.login_wait_longest,
    )
    return shared


class StoredPairings(MutableMapping[str, tuple[bytes | None, str]]):
    """Who started pairing with each pending device's current offer (its commitment, the
    approving member), readable by the node the pending device is connected to."""

    def __init__(self, store: PgRelayStore) -> None:
        self._store = store

    def __getitem__(self, device_id: str) -> tuple[bytes | None, str]:
        row = self._store._row(
            "SELECT commitment, approver FROM pairings_started WHERE device_id = $1", device_id
        )
        if row is None:
            raise KeyError(device_id)
        return (row[0], row[1])

    def __setitem__(self, device_id: str, started: tuple[bytes | None, str]) -> None:
        self._store._execute(
            "INSERT INTO pairings_started VALUES ($1, $2, $3) ON CONFLICT (device_id)"
            " DO UPDATE SET commitment = excluded.commitment, approver = excluded.approver",
            device_id,
            *started,
        )

    def __delitem__(self, device_id: str) -> None:
        if (
            self._store._value(
                "DELETE FROM pairings_started WHERE device_id = $1 RETURNING 1", device_id
            )
            is None
        ):
            raise KeyError(device_id)

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._store._rows("SELECT device_id FROM pairings_started")])

    def __len__(self) -> int:
        return int(self._store._value("SELECT count(*) FROM pairings_started"))


class StoredSeen:
    """The bounded "server view" log of each conversation, in the store: any node answers what
    the relay saw, whichever node saw it. At most ``SEEN_PER_CONVERSATION`` per conversation."""

    def __init__(self, store: PgRelayStore) -> None:
        self._store = store

    def record(self, users: frozenset[str], envelopes: list[wire.SeenEnvelope]) -> None:
        key = conversation_key(users)
        if self._store.holding():  # a fan-out's: written with the others of its transaction
            self._store.hold(seen=[(key, e.seq, msgspec.msgpack.encode(e)) for e in envelopes])
            return
        # One statement: the new rows, and the oldest rows beyond the bound dropped (the
        # delete does not see the rows added beside it, so it keeps room for them). Rows
        # another fan-out of this conversation is trimming are skipped (it deletes them):
        # waiting for its row locks while holding locks of its own could deadlock two nodes.
        keep = SEEN_PER_CONVERSATION - len(envelopes)
        self._store._execute(
            "WITH added AS (INSERT INTO seen"
            " SELECT $1, s, e FROM unnest($2::bigint[], $3::bytea[]) AS x(s, e))"
            " DELETE FROM seen WHERE ctid IN (SELECT ctid FROM seen WHERE users = $1 AND"
            " ($4 <= 0 OR seq < (SELECT seq FROM seen WHERE users = $1 ORDER BY seq DESC"
            " OFFSET greatest($4 - 1, 0) LIMIT 1)) FOR UPDATE SKIP LOCKED)",
            key,
            [e.seq for e in envelopes],
            [msgspec.msgpack.encode(e) for e in envelopes],
            keep,
        )

    def get(
        self, users: frozenset[str], default: tuple[()] = ()
    ) -> list[wire.SeenEnvelope] | tuple[()]:
        rows = self._store._rows(
            "SELECT envelope FROM (SELECT seq, envelope FROM seen WHERE users = $1"
            " ORDER BY seq DESC LIMIT $2) AS newest ORDER BY seq",
            conversation_key(users),
            SEEN_PER_CONVERSATION,
        )
        decoder = msgspec.msgpack.Decoder(wire.SeenEnvelope)
        return [decoder.decode(row[0]) for row in rows] or default
