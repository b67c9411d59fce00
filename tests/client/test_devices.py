"""Devices and the account against the fake relay: the first list, role changes, what a device
without the account key may not do, and the lines a contact's device change leaves."""

from __future__ import annotations

import pytest

from client.core.events import DeviceRemoved, MessageStatus, StoredMessage
from client.core.profile import DeviceRole
from shared import wire
from shared.device_list import DeviceEntry, first_device_list, next_device_list, open_device_list
from shared.envelope import new_message_id
from shared.identity import SigningKey, device_id_for
from tests.client.account_engine import account_engine
from tests.client.fake_relay import FakeRelay


@pytest.fixture
def relay():
    made = FakeRelay()
    made.answer(wire.PublishDeviceList, wire.Ok(rid=0))
    return made


@pytest.fixture
def alice(tmp_path, relay):
    made = account_engine(tmp_path / "alice", relay, first_device=True)
    yield made
    made.store.close()


@pytest.fixture
def newcomer(tmp_path, relay):
    made = account_engine(tmp_path / "new", relay, first_device=False)
    yield made
    made.store.close()


def contact_entry(name: str) -> tuple[DeviceEntry, SigningKey]:
    key = SigningKey.generate()
    return DeviceEntry(
        device_id=device_id_for(key.public),
        name=name,
        sign_public=key.public,
        identity_key=SigningKey.generate().public,
        storage_key=SigningKey.generate().public,
        added_at=1,
    ), key


async def test_the_first_device_publishes_its_list_with_the_first_epoch_and_becomes_full(alice):
    assert alice.account.role is DeviceRole.PENDING
    await alice.devices.publish_first_device_list()
    (published,) = alice.relay.requested(wire.PublishDeviceList)
    listed = open_device_list(published.signed_list, "alice", alice.account.key.public)
    assert listed.device_ids == {alice.context.device_id}
    assert published.epoch.grants[0].member_id == alice.context.device_id
    assert alice.account.role is DeviceRole.FULL
    assert alice.epochs.latest() is not None  # it holds the first epoch's root
    assert alice.directory.known("alice") == listed


async def test_a_member_the_own_list_drops_is_removed_and_told(alice):
    await alice.devices.publish_first_device_list()
    other, _ = contact_entry("Laptop")
    own = alice.directory.known("alice")
    key, sign = alice.account.key, alice.context.profile.sign_key
    with_other = next_device_list(key, sign, own, alice.directory.signed("alice"), add=other)
    alice.directory.accept("alice", with_other)
    # The laptop (another holder of the key) removes this device.
    listed = open_device_list(with_other, "alice", key.public)
    without = next_device_list(key, sign, listed, with_other, remove=alice.context.device_id)
    alice.directory.accept("alice", without)
    assert alice.account.role is DeviceRole.REMOVED
    assert DeviceRemoved("alice") in alice.events


async def test_a_device_without_the_account_key_approves_removes_and_recovers_nothing(newcomer):
    with pytest.raises(PermissionError):
        await newcomer.devices.pairing_code("x" * 16)
    with pytest.raises(PermissionError):
        await newcomer.devices.approve("x" * 16)
    with pytest.raises(PermissionError):
        await newcomer.devices.remove("x" * 16)
    with pytest.raises(PermissionError):
        await newcomer.history.setup_recovery()
    assert newcomer.relay.requests == []


async def test_approving_needs_a_compared_pairing_code(alice):
    await alice.devices.publish_first_device_list()
    with pytest.raises(PermissionError, match="compare the pairing code"):
        await alice.devices.approve("x" * 16)
    assert len(alice.relay.requested(wire.PublishDeviceList)) == 1  # only the first list


async def test_a_password_out_of_bounds_never_reaches_the_relay(alice):
    alice.relay.answer(wire.ChangePassword, wire.Ok(rid=0))
    with pytest.raises(ValueError):
        await alice.devices.change_password("x" * (wire.MIN_PASSWORD - 1))
    assert alice.relay.requests == []
    await alice.devices.change_password("a good new password")
    (sent,) = alice.relay.requested(wire.ChangePassword)
    assert sent.password == "a good new password"


async def test_a_contacts_new_device_is_a_line_in_that_conversation_only(alice):
    bob_key = SigningKey.generate()
    phone, phone_key = contact_entry("Phone")
    first = first_device_list(bob_key, "bob", phone, phone_key)
    with alice.store.transaction():
        for thread in ("bob", "carol"):
            alice.store.insert_message(alice_says(thread))
    assert alice.directory.accept("bob", first) is not None
    assert alice.store.thread_messages("bob")[-1].status is not MessageStatus.SYSTEM
    tablet, _ = contact_entry("Tablet")
    second = next_device_list(
        bob_key, phone_key, open_device_list(first, "bob", None), first, add=tablet
    )
    assert alice.directory.accept("bob", second) is not None
    line = alice.store.thread_messages("bob")[-1]
    assert line.status is MessageStatus.SYSTEM and line.body == "bob added a device 'Tablet'"
    assert all(m.status is not MessageStatus.SYSTEM for m in alice.store.thread_messages("carol"))


def test_only_a_peer_with_a_verified_list_can_be_marked_verified(alice):
    with pytest.raises(LookupError):
        alice.devices.mark_verified("bob")
    assert not alice.devices.is_verified("bob")
    assert alice.devices.safety_number("bob") is None


def alice_says(thread: str) -> StoredMessage:
    return StoredMessage(
        message_id=new_message_id(),
        thread=thread,
        sender_user="alice",
        sender_device="a" * 16,
        sent_at=1,
        server_ts=1000,
        body="hi",
        status=MessageStatus.SENT,
    )
