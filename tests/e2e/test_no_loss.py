"""Nothing is lost or duplicated when the relay restarts or a client dies before acknowledging."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from client.core.storage import ProfileStore
from shared import wire
from tests.conftest import conversation, eventually, settled

DEVICE_PROCESS = Path(__file__).with_name("device_process.py")
REPO = Path(__file__).parents[2]


async def test_relay_restart_in_the_middle_of_a_stream(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    texts = [f"stream {i}" for i in range(120)]
    for text in texts[:60]:
        await alice.send_text("bob", text)
    await eventually(lambda: len(bob.messages("alice")) >= 20, message="stream under way")
    await relay.restart()  # same port, same data directory
    for text in texts[60:]:
        await alice.send_text("bob", text)
    await bob.send_text("alice", "after the restart")
    await eventually(lambda: settled(bob, "alice", 121), timeout=30, message="bob has everything")
    await eventually(lambda: settled(alice, "bob", 121), message="alice has everything")
    from_alice = [body for _, sender, body in conversation(bob, "alice") if sender == "alice"]
    assert from_alice == texts  # in order, no gap, no duplicate
    assert conversation(alice, "bob") == conversation(bob, "alice")


def _queued_for(relay, device_id: str) -> int:
    with sqlite3.connect(relay.data_dir / "relay.sqlite3") as db:
        return db.execute(
            "SELECT count(*) FROM queue WHERE device_id = ?", (device_id,)
        ).fetchone()[0]


async def test_client_killed_between_persisting_and_acknowledging(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "before")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    await accounts.stop(bob)

    texts = [f"while bob crashes {i}" for i in range(80)]
    for text in texts:
        await alice.send_text("bob", text)
    await eventually(lambda: _queued_for(relay, bob.device_id) == 80, message="queued for bob")

    # Bob's process decrypts and commits the first batch, then dies before acknowledging it.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEVICE_PROCESS),
        str(bob.profile_dir),
        "--die-before-ack",
        "1",
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
    killed = ProfileStore(bob.profile_dir)  # what the killed process left on disk
    persisted = len(killed.thread_messages("alice"))
    killed.close()
    assert persisted > 1, "the killed process had persisted messages"
    assert _queued_for(relay, bob.device_id) == 80, "but acknowledged none of them"

    bob = await accounts.start(bob)  # the relay redelivers all 80; their digests spot the repeats
    await eventually(lambda: _queued_for(relay, bob.device_id) == 0, message="all acknowledged")
    bodies = [body for _, _, body in conversation(bob, "alice")]
    assert bodies == ["before", *texts]
    assert not [m for m in bob.messages("alice") if m.undecryptable]

    await bob.send_text("alice", "sessions still work")
    await eventually(lambda: alice.messages("bob")[-1].body == "sessions still work")


async def test_resent_fan_out_is_accepted_once(accounts, relay):
    """If the relay stored a fan-out but its answer was lost, the resend gets the same answer and
    nothing is queued twice (otherwise sender and recipients would order the message apart)."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await accounts.stop(bob)

    def send(rid: int) -> wire.Send:
        return wire.Send(
            rid=rid,
            send_id=b"s" * 16,
            recipients=[
                wire.RecipientEnvelopes(
                    username="bob", envelopes=[wire.Envelope(device_id=bob.device_id, payload=b"x")]
                )
            ],
        )

    first = await alice.link.request(send)
    again = await alice.link.request(send)
    assert isinstance(first, wire.Accepted) and isinstance(again, wire.Accepted)
    assert again.server_ts == first.server_ts
    assert _queued_for(relay, bob.device_id) == 1
