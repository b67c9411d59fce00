"""Controls end to end (PROTOCOL.md §8): unsend, delete for me, delete a conversation,
disappearing messages, edits, reactions and replies, with the real relay, two users with two
devices each, one device offline during each action, and a device restored afterwards. On SQLite
with one relay node and on PostgreSQL with two (each account's devices on its own node), but for
the test that rewrites the SQLite queue."""

from __future__ import annotations

import sqlite3

import pytest

from client.core import clock as clock_module
from client.core.controls import ControlRefused
from client.core.events import MessageReceived, MessageStatus
from relay.handlers import HANDLERS
from relay.handlers import controls as relay_controls
from relay.store_pg import PgRelayStore
from shared import wire
from shared.controls import DeleteForMe, Edit, React, Unsend
from shared.envelope import new_message_id
from tests.conftest import eventually


async def _pair(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    alice2 = await accounts.add_device(alice, "Laptop")
    bob2 = await accounts.add_device(bob, "Laptop")
    return alice, alice2, bob, bob2


def state(client, thread: str | None = None) -> dict[bytes, tuple[str, str, tuple[str, ...]]]:
    """Per message id: its status kind, its text and its versions (system lines left out), in
    the conversation of alice and bob."""
    thread = thread or ("bob" if client.username == "alice" else "alice")
    shown = {}
    for m in client.messages(thread):
        if m.system:
            continue
        kind = "unsent" if m.status is MessageStatus.UNSENT else "message"
        shown[m.message_id] = (kind, m.body, tuple(client.controls.versions(m.message_id)))
    return shown


async def _settle(devices, count):
    await eventually(
        lambda: all(len(state(d)) == count for d in devices),
        message=f"{count} messages everywhere",
    )


pytestmark = pytest.mark.backends()


def mailbox_ids(relay, username: str | None = None) -> set[bytes]:
    """The message ids the relay's mailboxes hold as committed (one account's, or every one),
    read from the store the relay runs on."""
    store = relay.relay.store
    if isinstance(store, PgRelayStore):
        rows = store._committed_rows(
            "SELECT message_id FROM mailbox WHERE $1::text IS NULL OR username = $1", username
        )
        return {row[0] for row in rows}
    db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
    try:
        rows = db.execute(
            "SELECT message_id FROM mailbox WHERE ? IS NULL OR username = ?", (username, username)
        )
        return {row[0] for row in rows}
    finally:
        db.close()


async def test_unsend_with_a_device_offline_reaches_every_device_and_the_mailbox(
    accounts, relay, monkeypatch
):
    alice, alice2, bob, bob2 = await _pair(accounts)
    saved: list[tuple[str, bytes]] = []  # every item the relay is asked to keep, and by whom
    honest = HANDLERS[wire.SaveMessages]

    async def watching(session, frame):
        saved.extend((session.device_id, item.message_id) for item in frame.items)
        return await honest(session, frame)

    monkeypatch.setitem(HANDLERS, wire.SaveMessages, watching)
    hasty = await alice.send_text("bob", "unsent before the relay answered")
    alice.controls.unsend(hasty.message_id)
    kept = await alice.send_text("bob", "this one stays")
    gone = await alice.send_text("bob", "secret to unsend")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 3)
    for d in devices:
        await d.wait_saved()
    assert gone.message_id in mailbox_ids(relay)
    # Its sender unsent it before the relay's answer: the sender never saved it (its
    # recipients may have, before the unsend reached them: they deleted it since).
    assert (alice.device_id, hasty.message_id) not in saved
    await eventually(lambda: hasty.message_id not in mailbox_ids(relay), message="hasty gone")

    await accounts.stop(bob2)
    alice.controls.unsend(gone.message_id)
    # One more, sent and unsent while bob's laptop is away: it gets both in one batch.
    same_batch = await alice.send_text("bob", "sent and unsent while the laptop was away")
    alice.controls.unsend(same_batch.message_id)
    await eventually(
        lambda: all(
            state(d).get(m, ("",))[0] == "unsent"
            for d in (alice, alice2, bob)
            for m in (gone.message_id, same_batch.message_id)
        ),
        message="unsent on the online devices",
    )
    bob2 = await accounts.start(bob2)
    await eventually(
        lambda: (
            state(bob2).get(gone.message_id, ("",))[0] == "unsent"
            and state(bob2).get(same_batch.message_id, ("",))[0] == "unsent"
        ),
        message="the offline device applies them on its return",
    )
    await eventually(
        lambda: gone.message_id not in mailbox_ids(relay), message="mailbox copy deleted"
    )
    expected = state(alice)
    assert expected[gone.message_id] == expected[same_batch.message_id] == ("unsent", "", ())
    assert expected[kept.message_id][1] == "this one stays"
    for d in (alice2, bob, bob2):
        assert state(d) == expected


