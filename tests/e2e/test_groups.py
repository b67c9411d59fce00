"""Group chats end to end: three users with two devices each, through a real relay, one device
offline at times; removal, rotation, and a relay that tampers with the group."""

from __future__ import annotations

import random

import msgspec
import pytest

from client.core.events import MessageStatus
from client.core.outbox import SendError
from shared.errors import DecryptionError
from shared.group import Changes, group_id_of
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


async def group_on_all(devices, name="Climbing", members=("bob", "carol")):
    alice = devices[0]
    state = await alice.groups.create(name, list(members))
    thread = state.thread
    for device in devices:
        await eventually(
            lambda d=device: (
                d.groups.state(thread) is not None
                and d.groups.state(thread).members == tuple(sorted({"alice", *members}))
            ),
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
    assert set(alice.group_messages.receipts.of(own[0].message_id)) == {"bob", "carol"}


class Recorder:
    """A relay operator keeping a copy of every group message it queues (its database before
    the devices acknowledge anything)."""

    def __init__(self, monkeypatch) -> None:
        from relay.handlers import HANDLERS
        from shared import wire

        self.payloads: list[bytes] = []
        original = HANDLERS[wire.GroupSend]

        async def recording(session, frame):
            self.payloads.append(frame.payload)
            return await original(session, frame)

        monkeypatch.setitem(HANDLERS, wire.GroupSend, recording)


def sender_key_id(client, thread):
    held = client._store.own_sender_key(group_id_of(thread))
    return held[0].key_id if held else None


def opens_any(device, payloads) -> list[bytes]:
    """What ``device`` opens of ``payloads`` with every sender key it holds, whatever key id the
    message names (the relay could relabel it)."""
    from shared import sender_keys

    opened = []
    rows = device._store._db.execute("SELECT state FROM group_peer_keys").fetchall()
    keys = [sender_keys.decode_peer(row[0]) for row in rows]
    for payload in payloads:
        message = sender_keys.decode_message(payload)
        for key in keys:
            relabelled = msgspec.structs.replace(
                message,
                key_id=key.key_id,
                sender_user=key.sender_user,
                sender_device=key.sender_device,
            )
            try:
                opened.append(sender_keys.decrypt(key, relabelled)[0])
            except DecryptionError:
                continue
    return opened


async def test_a_removed_member_opens_nothing_sent_afterwards_even_with_the_relays_copy(
    accounts, monkeypatch
):
    devices = await three_users(accounts)
    alice, alice2, bob, bob2, carol, carol2 = devices
    thread = await group_on_all(devices)
    for device in (alice, bob, carol):
        await device.send_text(thread, f"before, from {device.username}")
    for device in devices:
        await eventually(lambda d=device: len(chat(d, thread)) == 3, message="3 messages")
    keys_before = {d.device_name: sender_key_id(d, thread) for d in (alice, bob)}
    await accounts.stop(carol2)  # one of carol's devices is offline when she is removed
    recorder = Recorder(monkeypatch)
    await alice.groups.remove(thread, ["carol"])
    for device in (alice, alice2, bob, bob2, carol):
        await eventually(
            lambda d=device: d.groups.state(thread).members == ("alice", "bob"),
            message=f"{device.device_name} applied the removal",
        )
    await alice.send_text(thread, "after, from alice")
    await bob.send_text(thread, "after, from bob")
    for device in (alice, alice2, bob, bob2):
        await eventually(lambda d=device: len(chat(d, thread)) == 5, message="5 messages")
    carol2 = await accounts.start(carol2)
    await eventually(
        lambda: carol2.groups.state(thread).members == ("alice", "bob"),
        message="carol's phone learns it was removed",
    )
    # Every remaining sender rotated before its next message.
    assert sender_key_id(alice, thread) != keys_before["Alice desktop"]
    assert sender_key_id(bob, thread) != keys_before["Bob desktop"]
    # Carol's devices got nothing new, and cannot open the relay's copies with any key they hold.
    assert len(recorder.payloads) == 2
    for device in (carol, carol2):
        assert [b for _, _, b in chat(device, thread)] == [b for _, _, b in chat(alice, thread)[:3]]
        assert opens_any(device, recorder.payloads) == []
    # The remaining members' devices hold the keys these messages name (so the check above is
    # not vacuous: the keys exist, carol's devices were not given them).
    from shared import sender_keys

    for payload in recorder.payloads:
        message = sender_keys.decode_message(payload)
        assert bob2._store.peer_sender_key(
            message.group_id, message.sender_user, message.sender_device, message.key_id
        )
    # And carol can no longer send to the group.
    with pytest.raises(SendError):
        await carol.send_text(thread, "still here?")


async def test_a_member_removing_one_of_their_devices_makes_every_sender_rotate(
    accounts, monkeypatch
):
    devices = await three_users(accounts)
    alice, alice2, bob, bob2, carol, carol2 = devices
    thread = await group_on_all(devices)
    for device in (alice, carol):
        await device.send_text(thread, f"before, from {device.username}")
    for device in devices:
        await eventually(lambda d=device: len(chat(d, thread)) == 2, message="2 messages")
    before = {d.device_name: sender_key_id(d, thread) for d in (alice, carol)}
    recorder = Recorder(monkeypatch)
    await bob.remove_device(bob2.device_id)
    for device in (alice, carol):
        await eventually(
            lambda d=device: bob2.device_id not in d.directory.known("bob").device_ids,
            message=f"{device.device_name} learns bob's new list",
        )
    await alice.send_text(thread, "after, from alice")
    await carol.send_text(thread, "after, from carol")
    for device in (alice, alice2, bob, carol, carol2):
        await eventually(lambda d=device: len(chat(d, thread)) == 4, message="4 messages")
    # The device change shows in the group too, on every member's device.
    for device in (alice, carol):
        await eventually(
            lambda d=device: any("bob removed a device" in m.body for m in d.messages(thread)),
            message="a device-change line in the group",
        )
    for device in (alice, carol):
        assert sender_key_id(device, thread) != before[device.device_name]
        _, given = device._store.own_sender_key(group_id_of(thread))
        assert ("bob", bob2.device_id) not in given
    assert opens_any(bob2, recorder.payloads) == []


async def test_a_restored_device_loads_its_groups_membership_and_history(accounts):
    alice = await accounts.create("alice", "Alice desktop")
    bob = await accounts.create("bob", "Bob desktop")
    carol = await accounts.create("carol", "Carol desktop")
    code = await bob.setup_recovery()
    thread = await group_on_all([alice, bob, carol])
    await alice.groups.rename(thread, "Renamed")
    for i, sender in enumerate([alice, bob, carol, alice]):
        await sender.send_text(thread, f"history {i}")
    for device in (alice, bob, carol):
        await eventually(lambda d=device: len(chat(d, thread)) == 4, message="4 messages")
    await bob.wait_saved()
    await accounts.stop(bob)  # bob's only device is lost

    restored = await accounts.pending("bob", "Bob's new laptop")
    threads = await restored.restore(code=code)
    assert thread in threads
    await restored.backfill()
    assert [b for _, _, b in chat(restored, thread)] == [b for _, _, b in chat(alice, thread)]
    await eventually(
        lambda: restored.groups.state(thread) == alice.groups.state(thread),
        message="the membership, verified from the members' chain",
    )
    assert restored.groups.state(thread).name == "Renamed"
    # The new device gets sender keys once it is on bob's verified list: it reads what follows.
    await carol.send_text(thread, "welcome back")
    await eventually(
        lambda: [b for _, _, b in chat(restored, thread)][-1:] == ["welcome back"],
        message="the restored device reads new messages",
    )
    await restored.send_text(thread, "thanks")
    await eventually(
        lambda: [b for _, _, b in chat(alice, thread)][-1:] == ["thanks"],
        message="and sends",
    )


async def test_receipts_per_member_delivered_and_read_only_when_every_member_did(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    thread = await group_on_all([alice, bob, carol])
    await accounts.stop(carol)
    message = await alice.send_text(thread, "receipts, please")

    def status():
        return alice._store.message(message.message_id).status

    await eventually(lambda: "bob" in alice.group_messages.receipts.of(message.message_id))
    assert status() is MessageStatus.SENT  # carol has not received it yet
    carol = await accounts.start(carol)
    await eventually(lambda: status() is MessageStatus.DELIVERED, message="delivered to all")
    await eventually(lambda: len(chat(bob, thread)) == 1 and len(chat(carol, thread)) == 1)
    await bob.mark_read(thread)
    await eventually(
        lambda: alice.group_messages.receipts.of(message.message_id).get("bob") == "read"
    )
    assert status() is MessageStatus.DELIVERED  # carol has not read it
    await carol.mark_read(thread)
    await eventually(lambda: status() is MessageStatus.READ, message="read by every member")
    info = alice.conversations.info(message.message_id)
    assert {(r.username, r.status) for r in info.receipts} == {("bob", "read"), ("carol", "read")}


async def test_a_long_chain_reaches_an_added_member_in_parts_that_fit(accounts, monkeypatch):
    """The chain an added member gets is sent in parts of at most ``SHARE_BYTES`` (here made
    small, so that a short chain needs several), and it arrives whole and verified."""
    from client.core import groups as groups_module

    monkeypatch.setattr(groups_module, "SHARE_BYTES", 2_000)
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    others = [await accounts.create(f"user{i:02d}") for i in range(6)]
    state = await alice.groups.create("Big", [c.username for c in others])
    thread = state.thread
    for _ in range(6):
        await alice.groups.remove(thread, [c.username for c in others[:3]])
        await alice.groups.add(thread, [c.username for c in others[:3]])
    parts: list[list[bytes]] = []
    enqueue = alice.groups.enqueue

    def recording(users, message):
        if isinstance(message, Changes) and "bob" in users:
            parts.append(message.changes)
        enqueue(users, message)

    monkeypatch.setattr(alice.groups, "enqueue", recording)
    await alice.groups.add(thread, ["bob"])
    assert len(parts) > 1 and all(sum(map(len, p)) <= 2_000 for p in parts)
    await eventually(
        lambda: bob.groups.state(thread) == alice.groups.state(thread),
        timeout=60,
        message="bob verified the whole chain",
    )


async def test_a_members_new_device_gets_sender_keys_only_once_on_their_verified_list(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    thread = await group_on_all([alice, bob, carol])
    await carol.send_text(thread, "before the laptop")
    await eventually(lambda: len(chat(bob, thread)) == 1)
    laptop = await accounts.pending("bob", "Bob laptop")  # logged in with the password only
    await carol.send_text(thread, "while the laptop waits for approval")
    await eventually(lambda: len(chat(bob, thread)) == 2)
    _, given = carol._store.own_sender_key(group_id_of(thread))
    assert ("bob", laptop.device_id) not in given  # a pending device gets nothing
    from tests.conftest import approve

    await approve(bob, laptop)
    await eventually(lambda: laptop.is_member, message="the laptop is on bob's list")
    await laptop.load_conversations()
    await eventually(
        lambda: laptop.groups.state(thread) == alice.groups.state(thread),
        message="the laptop verifies the group's chain",
    )
    await carol.send_text(thread, "hello laptop")
    await eventually(
        lambda: [b for _, _, b in chat(laptop, thread)][-1:] == ["hello laptop"],
        message="the laptop reads what follows",
    )
    _, given = carol._store.own_sender_key(group_id_of(thread))
    assert ("bob", laptop.device_id) in given
