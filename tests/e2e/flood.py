"""A device that reads nothing while fan-outs to it keep coming, over raw websockets logged in
with real accounts' keys: what the slow-reader and connection-limit tests share.

Alice's device sends ``MESSAGES`` fan-outs to Bob's device, each payload starting with its
number, while Bob's device reads nothing; once all are accepted the test looks at the relay's
connection to Bob's device, and then Bob's device reads (and acknowledges) everything."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from relay.connection import Connection
from shared import wire
from tests.conftest import Accounts
from tests.e2e.test_limits import logged_in

MESSAGES = 200
PAYLOAD = 60_000  # 12 MB in all: more than the sockets between relay and device hold


def fan_out_to_bob(rid: int, device_id: str, size: int = PAYLOAD) -> bytes:
    """Alice's ``Send`` number ``rid`` to Bob's device ``device_id``."""
    payload = rid.to_bytes(4, "big") + bytes(size)
    return wire.encode(
        wire.Send(
            rid=rid,
            send_id=rid.to_bytes(16, "big"),
            recipients=[
                wire.RecipientEnvelopes(
                    username="bob", envelopes=[wire.Envelope(device_id=device_id, payload=payload)]
                )
            ],
        )
    )


async def read_some(
    reader: ClientConnection, sender_device: str, got: list[tuple[int, int]], frames: int
) -> None:
    """Read ``frames`` frames, keeping (seq, message number) of every envelope from
    ``sender_device``, and acknowledge what was read."""
    for _ in range(frames):
        frame = wire.decode_relay_frame(await asyncio.wait_for(reader.recv(), 30))
        if not isinstance(frame, wire.Deliver):
            continue
        got += [
            (e.seq, int.from_bytes(e.payload[:4], "big"))
            for e in frame.envelopes
            if e.sender_device == sender_device
        ]
        await reader.send(wire.encode(wire.Ack(seqs=[e.seq for e in frame.envelopes])))


async def all_accepted(sender: ClientConnection) -> None:
    """Wait for the relay's ``Accepted`` to each of the ``MESSAGES`` fan-outs."""
    answers = 0
    while answers < MESSAGES:
        answer = wire.decode_relay_frame(await asyncio.wait_for(sender.recv(), 30))
        answers += isinstance(answer, wire.Accepted)


async def flood_a_device_that_reads_nothing(
    made: Accounts, while_unread: Callable[[Connection], None]
) -> list[tuple[int, int]]:
    """Alice floods Bob's device, which reads nothing until all are accepted; ``while_unread``
    is then given the relay's connection to Bob's device (one node); then Bob's device reads
    everything. Returns (seq, message number) of each envelope it got, in the order got."""
    running = made.relay
    alice, bob = await made.create("alice"), await made.create("bob")
    await made.stop(alice)
    await made.stop(bob)
    async with (
        logged_in(running.url, bob) as reader,
        logged_in(running.url, alice) as sender,
    ):
        answers = asyncio.create_task(all_accepted(sender))
        for rid in range(1, MESSAGES + 1):
            await sender.send(fan_out_to_bob(rid, bob.device_id))
        await answers
        assert running.relay is not None
        while_unread(running.relay.connections[bob.device_id])
        got: list[tuple[int, int]] = []
        while len(got) < MESSAGES:
            await read_some(reader, alice.device_id, got, 1)
    return got
