"""Read receipts off (a preference kept in the profile): the device sends none to contacts and
shows none of theirs, as Signal does; the user's own devices still learn what was read."""

from __future__ import annotations

import msgspec

from client.core.events import MessageStatus
from client.core.preferences import Preferences
from tests.conftest import eventually


def _status(client, message_id: bytes) -> MessageStatus:  # type: ignore[no-untyped-def]
    stored = client._store.message(message_id)
    assert stored is not None
    return stored.status


async def test_read_receipts_off_sends_none_and_shows_none(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    bob_laptop = await accounts.add_device(bob)
    bob.set_preferences(msgspec.structs.replace(bob.preferences, read_receipts=False))
    assert bob.preferences.read_receipts is False and bob_laptop.preferences.read_receipts

    # Bob reads Alice's message: his laptop learns it, Alice does not.
    first = await alice.send_text("bob", "first")
    await eventually(lambda: any(m.message_id == first.message_id for m in bob.messages("alice")))
    assert await bob.mark_read("alice") == 1
    await eventually(lambda: _status(bob_laptop, first.message_id) is MessageStatus.READ)
    # Anything Bob's desktop sent after the receipt reaches Alice after it: a delivery receipt
    # for a second message is the barrier (one queue per device pair, in order).
    second = await alice.send_text("bob", "second")
    await eventually(lambda: _status(alice, second.message_id) is MessageStatus.DELIVERED)
    assert _status(alice, first.message_id) is MessageStatus.DELIVERED

    # Alice reads Bob's message: Bob's laptop shows it read, Bob's desktop does not.
    third = await bob.send_text("alice", "third")
    await eventually(lambda: any(m.message_id == third.message_id for m in alice.messages("bob")))
    await alice.mark_read("bob")
    await eventually(lambda: _status(bob_laptop, third.message_id) is MessageStatus.READ)
    fourth = await alice.send_text("bob", "fourth")
    await eventually(lambda: any(m.message_id == fourth.message_id for m in bob.messages("alice")))
    assert _status(bob, third.message_id) is MessageStatus.DELIVERED

    # Kept in the profile across a restart.
    bob = await accounts.reopen(bob)
    assert bob.preferences == Preferences(read_receipts=False)