def _peer(client) -> str:
    return "bob" if client.username == "alice" else "alice"


def reactions(client) -> dict[bytes, dict[str, str]]:
    return {
        m.message_id: client.controls.reactions(m.message_id)
        for m in client.messages("bob" if client.username == "alice" else "alice")
        if client.controls.reactions(m.message_id)
    }


async def test_every_action_agrees_on_four_devices_and_a_restored_one(accounts, relay):
    alice, alice2, bob, bob2 = await _pair(accounts)
    code = await alice.setup_recovery()
    edited = await alice.send_text("bob", "edit me")
    liked = await bob.send_text("alice", "react to me")
    mine_only = await alice.send_text("bob", "delete me for alice")
    unsent = await bob.send_text("alice", "unsend me")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 4)
    reply = await alice.send_text("bob", "a reply", reply_to=liked.message_id)
    await _settle(devices, 5)

    await accounts.stop(alice2)  # offline during the edit
    alice.controls.edit(edited.message_id, "edited once")
    alice.controls.edit(edited.message_id, "edited twice")
    alice2 = await accounts.start(alice2)
    await accounts.stop(bob)  # offline during the reactions
    alice.controls.react(liked.message_id, "👍")
    alice.controls.react(liked.message_id, "❤️")
    bob2.controls.react(liked.message_id, "😂")
    bob2.controls.react(liked.message_id, "")
    bob2.controls.react(edited.message_id, "🎉")
    bob = await accounts.start(bob)
    await accounts.stop(bob2)  # offline during the unsend
    bob.controls.unsend(unsent.message_id)
    bob2 = await accounts.start(bob2)
    await accounts.stop(alice)  # offline during the deletion for alice
    alice2.controls.delete_for_me([mine_only.message_id])
    alice = await accounts.start(alice)
    devices = [alice, alice2, bob, bob2]

    want_alice = {
        edited.message_id: ("message", "edited twice", ("edit me", "edited once", "edited twice")),
        liked.message_id: ("message", "react to me", ()),
        unsent.message_id: ("unsent", "", ()),
        reply.message_id: ("message", "a reply", ()),
    }
    want_bob = {**want_alice, mine_only.message_id: ("message", "delete me for alice", ())}
    want_reactions = {liked.message_id: {"alice": "❤️"}, edited.message_id: {"bob": "🎉"}}
    await eventually(
        lambda: (
            all(state(d) == want_alice for d in (alice, alice2))
            and all(state(d) == want_bob for d in (bob, bob2))
            and all(reactions(d) == want_reactions for d in devices)
        ),
        message="all four devices agree",
    )
    assert all(d.controls.quote(reply.message_id)[1:] == ("bob", "react to me") for d in devices)

    for d in devices:
        await d.wait_saved()
    await eventually(
        lambda: not {unsent.message_id} & mailbox_ids(relay), message="unsent copies deleted"
    )
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    await eventually(lambda: state(restored) == want_alice, message="the restored device agrees")
    assert reactions(restored) == want_reactions
    assert restored.controls.quote(reply.message_id)[1:] == ("bob", "react to me")
    for d in [*devices, restored]:
        assert b"unsend me" not in b"".join(
            m.body.encode() for m in d.messages("bob" if d.username == "alice" else "alice")
        )


