"""An acknowledgement deletes only the acknowledging device's own envelopes. Sequence numbers
are one counter for every queue (a device sees its own and can guess the rest), so a device that
acknowledged another device's numbers would otherwise delete that device's undelivered messages.
Against a real store, on both backends."""

from __future__ import annotations

import os

import pytest

from shared import wire

pytestmark = pytest.mark.backends()


async def test_acknowledging_another_devices_envelopes_deletes_nothing(kit):
    alice, bob = await kit.create("alice"), await kit.create("bob")
    carol = await kit.create("carol")
    for to in (bob, carol):
        send = wire.Send(
            rid=7,
            send_id=os.urandom(16),
            recipients=[
                wire.RecipientEnvelopes(
                    username=to.username,
                    envelopes=[wire.Envelope(device_id=to.device_id, payload=b"hello")],
                )
            ],
        )
        await kit.call(alice, send)
    await kit.store.durable()
    [for_bob] = kit.store.queued(bob.device_id, 0, 10)
    [for_carol] = kit.store.queued(carol.device_id, 0, 10)
    await kit.call(bob, wire.Ack(seqs=[for_carol.seq, for_bob.seq]))
    await kit.store.durable()
    assert kit.store.queue_length(carol.device_id) == 1, "bob deleted carol's envelope"
    assert kit.store.queue_length(bob.device_id) == 0
