"""A contact learns of a device change when it happens (the new signed list travels end to end
at once, verified as any list), and the change line sits where the change happened in the
conversation, even for a contact who was offline meanwhile: before what the new device sent,
never buried above what the contact had already seen."""

from __future__ import annotations

from client.core.events import MessageStatus
from tests.conftest import eventually


def _lines(client, thread: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.body for m in client.messages(thread)]


async def test_a_contact_sees_a_new_and_a_removed_device_at_once(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hi")
    await eventually(lambda: _lines(bob, "alice") == ["hi"])
    laptop = await accounts.add_device(alice)
    # No message follows: the notice alone brings the line.
    await eventually(lambda: _lines(bob, "alice") == ["hi", "alice added a device 'Laptop'"])
    await alice.remove_device(laptop.device_id)
    await eventually(lambda: _lines(bob, "alice")[-1] == "alice removed a device 'Laptop'")
    listed = bob.directory.known("alice")
    assert listed is not None and laptop.device_id not in listed.device_ids


async def test_the_line_sits_where_the_change_happened_for_a_contact_who_was_offline(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hi")
    await eventually(lambda: _lines(bob, "alice") == ["hi"])
    await accounts.stop(bob)
    laptop = await accounts.add_device(alice)
    sent = await laptop.send_text("bob", "from the laptop")
    await eventually(
        lambda: laptop._store.message(sent.message_id).status is not MessageStatus.SENDING
    )
    bob = await accounts.start(bob)
    await eventually(lambda: "from the laptop" in _lines(bob, "alice"))
    assert _lines(bob, "alice") == ["hi", "alice added a device 'Laptop'", "from the laptop"]


async def test_a_relay_cannot_bury_the_line_in_old_history_nor_date_it_ahead(accounts, relay):
    """The relay times the notice's delivery as it likes: the line still comes after what the
    contact had already seen, and no later than when it arrived."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hi")
    await eventually(lambda: _lines(bob, "alice") == ["hi"])
    await bob.send_text("alice", "hello")
    await eventually(lambda: _lines(alice, "bob") == ["hi", "hello"])
    await accounts.stop(bob)
    laptop = await accounts.add_device(alice)
    db = relay.relay.store._db
    notices = lambda: db.execute(  # noqa: E731
        "SELECT seq FROM queue WHERE device_id = ? AND sender_device = ?",
        (bob.device_id, alice.device_id),
    ).fetchall()
    await eventually(lambda: len(notices()) >= 1)
    db.execute(
        "UPDATE queue SET server_ts = 1 WHERE device_id = ? AND sender_device = ?",
        (bob.device_id, alice.device_id),
    )
    db.commit()
    bob = await accounts.start(bob)
    await eventually(lambda: len(_lines(bob, "alice")) == 3)
    assert _lines(bob, "alice") == ["hi", "hello", "alice added a device 'Laptop'"]

    await accounts.stop(bob)
    await alice.remove_device(laptop.device_id)
    await eventually(lambda: len(notices()) >= 1)
    db.execute(
        "UPDATE queue SET server_ts = ? WHERE device_id = ? AND sender_device = ?",
        (2**62, bob.device_id, alice.device_id),  # far in the future
    )
    db.commit()
    bob = await accounts.start(bob)
    await eventually(lambda: len(_lines(bob, "alice")) == 4)
    await bob.send_text("alice", "after")
    await eventually(lambda: any(m.body == "after" and m.server_ts for m in bob.messages("alice")))
    assert _lines(bob, "alice")[-2:] == ["alice removed a device 'Laptop'", "after"]
