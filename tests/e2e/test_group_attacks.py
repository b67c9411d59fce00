"""A hostile relay (and a hostile or removed member) against a group: adding a device or a member,
dropping a membership change, replaying a group message, injecting messages from outside."""

from __future__ import annotations

from client.core.events import MessageStatus
from shared import sender_keys, wire
from shared.envelope import new_message_id
from shared.errors import WireError
from shared.group import (
    Changes,
    GroupReceipt,
    GroupText,
    encode_message,
    group_id_of,
    next_change,
    sign_change,
)
from tests.conftest import eventually
from tests.e2e.test_groups import chat, group_on_all, three_users
from tests.e2e.test_hostile_relay import Attacker


def group_rows(attacker: Attacker, device_id: str) -> list[tuple]:
    """The group messages in a device's queue (not the pairwise envelopes around them)."""
    rows = []
    for row in attacker.rows_for(device_id):
        try:
            sender_keys.decode_message(row[4])
        except WireError:
            continue
        rows.append(row)
    return rows


async def test_a_relay_that_adds_a_device_to_a_member_gets_no_sender_key(accounts, relay):
    """The relay claims bob has another device: the sender's signed lists do not name it, so
    the message is refused by the relay's own check until it fails; no key goes to the device."""
    devices = await three_users(accounts)
    alice = devices[0]
    thread = await group_on_all(devices)
    fake = "f" * 16
    real_members = relay.relay.members
    relay.relay.members = lambda user: real_members(user) | ({fake} if user == "bob" else set())
    listed = []
    from relay.handlers import HANDLERS

    original = HANDLERS[wire.GroupSend]

    async def watching(session, frame):
        listed.extend(d for r in frame.recipients for d in r.device_ids)
        return await original(session, frame)

    HANDLERS[wire.GroupSend] = watching
    try:
        message = await alice.send_text(thread, "for the group only")
        await eventually(
            lambda: alice._store.message(message.message_id).status is MessageStatus.FAILED,
            message="the send fails visibly",
        )
    finally:
        HANDLERS[wire.GroupSend] = original
        relay.relay.members = real_members
    assert fake not in listed
    _, given = alice._store.own_sender_key(group_id_of(thread))
    assert all(device != fake for _, device in given)
    # Once the relay stops lying, the user's "retry" sends it, under the group's sender key.
    assert alice.conversations.retry(message.message_id)
    bob = devices[2]
    await eventually(
        lambda: [b for _, _, b in chat(bob, thread)] == ["for the group only"],
        message="sent again and delivered",
    )


async def test_a_change_by_a_non_admin_is_refused_by_every_device(accounts):
    """bob is a member, not an admin: his signed "add mallory" reaches every device end to end
    (as a relay or a hostile member could send it) and every device refuses it."""
    devices = await three_users(accounts)
    await accounts.create("mallory")
    alice, alice2, bob, bob2, carol, carol2 = devices
    thread = await group_on_all(devices)
    state = bob.groups.state(thread)
    forged = sign_change(
        bob.profile.sign_key,
        next_change(state, state.group_id, "bob", bob.device_id, "add", ("mallory",)),
    )
    with bob._store.transaction():
        bob.groups.enqueue(
            ["alice", "bob", "carol"], Changes(group_id=state.group_id, changes=[forged])
        )
    bob.context.outbox_wake.set()
    for device in (alice, alice2, bob2, carol, carol2):
        await eventually(
            lambda d=device: any(
                "refused" in m.body and "not an admin" in m.body for m in d.messages(thread)
            ),
            message=f"{device.device_name} refuses the change",
        )
        assert device.groups.state(thread).members == ("alice", "bob", "carol")


async def test_a_dropped_membership_change_is_detected_and_fetched(accounts, relay):
    devices = await three_users(accounts)
    alice, _, _, _, _, carol2 = devices
    thread = await group_on_all(devices)
    attacker = Attacker(relay)
    await accounts.stop(carol2)
    await alice.groups.rename(thread, "First")
    await eventually(
        lambda: (
            len([r for r in attacker.rows_for(carol2.device_id) if r[2] == alice.device_id]) == 1
        ),
        message="the rename waits in carol's phone's queue",
    )
    (dropped,) = [r for r in attacker.rows_for(carol2.device_id) if r[2] == alice.device_id]
    attacker.db.execute("DELETE FROM queue WHERE seq = ?", (dropped[0],))
    attacker.db.commit()
    await alice.groups.rename(thread, "Second")
    carol2 = await accounts.start(carol2)
    await eventually(
        lambda: any("has not arrived" in m.body for m in carol2.messages(thread)),
        message="carol's phone sees a change is missing",
    )
    await eventually(
        lambda: carol2.groups.state(thread) == alice.groups.state(thread),
        message="and gets it from alice",
    )
    assert carol2.groups.state(thread).name == "Second"


