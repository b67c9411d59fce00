"""The "server view" log on PostgreSQL is trimmed by every fan-out of its conversation, and two
fan-outs of one conversation can be in flight at once on two nodes: alice's (one device) to bob
and bob's (one device) to alice lock disjoint queues and senders, so nothing orders them before
their trims of the same oldest rows. A node must never wait for rows another node's uncommitted
trim holds: its statement would stop its whole event loop for as long as that transaction stays
open (and two such waits deadlock). The trim skips rows another transaction is deleting.

Against a real PostgreSQL; the other node's trim is played on a connection of its own."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from relay.store_pg import PgLink
from relay.store_pg_shared import SEEN_PER_CONVERSATION, conversation_key
from shared import wire

pytestmark = pytest.mark.backends("postgres")

HOLD = 20.0  # the other node's deadline for committing on its own, if never told to


def _seen(seq: int) -> wire.SeenEnvelope:
    return wire.SeenEnvelope(
        seq=seq,
        server_ts=seq,
        sender_user="bob",
        sender_device="b" * 16,
        recipient_user="alice",
        device_id="a" * 16,
        size=5,
        excerpt=b"x",
        queued=True,
    )


async def test_a_fan_out_does_not_wait_for_another_nodes_trim_of_the_same_conversation(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    users = frozenset({"alice", "bob"})
    key = conversation_key(users)
    # The log is full, of envelopes older than any the queue numbers from now on.
    kit.relay.stored_seen.record(users, [_seen(seq) for seq in range(1, SEEN_PER_CONVERSATION + 1)])
    kit.store._value("SELECT setval(pg_get_serial_sequence('queue', 'seq'), $1)", 10_000)
    await kit.store.durable()
    other = PgLink(kit.store.link.dsn)
    conn = other.call(other.connect())
    release = threading.Event()
    try:
        # Bob's fan-out on the other node: its trim took the oldest row and has not committed.
        other.call(conn.execute("BEGIN"))
        trimmed = other.call(
            conn.fetchval(
                "DELETE FROM seen WHERE ctid IN (SELECT ctid FROM seen WHERE users = $1"
                " ORDER BY seq LIMIT 1) RETURNING seq",
                key,
            )
        )
        assert trimmed == 1

        async def commit_when_told() -> None:
            await asyncio.to_thread(release.wait, HOLD)
            await conn.execute("COMMIT")

        committed = other.submit(commit_when_told())
        send = wire.Send(
            rid=7,
            send_id=os.urandom(16),
            recipients=[
                wire.RecipientEnvelopes(
                    username="bob",
                    envelopes=[wire.Envelope(device_id=bob.device_id, payload=b"hello")],
                )
            ],
        )
        await kit.call(alice, send)
        await kit.store.durable()
        assert isinstance(alice.replies.pop(), wire.Accepted)
        assert not committed.done(), "the fan-out waited for the other node's commit"
        release.set()
        committed.result(timeout=HOLD)
    finally:
        release.set()
        other.call(conn.close())
        other.stop()
    # Both trims are in: the log holds alice's envelope, and no more than its bound.
    seqs = [e.seq for e in kit.relay.seen_by(users)]
    assert len(seqs) <= SEEN_PER_CONVERSATION
    assert 1 not in seqs and seqs[-1] > 10_000
