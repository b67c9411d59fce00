"""The PostgreSQL store's pipeline, against a real PostgreSQL: a node's transactions commit on a
pool of connections while the node goes on, a fan-out's writes are sent without waiting, and
neither costs a guarantee: a sender hears ``Accepted`` only after its own transaction's flush, a
write that fails takes its whole transaction with it, and a device's next fan-out waits for its
last one's flush without stopping the node.

Slow flushes are a fault put in the store's commit step (``PgRelayStore._finish``), as
``tests/e2e/relay_process.py`` does for node processes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from relay.login import NotRegistered, log_in
from relay.storage import StoreUnavailable
from relay.store_pg import GROUP_LOCK, PgLink, PgRelayStore
from relay.store_pg_shared import SEEN_PER_CONVERSATION, conversation_key
from shared import wire
from shared.auth import sign_login
from tests.conftest import eventually

pytestmark = pytest.mark.backends("postgres")


def _send(to, payload: bytes = b"hello") -> wire.Send:  # type: ignore[no-untyped-def]
    return wire.Send(
        rid=7,
        send_id=os.urandom(16),
        recipients=[
            wire.RecipientEnvelopes(
                username=to.username,
                envelopes=[wire.Envelope(device_id=to.device_id, payload=payload)],
            )
        ],
    )


def _slow_flushes(monkeypatch, log: list[str], delays: list[float]) -> None:  # type: ignore[no-untyped-def]
    """Each commit's flush from now on waits the next of ``delays`` (then none) and is logged
    when done."""
    finish = PgRelayStore._finish

    async def slow(store: PgRelayStore, transaction: Any) -> None:
        await asyncio.sleep(delays.pop(0) if delays else 0.0)
        await finish(store, transaction)
        log.append("flushed")

    monkeypatch.setattr(PgRelayStore, "_finish", slow)


def _answers_to(log: list[str], *devices) -> None:  # type: ignore[no-untyped-def]
    for device in devices:
        device.session.reply = lambda frame, name=device.username: log.append(
            f"{name} {type(frame).__name__}"
        )


async def test_a_sender_hears_accepted_only_after_its_transaction_flushed(kit, monkeypatch):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.store.durable()  # what the accounts' set-up left is committed
    log: list[str] = []
    _slow_flushes(monkeypatch, log, [0.3])
    _answers_to(log, alice)
    await kit.call(alice, _send(bob))
    await eventually(lambda: "alice Accepted" in log)
    assert log[: log.index("alice Accepted")].count("flushed") >= 1
    assert kit.store.queue_length(bob.device_id) == 1


async def test_the_next_transaction_runs_and_commits_while_a_slow_one_flushes(kit, monkeypatch):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    carol, dave = await kit.create("carol"), await kit.create("dave")
    await kit.store.durable()  # what the accounts' set-up left is committed
    log: list[str] = []
    _slow_flushes(monkeypatch, log, [1.0])
    _answers_to(log, alice, carol)
    await kit.call(alice, _send(bob))
    await asyncio.sleep(0)  # the turn ends: alice's transaction goes to its (slow) flush
    await kit.call(carol, _send(dave))
    await eventually(lambda: "alice Accepted" in log)
    assert log.index("carol Accepted") < log.index("alice Accepted"), log


async def test_a_devices_next_fan_out_waits_for_its_last_flush_without_stopping_the_node(
    kit, monkeypatch
):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    carol, dave = await kit.create("carol"), await kit.create("dave")
    await kit.store.durable()  # what the accounts' set-up left is committed
    log: list[str] = []
    _slow_flushes(monkeypatch, log, [1.0])
    _answers_to(log, alice, carol)
    await kit.call(alice, _send(bob, b"first"))
    await asyncio.sleep(0)
    # Alice's second fan-out into bob's queue needs the locks her first holds until its flush;
    # carol's, to dave, needs none of them and must not wait behind it.
    second = asyncio.create_task(kit.call(alice, _send(bob, b"second")))
    await asyncio.sleep(0)
    await kit.call(carol, _send(dave))
    await second
    await eventually(lambda: log.count("alice Accepted") == 2)
    assert log.index("carol Accepted") < log.index("alice Accepted"), log
    payloads = [e.payload for e in kit.store.queued(bob.device_id, 0, 10)]
    assert payloads == [b"first", b"second"]


async def test_a_write_that_fails_unwaited_takes_its_whole_transaction_with_it(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    # A fault in the database: this payload's envelope cannot be stored.
    kit.store._execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.payload = '\\x706f69736f6e'::bytea THEN RAISE EXCEPTION 'refused'; END IF;"
        " RETURN NEW; END $$"
    )
    kit.store._execute(
        "CREATE TRIGGER poison BEFORE INSERT ON queue FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
    )
    await kit.store.durable()
    poisoned = _send(bob, b"poison")
    assert await kit.call(alice, poisoned) is None  # its writes were not waited for
    with pytest.raises(StoreUnavailable):
        await kit.store.durable()
    assert alice.replies == []  # never Accepted
    # Nothing of it committed: not its envelope, not its send_id, not the statements after the
    # failed one (the "seen" record), which would otherwise have run outside the transaction.
    assert kit.store.queue_length(bob.device_id) == 0
    assert kit.store.fan_out_time(alice.device_id, poisoned.send_id) is None
    assert list(kit.relay.seen_by(frozenset({"alice", "bob"}))) == []
    # The same send_id is stored in full when sent again.
    kit.store._execute("DROP TRIGGER poison ON queue")
    await kit.call(
        alice, wire.Send(rid=8, send_id=poisoned.send_id, recipients=_send(bob).recipients)
    )
    await kit.store.durable()
    assert isinstance(alice.replies.pop(), wire.Accepted)
    assert kit.store.queue_length(bob.device_id) == 1


async def test_the_server_view_keeps_the_newest_per_conversation_and_no_more(kit):
    seen = kit.relay.stored_seen
    users = frozenset({"alice", "bob"})
    envelopes = [
        wire.SeenEnvelope(
            seq=seq,
            server_ts=seq,
            sender_user="alice",
            sender_device="a" * 16,
            recipient_user="bob",
            device_id="b" * 16,
            size=5,
            excerpt=b"x",
            queued=True,
        )
        for seq in range(1, SEEN_PER_CONVERSATION + 151)
    ]
    for start in range(0, len(envelopes), 200):
        seen.record(users, envelopes[start : start + 200])
        await kit.store.durable()
    stored = kit.store._value("SELECT count(*) FROM seen WHERE users = $1", conversation_key(users))
    assert stored == SEEN_PER_CONVERSATION
    assert [e.seq for e in seen.get(users)] == [e.seq for e in envelopes[-SEEN_PER_CONVERSATION:]]


async def test_a_fan_out_checks_the_device_list_a_change_in_flight_on_another_node_commits(kit):
    """Another node changes bob's device list (its transaction holds GROUP_LOCK exclusively and
    has not committed) while alice's fan-out to bob's old device arrives: the fan-out's checks
    wait for that commit and see the new list, so nothing goes to the removed device."""
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.store.durable()
    other = PgLink(kit.store.link.dsn)  # another node's connection, on a thread of its own
    conn = other.call(other.connect())
    try:
        other.call(conn.execute("BEGIN"))
        other.call(conn.execute("SELECT pg_advisory_xact_lock($1)", GROUP_LOCK))
        other.call(conn.execute("DELETE FROM list_members WHERE username = 'bob'"))
        other.call(conn.execute("INSERT INTO list_members VALUES ('bob', $1)", "n" * 16))

        async def commit_soon() -> None:
            await asyncio.sleep(0.5)
            await conn.execute("COMMIT")

        committed = other.submit(commit_soon())
        reply = await kit.call(alice, _send(bob))
        assert committed.done()
        assert isinstance(reply, wire.Mismatch)
        assert reply.users[0].missing == ["n" * 16] and reply.users[0].extra == [bob.device_id]
        assert kit.store.queue_length(bob.device_id) == 0
    finally:
        other.call(conn.close())
        other.stop()


async def test_a_resume_waits_for_a_device_removal_in_flight_on_another_node(kit):
    """Logins take GROUP_LOCK shared only (``relay.login_scope``): a removal of the device that
    another node has made but not committed still holds the resume until it commits, and the
    device is then not let in."""
    alice = await kit.create("alice")
    await kit.store.durable()
    other = PgLink(kit.store.link.dsn)
    conn = other.call(other.connect())
    try:
        other.call(conn.execute("BEGIN"))
        other.call(conn.execute("SELECT pg_advisory_xact_lock($1)", GROUP_LOCK))
        other.call(conn.execute("DELETE FROM devices WHERE device_id = $1", alice.device_id))

        async def commit_soon() -> None:
            await asyncio.sleep(0.5)
            await conn.execute("COMMIT")

        committed = other.submit(commit_soon())
        nonce = os.urandom(32)
        resume = wire.Resume(
            rid=1,
            username="alice",
            device_id=alice.device_id,
            signature=sign_login(alice.key, nonce, "alice", alice.device_id),
        )
        with pytest.raises(NotRegistered):
            await log_in(kit.relay, resume, nonce, "127.0.0.1")
        assert committed.done()
    finally:
        other.call(conn.close())
        other.stop()
