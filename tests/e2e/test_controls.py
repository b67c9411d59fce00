"""Controls end to end (PROTOCOL.md §8): unsend, delete for me, delete a conversation,
disappearing messages, edits, reactions and replies, with the real relay, two users with two
devices each, one device offline during each action, and a device restored afterwards."""

from __future__ import annotations

import sqlite3

import pytest

from client.core.events import MessageStatus
from shared.controls import Unsend
from tests.conftest import eventually


async def _pair(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    alice2 = await accounts.add_device(alice, "Laptop")
    bob2 = await accounts.add_device(bob, "Laptop")
    return alice, alice2, bob, bob2


def state(client, thread: str | None = None) -> dict[bytes, tuple[str, str, tuple[str, ...]]]:
    """Per message id: its status kind, its text and its versions (system lines left out), in
    the conversation of alice and bob."""
    thread = thread or ("bob" if client.username == "alice" else "alice")
    shown = {}
    for m in client.messages(thread):
        if m.system:
            continue
        kind = "unsent" if m.status is MessageStatus.UNSENT else "message"
        shown[m.message_id] = (kind, m.body, tuple(client.controls.versions(m.message_id)))
    return shown


async def _settle(devices, count):
    await eventually(
        lambda: all(len(state(d)) == count for d in devices),
        message=f"{count} messages everywhere",
    )


def mailbox_ids(relay) -> set[bytes]:
    db = sqlite3.connect(relay.data_dir / "relay.sqlite3")
    try:
        return {row[0] for row in db.execute("SELECT message_id FROM mailbox")}
    finally:
        db.close()


async def test_unsend_with_a_device_offline_reaches_every_device_and_the_mailbox(accounts, relay):
    alice, alice2, bob, bob2 = await _pair(accounts)
    kept = await alice.send_text("bob", "this one stays")
    gone = await alice.send_text("bob", "secret to unsend")
    devices = [alice, alice2, bob, bob2]
    await _settle(devices, 2)
    for d in devices:
        await d.wait_saved()
    assert gone.message_id in mailbox_ids(relay)

    await accounts.stop(bob2)
    alice.controls.unsend(gone.message_id)
    await eventually(
        lambda: all(
            state(d).get(gone.message_id, ("",))[0] == "unsent" for d in (alice, alice2, bob)
        ),
        message="unsent on the online devices",
    )
    bob2 = await accounts.start(bob2)
    await eventually(
        lambda: state(bob2).get(gone.message_id, ("",))[0] == "unsent",
        message="the offline device applies it on its return",
    )
    await eventually(
        lambda: gone.message_id not in mailbox_ids(relay), message="mailbox copy deleted"
    )
    expected = state(alice)
    assert expected[gone.message_id] == ("unsent", "", ())
    assert expected[kept.message_id][1] == "this one stays"
    for d in (alice2, bob, bob2):
        assert state(d) == expected
