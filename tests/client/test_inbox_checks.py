"""Inbox checks a mutation audit found no test for, against the fake relay: each test here fails
when its check is taken out."""

from __future__ import annotations

import asyncio
import hashlib
import os

import msgspec
import pytest

from client.core.arrival import Outcome, store_arrival
from client.core.blob_transfer import fetch
from client.core.controls import Controls
from client.core.events import MessageStatus, StoredMessage
from client.core.mailbox import _by_frame
from client.core.store_processed import envelope_digest
from shared import wire
from shared.attachment import AttachmentPointer, blob_size
from shared.envelope import (
    Origin,
    Receipt,
    SealedEnvelope,
    Text,
    decode_payload,
    encode_sealed,
    new_message_id,
)
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


async def test_a_batch_cut_short_by_the_relay_going_away_is_left_for_redelivery(alice):
    """Opening an envelope from a device not on a list held here asks the relay for the list;
    with the relay away the batch stops there, unacknowledged, and the inbox goes on with the
    redelivery once it is back."""
    unknown = encode_sealed(
        SealedEnvelope(
            x3dh=None,
            ratchet_pub=b"r" * 32,
            previous_chain_length=0,
            chain_length=0,
            ciphertext=b"c" * 32,
        )
    )

    def delivered(seq: int) -> wire.Delivered:
        return wire.Delivered(
            seq=seq, sender_user="bob", sender_device="b" * 16, server_ts=1_000_000, payload=unknown
        )

    alice.relay.online.clear()
    alice.inbox.put([delivered(1)])
    await eventually(lambda: alice.inbox.waiting == 0 and not alice.store.in_transaction)
    assert alice.relay.sent == [] and alice.store.thread_messages("bob") == []
    alice.relay.online.set()
    alice.relay.answer(wire.FetchDeviceList, wire.Devices(rid=0, devices=[]))
    alice.inbox.put([delivered(2)])
    await eventually(lambda: alice.relay.sent == [wire.Ack(seqs=[2])])
    (placeholder,) = alice.store.thread_messages("bob")
    assert placeholder.status is MessageStatus.UNDECRYPTABLE


async def test_a_message_stored_or_deleted_here_is_never_shown_again(tmp_path):
    """A second copy of a message (offered again by its sender) is refused by the store, and
    with it nothing is shown: no second MessageReceived, and none at all for a message deleted
    here, whose text would otherwise reach the screen again."""
    made = engine(tmp_path / "alice", FakeRelay())
    controls = Controls(made.context)
    deliver = wire.Delivered(
        seq=1, sender_user="bob", sender_device="b" * 16, server_ts=1_000_000, payload=b""
    )

    def arrive(text: Text):
        with made.store.transaction():
            return store_arrival(made.context, controls, made.timeline, deliver, "bob", text)

    origin = Origin(user="bob", device="b" * 16, counter=1)
    first = Text(origin=origin, message_id=new_message_id(), peer="alice", sent_at=1, body="first")
    assert arrive(first).outcome is Outcome.STORED
    again = arrive(first)
    assert again.outcome is Outcome.REFUSED and again.events == []
    deleted = msgspec.structs.replace(first, message_id=new_message_id(), body="deleted here")
    with made.store.transaction():
        made.store.tombstone(deleted.message_id, "bob", "deleted")
    refused = arrive(deleted)
    assert refused.outcome is Outcome.REFUSED and refused.events == []
    assert [m.body for m in made.store.thread_messages("bob")] == ["first"]
    made.store.close()


def test_a_receipt_never_takes_a_message_back_to_a_lower_state(tmp_path):
    """Receipts from a contact's devices arrive in any order: once read, a late "delivered"
    (from the contact's other device) leaves the message read."""
    made = engine(tmp_path / "alice", FakeRelay())
    sent = StoredMessage(
        message_id=b"s" * 16,
        thread="bob",
        sender_user="alice",
        sender_device=made.context.device_id,
        sent_at=1,
        server_ts=1_000,
        body="to bob",
        status=MessageStatus.SENT,
    )
    origin = Origin(user="bob", device="b" * 16, counter=1)
    deliver = wire.Delivered(
        seq=1, sender_user="bob", sender_device="b" * 16, server_ts=2_000, payload=b""
    )
    with made.store.transaction():
        made.store.insert_message(sent)
        for status in ("read", "delivered"):
            receipt = Receipt(origin=origin, status=status, message_ids=[sent.message_id])
            made.inbox._apply(deliver, receipt, {}, [])  # what the inbox does with an opened one
    assert made.store.message(sent.message_id).status is MessageStatus.READ
    made.store.close()


def test_mailbox_items_leave_in_frames_the_relay_accepts():
    """Items to save go in frames of at most MAILBOX_PAGE_BYTES sealed bytes (a frame above
    the relay's limit would be refused whole): all of them, in order."""
    sizes = [100_000, 150_000, 134_000, 1, 200_000, 384 * 1024, 28]
    items = [
        wire.MailboxItem(
            thread_id=b"t" * 16, message_id=bytes([n]) * 16, ts=n, epoch=1, sealed=b"s" * size
        )
        for n, size in enumerate(sizes)
    ]
    frames = _by_frame(items)
    assert [item for frame in frames for item in frame] == items
    assert all(frame for frame in frames)
    assert all(sum(len(i.sealed) for i in frame) <= wire.MAILBOX_PAGE_BYTES for frame in frames)
    assert [len(frame) for frame in frames] == [4, 1, 1, 1]


async def test_a_partial_download_longer_than_the_blob_is_started_again(tmp_path):
    """A partial download on disk longer than the sender's blob (not one this device wrote)
    is not resumed from: it is dropped and the whole blob fetched again."""
    size = 3 * wire.BLOB_FRAME + 10
    ciphertext = os.urandom(blob_size(size))
    pointer = AttachmentPointer(
        blob_id=b"b" * 16,
        capability=bytes(32),
        key=bytes(32),
        digest=hashlib.sha256(ciphertext).digest(),
        blob_size=len(ciphertext),
        size=size,
        content_type="application/octet-stream",
        name="file",
    )
    relay = FakeRelay()
    relay.answer(
        wire.FetchBlob,
        lambda f: wire.BlobChunk(
            rid=0,
            blob_id=f.blob_id,
            offset=f.offset,
            data=ciphertext[f.offset : f.offset + f.length],
        ),
    )
    blob = tmp_path / "partial"
    blob.write_bytes(os.urandom(len(ciphertext) + 5))
    await fetch(relay, pointer, blob, None)
    assert blob.read_bytes() == ciphertext
