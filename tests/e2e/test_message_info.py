"""A message's info and retry through a real relay: each recipient device's receipts are kept,
a contact cannot put receipts on a message it was not sent, and a retried message takes its
new place in its sender's order on both sides."""

from __future__ import annotations

from client.core.events import MessageStatus
from relay.handlers import HANDLERS
from relay.session import Reject
from shared import wire
from shared.envelope import ProfileName, Receipt, encode_payload
from tests.conftest import eventually, history


async def test_receipts_per_device_and_none_from_a_stranger(accounts):
    alice = await accounts.create("alice", "Desktop")
    bob = await accounts.create("bob", "Desktop")
    bob_phone = await accounts.add_device(bob, "Phone")
    carol = await accounts.create("carol", "Laptop")
    sent = await alice.send_text("bob", "for bob")
    await alice.send_text("carol", "for carol")
    await eventually(lambda: len(alice.conversations.info(sent.message_id).receipts) == 2)
    receipts = alice.conversations.info(sent.message_id).receipts
    assert {(r.username, r.device_id, r.status) for r in receipts} == {
        ("bob", bob.device_id, "delivered"),
        ("bob", bob_phone.device_id, "delivered"),
    }
    await bob_phone.mark_read("alice")
    await eventually(
        lambda: (
            ("bob", bob_phone.device_id, "read")
            in {
                (r.username, r.device_id, r.status)
                for r in alice.conversations.info(sent.message_id).receipts
            }
        )
    )

    # Carol (a contact, hostile) sends a "read" receipt naming the message Alice sent Bob.
    await eventually(lambda: len(carol.messages("alice")) == 1)
    with carol._store.transaction():
        carol._store.enqueue(
            ["alice"],
            encode_payload(
                Receipt(origin=carol.context.origin(), status="read", message_ids=[sent.message_id])
            ),
            None,
        )
    carol.context.outbox_wake.set()
    await carol.send_text("alice", "after the forged receipt")
    await eventually(lambda: len(alice.messages("carol")) == 2)
    assert all(r.username == "bob" for r in alice.conversations.info(sent.message_id).receipts)
    # Info shows a device's time to the microsecond the relay gave.
    assert all(r.at > 0 for r in alice.conversations.info(sent.message_id).receipts)


async def test_a_retried_message_goes_after_what_was_sent_meanwhile(accounts, monkeypatch):
    alice = await accounts.create("alice", "Desktop")
    bob = await accounts.create("bob", "Desktop")
    forward = HANDLERS[wire.Send]

    async def refuse(session, frame):
        raise Reject(wire.ErrorCode.INTERNAL_ERROR, "")

    monkeypatch.setitem(HANDLERS, wire.Send, refuse)
    failed = await alice.send_text("bob", "first, refused")
    await eventually(lambda: alice.messages("bob")[0].status is MessageStatus.FAILED)
    assert alice.conversations.failure(failed.message_id) == "The relay failed to store it"
    monkeypatch.setitem(HANDLERS, wire.Send, forward)
    await alice.send_text("bob", "second, sent")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    delivered = next(m for m in alice.messages("bob") if m.body == "second, sent")
    assert alice.conversations.retry(delivered.message_id) is False  # only failed ones

    assert alice.conversations.retry(failed.message_id) is True
    assert alice.conversations.failure(failed.message_id) is None
    await eventually(lambda: len(bob.messages("alice")) == 2)
    await eventually(
        lambda: (
            all(m.server_ts is not None for m in alice.messages("bob"))
            and all(m.status is MessageStatus.DELIVERED for m in alice.messages("bob"))
        )
    )
    expected = ["second, sent", "first, refused"]
    assert [body for _, _, body in history(bob, "alice")] == expected
    assert [body for _, _, body in history(alice, "bob")] == expected
    assert not any(m.system for m in alice.messages("bob"))  # no "out of order" line
    assert alice.conversations.retry(failed.message_id) is False  # sent now: not again


async def test_a_contacts_chosen_name_is_cleaned_and_names_only_them(accounts):
    alice = await accounts.create("alice", "Desktop")
    carol = await accounts.create("carol", "Laptop")
    await carol.send_text("alice", "hi")
    await eventually(lambda: len(alice.messages("carol")) == 1)
    # Carol (hostile) sends a name with a line break and a right-to-left override.
    with carol._store.transaction():
        carol._store.enqueue(
            ["alice"],
            encode_payload(ProfileName(origin=carol.context.origin(), name="\u202eevil\nname")),
            None,
        )
    carol.context.outbox_wake.set()
    await eventually(lambda: alice.conversations.display_name("carol") != "carol")
    assert alice.conversations.display_name("carol") == "evil name"
    assert alice.conversations.own_name == ""  # it names carol, nobody else


async def test_a_duplicate_is_confirmed_again_when_the_first_receipt_was_lost(
    relay, accounts, monkeypatch
):
    """The relay takes Bob's receipt and drops it: Alice never hears of the delivery. When her
    devices change, she encrypts the unconfirmed message again for the current ones; Bob shows
    it once (a duplicate, by its id) and confirms it again, so Alice sees it delivered by him
    and stops offering it."""
    alice = await accounts.create("alice", "Desktop")
    bob = await accounts.create("bob", "Desktop")
    forward = HANDLERS[wire.Send]
    swallowed: list[wire.Send] = []

    async def swallow_bobs(session, frame):
        if session.username != "bob":
            return await forward(session, frame)
        swallowed.append(frame)  # accepted, never queued: the receipt is lost
        return wire.Accepted(rid=frame.rid, server_ts=session.relay.next_timestamp())

    monkeypatch.setitem(HANDLERS, wire.Send, swallow_bobs)
    sent = await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1 and swallowed)
    assert alice.messages("bob")[0].status is MessageStatus.SENT
    monkeypatch.setitem(HANDLERS, wire.Send, forward)

    await accounts.add_device(alice, "Laptop")  # her fan-out no longer matches her devices
    # The relay lost its record of the fan-out (say, restored from an older copy), so the
    # offer is not just answered again but checked against her devices, and refused.
    store = relay.relays[0].store
    store.forget_old_fan_outs(2**62)
    await store.durable()
    alice = await accounts.reopen(alice)  # a new connection: unconfirmed messages go again
    await eventually(
        lambda: (
            ("bob", bob.device_id, "delivered")
            in {
                (r.username, r.device_id, r.status)
                for r in alice.conversations.info(sent.message_id).receipts
            }
        ),
        message="bob confirmed the duplicate",
    )
    assert [m.body for m in bob.messages("alice") if m.sender_user == "alice"] == ["hello"]
    await eventually(lambda: not alice._store.unconfirmed())
