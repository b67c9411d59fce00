"""Two users with two devices each talk through a real relay; devices go offline and come back."""

from __future__ import annotations

import logging
import random

import pytest

from client.core.events import MessageStatus
from tests.conftest import conversation, eventually, settled

pytestmark = pytest.mark.backends()

MESSAGES = 200


async def test_four_devices_agree_on_200_messages_with_devices_offline(accounts, relay, caplog):
    caplog.set_level(logging.DEBUG)
    alice = await accounts.create("alice", "Alice desktop")
    alice_laptop = await accounts.add_device(alice, "Alice laptop")
    bob = await accounts.create("bob", "Bob desktop")
    bob_phone = await accounts.add_device(bob, "Bob phone")
    rng = random.Random(7)
    texts = []

    for i in range(MESSAGES):
        # Take a device offline for a stretch, and bring it back later.
        if i == 40:
            await accounts.stop(bob_phone)
        if i == 90:
            bob_phone = await accounts.start(bob_phone)
        if i == 110:
            await accounts.stop(alice_laptop)
        if i == 170:
            alice_laptop = await accounts.start(alice_laptop)
        sender, peer = rng.choice(
            [(alice, "bob"), (alice_laptop, "bob"), (bob, "alice"), (bob_phone, "alice")]
        )
        if sender.closed:
            sender, peer = (alice, "bob") if peer == "bob" else (bob, "alice")
        text = f"message {i} from {sender.device_name}: {rng.getrandbits(64):x}"
        texts.append(text)
        await sender.send_text(peer, text)

    devices = {
        "alice": (alice, "bob"),
        "alice laptop": (alice_laptop, "bob"),
        "bob": (bob, "alice"),
        "bob phone": (bob_phone, "alice"),
    }
    for name, (device, thread) in devices.items():
        await eventually(
            lambda d=device, t=thread: settled(d, t, MESSAGES),
            timeout=60,
            message=f"{name} has all {MESSAGES} messages in the relay's order",
        )
    views = {name: (lambda d=d, t=t: conversation(d, t)) for name, (d, t) in devices.items()}
    reference = views["alice"]()
    for name, view in views.items():
        assert view() == reference, f"{name} differs"
    bodies = [body for _, _, body in reference]
    assert sorted(bodies) == sorted(texts)  # no gap, no duplicate
    assert len({mid for mid, _, _ in reference}) == MESSAGES

    # Every message reached a relay-assigned place in the order, and the other side's devices
    # acknowledged receipt.
    for device, thread in [(alice, "bob"), (bob, "alice")]:
        own = [m for m in device.messages(thread) if m.sender_device == device.device_id]
        await eventually(
            lambda own=own, d=device, t=thread: all(
                d._store.message(m.message_id).status is MessageStatus.DELIVERED for m in own
            ),
            message="delivered receipts",
        )

    # Nothing the relay stored or either side logged contains a message text.
    await relay.stop()
    stored = b"".join(p.read_bytes() for p in relay.data_dir.iterdir() if p.is_file())
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "logging was captured"
    for text in texts:
        assert text.encode() not in stored
        assert text not in logged
