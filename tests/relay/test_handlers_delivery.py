"""Delivery handlers against a real store, without websockets: fan-out checks, all-or-nothing
queueing, resends, acknowledgements and the key directory."""

from __future__ import annotations

import os

import pytest

from relay.limits import Limits
from shared import wire

pytestmark = pytest.mark.backends()  # the PostgreSQL store reads a fan-out's checks at once


def _send(send_id: bytes, *recipients: tuple[str, list[str]], size: int = 10) -> wire.Send:
    return wire.Send(
        rid=7,
        send_id=send_id,
        recipients=[
            wire.RecipientEnvelopes(
                username=user,
                envelopes=[wire.Envelope(device_id=d, payload=os.urandom(size)) for d in devices],
            )
            for user, devices in recipients
        ],
    )


def _keys(device, pre_keys: list[bytes]) -> wire.PublishKeys:  # type: ignore[no-untyped-def]
    return wire.PublishKeys(
        rid=2,
        identity_key=device.key.public,
        signed_pre_key=bytes(32),
        signed_pre_key_sig=bytes(64),
        one_time_pre_keys=pre_keys,
    )


async def _committed(kit, device) -> wire.Frame:  # type: ignore[no-untyped-def]
    """The answer to a fan-out, sent after the commit: one of ``Send``'s reply types."""
    await kit.store.durable()
    reply = device.replies.pop()
    assert isinstance(reply, wire.REPLIES[wire.Send])
    return reply


@pytest.mark.backends("sqlite")  # a Line takes pushes; on several nodes a connection rereads
async def test_a_fan_out_is_queued_then_accepted_after_commit_and_pushed_to_the_connected(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    line = kit.connect(bob)
    assert await kit.call(alice, _send(b"1" * 16, ("bob", [bob.device_id]))) is None
    assert not line.envelopes  # nothing goes out before the commit
    accepted = await _committed(kit, alice)
    assert isinstance(accepted, wire.Accepted) and accepted.rid == 7
    assert [e.sender_device for e in line.envelopes] == [alice.device_id]
    assert kit.store.queue_length(bob.device_id) == 1


async def test_a_resend_is_answered_again_and_queued_once(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.call(alice, _send(b"1" * 16, ("bob", [bob.device_id])))
    first = await _committed(kit, alice)
    await kit.call(alice, _send(b"1" * 16, ("bob", [bob.device_id])))
    again = await _committed(kit, alice)
    assert again.server_ts == first.server_ts
    assert kit.store.queue_length(bob.device_id) == 1


async def test_a_pending_device_sends_nothing(kit):
    await kit.create("alice")
    bob = await kit.create("bob")
    laptop = await kit.pending("alice")
    assert await kit.refused(laptop, _send(b"1" * 16, ("bob", [bob.device_id]))) == "pending_device"
    assert kit.store.queue_length(bob.device_id) == 0


async def test_a_fan_out_must_name_exactly_the_listed_devices(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    phone = await kit.pending("bob")
    reply = await kit.call(alice, _send(b"1" * 16, ("bob", [phone.device_id])))
    assert isinstance(reply, wire.Mismatch)
    assert reply.users == [
        wire.DeviceMismatch(username="bob", missing=[bob.device_id], extra=[phone.device_id])
    ]
    assert kit.store.queue_length(phone.device_id) == 0


async def test_unknown_users_and_duplicates_are_refused(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    unknown = _send(b"1" * 16, ("carol", []))
    assert await kit.refused(alice, unknown) == "unknown_user"
    twice = _send(b"2" * 16, ("bob", [bob.device_id]), ("bob", [bob.device_id]))
    assert await kit.refused(alice, twice) == "bad_request"
    same_device = _send(b"3" * 16, ("bob", [bob.device_id, bob.device_id]))
    assert await kit.refused(alice, same_device) == "bad_request"


@pytest.mark.parametrize("limits", [Limits(queue_bytes=100)])
async def test_a_full_queue_refuses_the_whole_fan_out(kit):
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    await kit.call(alice, _send(b"1" * 16, ("bob", [bob.device_id]), size=90))
    await _committed(kit, alice)
    both = _send(b"2" * 16, ("carol", [carol.device_id]), ("bob", [bob.device_id]), size=20)
    assert await kit.refused(alice, both) == "queue_full"
    assert kit.store.queue_length(carol.device_id) == 0  # all or nothing


async def test_an_ack_deletes_what_was_delivered(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await kit.call(alice, _send(b"1" * 16, ("bob", [bob.device_id])))
    await _committed(kit, alice)
    (queued,) = kit.store.queued(bob.device_id, 0, 10)
    assert await kit.call(bob, wire.Ack(seqs=[queued.seq])) is None
    assert kit.store.queue_length(bob.device_id) == 0


async def test_an_identity_key_belongs_to_one_device(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    keys = wire.PublishKeys(
        rid=2,
        identity_key=alice.key.public,
        signed_pre_key=bytes(32),
        signed_pre_key_sig=bytes(64),
        one_time_pre_keys=[],
    )
    assert await kit.refused(bob, keys) == "identity_key_taken"
    assert isinstance(await kit.call(alice, keys), wire.Ok)


async def test_bundles_go_only_for_listed_devices_and_warn_the_owner_when_low(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    phone = await kit.pending("bob")
    await kit.call(phone, _keys(phone, [os.urandom(32)]))  # published, but not on the list
    pre_keys = [os.urandom(32) for _ in range(wire.PRE_KEYS_LOW)]
    await kit.call(
        bob,
        wire.PublishKeys(
            rid=2,
            identity_key=bob.key.public,
            signed_pre_key=bytes(32),
            signed_pre_key_sig=bytes(64),
            one_time_pre_keys=pre_keys,
        ),
    )
    line = kit.connect(bob)
    ask = wire.FetchBundles(rid=3, username="bob", device_ids=[bob.device_id, phone.device_id])
    reply = await kit.call(alice, ask)
    assert [b.device_id for b in reply.bundles] == [bob.device_id]
    assert reply.bundles[0].one_time_pre_key in pre_keys
    assert line.frames == [wire.Notice(kind="prekeys_low", count=wire.PRE_KEYS_LOW - 1)]


@pytest.mark.parametrize("limits", [Limits(bundle_fetch_burst=2, bundle_fetches_per_second=0.001)])
async def test_bundle_fetches_are_limited_per_asking_account(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    ask = wire.FetchBundles(rid=3, username="bob", device_ids=[bob.device_id])
    assert isinstance(await kit.call(alice, ask), wire.Bundles)
    assert isinstance(await kit.call(alice, ask), wire.Bundles)
    assert await kit.refused(alice, ask) == "rate_limited"


@pytest.mark.parametrize("limits", [Limits(pre_key_burst=1, pre_keys_per_second=0.001)])
async def test_one_time_pre_keys_are_handed_out_at_a_pace_per_target_account(kit):
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    await kit.call(bob, _keys(bob, [os.urandom(32) for _ in range(3)]))
    ask = wire.FetchBundles(rid=3, username="bob", device_ids=[bob.device_id])
    (first,) = (await kit.call(alice, ask)).bundles
    (second,) = (await kit.call(carol, ask)).bundles  # another asker: the same account's pace
    assert first.one_time_pre_key is not None and second.one_time_pre_key is None
    assert kit.store.pre_key_count(bob.device_id) == 2