async def test_a_replayed_group_message_is_dropped(accounts, relay):
    devices = await three_users(accounts)
    alice, _, _, bob2, _, _ = devices
    thread = await group_on_all(devices)
    attacker = Attacker(relay)
    await accounts.stop(bob2)
    await alice.send_text(thread, "say it once")
    await eventually(lambda: group_rows(attacker, bob2.device_id), message="queued for bob's phone")
    (recorded,) = group_rows(attacker, bob2.device_id)
    assert sender_keys.decode_message(recorded[4]).group_id == group_id_of(thread)
    bob2 = await accounts.start(bob2)
    await eventually(lambda: not attacker.rows_for(bob2.device_id), message="acknowledged")
    assert [b for _, _, b in chat(bob2, thread)] == ["say it once"]
    attacker.insert(bob2.device_id, recorded)
    bob2 = await accounts.reopen(bob2)
    await eventually(lambda: not attacker.rows_for(bob2.device_id), message="replay consumed")
    assert [b for _, _, b in chat(bob2, thread)] == ["say it once"]
    assert not [m for m in bob2.messages(thread) if m.undecryptable]


async def test_a_removed_member_cannot_send_into_the_group_with_its_old_key(accounts, relay):
    """carol, removed, still holds her sender key and bob's devices still hold it too (keys of a
    removed member are deleted on removal): a message she sends straight to the relay is refused."""
    devices = await three_users(accounts)
    alice, _, bob, bob2, carol, carol2 = devices
    thread = await group_on_all(devices)
    await carol.send_text(thread, "hello")
    for device in (alice, bob, bob2):
        await eventually(lambda d=device: len(chat(d, thread)) == 1, message="carol's hello")
    await alice.groups.remove(thread, ["carol"])
    for device in (bob, bob2):
        await eventually(
            lambda d=device: d.groups.state(thread).members == ("alice", "bob"),
            message="removal applied",
        )
    group_id = group_id_of(thread)
    # Her keys are deleted where her removal is applied; bob's phone is given its copy back,
    # as if it had kept it: membership alone must refuse her.
    assert bob._store.peer_sender_key(group_id, "carol", carol.device_id, 0) is None
    rows = bob._store._db.execute(
        "SELECT count(*) FROM group_peer_keys WHERE sender_user = 'carol'"
    ).fetchone()
    assert rows[0] == 0
    key, _ = carol._store.own_sender_key(group_id)
    with bob2._store.transaction():
        bob2._store.put_peer_sender_key(
            sender_keys.accept_distribution(key.distribution(), "carol", carol.device_id)
        )
    state = carol.groups.state(thread)
    text = GroupText(
        origin=carol.context.origin(),
        message_id=new_message_id(),
        sent_at=0,
        body="I am still here",
        seq=state.seq,
        head=state.head,
    )
    sealed, _ = sender_keys.encrypt(key, "carol", carol.device_id, encode_message(text))
    recipients = [
        wire.GroupRecipient(username="bob", device_ids=sorted([bob.device_id, bob2.device_id])),
        wire.GroupRecipient(username="carol", device_ids=[carol2.device_id]),
    ]
    answer = await carol.link.request(
        lambda rid: wire.GroupSend(
            rid=rid, send_id=new_message_id(), payload=sealed, recipients=recipients
        ),
        expect=wire.Accepted,
    )
    assert answer.server_ts
    for device in (bob, bob2):
        await eventually(
            lambda d=device: any(m.undecryptable for m in d.messages(thread)),
            message="refused as not from a member",
        )
        readable = [m.body for m in device.messages(thread) if not m.system]
        assert readable == ["hello", ""]  # the second is the refused one


async def test_a_device_removed_from_its_account_cannot_send_into_the_group(accounts, relay):
    """bob removes his phone; the phone's old sender key is still held by the others, and a relay
    queues a message the phone encrypted with it: it is refused (not on bob's verified list)."""
    devices = await three_users(accounts)
    alice, alice2, bob, bob2, _, _ = devices
    thread = await group_on_all(devices)
    await bob2.send_text(thread, "from the phone")
    for device in (alice, alice2):
        await eventually(lambda d=device: len(chat(d, thread)) == 1, message="the phone's hello")
    group_id = group_id_of(thread)
    key, _ = bob2._store.own_sender_key(group_id)
    state = bob2.groups.state(thread)
    text = GroupText(
        origin=bob2.context.origin(),
        message_id=new_message_id(),
        sent_at=0,
        body="the removed phone speaks",
        seq=state.seq,
        head=state.head,
    )
    sealed, _ = sender_keys.encrypt(key, "bob", bob2.device_id, encode_message(text))
    await bob.remove_device(bob2.device_id)
    await eventually(
        lambda: bob2.device_id not in alice.directory.known("bob").device_ids,
        message="alice learns bob's new list",
    )
    assert alice._store.peer_sender_key(group_id, "bob", bob2.device_id, key.key_id)
    attacker = Attacker(relay)
    attacker.insert(
        alice.device_id, (0, "bob", bob2.device_id, relay.relay.next_timestamp(), sealed)
    )
    alice = await accounts.reopen(alice)
    await eventually(
        lambda: any(m.undecryptable for m in alice.messages(thread)), message="refused"
    )
    assert "the removed phone speaks" not in [m.body for m in alice.messages(thread)]


