"""Controls in group chats end to end (PROTOCOL.md §10, §12): three users (alice with two
devices), the real relay, one device offline during each action, and a device restored
afterwards; a non-sender, a removed member and a replaying relay change nothing."""

from __future__ import annotations

from client.core import clock as clock_module
from client.core import group_controls
from client.core.events import MessageReceived, MessageStatus
from relay.handlers import controls as relay_controls
from shared.controls import Edit, React, Unsend
from shared.envelope import Group, encode_payload, new_message_id
from shared.group import OwnControl, encode_message, group_id_of
from tests.conftest import eventually
from tests.e2e.test_controls import _queued, _requeue, mailbox_ids


async def _group(accounts):
    alice = await accounts.create("alice")
    alice2 = await accounts.add_device(alice, "Laptop")
    bob = await accounts.create("bob")
    carol = await accounts.create("carol")
    state = await alice.groups.create("Climbing", ["bob", "carol"])
    devices = [alice, alice2, bob, carol]
    for d in devices:
        await eventually(
            lambda d=d: d.groups.state(state.thread) is not None, message="the group is there"
        )
    return state.thread, devices


def state(client, thread) -> dict[bytes, tuple[str, str, str, tuple[str, ...]]]:
    """Per message id: its kind, sender, text and versions (system lines left out)."""
    shown = {}
    for m in client.messages(thread):
        if m.system:
            continue
        kind = {MessageStatus.UNSENT: "unsent", MessageStatus.UNDECRYPTABLE: "undecryptable"}.get(
            m.status, "message"
        )
        shown[m.message_id] = (
            kind,
            m.sender_user,
            m.body,
            tuple(client.controls.versions(m.message_id)),
        )
    return shown


def reactions(client, thread) -> dict[bytes, dict[str, str]]:
    return {
        m.message_id: client.controls.reactions(m.message_id)
        for m in client.messages(thread)
        if client.controls.reactions(m.message_id)
    }


async def _settle(devices, thread, count):
    await eventually(
        lambda: all(len(state(d, thread)) == count for d in devices),
        message=f"{count} group messages everywhere",
    )


async def test_every_action_agrees_on_every_member_device_and_a_restored_one(accounts, relay):
    thread, devices = await _group(accounts)
    alice, alice2, bob, carol = devices
    code = await alice.setup_recovery()
    edited = await carol.send_text(thread, "edit me")
    liked = await bob.send_text(thread, "react to me")
    mine_only = await bob.send_text(thread, "delete me for alice")
    unsent = await carol.send_text(thread, "unsend me")
    await _settle(devices, thread, 4)

    await accounts.stop(alice2)  # offline during the reply and the edit
    reply = await alice.send_text(thread, "a reply", reply_to=liked.message_id)
    carol.controls.edit(edited.message_id, "edited once")
    carol.controls.edit(edited.message_id, "edited twice")
    alice2 = await accounts.start(alice2)
    await accounts.stop(bob)  # offline during the reactions
    alice.controls.react(liked.message_id, "👍")
    await eventually(
        lambda: alice2.controls.reactions(liked.message_id) == {"alice": "👍"}, message="seen"
    )
    alice2.controls.react(liked.message_id, "❤️")  # the same member: one reaction, the newest
    carol.controls.react(liked.message_id, "😂")
    carol.controls.react(edited.message_id, "🎉")
    carol.controls.react(edited.message_id, "")
    bob = await accounts.start(bob)
    await accounts.stop(alice2)  # offline during the unsend
    carol.controls.unsend(unsent.message_id)
    alice2 = await accounts.start(alice2)
    await accounts.stop(alice)  # offline during the deletion for alice
    alice2.controls.delete_for_me([mine_only.message_id])
    alice = await accounts.start(alice)
    devices = [alice, alice2, bob, carol]

    want_alice = {
        edited.message_id: (
            "message",
            "carol",
            "edited twice",
            ("edit me", "edited once", "edited twice"),
        ),
        liked.message_id: ("message", "bob", "react to me", ()),
        unsent.message_id: ("unsent", "carol", "", ()),
        reply.message_id: ("message", "alice", "a reply", ()),
    }
    want_others = {
        **want_alice,
        mine_only.message_id: ("message", "bob", "delete me for alice", ()),
    }
    want_reactions = {liked.message_id: {"alice": "❤️", "carol": "😂"}}
    await eventually(
        lambda: (
            all(state(d, thread) == want_alice for d in (alice, alice2))
            and all(state(d, thread) == want_others for d in (bob, carol))
            and all(reactions(d, thread) == want_reactions for d in devices)
        ),
        message="every member device agrees",
    )

    for d in devices:
        assert d.controls.quote(reply.message_id)[1:] == ("bob", "react to me")
        assert d.controls.edited(edited.message_id)

    for d in devices:
        await d.wait_saved()
    await eventually(
        lambda: unsent.message_id not in mailbox_ids(relay), message="unsent copies deleted"
    )
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    await eventually(
        lambda: state(restored, thread) == want_alice, message="the restored device agrees"
    )
    assert reactions(restored, thread) == want_reactions
    assert restored.controls.quote(reply.message_id)[1:] == ("bob", "react to me")
    for d in [*devices, restored]:
        assert "unsend me" not in " ".join(m.body for m in d.messages(thread))


