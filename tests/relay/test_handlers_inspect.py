"""The "server view" handler against a real store, without websockets: a member sees what the
relay saw of its own conversations only, with what is still queued."""

from __future__ import annotations

from shared import wire


async def _send(kit, sender, recipient) -> None:  # type: ignore[no-untyped-def]
    envelope = wire.Envelope(device_id=recipient.device_id, payload=b"sealed" * 10)
    frame = wire.Send(
        rid=1,
        send_id=bytes(range(16)),
        recipients=[wire.RecipientEnvelopes(username=recipient.username, envelopes=[envelope])],
    )
    await kit.call(sender, frame)
    await kit.store.durable()


async def test_a_member_sees_its_conversation_and_what_is_still_queued(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    await _send(kit, alice, bob)
    (seen,) = (await kit.call(alice, wire.Inspect(rid=1, peer="bob"))).envelopes
    assert (seen.sender_device, seen.recipient_user, seen.queued) == (alice.device_id, "bob", True)
    await kit.call(bob, wire.Ack(seqs=[seen.seq]))
    (seen,) = (await kit.call(bob, wire.Inspect(rid=1, peer="alice"))).envelopes
    assert not seen.queued


async def test_nobody_else_sees_it(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    carol = await kit.create("carol")
    await _send(kit, alice, bob)
    assert (await kit.call(carol, wire.Inspect(rid=1, peer="bob"))).envelopes == []
    assert (await kit.call(carol, wire.Inspect(rid=1, peer="alice"))).envelopes == []
    laptop = await kit.pending("alice")
    assert await kit.refused(laptop, wire.Inspect(rid=1, peer="bob")) == "pending_device"
