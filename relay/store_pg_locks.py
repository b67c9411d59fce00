"""The PostgreSQL advisory locks a relay node's transaction holds until it commits, which keep
several nodes from racing.

Why the nodes never race: every transaction holds PostgreSQL advisory locks until its commit.
By default it takes one lock (``GROUP_LOCK``) exclusively: such transactions run one at a time
across all nodes, as the SQLite store's do in one process, so what a handler checked (the current
device list, a guess counter, a ``send_id``, a quota) still holds when its writes commit. The hot
path runs beside others instead: a fan-out or an acknowledgement declares the devices whose queues
it touches (:meth:`PgRelayStore.fan_out_scope`) and takes ``GROUP_LOCK`` shared plus one lock per
device, so fan-outs between different devices commit in parallel, on one node or several, while a
device-list change (exclusive) still waits for every fan-out that read the old list. A device's
queue inserts are serialized by its queue's lock up to the commit, so its queue order is its
commit order: a reader's cursor over ``seq`` never moves past a row that commits later with a
smaller one. An acknowledgement deletes only committed rows of its own queue and writes no
counter (the queued bytes are an upper bound, made exact when a quota check needs it), so it
takes no device lock: the sender's node and the recipient's node do not wait for each other.

No deadlock: a transaction that already holds locks only *tries* more; if that fails it commits
what it has (the handlers before it are complete) and, holding nothing, waits in one fixed order
(``GROUP_LOCK`` first, then devices ascending). See ARCHITECTURE.md, "Scale-out".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from relay.store_pg_link import Transaction

GROUP_LOCK = 0x41524941  # the advisory lock every transaction holds until it commits
MIGRATION_LOCK = 0x41524942  # held while one node migrates; the others wait
DEVICE_LOCKS = 0x41524943  # the first half of a device's lock (two-key form); its hash the second

# What a transaction holds: None (nothing yet), EXCLUSIVE, or the device locks it holds beside a
# shared GROUP_LOCK.
EXCLUSIVE = "exclusive"


def device_lock(role: str, device_id: str) -> int:
    """The second key of the advisory lock on a device's queue or on its ``send_id`` records: a
    stable 32-bit hash (two that share one only wait for each other)."""
    digest = hashlib.blake2b(f"{role}:{device_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, signed=True)


def scope_keys(queues: Iterable[str], senders: Iterable[str]) -> frozenset[int]:
    keys = {device_lock("queue", d) for d in queues}
    return frozenset(keys | {device_lock("sender", d) for d in senders})


async def take(txn: Transaction, devices: frozenset[int] | None, wait: bool) -> bool:
    """Take the locks a statement needs (``devices`` None: GROUP_LOCK exclusively), unless
    the transaction holds them; ``wait`` False only tries."""
    conn, held = txn.conn, txn.holds
    if held == EXCLUSIVE:
        return True
    if devices is None:
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", GROUP_LOCK)
        elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", GROUP_LOCK):
            return False
        txn.holds = EXCLUSIVE
        return True
    has = held if isinstance(held, frozenset) else frozenset()
    missing = sorted(devices - has)
    if held is not None and not missing:
        return True
    if wait:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", GROUP_LOCK)
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock($1, k))"
            " FROM (SELECT k FROM unnest($2::int[]) AS k ORDER BY k) AS ordered",
            DEVICE_LOCKS,
            missing,
        )
    elif not await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock_shared($1) AND (SELECT"
        " coalesce(bool_and(pg_try_advisory_xact_lock($2, k)), true)"
        " FROM unnest($3::int[]) AS k)",
        GROUP_LOCK,
        DEVICE_LOCKS,
        missing,
    ):
        return False
    txn.holds = has | devices
    return True