async def test_controls_from_a_non_sender_or_for_no_message_change_nothing(accounts, relay):
    """Clients that skip their own checks (``Controls._send`` directly): nothing they ask that
    the rules refuse changes anything, on any device, nor on a device restored afterwards."""
    alice, alice2, bob, bob2 = await _pair(accounts)
    carol = await accounts.create("carol")
    code = await alice.setup_recovery()
    message = await alice.send_text("bob", "mine alone")
    withdrawn = await alice.send_text("bob", "to be unsent")
    old = await alice.send_text("bob", "sent long ago")
    await carol.send_text("alice", "hello alice")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 3)
    alice.controls.unsend(withdrawn.message_id)
    await eventually(
        lambda: all(state(d)[withdrawn.message_id][0] == "unsent" for d in devices),
        message="unsent everywhere",
    )
    before = {d.device_id: state(d) for d in devices}
    # Bob asks what only alice may: unsend and edit her message, delete it for alice.
    bob.controls._send("alice", Unsend(target=message.message_id), ["alice"])
    bob.controls._send(
        "alice", Edit(target=message.message_id, version=2, body="bob's words"), ["alice"]
    )
    bob.controls._send("alice", DeleteForMe(targets=[message.message_id]), ["alice"])
    # Controls for ids that do not exist.
    bob.controls._send("alice", Unsend(target=new_message_id()), ["alice"])
    bob.controls._send("alice", React(target=new_message_id(), emoji="👍", seq=1), ["alice"])
    # Edits and reactions for an unsent message.
    alice.controls._send(
        "bob", Edit(target=withdrawn.message_id, version=2, body="back again"), ["bob"]
    )
    bob.controls._send("alice", React(target=withdrawn.message_id, emoji="👍", seq=1), ["alice"])
    # Carol reacts to a message of alice and bob's conversation (its id learnt somehow).
    carol.controls._send("alice", React(target=message.message_id, emoji="😂", seq=1), ["alice"])
    # Alice edits after the 15 minutes (her clock says so; the receivers check the times).
    alice.context.clock.set_local(lambda: clock_module.system_ms() + 16 * 60 * 1000)
    alice.controls._send("bob", Edit(target=old.message_id, version=2, body="too late"), ["bob"])
    marker = await bob.send_text("alice", "after the forgeries")
    await eventually(
        lambda: all(marker.message_id in state(d) for d in devices), message="all arrived"
    )
    for d in (alice, alice2):
        assert {k: v for k, v in state(d).items() if k != marker.message_id} == before[d.device_id]
    # "Delete for me" from bob deletes it for bob alone: his own devices, never alice's.
    for d in (bob, bob2):
        assert message.message_id not in state(d)
        assert {
            k: v for k, v in state(d).items() if k not in (marker.message_id, message.message_id)
        } == {k: v for k, v in before[d.device_id].items() if k != message.message_id}
    assert all(reactions(d) == {} for d in devices)
    for d in devices:
        await d.wait_saved()
    # Unsent while still being sent: the relay's late answer saves nothing of it.
    await eventually(
        lambda: withdrawn.message_id not in mailbox_ids(relay), message="no unsent copy"
    )
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    await eventually(lambda: state(restored) == state(alice), message="restore agrees")
    assert reactions(restored) == {}


async def test_disappearing_messages_expire_everywhere_by_the_relays_clock(
    accounts, relay, monkeypatch
):
    """The relay's clock decides: alice's laptop runs an hour fast and still keeps a 5-minute
    message for 5 minutes; bob's laptop is closed when it expires and deletes it on start, before
    anything is shown; a restore never brings it back; the mailbox holds no copy."""
    alice, alice2, bob, bob2 = await _pair(accounts)
    code = await alice.setup_recovery()
    hour = 3_600_000
    alice2.context.clock.set_local(lambda: clock_module.system_ms() + hour)
    await alice2.control_sync.sync_clock()
    assert abs(alice2.context.clock.now_ms() - clock_module.system_ms()) < 5_000

    bob.controls.set_timer("alice", 300)
    devices = [alice, alice2, bob, bob2]
    await eventually(
        lambda: all(d.controls.timer(_peer(d)) == 300 for d in devices), message="timer set"
    )
    assert [m.body for m in alice.messages("bob") if m.system] == [
        "bob set disappearing messages to 5 minutes"
    ]
    fleeting = await alice2.send_text("bob", "gone in five minutes")
    await _settle(devices, 1)
    for d in devices:
        await d.wait_saved()
    assert fleeting.message_id in mailbox_ids(relay)
    await accounts.stop(bob2)
    missed = await alice.send_text("bob", "sent while bob's laptop was closed")
    await _settle([alice, alice2, bob], 2)

    later = 6 * 60 * 1000  # six minutes pass, for the relay and every device
    real = clock_module.system_ms
    monkeypatch.setattr(clock_module, "system_ms", lambda: real() + later)
    monkeypatch.setattr(relay_controls, "relay_now_us", lambda: (real() + later) * 1000)
    for d in (alice, alice2, bob):
        d.control_sync.wake.set()
    await _settle([alice, alice2, bob], 0)
    await eventually(
        lambda: fleeting.message_id not in mailbox_ids(relay), message="both mailboxes deleted"
    )
    bob2 = await accounts.start(bob2)
    assert state(bob2) == {}  # deleted on start, before the relay was even reached
    shown: list[bytes] = []
    bob2.add_listener(
        lambda e: shown.append(e.message.message_id) if isinstance(e, MessageReceived) else None
    )
    marker = await alice.send_text("bob", "a fresh one")
    await eventually(lambda: list(state(bob2)) == [marker.message_id], message="bob2 online")
    assert shown == [marker.message_id]  # the one that arrived expired was never shown
    assert missed.message_id not in mailbox_ids(relay)
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert list(state(restored)) == [marker.message_id]
    assert restored.controls.timer("bob") == 300


