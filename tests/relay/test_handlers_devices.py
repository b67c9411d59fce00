"""Device handlers against a real store, without websockets: publishing device lists, listing
devices, the pairing relay's rules, rejecting a pending device and changing the password."""

from __future__ import annotations

import time

import msgspec
import pytest

from relay.handlers.devices import PAIRING_OFFER_SECONDS
from relay.limits import Limits
from shared import wire
from shared.device_list import list_hash, sign_device_list


def _offer(commitment: bytes = bytes(32)) -> wire.OfferPairing:
    return wire.OfferPairing(rid=5, commitment=commitment)


def _to(device, payload: bytes = b"opaque") -> wire.PairingSend:  # type: ignore[no-untyped-def]
    return wire.PairingSend(rid=6, to_device=device.device_id, payload=payload)


async def test_an_approved_device_becomes_a_member_and_everyone_is_told(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    line = kit.connect(alice)
    assert not laptop.session.is_member
    await kit.approve(alice, laptop)
    assert laptop.session.is_member
    assert wire.Notice(kind="device_list_changed", username="alice") in line.frames
    fetched = await kit.call(laptop, wire.FetchDeviceList(rid=1, username="alice", since=None))
    assert fetched.signed_list == kit.accounts["alice"].signed_list


async def test_a_list_is_published_only_by_its_author(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    signed, epoch = kit.next_list(alice, add=laptop)
    publish = wire.PublishDeviceList(rid=4, signed_list=signed, epoch=kit.upload(epoch))
    assert await kit.refused(laptop, publish) == "not_a_member"
    assert not laptop.session.is_member


async def test_a_list_naming_another_accounts_device_is_refused(kit):
    alice = await kit.create("alice")
    bob = await kit.create("bob")
    signed, epoch = kit.next_list(alice, add=bob)
    publish = wire.PublishDeviceList(rid=4, signed_list=signed, epoch=kit.upload(epoch))
    assert await kit.refused(alice, publish) == "bad_device_list"


async def test_a_removed_device_is_forgotten_and_hung_up_on(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    await kit.approve(alice, laptop)
    line = kit.connect(laptop)
    signed, epoch = kit.next_list(alice, remove=laptop.device_id)
    publish = wire.PublishDeviceList(rid=4, signed_list=signed, epoch=kit.upload(epoch))
    assert isinstance(await kit.call(alice, publish), wire.Ok)
    await kit.eventually(lambda: line.closed == [4001])
    assert kit.store.device(laptop.device_id) is None


async def test_the_list_shows_members_and_fresh_offers(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    line = kit.connect(alice)
    assert isinstance(await kit.call(laptop, _offer(b"c" * 32)), wire.Ok)
    assert wire.Notice(kind="pairing_offer", username="alice") in line.frames
    devices = {
        d.registration.device_id: d
        for d in (await kit.call(alice, wire.ListDevices(rid=1))).devices
    }
    assert devices[alice.device_id].member and not devices[laptop.device_id].member
    assert devices[laptop.device_id].pairing_commitment == b"c" * 32
    assert await kit.refused(alice, _offer()) == "already_member"


async def test_a_stale_offer_is_not_shown_and_cannot_be_answered(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    kit.connect(laptop)
    kit.store.offer_pairing(
        laptop.device_id, b"c" * 32, int(time.time()) - PAIRING_OFFER_SECONDS - 1
    )
    devices = (await kit.call(alice, wire.ListDevices(rid=1))).devices
    assert [d.pairing_commitment for d in devices if not d.member] == [None]
    assert await kit.refused(alice, _to(laptop)) == "no_offer"


@pytest.mark.parametrize("limits", [Limits(pending_device_seconds=0)])
async def test_an_expired_pending_device_is_forgotten_when_the_list_is_read(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    kit.store._db.execute("UPDATE devices SET registered_at = registered_at - 10")
    line = kit.connect(laptop)
    devices = (await kit.call(alice, wire.ListDevices(rid=1))).devices
    assert [d.registration.device_id for d in devices] == [alice.device_id]
    await kit.eventually(lambda: line.closed == [4003])


async def test_pairing_goes_member_to_offer_then_back_to_the_starter_only(kit):
    alice = await kit.create("alice")
    phone = await kit.pending("alice")
    await kit.approve(alice, phone)
    laptop = await kit.pending("alice")
    assert await kit.refused(laptop, _to(alice)) == "not_started"
    assert await kit.refused(alice, _to(laptop)) == "no_offer"
    await kit.call(laptop, _offer())
    assert await kit.refused(alice, _to(laptop)) == "not_connected"
    laptop_line, alice_line = kit.connect(laptop), kit.connect(alice)
    kit.connect(phone)
    assert isinstance(await kit.call(alice, _to(laptop, b"start")), wire.Ok)
    assert laptop_line.frames == [wire.PairingPush(from_device=alice.device_id, payload=b"start")]
    assert await kit.refused(phone, _to(laptop)) == "pairing_busy"
    assert await kit.refused(laptop, _to(phone)) == "not_started"
    assert isinstance(await kit.call(laptop, _to(alice, b"reveal")), wire.Ok)
    assert wire.PairingPush(from_device=laptop.device_id, payload=b"reveal") in alice_line.frames
    await kit.call(laptop, _offer(b"n" * 32))  # a new offer: whoever started must start again
    assert await kit.refused(laptop, _to(alice)) == "not_started"


async def test_pairing_stays_within_the_account(kit):
    alice = await kit.create("alice")
    bob = await kit.create("bob")
    kit.connect(bob)
    assert await kit.refused(alice, _to(bob)) == "unknown_device"


async def test_a_member_rejects_a_pending_device_not_a_listed_one(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    tablet = await kit.pending("alice")
    line = kit.connect(laptop)
    assert await kit.refused(tablet, wire.RejectDevice(rid=1, device_id=laptop.device_id)) == (
        "pending_device"
    )
    assert (
        await kit.refused(alice, wire.RejectDevice(rid=1, device_id=alice.device_id)) == "is_member"
    )
    assert isinstance(
        await kit.call(alice, wire.RejectDevice(rid=1, device_id=laptop.device_id)), wire.Ok
    )
    assert kit.store.device(laptop.device_id) is None
    await kit.eventually(lambda: line.closed == [4002])
    bob = await kit.create("bob")
    assert await kit.refused(alice, wire.RejectDevice(rid=1, device_id=bob.device_id)) == (
        "unknown_device"
    )


async def test_a_new_password_forgets_the_pending_devices(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    line = kit.connect(laptop)
    change = wire.ChangePassword(rid=1, password="a brand new password")
    assert await kit.refused(laptop, change) == "pending_device"
    assert isinstance(await kit.call(alice, change), wire.Ok)
    assert kit.store.device(laptop.device_id) is None
    await kit.eventually(lambda: line.closed == [4003])
    assert await kit.login_refused("alice") == "bad_credentials"
    await kit.pending("alice", "a brand new password")


async def test_republishing_the_current_list_changes_nothing(kit):
    alice = await kit.create("alice")
    account = kit.accounts["alice"]
    again = wire.PublishDeviceList(
        rid=4, signed_list=account.signed_list, epoch=kit.upload(kit.next_epoch("alice"))
    )
    assert isinstance(await kit.call(alice, again), wire.Ok)
    assert kit.store.latest_epoch("alice").seq == 1


async def test_a_list_that_skips_a_version_is_refused(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    account = kit.accounts["alice"]
    current = account.device_list
    skipping = msgspec.structs.replace(
        current,
        version=current.version + 2,
        prev_hash=list_hash(account.signed_list),
        devices=(*current.devices, laptop.entry()),
    )
    signed = sign_device_list(account.amk, alice.key, skipping)
    epoch = kit.make_epoch(account.amk, "alice", signed, skipping.devices, account.epoch)
    publish = wire.PublishDeviceList(rid=4, signed_list=signed, epoch=kit.upload(epoch))
    assert await kit.refused(alice, publish) == "bad_device_list"
    assert not laptop.session.is_member


async def test_a_list_giving_a_device_anothers_identity_key_is_refused(kit):
    alice = await kit.create("alice")
    bob = await kit.create("bob")
    laptop = await kit.pending("alice")
    borrowed = msgspec.structs.replace(laptop.entry(), identity_key=bob.key.public)
    signed, epoch = kit.next_list(alice, add=borrowed)
    publish = wire.PublishDeviceList(rid=4, signed_list=signed, epoch=kit.upload(epoch))
    assert await kit.refused(alice, publish) == "bad_device_list"


async def test_a_new_offer_lets_another_member_approve(kit):
    alice = await kit.create("alice")
    phone = await kit.pending("alice")
    await kit.approve(alice, phone)
    laptop = await kit.pending("alice")
    kit.connect(laptop)
    await kit.call(laptop, _offer())
    await kit.call(alice, _to(laptop))
    assert await kit.refused(phone, _to(laptop)) == "pairing_busy"
    await kit.call(laptop, _offer(b"n" * 32))
    assert isinstance(await kit.call(phone, _to(laptop)), wire.Ok)
