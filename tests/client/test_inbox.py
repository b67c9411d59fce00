"""The inbox against the fake relay: what it stores, says and acknowledges for each batch."""

from __future__ import annotations

import asyncio

import pytest

from client.core.events import DecryptionFailed, MessageStatus
from shared import wire
from shared.envelope import SealedEnvelope, encode_sealed
from tests.client.engine import engine
from tests.client.fake_relay import FakeRelay
from tests.conftest import eventually

BOB_DEVICE = "b" * 16


def _delivered(seq: int, payload: bytes) -> wire.Delivered:
    return wire.Delivered(
        seq=seq, sender_user="bob", sender_device=BOB_DEVICE, server_ts=1_000_000, payload=payload
    )


@pytest.fixture
async def alice(tmp_path):
    relay = FakeRelay()
    made = engine(tmp_path, relay)
    task = asyncio.create_task(made.inbox.run())
    yield made
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    made.store.close()


async def test_a_malformed_envelope_is_shown_undecryptable_then_acknowledged(alice):
    alice.inbox.put([_delivered(7, b"not an envelope")])
    await eventually(lambda: alice.relay.sent == [wire.Ack(seqs=[7])])
    (placeholder,) = alice.store.thread_messages("bob")
    assert placeholder.status is MessageStatus.UNDECRYPTABLE and placeholder.body == ""
    assert any(isinstance(e, DecryptionFailed) for e in alice.events)
    assert not alice.store.in_transaction  # committed before the acknowledgement


async def test_a_sender_the_relay_answers_for_with_the_wrong_frame_is_not_trusted(alice):
    alice.relay.answer(wire.FetchDeviceList, wire.Devices(rid=0, devices=[]))
    sealed = encode_sealed(
        SealedEnvelope(
            x3dh=None,
            ratchet_pub=b"r" * 32,
            previous_chain_length=0,
            chain_length=0,
            ciphertext=b"c" * 32,
        )
    )
    alice.inbox.put([_delivered(8, sealed)])
    await eventually(lambda: alice.relay.sent == [wire.Ack(seqs=[8])])
    assert alice.relay.requested(wire.FetchDeviceList)  # it asked, and got a Devices frame
    failed = [e for e in alice.events if isinstance(e, DecryptionFailed)]
    assert failed and "not on its signed device list" in failed[0].reason


async def test_nothing_is_acknowledged_while_the_relay_is_away(alice):
    alice.relay.online.clear()
    alice.inbox.put([_delivered(9, b"junk")])
    await eventually(lambda: alice.inbox.waiting == 0 and not alice.store.in_transaction)
    assert alice.relay.sent == []  # redelivered after reconnecting


async def test_a_redelivered_envelope_is_dropped_unopened_and_acknowledged(alice):
    alice.inbox.put([_delivered(10, b"not an envelope")])
    await eventually(lambda: alice.relay.sent == [wire.Ack(seqs=[10])])
    # The relay did not hear the Ack and delivers it again, under another sequence number.
    alice.inbox.put([_delivered(11, b"not an envelope")])
    await eventually(lambda: alice.relay.sent[-1] == wire.Ack(seqs=[11]))
    assert len(alice.store.thread_messages("bob")) == 1, "the repeat was opened again"


async def test_an_envelope_pushed_on_a_lost_connection_is_not_acknowledged_on_the_next(alice):
    alice.inbox.put([_delivered(12, b"pushed on the first connection")])
    alice.inbox.connection_lost()  # before its batch is acknowledged
    await eventually(lambda: alice.store.thread_messages("bob") and not alice.store.in_transaction)
    # The relay behind the next connection may number its envelopes anew: 12 is another one.
    alice.inbox.put([_delivered(12, b"pushed on the second connection")])
    await eventually(
        lambda: len(alice.store.thread_messages("bob")) == 2 and not alice.store.in_transaction
    )
    assert alice.relay.sent == [wire.Ack(seqs=[12])], "the old connection's 12 was acknowledged"