async def test_a_device_with_a_wrong_clock_deletes_nothing_early(accounts):
    alice, alice2, bob, bob2 = await _pair(accounts)
    bob2.context.clock.set_local(lambda: clock_module.system_ms() + 3_600_000)
    await bob2.control_sync.sync_clock()
    bob.controls.set_timer("alice", 300)
    await eventually(lambda: bob2.controls.timer("alice") == 300, message="timer set")
    message = await alice.send_text("bob", "five minutes")
    await _settle([alice, alice2, bob, bob2], 1)
    bob2.control_sync.wake.set()
    await eventually(lambda: not bob2.control_sync.wake.is_set(), message="loop ran")
    assert message.message_id in state(bob2)


def _queued(relay, device_id: str) -> list[tuple]:
    db = relay.relay.store._db
    return db.execute(
        "SELECT device_id, sender_user, sender_device, server_ts, payload FROM queue"
        " WHERE device_id = ? ORDER BY seq",
        (device_id,),
    ).fetchall()


def _requeue(relay, device_id: str, rows: list[tuple]) -> None:
    """The hostile relay puts ``rows`` in the device's queue, in this order, in place of what
    is there."""
    db = relay.relay.store._db
    db.execute("DELETE FROM queue WHERE device_id = ?", (device_id,))
    db.executemany(
        "INSERT INTO queue (device_id, sender_user, sender_device, server_ts, payload)"
        " VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()


@pytest.mark.backends("sqlite")  # it rewrites the SQLite queue
async def test_a_hostile_relay_replaying_and_reordering_controls_resurrects_nothing(
    accounts, relay
):
    """bob's laptop is offline while alice sends, edits twice, reacts and removes it, unsends:
    the relay delivers all of it newest first, then all of it again. The unsent message stays
    unsent, the older edit does not win, the removed reaction stays removed."""
    alice, alice2, bob, bob2 = await _pair(accounts)
    await accounts.stop(bob2)
    await accounts.stop(alice2)
    m1 = await alice.send_text("bob", "first")
    m2 = await alice.send_text("bob", "second")
    m3 = await alice.send_text("bob", "third, deleted for alice")
    alice.controls.edit(m1.message_id, "first, edited")
    alice.controls.edit(m1.message_id, "first, edited again")
    alice.controls.react(m1.message_id, "👍")
    alice.controls.react(m1.message_id, "")
    alice.controls.unsend(m2.message_id)
    alice.controls.delete_for_me([m3.message_id])
    await eventually(lambda: state(bob).get(m2.message_id, ("",))[0] == "unsent", message="bob")
    # alice's laptop gets the deletion before the message it deletes.
    own = _queued(relay, alice2.device_id)
    _requeue(relay, alice2.device_id, list(reversed(own)))
    alice2 = await accounts.start(alice2)
    await eventually(lambda: state(alice2) == state(alice), message="alice2 agrees")
    assert m3.message_id not in state(alice2)
    await eventually(lambda: m3.message_id in state(bob), message="bob keeps the third")
    want = state(bob)
    assert want[m1.message_id][1] == "first, edited again" and reactions(bob) == {}
    queued = _queued(relay, bob2.device_id)
    assert len(queued) >= 7
    _requeue(relay, bob2.device_id, list(reversed(queued)))
    bob2 = await accounts.start(bob2)
    await eventually(lambda: state(bob2) == want, message="bob2 agrees despite the reversal")
    _requeue(relay, bob2.device_id, list(reversed(queued)) + queued)
    bob2 = await accounts.reopen(bob2)
    marker = await alice.send_text("bob", "after the replay")
    await eventually(lambda: marker.message_id in state(bob2), message="replay processed")
    got = {k: v for k, v in state(bob2).items() if k != marker.message_id}
    assert got == want and reactions(bob2) == {}


async def test_delete_conversation_reaches_every_own_device_the_mailbox_and_a_restore(
    accounts, relay
):
    alice, alice2, bob, bob2 = await _pair(accounts)
    code = await alice.setup_recovery()
    sent = [await alice.send_text("bob", f"to bob {n}") for n in range(3)]
    got = await bob.send_text("alice", "to alice")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 4)
    for d in devices:
        await d.wait_saved()
    ids = {m.message_id for m in [*sent, got]}
    assert ids <= mailbox_ids(relay)
    await accounts.stop(alice2)
    alice.controls.delete_conversation("bob")
    assert state(alice) == {}
    alice2 = await accounts.start(alice2)
    await eventually(lambda: state(alice2) == {}, message="the offline laptop deletes it too")
    assert "bob" not in alice.threads() and "bob" not in alice2.threads()
    # Only alice's copies: bob keeps his conversation and his mailbox.
    assert len(state(bob)) == 4 and len(state(bob2)) == 4
    await eventually(
        lambda: mailbox_ids(relay, "alice") & ids == set(), message="alice's copies deleted"
    )
    assert mailbox_ids(relay, "bob") & ids == ids
    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert state(restored) == {}
    # A message bob sent before the deletion, delivered late, stays deleted; a new one shows.
    later = await bob.send_text("alice", "a new start")
    await eventually(
        lambda: list(state(alice)) == [later.message_id], message="the new message shows"
    )


