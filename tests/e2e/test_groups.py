"""Group chats end to end: three users with two devices each, through a real relay, one device
offline at times; removal, rotation, and a relay that tampers with the group."""

from __future__ import annotations

import random

import pytest

from client.core.events import MessageStatus
from tests.conftest import eventually, history

MESSAGES = 300


def texts(client, thread):
    return [(mid, user, body) for mid, user, body in history(client, thread)]


def chat(client, thread):
    """The group's messages (not its system lines), in order, with their relay place."""
    return [
        (m.message_id, m.sender_user, m.body)
        for m in client.messages(thread)
        if not m.system and m.server_ts is not None
    ]


async def three_users(accounts):
    alice = await accounts.create("alice", "Alice desktop")
    alice2 = await accounts.add_device(alice, "Alice laptop")
    bob = await accounts.create("bob", "Bob desktop")
    bob2 = await accounts.add_device(bob, "Bob phone")
    carol = await accounts.create("carol", "Carol desktop")
    carol2 = await accounts.add_device(carol, "Carol phone")
    return [alice, alice2, bob, bob2, carol, carol2]


async def group_on_all(devices, name="Climbing"):
    alice = devices[0]
    state = await alice.groups.create(name, ["bob", "carol"])
    thread = state.thread
    for device in devices:
        await eventually(
            lambda d=device: d.groups.state(thread) is not None
            and d.groups.state(thread).members == ("alice", "bob", "carol"),
            message=f"{device.username}'s {device.device_name} holds the group",
        )
    return thread


async def test_three_users_with_two_devices_agree_on_300_messages(accounts):
    devices = await three_users(accounts)
    thread = await group_on_all(devices)
    rng = random.Random(13)
    sent = []
    for i in range(MESSAGES):
        if i == 60:
            await accounts.stop(devices[3])  # bob's phone goes offline
        if i == 150:
            devices[3] = await accounts.start(devices[3])
        if i == 200:
            await accounts.stop(devices[5])  # carol's phone
        if i == 260:
            devices[5] = await accounts.start(devices[5])
        sender = rng.choice([d for d in devices if not d.closed])
        body = f"group {i} from {sender.device_name}: {rng.getrandbits(48):x}"
        sent.append(body)
        await sender.send_text(thread, body)
    for device in devices:
        await eventually(
            lambda d=device: len(chat(d, thread)) == MESSAGES,
            timeout=120,
            message=f"{device.device_name} has all {MESSAGES} group messages",
        )
    reference = chat(devices[0], thread)
    for device in devices[1:]:
        assert chat(device, thread) == reference, f"{device.device_name} differs"
    assert sorted(body for _, _, body in reference) == sorted(sent)
    # Receipts per member: alice's own messages end delivered to both bob and carol.
    alice = devices[0]
    own = [m for m in alice.messages(thread) if m.sender_device == alice.device_id]
    await eventually(
        lambda: all(
            alice._store.message(m.message_id).status.rank >= MessageStatus.DELIVERED.rank
            for m in own
        ),
        timeout=60,
        message="delivered by every member",
    )
    assert set(alice.group_messages.receipts(own[0].message_id)) == {"bob", "carol"}
