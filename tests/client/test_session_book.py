"""A device's sessions are found by (user, device), never by device id alone: a session started
with Bob's device is not used for an envelope the relay labels as another user's."""

from __future__ import annotations

import pytest

from client.core.sessions import SessionBook
from client.core.storage import ProfileStore
from shared.device_list import DeviceEntry
from shared.errors import DecryptionError
from shared.session import dump_x3dh_state, new_x3dh_state
from shared.wire import PreKeyBundle

ALICE, BOB = "a" * 16, "b" * 16


def device(device_id: str, identity_key: bytes) -> DeviceEntry:
    return DeviceEntry(
        device_id=device_id,
        name="Desktop",
        sign_public=bytes(32),
        identity_key=identity_key,
        storage_key=bytes(32),
        added_at=0,
    )


def book(store: ProfileStore, username: str, device_id: str, pre_keys: int = 2):  # type: ignore[no-untyped-def]
    x3dh = new_x3dh_state()
    x3dh.generate_pre_keys(pre_keys)
    store.put("x3dh_state", dump_x3dh_state(x3dh))
    return SessionBook(store, x3dh, (username, device_id)), x3dh


async def test_a_session_is_used_only_under_the_user_it_was_started_with(tmp_path):
    alice_store = ProfileStore(tmp_path / "alice")
    alice, alice_x3dh = book(alice_store, "alice", ALICE)
    bob, bob_x3dh = book(ProfileStore(tmp_path / "bob"), "bob", BOB)
    alice_device = device(ALICE, alice_x3dh.bundle.identity_key)
    bob_device = device(BOB, bob_x3dh.bundle.identity_key)
    keys = alice_x3dh.bundle
    bundle = PreKeyBundle(
        device_id=ALICE,
        identity_key=keys.identity_key,
        signed_pre_key=keys.signed_pre_key,
        signed_pre_key_sig=keys.signed_pre_key_sig,
        one_time_pre_key=sorted(keys.pre_keys)[0],
    )
    first = await bob.start("alice", alice_device, bundle, b"one")
    assert await alice.decrypt("bob", bob_device, first) == b"one"

    second = await bob.encrypt(("alice", ALICE), b"two")  # repeats the X3DH header
    assert second.x3dh is not None
    with pytest.raises(DecryptionError):
        await alice.decrypt("mallory", bob_device, second)
    assert not alice.has_session(("mallory", BOB))
    assert await alice.decrypt("bob", bob_device, second) == b"two"

    await bob.decrypt("alice", alice_device, await alice.encrypt(("bob", BOB), b"reply"))
    third = await bob.encrypt(("alice", ALICE), b"three")  # the session is answered: no header
    assert third.x3dh is None
    with pytest.raises(DecryptionError):
        await alice.decrypt("mallory", bob_device, third)
    alice_store.commit()
    reloaded = SessionBook(alice_store, alice_x3dh, ("alice", ALICE))  # from the store
    with pytest.raises(DecryptionError):
        await reloaded.decrypt("mallory", bob_device, third)
    assert await reloaded.decrypt("bob", bob_device, third) == b"three"
