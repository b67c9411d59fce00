"""A batch redelivered after its Ack was lost is dropped before decrypting, never shown as
"couldn't decrypt this message".

The ratchet recognises a repeat only within its current receiving chain. When a batch spans two
of the sender's chains, the redelivered envelopes of the earlier chain look like a new ratchet
step and fail; the profile's record of processed envelopes (committed with the batch) drops them
first. The batch below is built so: Bob writes b1 and goes away; Alice sends m1 on her current
chain before she decrypts b1, then her receipt for b1 and m2 on the chain b1 started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from client.core.client import AriadneClient
from client.core.events import MessageStatus
from client.core.link import RelayLink
from client.core.storage import ProfileStore
from shared import wire
from tests.conftest import conversation, eventually

DEVICE_PROCESS = Path(__file__).with_name("device_process.py")
REPO = Path(__file__).parents[2]


def _queued_for(relay, device_id: str) -> int:
    with sqlite3.connect(relay.data_dir / "relay.sqlite3") as db:
        return db.execute(
            "SELECT count(*) FROM queue WHERE device_id = ?", (device_id,)
        ).fetchone()[0]


async def _settled_status(client: AriadneClient, thread: str, body: str, status: MessageStatus):
    def reached() -> bool:
        return any(m.body == body and m.status is status for m in client.messages(thread))

    await eventually(reached, message=f"{body!r} {status.value} on {client.username}'s device")


async def _batch_across_two_chains(
    accounts, relay, monkeypatch
) -> tuple[AriadneClient, AriadneClient, list]:
    """Bob offline with [m1, receipt for b1, m2] queued, m1 on Alice's earlier chain."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hello")
    await _settled_status(alice, "bob", "hello", MessageStatus.DELIVERED)
    await bob.send_text("alice", "hi")
    await _settled_status(bob, "alice", "hi", MessageStatus.DELIVERED)

    # Alice's device holds what the relay pushes, undecrypted, until the test lets it through.
    held: list[wire.Delivered] = []
    take = alice.inbox.put
    monkeypatch.setattr(alice.inbox, "put", held.extend)
    await bob.send_text("alice", "b1")
    await eventually(lambda: held, message="b1 reached alice's device")
    await accounts.stop(bob)
    await alice.send_text("bob", "m1")  # on the chain alice had before b1
    await _settled_status(alice, "bob", "m1", MessageStatus.SENT)
    take(held)  # b1 decrypted now: alice's next messages start a new chain
    await eventually(lambda: any(m.body == "b1" for m in alice.messages("bob")))
    await eventually(lambda: _queued_for(relay, bob.device_id) == 2, message="receipt for b1")
    await alice.send_text("bob", "m2")
    await eventually(lambda: _queued_for(relay, bob.device_id) == 3, message="m1, receipt, m2")
    return alice, bob, conversation(alice, "bob")


def _assert_whole(bob: AriadneClient, alices_view: list) -> None:
    assert not [m for m in bob.messages("alice") if m.undecryptable], "a phantom failure"
    assert [body for _, _, body in conversation(bob, "alice")] == ["hello", "hi", "b1", "m1", "m2"]
    assert conversation(bob, "alice") == alices_view


async def test_redelivery_after_the_device_was_killed_before_its_ack(accounts, relay, monkeypatch):
    _, bob, alices_view = await _batch_across_two_chains(accounts, relay, monkeypatch)
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
    killed = ProfileStore(bob.profile_dir)  # what the killed process committed
    bodies = [m.body for m in killed.thread_messages("alice")]
    killed.close()
    assert bodies[-2:] == ["m1", "m2"], "the killed device had committed the whole batch"
    assert _queued_for(relay, bob.device_id) == 3, "and acknowledged none of it"

    bob = await accounts.start(bob)  # the relay redelivers the batch
    await eventually(lambda: _queued_for(relay, bob.device_id) == 0, message="all acknowledged")
    _assert_whole(bob, alices_view)


async def test_redelivery_after_the_connection_dropped_before_the_ack(accounts, relay, monkeypatch):
    alice, bob, alices_view = await _batch_across_two_chains(accounts, relay, monkeypatch)
    cut: list[wire.Ack] = []
    send = RelayLink.send

    async def cut_before_first_ack(link: RelayLink, frame: wire.Frame) -> None:
        if isinstance(frame, wire.Ack) and not cut and link is not alice.link and link._ws:
            cut.append(frame)
            await link._ws.close()  # the connection drops between the save and the Ack
        await send(link, frame)

    monkeypatch.setattr(RelayLink, "send", cut_before_first_ack)
    bob = await accounts.start(bob)
    await eventually(lambda: cut, message="bob's first batch saved, its Ack cut off")
    assert len(cut[0].seqs) == 3
    await eventually(lambda: _queued_for(relay, bob.device_id) == 0, message="all acknowledged")
    _assert_whole(bob, alices_view)
