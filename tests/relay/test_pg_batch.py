"""The PostgreSQL store holds a transaction's fan-out writes and sends them in one statement
(``relay.store_pg_batch``), and deletes a turn's acknowledgements in one statement. Held writes
must change nothing a handler can observe: a resend or a quota check in the same transaction
counts them, a later statement reads them, the "seen" log keeps its bound, and an
acknowledgement is committed with its turn.

Two handlers called one after the other without an ``await`` that suspends run in one turn of
the event loop, so in one transaction of the node."""

from __future__ import annotations

import os

import msgspec
import pytest

from relay import store_pg_batch, store_pg_shared
from relay.limits import Limits
from shared import wire

pytestmark = pytest.mark.backends("postgres")


def _send(to, payload: bytes = b"hello", send_id: bytes | None = None) -> wire.Send:  # type: ignore[no-untyped-def]
    return wire.Send(
        rid=7,
        send_id=send_id or os.urandom(16),
        recipients=[
            wire.RecipientEnvelopes(
                username=to.username,
                envelopes=[wire.Envelope(device_id=to.device_id, payload=payload)],
            )
        ],
    )


async def test_a_resend_in_the_same_transaction_is_answered_twice_and_queued_once(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.store.durable()
    frame = _send(bob)
    await kit.call(alice, frame)
    await kit.call(alice, frame)  # its first copy's writes are still held
    await kit.store.durable()
    first, again = alice.replies
    assert isinstance(first, wire.Accepted) and isinstance(again, wire.Accepted)
    assert again.server_ts == first.server_ts
    assert kit.store.queue_length(bob.device_id) == 1


@pytest.mark.parametrize("limits", [Limits(queue_bytes=100)])
async def test_fan_outs_of_one_transaction_count_together_against_a_quota(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.store.durable()
    await kit.call(alice, _send(bob, b"1" * 60))
    assert await kit.refused(alice, _send(bob, b"2" * 60)) == "queue_full"
    await kit.store.durable()
    assert [e.payload for e in kit.store.queued(bob.device_id, 0, 10)] == [b"1" * 60]


async def test_a_statement_after_a_fan_out_reads_its_held_writes(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.store.durable()
    frame = _send(bob)
    await kit.call(alice, frame)
    # Before the commit, in the same transaction: the envelope and its send_id are there.
    assert kit.store.queue_length(bob.device_id) == 1
    assert kit.store.fan_out_time(alice.device_id, frame.send_id) is not None


async def test_acknowledgements_are_deleted_with_their_turns_commit(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    for payload in (b"1", b"2", b"3"):
        await kit.call(alice, _send(bob, payload))
    await kit.store.durable()
    queued = kit.store.queued(bob.device_id, 0, 10)
    assert await kit.call(bob, wire.Ack(seqs=[queued[0].seq, queued[2].seq])) is None
    await kit.store.durable()
    # Read as committed (the queue a reconnecting device is served from), no statement between.
    assert [e.payload for e in kit.store.queued(bob.device_id, 0, 10)] == [b"2"]


async def test_another_devices_seqs_in_an_acknowledgement_delete_nothing(kit):
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    await kit.call(alice, _send(bob))
    await kit.call(alice, _send(carol))
    await kit.store.durable()
    (for_carol,) = kit.store.queued(carol.device_id, 0, 10)
    (for_bob,) = kit.store.queued(bob.device_id, 0, 10)
    await kit.call(bob, wire.Ack(seqs=[for_carol.seq, for_bob.seq]))
    await kit.store.durable()
    assert kit.store.queued(bob.device_id, 0, 10) == []
    assert kit.store.queued(carol.device_id, 0, 10) == [for_carol]


async def test_the_seen_log_keeps_its_bound_over_fan_outs_held_together(kit, monkeypatch):
    monkeypatch.setattr(store_pg_batch, "SEEN_PER_CONVERSATION", 3)
    monkeypatch.setattr(store_pg_shared, "SEEN_PER_CONVERSATION", 3)
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    sent = [_send(bob, bytes([n])) for n in range(5)]
    for frame in sent:  # one transaction: five rows for a bound of three
        await kit.call(alice, frame)
    await kit.call(alice, _send(carol))  # another conversation, in the same statement
    await kit.store.durable()
    assert _stored(kit, "alice\nbob") == [bytes([2]), bytes([3]), bytes([4])]
    for n in (5, 6):  # the next transaction keeps room for its two
        await kit.call(bob, _send(alice, bytes([n])))
    await kit.store.durable()
    assert _stored(kit, "alice\nbob") == [bytes([4]), bytes([5]), bytes([6])]
    assert len(list(kit.relay.seen_by(frozenset({"alice", "carol"})))) == 1


def _stored(kit, users: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The excerpts of the rows the "seen" log holds for a conversation, oldest first."""
    rows = kit.store._rows("SELECT envelope FROM seen WHERE users = $1 ORDER BY seq", users)
    decoder = msgspec.msgpack.Decoder(wire.SeenEnvelope)
    return [decoder.decode(row[0]).excerpt for row in rows]
