"""A relay cannot silently reorder one sender's messages: each device's messages are shown in the
order that device sent them (its counter, inside the encryption), and when the relay's timestamps
say otherwise the conversation says so."""

from __future__ import annotations

import itertools
import time

import pytest

from client.core.client import AriadneClient
from client.core.events import DeliveryUpdated, Event, MessageReceived, OutOfOrderDelivery
from tests.conftest import eventually, history

LINE = "the relay delivered bob's messages out of order; they are shown in the order bob sent them"


def watch(client: AriadneClient) -> list[Event]:
    seen: list[Event] = []
    client.add_listener(lambda e: seen.append(e) if isinstance(e, OutOfOrderDelivery) else None)
    return seen


def places(client: AriadneClient) -> dict[bytes, int | None]:
    """Each message's place in the order as the events announce it, latest last."""
    seen: dict[bytes, int | None] = {}

    def note(event: Event) -> None:
        if isinstance(event, MessageReceived):
            seen[event.message.message_id] = event.message.server_ts
        elif isinstance(event, DeliveryUpdated):
            seen[event.message_id] = event.server_ts

    client.add_listener(note)
    return seen


def lines(client: AriadneClient, thread: str) -> list[str]:
    return [m.body for m in client.messages(thread) if m.system]


@pytest.fixture
async def talking(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    await bob.send_text("alice", "hi")
    await eventually(lambda: len(alice.messages("bob")) == 2)
    return alice, bob


@pytest.mark.parametrize("attack", ["rewrite timestamps", "deliver in reverse"])
async def test_a_reordering_relay_is_caught_and_the_senders_order_shown(
    talking, accounts, relay, attack
):
    alice, bob = talking
    await accounts.stop(alice)
    sent = [f"number {i}" for i in range(1, 5)]
    for text in sent:
        await bob.send_text("alice", text)
    db = relay.relay.store._db
    await eventually(lambda: len(_queue(db, alice.device_id)) == len(sent))
    rows = _queue(db, alice.device_id)  # (seq, server_ts, payload), in bob's order
    if attack == "rewrite timestamps":  # delivered in order, but timed in reverse
        for (seq, _, _), (_, ts, _) in zip(rows, reversed(rows), strict=True):
            db.execute("UPDATE queue SET server_ts = ? WHERE seq = ?", (ts, seq))
    else:  # delivered last first, each timed as it is delivered
        for (seq, _, _), (_, _, payload) in zip(rows, reversed(rows), strict=True):
            db.execute("UPDATE queue SET payload = ? WHERE seq = ?", (payload, seq))
    db.commit()

    alice = await accounts.start(alice)
    caught = watch(alice)
    announced = places(alice)
    await eventually(lambda: len(history(alice, "bob")) == 2 + len(sent))
    assert [body for _, _, body in history(alice, "bob")] == ["hello", "hi", *sent]
    assert caught and {(e.thread, e.sender_user, e.sender_device) for e in caught} == {
        ("bob", "bob", bob.device_id)
    }
    assert LINE in lines(alice, "bob")
    times = [m.server_ts for m in alice.messages("bob") if not m.system]
    assert sorted(times[2:]) == sorted(ts for _, ts, _ in rows)  # the relay's times, re-dealt
    # The events tell a view (the GUI's) every message's final place.
    final = {m.message_id: m.server_ts for m in alice.messages("bob")[2:] if not m.system}
    assert {message_id: announced.get(message_id) for message_id in final} == final

    # Nothing more is reported while the relay behaves.
    reported = (len(caught), lines(alice, "bob"))
    await bob.send_text("alice", "in order again")
    await eventually(lambda: history(alice, "bob")[-1][2] == "in order again")
    assert (len(caught), lines(alice, "bob")) == reported


async def test_a_relay_clock_running_backwards_is_caught_on_both_sides(talking, relay):
    """The relay's own clock goes backwards: the sender's device sees its messages accepted out of
    order, the recipient gets them timed out of order. Both show the sender's order."""
    alice, bob = talking
    seen_by_bob = watch(bob)
    seen_by_alice = watch(alice)
    backwards = itertools.count(time.time_ns() // 1000 + 10**9, -1000)
    relay.relay.next_timestamp = lambda: next(backwards)
    sent = [f"tick {i}" for i in range(3)]
    for text in sent:
        await bob.send_text("alice", text)
        await eventually(lambda t=text: _shown(alice, t))
    await eventually(lambda: all(m.server_ts is not None for m in bob.messages("alice")))

    assert [body for _, _, body in history(bob, "alice")] == ["hello", "hi", *sent]
    assert [body for _, _, body in history(alice, "bob")] == ["hello", "hi", *sent]
    assert seen_by_bob and seen_by_alice
    assert (
        "the relay delivered your messages out of order; they are shown in the order you sent them"
        in lines(bob, "alice")
    )
    assert LINE in lines(alice, "bob")


def _shown(client: AriadneClient, text: str) -> bool:
    return text in [body for _, _, body in history(client, "bob")]


def _queue(db, device_id: str) -> list[tuple[int, int, bytes]]:  # type: ignore[no-untyped-def]
    return db.execute(
        "SELECT seq, server_ts, payload FROM queue WHERE device_id = ? ORDER BY seq", (device_id,)
    ).fetchall()
