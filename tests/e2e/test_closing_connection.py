"""A connection the relay is hanging up on still gets pushes until it is gone: the relay has
sent its close frame and waits for the device's, and meanwhile another device's message for it
is committed. Nothing may be written to a closing websocket (the library refuses: an error in
the relay's event loop for a routine hang-up); the message stays queued and reaches the device
when it is back.

Bob's device is played by a raw websocket with bob's real keys that misbehaves (bad frames, then
it stops reading, so its close handshake never finishes); alice is a real client core."""

from __future__ import annotations

import logging

import pytest
from websockets.asyncio.client import connect
from websockets.protocol import State

from client.core.events import MessageStatus
from relay.limits import Limits
from shared import wire
from shared.auth import sign_login
from tests.conftest import eventually


async def test_a_message_for_a_device_being_hung_up_on_waits_for_its_return(
    accounts, relay, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    key, device_id = bob.profile.sign_key, bob.device_id
    await accounts.stop(bob)
    await eventually(lambda: device_id not in relay.relay.connections, message="bob offline")
    caplog.set_level(logging.WARNING)
    async with connect(relay.url, max_size=wire.MAX_FRAME_BYTES) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        signature = sign_login(key, challenge.nonce, "bob", device_id)
        resume = wire.Resume(rid=1, username="bob", device_id=device_id, signature=signature)
        await ws.send(wire.encode(resume))
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Welcome)
        connection = relay.relay.connections[device_id]
        # Caught up with its queue: from now on what is queued for it is pushed live.
        await eventually(lambda: not connection._draining, message="bob caught up")
        ws.transport.pause_reading()
        for _ in range(Limits().max_bad_frames):
            await ws.send(b"\xff not a frame")
        await eventually(
            lambda: connection.ws.protocol.state is State.CLOSING, message="relay hangs up"
        )
        sent = await alice.send_text("bob", "while you were leaving")
        await eventually(
            lambda: alice._store.message(sent.message_id).status is MessageStatus.SENT,
            message="alice's message stored",
        )
        ws.transport.abort()
    await eventually(lambda: device_id not in relay.relay.connections, message="bob gone")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    bob = await accounts.start(bob)
    await eventually(lambda: len(bob.messages("alice")) == 1, message="bob gets it on return")
    assert bob.messages("alice")[0].body == "while you were leaving"


async def test_a_device_hung_up_on_while_it_logs_in_gets_its_queue_on_its_return(
    accounts, relay, caplog: pytest.LogCaptureFixture
) -> None:
    """The device logs in and at once gets itself hung up on (bad frames), and stops reading:
    the writer's first round, which reads the device's queue from the store (more than one
    frame's worth), finds the connection closing. None of it is written; all of it is there
    when the device is back."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    key, device_id = bob.profile.sign_key, bob.device_id
    await accounts.stop(bob)
    await eventually(lambda: device_id not in relay.relay.connections, message="bob offline")
    texts = [f"{n} " + "x" * 15_000 for n in range(32)]  # more than one Deliver frame holds
    for text in texts:
        sent = await alice.send_text("bob", text)
    await eventually(
        lambda: alice._store.message(sent.message_id).status is MessageStatus.SENT,
        message="alice's messages stored",
    )
    caplog.set_level(logging.WARNING)
    async with connect(relay.url, max_size=wire.MAX_FRAME_BYTES) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        signature = sign_login(key, challenge.nonce, "bob", device_id)
        resume = wire.Resume(rid=1, username="bob", device_id=device_id, signature=signature)
        ws.transport.pause_reading()
        await ws.send(wire.encode(resume))
        for _ in range(Limits().max_bad_frames):
            await ws.send(b"\xff not a frame")
        await eventually(
            lambda: (
                device_id in relay.relay.connections
                and relay.relay.connections[device_id].ws.protocol.state is State.CLOSING
            ),
            message="relay hangs up",
        )
        connection = relay.relay.connections[device_id]
        await eventually(lambda: connection.cursor > 0, message="the writer read the queue")
        ws.transport.abort()
    await eventually(lambda: device_id not in relay.relay.connections, message="bob gone")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    bob = await accounts.start(bob)
    await eventually(lambda: len(bob.messages("alice")) == len(texts), message="bob gets all")
