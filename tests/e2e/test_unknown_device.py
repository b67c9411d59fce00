"""A relay that says it does not know a device proves nothing: only a signed device list without
the device, verified under the list rules, makes it removed. Otherwise it keeps everything,
says the relay does not know it, and can try again."""

from __future__ import annotations

from client.core.events import ConnectionState, ConnectionStateChanged
from relay import login
from relay.login import NotRegistered
from relay.session import Reject
from shared.wire import ErrorCode
from tests.conftest import conversation, eventually


async def _forgotten_by_relay(relay, device) -> None:
    """The relay loses this device's row (data lost, or a relay that pretends so)."""
    relay.relay.store.forget_device(device.device_id)
    await relay.relay.store.durable()
    relay.relay.disconnect(device.device_id, 4000, "forgotten")


async def test_a_relay_that_lost_the_device_does_not_make_it_removed(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await bob.send_text("alice", "kept")
    await eventually(lambda: len(alice.messages("bob")) == 1)
    await _forgotten_by_relay(relay, alice)
    await eventually(lambda: alice.link.state is ConnectionState.FAILED)
    assert alice.unknown_to_relay and not alice.removed
    assert [body for _, _, body in conversation(alice, "bob")] == ["kept"]
    queued = await alice.send_text("bob", "typed while the relay does not know me")
    assert alice._store.message(queued.message_id) is not None  # kept, waiting to be sent

    refused: list[ConnectionStateChanged] = []
    alice.add_listener(
        lambda e: (
            refused.append(e)
            if isinstance(e, ConnectionStateChanged) and e.state is ConnectionState.FAILED
            else None
        )
    )
    alice.retry_connection()  # tries again: still unknown, still not removed
    await eventually(lambda: refused, message="the relay asked again")
    assert alice.unknown_to_relay and not alice.removed


async def test_unknown_device_without_lists_proves_nothing(accounts, relay, monkeypatch):
    alice = await accounts.create("alice")

    def unknown(relay, frame, nonce):  # the answer an older or a hostile relay gives
        raise Reject(ErrorCode.UNKNOWN_DEVICE, "removed, trust me")

    monkeypatch.setattr(login, "_resume", unknown)
    relay.relay.disconnect(alice.device_id, 4000, "bye")
    await eventually(lambda: alice.link.state is ConnectionState.FAILED)
    assert alice.unknown_to_relay and not alice.removed


async def test_an_old_list_without_the_device_proves_nothing(accounts, relay, monkeypatch):
    """The laptop joined at version 2; the relay shows it version 1, which never named it."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    first = relay.relay.store.device_lists_between("alice", 0, 2, 1)
    assert len(first) == 1

    def unknown(relay, frame, nonce):
        raise NotRegistered(first)

    monkeypatch.setattr(login, "_resume", unknown)
    relay.relay.disconnect(laptop.device_id, 4000, "bye")
    await eventually(lambda: laptop.link.state is ConnectionState.FAILED)
    assert laptop.unknown_to_relay and not laptop.removed


async def test_a_signed_list_without_the_device_proves_its_removal(accounts, relay):
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    await laptop.close()  # offline while it is removed: it learns it only from the relay's answer
    accounts.clients.remove(laptop)
    await alice.remove_device(laptop.device_id)
    laptop = await accounts.start(laptop)
    await eventually(lambda: laptop.removed, message="the signed list proves the removal")
    assert not laptop.unknown_to_relay
