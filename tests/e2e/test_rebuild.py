"""The relay holds nothing the devices cannot rebuild: after a relay loses all its data, each
account's device re-creates it from the signed state it holds, the conversation resumes, and
history is restorable again with the recovery code. A relay cannot use this path to roll
anything back: contacts still take only a newer list."""

from __future__ import annotations

import logging
import shutil

from client.core.events import ConnectionState, DeviceListRefused, MessageStatus
from tests.conftest import PASSWORD, eventually, history


def _bodies(client, thread: str) -> list[str]:
    return [body for _, _, body in history(client, thread)]


async def _wipe(relay) -> None:
    await relay.stop()
    shutil.rmtree(relay.data_dir)
    await relay.start()  # the same address, nothing behind it


async def test_devices_rebuild_a_wiped_relay(accounts, relay, caplog):
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    bob = await accounts.create("bob")
    code = await alice.setup_recovery()
    await alice.send_text("bob", "before the wipe, from alice")
    await bob.send_text("alice", "before the wipe, from bob")
    for client, peer in ((alice, "bob"), (bob, "alice")):
        await eventually(
            lambda c=client, p=peer: (
                [m.status for m in c.messages(p) if m.sender_user == c.username]
                == [MessageStatus.DELIVERED]
            ),
            message="delivered before the wipe",
        )
    await eventually(lambda: len(history(laptop, "bob")) == 2)
    bobs_list = bob.directory.known("alice").version

    await _wipe(relay)
    for client in (alice, laptop, bob):
        await eventually(lambda c=client: c.unknown_to_relay, message="the relay lost it")
        assert not client.removed

    await alice.rebuild_account(PASSWORD)
    # Bob is not rebuilt yet: the relay does not know him, and alice's message waits for him.
    caplog.set_level(logging.INFO, "ariadne.client")
    waiting = await alice.send_text("bob", "while bob is not back")
    await eventually(
        lambda: "does not know this contact yet" in caplog.text, message="alice's outbox waits"
    )
    assert alice._store.message(waiting.message_id).status is MessageStatus.SENDING
    await bob.rebuild_account(PASSWORD)  # asks for alice's list again: a newer one, verified
    laptop.retry_connection()  # registered again from alice's signed list: logs in with its keys
    await eventually(lambda: laptop.link.state is ConnectionState.ONLINE, message="laptop back")

    await alice.send_text("bob", "after the wipe, from alice")
    await bob.send_text("alice", "after the wipe, from bob")
    expected = [
        "before the wipe, from alice",
        "before the wipe, from bob",
        "while bob is not back",
        "after the wipe, from alice",
        "after the wipe, from bob",
    ]
    for client, peer in ((alice, "bob"), (laptop, "bob"), (bob, "alice")):
        await eventually(
            lambda c=client, p=peer: sorted(_bodies(c, p)) == sorted(expected),
            message=f"{client.username}'s {client.device_name} has the conversation",
        )
    await eventually(
        lambda: bob.directory.known("alice").version == bobs_list + 1,
        message="bob verified alice's newer list",
    )
    assert not [
        m
        for c in (alice, bob)
        for m in c.messages("bob" if c is alice else "alice")
        if m.undecryptable
    ]

    await alice.wait_saved()
    restored = await accounts.pending("alice", "New phone")
    await restored.restore(code=code)
    await eventually(
        lambda: (
            {"before the wipe, from alice", "before the wipe, from bob"}
            <= set(_bodies(restored, "bob"))
        ),
        message="history restorable again",
    )


async def test_a_relay_restored_from_an_older_copy_rolls_no_list_back(accounts, relay, tmp_path):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    await relay.stop()
    shutil.copytree(relay.data_dir, tmp_path / "older copy")
    await eventually(lambda: not alice.link.online.is_set(), message="alice sees the relay go")
    await relay.start()
    await alice.wait_online()  # (approving before the reconnect found no connection)
    laptop = await accounts.add_device(alice)  # list version 2, after the copy
    await eventually(lambda: bob.link.online.is_set(), message="bob back online")
    await bob.directory.refresh("alice")
    assert bob.directory.known("alice").version == 2
    refused: list[DeviceListRefused] = []
    bob.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)

    await relay.stop()  # the relay comes back from its older copy: list version 1
    shutil.rmtree(relay.data_dir)
    shutil.copytree(tmp_path / "older copy", relay.data_dir)
    await relay.start()
    await eventually(lambda: laptop.unknown_to_relay, message="the laptop is not in the copy")
    assert not laptop.removed  # version 1 does not name it, but it is older than what it holds
    await eventually(lambda: bob.link.online.is_set(), message="bob back online")
    await bob.directory.refresh("alice")
    assert bob.directory.known("alice").version == 2, "bob took the older list"
    assert refused and "rolled back" in refused[-1].reason
