"""Inbox checks a mutation audit found no test for, against the fake relay: each test here fails
when its check is taken out."""

from __future__ import annotations

import asyncio

import pytest

from client.core.store_processed import envelope_digest
from shared import wire
from shared.envelope import Receipt, decode_payload
from tests.client.engine import engine
from tests.client.fake_relay import FakeRelay
from tests.conftest import eventually


@pytest.fixture
async def alice(tmp_path):
    made = engine(tmp_path, FakeRelay())
    task = asyncio.create_task(made.inbox.run())
    yield made
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    made.store.close()


async def test_a_redelivered_envelope_owes_a_receipt_to_a_contact_never_to_this_account(alice):
    """A redelivery's receipt goes again (the first may have been lost), but only to a contact:
    this account's own devices are owed none, and it would tell the relay more than it needs."""
    for seq, sender in ((1, "alice"), (2, "bob")):
        payload = f"an envelope {sender} sent before".encode()
        with alice.store.transaction():
            alice.store.record_processed(
                envelope_digest(sender, "d" * 16, payload), sender, bytes([seq]) * 16
            )
        alice.inbox.put(
            [
                wire.Delivered(
                    seq=seq,
                    sender_user=sender,
                    sender_device="d" * 16,
                    server_ts=1_000_000,
                    payload=payload,
                )
            ]
        )
    await eventually(lambda: sorted(s for a in alice.relay.sent for s in a.seqs) == [1, 2])
    queued = []
    while (item := alice.store.next_outgoing()) is not None:
        queued.append((item.users, decode_payload(item.payload)))
        with alice.store.transaction():
            alice.store.remove_outgoing(item.id)
    assert [(users, receipt.message_ids) for users, receipt in queued] == [
        (("bob",), [bytes([2]) * 16])
    ]
    assert all(isinstance(receipt, Receipt) for _, receipt in queued)
