"""Pending devices, pre-key top-up and the connection state a user sees."""

from __future__ import annotations

import pytest

from client.core.client import AriadneClient
from client.core.events import ConnectionState, ConnectionStateChanged, MessageStatus
from shared import wire
from tests.conftest import FAST, PASSWORD, approve, eventually

pytestmark = pytest.mark.backends()


async def test_pending_device_receives_nothing_until_approved(accounts, relay, tmp_path):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    pending = await AriadneClient.add_device(
        tmp_path / "bob-laptop", relay.url, "bob", PASSWORD, "Laptop", backoff=FAST
    )
    accounts.clients.append(pending)
    assert not pending.is_member
    assert [p.registration.device_id for p in await bob.pending_devices()] == [pending.device_id]

    await alice.send_text("bob", "before approval")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    assert relay.relay.store.queue_length(pending.device_id) == 0
    assert pending.messages("alice") == []
    sent = await pending.send_text("alice", "let me in")  # the relay refuses a pending sender
    await eventually(lambda: pending._store.message(sent.message_id).status.value == "failed")
    assert alice.messages("bob")[-1].body == "before approval"

    await approve(bob, pending)
    await eventually(lambda: pending.is_member, message="approval reaches the new device")
    await alice.send_text("bob", "after approval")
    await eventually(
        lambda: (
            [m.body for m in pending.messages("alice") if m.sender_user == "alice"]
            == ["before approval", "after approval"]
        ),
        message="the approved device receives, and restores what came before from the mailbox",
    )


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_device_tops_up_one_time_pre_keys_when_the_relay_runs_low(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    store = relay.relay.store
    assert store.pre_key_count(bob.device_id) == 100
    store._db.execute(
        "DELETE FROM one_time_pre_keys WHERE device_id = ? AND pre_key NOT IN (SELECT pre_key"
        " FROM one_time_pre_keys WHERE device_id = ? LIMIT 5)",
        (bob.device_id, bob.device_id),
    )
    store._db.commit()
    answer = await alice.link.request(
        lambda rid: wire.FetchBundles(rid=rid, username="bob", device_ids=[bob.device_id])
    )
    assert answer.bundles[0].one_time_pre_key is not None
    await eventually(lambda: store.pre_key_count(bob.device_id) == 104, message="top-up")
    handed_out = answer.bundles[0].one_time_pre_key
    assert handed_out in bob._x3dh.bundle.pre_keys  # private half kept until a message uses it


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_user_sees_offline_then_online_when_the_relay_goes_away(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    states: list[ConnectionStateChanged] = []
    alice.add_listener(
        lambda e: states.append(e) if isinstance(e, ConnectionStateChanged) else None
    )
    assert alice.link.state is ConnectionState.ONLINE
    await relay.stop()
    await eventually(
        lambda: any(e.state is ConnectionState.OFFLINE for e in states), message="offline shown"
    )
    offline = next(e for e in states if e.state is ConnectionState.OFFLINE)
    assert offline.detail.startswith("retrying in ")  # the user sees that it retries
    assert ConnectionState.ONLINE not in [e.state for e in states]
    queued = await alice.send_text("bob", "typed while offline")
    unknown = await alice.send_text("nobody", "to a user who does not exist")
    assert alice._store.message(queued.message_id).status is MessageStatus.SENDING
    assert bob.messages("alice") == []

    await relay.start()
    await eventually(lambda: states[-1].state is ConnectionState.ONLINE, message="back online")
    after = [e.state for e in states[states.index(offline) :]]
    assert after[-2:] == [ConnectionState.CONNECTING, ConnectionState.ONLINE]
    assert ConnectionState.FAILED not in after
    await eventually(
        lambda: alice._store.message(queued.message_id).status is MessageStatus.DELIVERED,
        message="the queued message is delivered once the relay is back",
    )
    assert [(m.sender_user, m.body) for m in bob.messages("alice")] == [
        ("alice", "typed while offline")
    ]
    await eventually(
        lambda: alice._store.message(unknown.message_id).status is MessageStatus.FAILED,
        message="a send to nobody is settled as failed, not left sending",
    )
    assert alice.messages("bob")[-1].server_ts is not None


async def test_server_view_covers_only_the_askers_own_conversations(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    mallory = await accounts.create("mallory")
    await alice.send_text("bob", "private")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    seen = await alice.inspect("bob")
    assert {e.device_id for e in seen} >= {bob.device_id}
    assert all(b"private" not in e.excerpt for e in seen)
    assert await mallory.inspect("bob") == []
    assert await mallory.inspect("alice") == []
