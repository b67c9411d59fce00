"""A device id, its signing key and its identity key belong to one account only: the relay refuses
a registration, a key upload or a device list that would give another account's device (or its
keys) to a second account."""

from __future__ import annotations

import os
import time

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect

from client.core.link import RelayError
from shared import wire
from shared.auth import sign_login
from shared.device_list import DeviceEntry, next_device_list
from shared.identity import SigningKey, device_id_for
from tests.conftest import eventually

PASSWORD = "a long enough password"


def registration(key: SigningKey) -> wire.DeviceRegistration:
    return wire.DeviceRegistration(
        device_id=device_id_for(key.public),
        name="Desktop",
        sign_public=key.public,
        storage_key=os.urandom(32),
    )


async def log_in(ws: ClientConnection, username: str, key: SigningKey, create: bool) -> wire.Frame:
    """Create an account (or add a device to one) with ``key`` as the device; the relay's answer."""
    challenge = wire.decode_relay_frame(await ws.recv())
    assert isinstance(challenge, wire.Challenge)
    device = registration(key)
    signature = sign_login(key, challenge.nonce, username, device.device_id)
    if create:
        frame: wire.Frame = wire.CreateAccount(
            rid=1,
            username=username,
            password=PASSWORD,
            device=device,
            amk_public=SigningKey.generate().public,
            signature=signature,
        )
    else:
        frame = wire.AddDevice(
            rid=1, username=username, password=PASSWORD, device=device, signature=signature
        )
    await ws.send(wire.encode(frame))
    return wire.decode_relay_frame(await ws.recv())


async def publish_keys(ws: ClientConnection, identity_key: bytes) -> wire.Frame:
    await ws.send(
        wire.encode(
            wire.PublishKeys(
                rid=2,
                identity_key=identity_key,
                signed_pre_key=os.urandom(32),
                signed_pre_key_sig=bytes(64),
                one_time_pre_keys=[os.urandom(32)],
            )
        )
    )
    return wire.decode_relay_frame(await ws.recv())


async def test_a_device_registered_to_one_account_cannot_create_another(relay):
    key = SigningKey.generate()
    async with connect(relay.url) as ws:
        assert isinstance(await log_in(ws, "carol", key, create=True), wire.Welcome)
    async with connect(relay.url) as ws:
        answer = await log_in(ws, "mallory", key, create=True)
    assert isinstance(answer, wire.Error) and answer.code == "device_taken"
    assert relay.relay.store.password_hash("mallory") is None  # no account left half-made
    assert relay.relay.store.device(device_id_for(key.public)).username == "carol"


async def test_a_device_registered_to_one_account_cannot_join_another(relay):
    shared_key = SigningKey.generate()
    async with connect(relay.url) as ws:
        assert isinstance(await log_in(ws, "carol", shared_key, create=True), wire.Welcome)
    async with connect(relay.url) as ws:
        assert isinstance(await log_in(ws, "mallory", SigningKey.generate(), True), wire.Welcome)
    async with connect(relay.url) as ws:
        answer = await log_in(ws, "mallory", shared_key, create=False)
    assert isinstance(answer, wire.Error) and answer.code == "device_taken"
    assert relay.relay.store.device(device_id_for(shared_key.public)).username == "carol"


async def test_an_identity_key_published_by_one_device_cannot_be_published_by_another(relay):
    identity_key = os.urandom(32)
    async with connect(relay.url) as ws:
        assert isinstance(await log_in(ws, "carol", SigningKey.generate(), True), wire.Welcome)
        assert isinstance(await publish_keys(ws, identity_key), wire.Ok)
        assert isinstance(await publish_keys(ws, identity_key), wire.Ok)  # its own: a top-up
    async with connect(relay.url) as ws:
        assert isinstance(await log_in(ws, "mallory", SigningKey.generate(), True), wire.Welcome)
        answer = await publish_keys(ws, identity_key)
    assert isinstance(answer, wire.Error) and answer.code == "identity_key_taken"
    assert relay.relay.store.identity_key_owners(identity_key) == {
        d.device_id for d in relay.relay.store.devices_of("carol")
    }


async def test_a_member_cannot_list_another_accounts_device(accounts):
    bob = await accounts.create("bob")
    mallory = await accounts.create("mallory")
    bobs = await mallory.directory.get("bob")
    own = mallory.directory.known("mallory")
    claimed = bobs.entry(bob.device_id)  # Bob's device, with an identity key of its own
    claimed = msgspec.structs.replace(claimed, identity_key=bytes(31) + b"\x01")
    signed = next_device_list(
        mallory.account.key,
        mallory.profile.sign_key,
        own,
        mallory.directory.signed("mallory"),
        add=claimed,
    )
    with pytest.raises(RelayError) as refused:
        await mallory.account_devices.publish_device_list(signed)
    assert refused.value.code == "bad_device_list"
    assert bob.device_id not in accounts.relay.relay.members("mallory")


async def test_a_member_cannot_list_its_own_device_with_another_devices_identity_key(accounts):
    bob = await accounts.create("bob")
    mallory = await accounts.create("mallory")
    pending = await accounts.pending("mallory")
    relay = accounts.relay.relay
    await eventually(
        lambda: relay.store.device(pending.device_id).identity_key is not None,
        message="the pending device published its keys",
    )
    bobs = await mallory.directory.get("bob")
    own = mallory.directory.known("mallory")
    entry = DeviceEntry(
        device_id=pending.device_id,
        name="New laptop",
        sign_public=pending.profile.sign_key.public,
        identity_key=bobs.entry(bob.device_id).identity_key,
        storage_key=pending.profile.storage_key.public,
        added_at=int(time.time()),
    )
    signed = next_device_list(
        mallory.account.key,
        mallory.profile.sign_key,
        own,
        mallory.directory.signed("mallory"),
        add=entry,
    )
    with pytest.raises(RelayError) as refused:
        await mallory.account_devices.publish_device_list(signed)
    assert refused.value.code == "bad_device_list"
    assert pending.device_id not in relay.members("mallory")