async def test_a_receipt_from_someone_outside_the_group_is_not_counted(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    mallory = await accounts.create("mallory")
    thread = await group_on_all([alice, bob], members=["bob"])
    message = await alice.send_text(thread, "only for bob")
    await eventually(
        lambda: alice._store.message(message.message_id).status is MessageStatus.DELIVERED
    )
    with mallory._store.transaction():
        mallory.groups.enqueue(
            ["alice"],
            GroupReceipt(
                group_id=group_id_of(thread), status="read", message_ids=[message.message_id]
            ),
        )
    mallory.context.outbox_wake.set()
    await bob.send_text(thread, "a later message from bob")  # alice's inbox moves on
    await eventually(lambda: len(chat(alice, thread)) == 2, message="bob's message")
    await eventually(lambda: mallory._store.next_outgoing() is None, message="mallory's sent")
    assert "mallory" not in alice.group_messages.receipts.of(message.message_id)
    assert alice._store.message(message.message_id).status is MessageStatus.DELIVERED


async def test_a_group_message_relabelled_by_the_relay_is_refused(accounts, relay):
    """The relay says alice's laptop sent what alice's desktop sent: the sender named under the
    encryption decides, and the message is refused rather than shown as the laptop's."""
    devices = await three_users(accounts)
    alice, alice2, _, bob2, _, _ = devices
    thread = await group_on_all(devices)
    attacker = Attacker(relay)
    await accounts.stop(bob2)
    await alice.send_text(thread, "from the desktop")
    await eventually(lambda: group_rows(attacker, bob2.device_id), message="queued for bob's phone")
    (row,) = group_rows(attacker, bob2.device_id)
    attacker.db.execute(
        "UPDATE queue SET sender_device = ? WHERE seq = ?", (alice2.device_id, row[0])
    )
    attacker.db.commit()
    bob2 = await accounts.start(bob2)
    await eventually(lambda: any(m.undecryptable for m in bob2.messages(thread)), message="refused")
    assert [m.body for m in bob2.messages(thread) if not m.system] == [""]


async def test_an_admin_forking_the_membership_cannot_reach_both_halves(accounts):
    """alice (admin) signs two different change 2s: "add mallory" for bob, a rename for carol.
    Each applies its own; bob's next message names bob's chain at 2, and carol refuses it."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    await accounts.create("mallory")
    thread = await group_on_all([alice, bob, carol])
    state = alice.groups.state(thread)
    for target, change in (
        ("bob", next_change(state, state.group_id, "alice", alice.device_id, "add", ("mallory",))),
        ("carol", next_change(state, state.group_id, "alice", alice.device_id, "rename", (), "X")),
    ):
        with alice._store.transaction():
            alice.groups.enqueue(
                [target],
                Changes(
                    group_id=state.group_id, changes=[sign_change(alice.profile.sign_key, change)]
                ),
            )
    alice.context.outbox_wake.set()
    await eventually(
        lambda: bob.groups.state(thread).seq == 2 and carol.groups.state(thread).seq == 2
    )
    await bob.send_text(thread, "mallory is in, right?")
    await eventually(
        lambda: any(m.undecryptable for m in carol.messages(thread)), message="refused"
    )
    assert "mallory is in, right?" not in [m.body for m in carol.messages(thread)]


async def test_a_relay_replaying_an_old_add_re_adds_nobody(accounts, relay):
    """The relay keeps the envelope that carried "alice added dave" to carol's phone and queues
    it again after dave's removal: it is refused (the session's replay check, and the change does
    not follow on the chain), and dave stays out."""
    devices = await three_users(accounts)
    alice, _, _, _, _, carol2 = devices
    dave = await accounts.create("dave")
    thread = await group_on_all(devices)
    attacker = Attacker(relay)
    await accounts.stop(carol2)
    await alice.groups.add(thread, ["dave"])
    await eventually(
        lambda: any(r[2] == alice.device_id for r in attacker.rows_for(carol2.device_id)),
        message="the add waits for carol's phone",
    )
    recorded = [r for r in attacker.rows_for(carol2.device_id) if r[2] == alice.device_id]
    carol2 = await accounts.start(carol2)
    await eventually(lambda: "dave" in carol2.groups.state(thread).members, message="dave in")
    await alice.groups.remove(thread, ["dave"])
    await eventually(lambda: "dave" not in carol2.groups.state(thread).members, message="out")
    await eventually(lambda: not attacker.rows_for(carol2.device_id), message="acknowledged")
    for row in recorded:
        attacker.insert(carol2.device_id, row)
    carol2 = await accounts.reopen(carol2)
    await eventually(lambda: not attacker.rows_for(carol2.device_id), message="replay consumed")
    assert carol2.groups.state(thread) == alice.groups.state(thread)
    assert "dave" not in carol2.groups.state(thread).members
    await alice.send_text(thread, "after the replay")
    await eventually(lambda: [b for _, _, b in chat(carol2, thread)][-1:] == ["after the replay"])
    assert not [m for m in chat(dave, thread) if m[2] == "after the replay"]