async def test_a_relay_that_keeps_deleted_items_still_cannot_bring_them_back(
    accounts, relay, monkeypatch
):
    """The relay answers every deletion with Ok and deletes nothing: a device restored from its
    mailbox still never shows an unsent, deleted or expired message, because the controls (and
    each message's expiry) travel sealed in the same mailbox."""

    async def keeps_everything(session, frame):
        return wire.Ok(rid=frame.rid)

    monkeypatch.setitem(HANDLERS, wire.DeleteMailboxItems, keeps_everything)
    alice, alice2, bob, bob2 = await _pair(accounts)
    code = await alice.setup_recovery()
    alice.controls.set_timer("bob", 300)
    fleeting = await alice.send_text("bob", "expires: secret one")
    await eventually(lambda: fleeting.message_id in state(bob), message="fleeting arrived")
    alice.controls.set_timer("bob", 0)
    unsent = await alice.send_text("bob", "unsent: secret two")
    deleted = await bob.send_text("alice", "deleted: secret three")
    edited = await alice.send_text("bob", "edited: secret four")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 4)
    alice.controls.unsend(unsent.message_id)
    alice2.controls.delete_for_me([deleted.message_id])
    alice.controls.edit(edited.message_id, "edited, nothing secret")
    real, later = clock_module.system_ms, 6 * 60 * 1000  # six minutes pass, for everyone
    monkeypatch.setattr(clock_module, "system_ms", lambda: real() + later)
    monkeypatch.setattr(relay_controls, "relay_now_us", lambda: (real() + later) * 1000)
    for d in devices:
        d.control_sync.wake.set()
    want = {
        unsent.message_id: ("unsent", "", ()),
        edited.message_id: (
            "message",
            "edited, nothing secret",
            ("edited: secret four", "edited, nothing secret"),
        ),
    }
    await eventually(lambda: state(alice) == want and state(alice2) == want, message="alice")
    for d in devices:
        await d.wait_saved()
    held = mailbox_ids(relay)
    assert {fleeting.message_id, unsent.message_id, deleted.message_id} <= held  # it kept them

    restored = await accounts.pending("alice", "Restored")
    await restored.restore(code=code)
    await restored.backfill()
    assert state(restored) == want
    bodies = " ".join(m.body for m in restored.messages("bob"))
    assert "secret one" not in bodies and "secret two" not in bodies
    assert "secret three" not in bodies


async def test_no_control_leaves_while_a_contacts_safety_number_change_waits(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    message = await alice.send_text("bob", "hello")
    await eventually(lambda: message.message_id in state(bob), message="delivered")
    with alice._store.transaction():  # bob's account key changed; alice has not acknowledged
        alice._store.set_key_change("bob", b"a list under a new account key")
    for attempt in (
        lambda: alice.controls.unsend(message.message_id),
        lambda: alice.controls.react(message.message_id, "👍"),
        lambda: alice.controls.set_timer("bob", 300),
    ):
        with pytest.raises(ControlRefused):
            attempt()
    assert state(alice)[message.message_id] == ("message", "hello", ())
    assert alice.controls.timer("bob") == 0 and alice.controls.reactions(message.message_id) == {}
