"""The group fan-out handler against a real store, without websockets: one ciphertext queued for
every listed device, the same device checks as a one-to-one fan-out, all or nothing, resends."""

from __future__ import annotations

import pytest

from relay.limits import Limits
from shared import wire
from shared.wire import ErrorCode


def _group_send(
    send_id: bytes, *recipients: tuple[str, list[str]], size: int = 40
) -> wire.GroupSend:
    return wire.GroupSend(
        rid=9,
        send_id=send_id,
        payload=bytes(size),
        recipients=[wire.GroupRecipient(username=u, device_ids=d) for u, d in recipients],
    )


async def _answer(kit, device) -> wire.Frame:  # type: ignore[no-untyped-def]
    await kit.store.durable()
    reply = device.replies.pop()
    assert isinstance(reply, wire.REPLIES[wire.GroupSend])
    return reply


async def test_one_payload_is_queued_for_every_listed_device_and_pushed_after_commit(kit):
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    laptop = await kit.pending("alice")
    await kit.approve(alice, laptop)
    line = kit.connect(carol)
    frame = _group_send(
        b"1" * 16,
        ("alice", [laptop.device_id]),
        ("bob", [bob.device_id]),
        ("carol", [carol.device_id]),
    )
    assert await kit.call(alice, frame) is None
    assert not line.envelopes
    accepted = await _answer(kit, alice)
    assert isinstance(accepted, wire.Accepted)
    for device in (laptop, bob, carol):
        assert kit.store.queue_length(device.device_id) == 1
    assert [e.payload for e in line.envelopes] == [frame.payload]
    assert {e.server_ts for e in line.envelopes} == {accepted.server_ts}


async def test_a_users_devices_must_be_exactly_its_current_list(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    phone = await kit.pending("bob")
    await kit.approve(bob, phone)
    reply = await kit.call(alice, _group_send(b"3" * 16, ("alice", []), ("bob", [bob.device_id])))
    assert isinstance(reply, wire.Mismatch)
    assert reply.users == [wire.DeviceMismatch(username="bob", missing=[phone.device_id], extra=[])]
    stranger = await kit.pending("bob")  # registered, not on bob's list
    reply = await kit.call(
        alice,
        _group_send(b"4" * 16, ("bob", [bob.device_id, phone.device_id, stranger.device_id])),
    )
    assert isinstance(reply, wire.Mismatch) and reply.users[0].extra == [stranger.device_id]
    assert kit.store.queue_length(bob.device_id) == 0  # nothing was queued


async def test_bad_requests_are_refused(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    phone = await kit.pending("bob")
    await kit.approve(bob, phone)
    # bob twice, each time with another of his devices: refused, not read as a mismatch
    assert (
        await kit.refused(
            alice, _group_send(b"4" * 16, ("bob", [bob.device_id]), ("bob", [phone.device_id]))
        )
        == ErrorCode.BAD_REQUEST
    )
    assert (
        await kit.refused(
            alice, _group_send(b"5" * 16, ("bob", [bob.device_id]), ("bob", [bob.device_id]))
        )
        == ErrorCode.BAD_REQUEST
    )
    assert (
        await kit.refused(alice, _group_send(b"6" * 16, ("bob", [bob.device_id, bob.device_id])))
        == ErrorCode.BAD_REQUEST
    )
    assert (
        await kit.refused(alice, _group_send(b"7" * 16, ("nobody", []))) == ErrorCode.UNKNOWN_USER
    )
    pending = await kit.pending("alice")
    assert (
        await kit.refused(pending, _group_send(b"8" * 16, ("bob", [bob.device_id])))
        == ErrorCode.PENDING_DEVICE
    )


async def test_a_resend_is_answered_again_and_queued_once(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    frame = _group_send(b"9" * 16, ("bob", [bob.device_id]))
    await kit.call(alice, frame)
    first = await _answer(kit, alice)
    await kit.call(alice, frame)
    again = await _answer(kit, alice)
    assert isinstance(again, wire.Accepted) and again.server_ts == first.server_ts
    assert kit.store.queue_length(bob.device_id) == 1


@pytest.mark.parametrize("limits", [Limits(queue_bytes=100)])
async def test_a_full_queue_refuses_the_whole_fan_out(kit):
    alice, bob, carol = [await kit.create(n) for n in ("alice", "bob", "carol")]
    await kit.call(alice, _group_send(b"a" * 16, ("bob", [bob.device_id]), size=80))
    await _answer(kit, alice)
    code = await kit.refused(
        alice,
        _group_send(b"b" * 16, ("carol", [carol.device_id]), ("bob", [bob.device_id]), size=40),
    )
    assert code == ErrorCode.QUEUE_FULL
    assert kit.store.queue_length(carol.device_id) == 0  # all or nothing