async def test_a_non_sender_a_removed_member_and_another_conversation_change_nothing(
    accounts, relay
):
    """bob sends an unsend and an edit for carol's message under his own sender key; carol,
    removed, sends a reaction as a deletion of her own to bob's device; a control for a
    one-to-one message names the group. None of it changes anything anywhere."""
    thread, devices = await _group(accounts)
    alice, alice2, bob, carol = devices
    target = await carol.send_text(thread, "carol's own words")
    await _settle(devices, thread, 1)
    pairwise = await bob.send_text("alice", "a one-to-one message")
    await eventually(lambda: alice.message(pairwise.message_id) is not None, message="pairwise")
    with bob.context.store.transaction():
        now = bob.context.clock.now_ms()
        group_controls.enqueue(
            bob.context, thread, new_message_id(now), now, Unsend(target=target.message_id)
        )
        group_controls.enqueue(
            bob.context,
            thread,
            new_message_id(now),
            now,
            Edit(target=target.message_id, version=2, body="bob's words"),
        )
        # An unsend (bob may: it is his) of a message of another conversation, through the group.
        group_controls.enqueue(
            bob.context, thread, new_message_id(now), now, Unsend(target=pairwise.message_id)
        )
    bob.context.outbox_wake.set()
    member = carol.groups.state(thread)
    as_member = carol.context.store.group_change(member.group_id, member.seq)
    await alice.groups.remove(thread, ["carol"])
    await eventually(
        lambda: "carol" not in bob.groups.state(thread).members, message="bob saw the removal"
    )
    await eventually(
        lambda: "carol" not in carol.groups.state(thread).members, message="carol saw it"
    )
    # carol's client forgets its removal and sends a reaction and a timer under its sender key.
    with carol.context.store.transaction():
        carol.context.store.put_group(member, as_member)
    carol.controls.react(target.message_id, "😈")
    carol.controls.set_timer(thread, 300)
    await eventually(lambda: not carol.context.store.next_outgoing(), message="carol sent them")
    await eventually(
        lambda: sum(v[0] == "undecryptable" for v in state(bob, thread).values()) == 2,
        message="bob refused both",
    )
    with carol.context.store.transaction():
        now = carol.context.clock.now_ms()
        forged = OwnControl(
            group_id=group_id_of(thread),
            control_id=new_message_id(now),
            sent_at=now,
            action=React(target=target.message_id, emoji="😈", seq=1),
        )
        payload = Group(origin=carol.context.origin(), body=encode_message(forged))
        carol.context.store.enqueue(["bob", "alice"], encode_payload(payload), None)
    carol.context.outbox_wake.set()
    marker = await alice.send_text(thread, "after all of it")
    latest = await alice.send_text("bob", "after all of it too")
    await eventually(
        lambda: (
            all(marker.message_id in state(d, thread) for d in (alice, alice2, bob))
            and bob.message(latest.message_id) is not None
        ),
        message="everything processed",
    )
    await eventually(lambda: not bob.context.store.next_outgoing(), message="bob sent it all")
    for d in (alice, alice2, bob):
        assert state(d, thread)[target.message_id] == ("message", "carol", "carol's own words", ())
        assert reactions(d, thread) == {}
        assert d.controls.timer(thread) == 0
    for d in (alice, alice2, bob):
        assert d.message(pairwise.message_id).body == "a one-to-one message"


async def test_a_replaying_relay_resurrects_nothing_in_a_group(accounts, relay):
    """bob is offline while carol sends, edits, reacts and unsends; the relay delivers all of it,
    then all of it again: the unsent message stays unsent, the edit stays, no reaction doubles."""
    thread, devices = await _group(accounts)
    alice, _alice2, bob, carol = devices
    await accounts.stop(bob)
    kept = await carol.send_text(thread, "kept")
    gone = await carol.send_text(thread, "gone")
    carol.controls.edit(kept.message_id, "kept, edited")
    carol.controls.react(kept.message_id, "👍")
    carol.controls.unsend(gone.message_id)
    await eventually(
        lambda: state(alice, thread).get(gone.message_id, ("",))[0] == "unsent", message="alice"
    )
    await eventually(lambda: len(_queued(relay, bob.device_id)) >= 5, message="bob's queue")
    queued = _queued(relay, bob.device_id)
    bob = await accounts.start(bob)
    want = state(alice, thread)
    await eventually(lambda: state(bob, thread) == want, message="bob agrees")
    await accounts.stop(bob)
    _requeue(relay, bob.device_id, queued + queued)
    bob = await accounts.start(bob)
    marker = await alice.send_text(thread, "after the replay")
    await eventually(lambda: marker.message_id in state(bob, thread), message="replay processed")
    got = {k: v for k, v in state(bob, thread).items() if k != marker.message_id}
    assert got == want
    assert got[gone.message_id] == ("unsent", "carol", "", ())
    assert reactions(bob, thread) == {kept.message_id: {"carol": "👍"}}


async def test_the_group_timer_expires_on_every_member_device_the_mailbox_and_a_restore(
    accounts, relay, monkeypatch
):
    thread, devices = await _group(accounts)
    alice, alice2, bob, carol = devices
    code = await alice.setup_recovery()
    bob.controls.set_timer(thread, 300)  # any member may set it
    await eventually(
        lambda: all(d.controls.timer(thread) == 300 for d in devices), message="timer set"
    )
    assert "bob set disappearing messages to 5 minutes" in [
        m.body for m in alice2.messages(thread) if m.system
    ]
    fleeting = await carol.send_text(thread, "gone in five minutes")

    await _settle(devices, thread, 1)
    assert all(d.controls.expires_at(fleeting.message_id) is not None for d in devices)
    for d in devices:
        await d.wait_saved()
    assert fleeting.message_id in mailbox_ids(relay)
    await accounts.stop(alice2)
    missed = await carol.send_text(thread, "sent while alice's laptop was closed")
    await _settle([alice, bob, carol], thread, 2)

    later = 6 * 60 * 1000
    real = clock_module.system_ms
    monkeypatch.setattr(clock_module, "system_ms", lambda: real() + later)
    monkeypatch.setattr(relay_controls, "relay_now_us", lambda: (real() + later) * 1000)
    for d in (alice, bob, carol):
        d.control_sync.wake.set()
    await _settle([alice, bob, carol], thread, 0)
    await eventually(
        lambda: fleeting.message_id not in mailbox_ids(relay), message="every mailbox deleted"
    )
    alice2 = await accounts.start(alice2)
    assert state(alice2, thread) == {}  # deleted on start
    shown: list[bytes] = []
    alice2.add_listener(
        lambda e: shown.append(e.message.message_id) if isinstance(e, MessageReceived) else None
    )
    marker = await bob.send_text(thread, "a fresh one")
    await eventually(lambda: list(state(alice2, thread)) == [marker.message_id], message="online")
    assert missed.message_id not in shown  # it arrived expired: never stored nor shown
    assert missed.message_id not in mailbox_ids(relay)
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert list(state(restored, thread)) == [marker.message_id]
    assert restored.controls.timer(thread) == 300
