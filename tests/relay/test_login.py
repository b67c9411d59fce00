"""Login against a real store, without websockets: the three ways in, each refusal's code, the
password throttle and the pending-device cap."""

from __future__ import annotations

import os

import pytest

from relay import login
from relay.limits import Limits
from relay.login import log_in
from relay.session import Reject
from shared import wire
from shared.auth import sign_login
from shared.identity import SigningKey, device_id_for
from tests.conftest import PASSWORD


async def _refused(kit, frame, nonce: bytes, source: str = "127.0.0.1") -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(Reject) as rejection:
        await log_in(kit.relay, frame, nonce, source)
    return rejection.value.code


def _resume(username: str, key: SigningKey, nonce: bytes, signed_nonce: bytes | None = None):  # type: ignore[no-untyped-def]
    device_id = device_id_for(key.public)
    return wire.Resume(
        rid=1,
        username=username,
        device_id=device_id,
        signature=sign_login(key, signed_nonce or nonce, username, device_id),
    )


async def test_a_device_resumes_by_signing_this_challenge(kit):
    alice = await kit.create("alice")
    nonce = os.urandom(32)
    assert await log_in(kit.relay, _resume("alice", alice.key, nonce), nonce, "x") == (
        "alice",
        alice.device_id,
    )
    replayed = _resume("alice", alice.key, nonce, signed_nonce=os.urandom(32))
    assert await _refused(kit, replayed, nonce) == "bad_signature"
    assert await _refused(kit, _resume("bob", alice.key, nonce), nonce) == "unknown_device"
    stranger = _resume("alice", SigningKey.generate(), nonce)
    assert await _refused(kit, stranger, nonce) == "unknown_device"


async def test_a_taken_username_or_device_and_a_wrong_device_id_are_refused(kit):
    alice = await kit.create("alice")
    with pytest.raises(Reject, match="username_taken"):
        await kit.create("alice")
    nonce = os.urandom(32)
    registration = wire.DeviceRegistration(
        device_id=alice.device_id, name="x", sign_public=alice.key.public, storage_key=bytes(32)
    )
    again = wire.CreateAccount(
        rid=1,
        username="other",
        password="whatever it is",
        device=registration,
        amk_public=bytes(32),
        signature=sign_login(alice.key, nonce, "other", alice.device_id),
    )
    assert await _refused(kit, again, nonce) == "device_taken"
    mislabelled = wire.CreateAccount(
        rid=1,
        username="other",
        password="whatever it is",
        device=wire.DeviceRegistration(
            device_id=device_id_for(SigningKey.generate().public),
            name="x",
            sign_public=alice.key.public,
            storage_key=bytes(32),
        ),
        amk_public=bytes(32),
        signature=bytes(64),
    )
    assert await _refused(kit, mislabelled, nonce) == "bad_device_id"
    assert kit.store.password_hash("other") is None


async def test_only_a_login_frame_logs_in(kit):
    assert await _refused(kit, wire.ListDevices(rid=1), os.urandom(32)) == "login_required"


@pytest.mark.parametrize(
    "limits", [Limits(free_login_failures_per_account=2, login_wait_first=60.0)]
)
async def test_wrong_passwords_are_throttled_per_account(kit):
    await kit.create("alice")
    assert await kit.login_refused("alice", "wrong one") == "bad_credentials"
    assert await kit.login_refused("alice", "wrong two") == "bad_credentials"
    assert await kit.login_refused("alice", "wrong three") == "bad_credentials"
    assert await kit.login_refused("alice") == "login_throttled"  # even the right one, for now
    assert await kit.login_refused("nobody") == "bad_credentials"  # another account's count


@pytest.mark.parametrize("limits", [Limits(pending_devices=2)])
async def test_an_account_holds_few_pending_devices(kit):
    alice = await kit.create("alice")
    first = await kit.pending("alice")
    await kit.pending("alice")
    assert await kit.login_refused("alice") == "too_many_pending"
    await kit.call(alice, wire.RejectDevice(rid=1, device_id=first.device_id))
    await kit.pending("alice")


async def test_a_pending_device_logs_in_again_with_the_password_and_the_account_is_told(kit):
    alice = await kit.create("alice")
    line = kit.connect(alice)
    laptop = await kit.pending("alice")
    assert wire.Notice(kind="device_list_changed", username="alice") in line.frames
    nonce = os.urandom(32)
    again = wire.AddDevice(
        rid=1,
        username="alice",
        password=PASSWORD,
        device=wire.DeviceRegistration(
            device_id=laptop.device_id,
            name="x",
            sign_public=laptop.key.public,
            storage_key=bytes(32),
        ),
        signature=sign_login(laptop.key, nonce, "alice", laptop.device_id),
    )
    assert await log_in(kit.relay, again, nonce, "x") == ("alice", laptop.device_id)
    assert len(kit.store.devices_of("alice")) == 2


async def test_a_new_device_must_sign_this_challenge(kit):
    nonce = os.urandom(32)
    key = SigningKey.generate()
    device_id = device_id_for(key.public)
    stale = wire.CreateAccount(
        rid=1,
        username="alice",
        password="whatever it is",
        device=wire.DeviceRegistration(
            device_id=device_id, name="x", sign_public=key.public, storage_key=bytes(32)
        ),
        amk_public=bytes(32),
        signature=sign_login(key, os.urandom(32), "alice", device_id),
    )
    assert await _refused(kit, stale, nonce) == "bad_signature"
    assert kit.store.device(device_id) is None


async def test_a_device_of_one_account_cannot_join_another(kit):
    alice = await kit.create("alice")
    await kit.create("bob")
    nonce = os.urandom(32)
    join = wire.AddDevice(
        rid=1,
        username="bob",
        password=PASSWORD,
        device=wire.DeviceRegistration(
            device_id=alice.device_id, name="x", sign_public=alice.key.public, storage_key=bytes(32)
        ),
        signature=sign_login(alice.key, nonce, "bob", alice.device_id),
    )
    assert await _refused(kit, join, nonce) == "device_taken"
    assert kit.store.device(alice.device_id).username == "alice"


async def test_a_password_changed_while_checked_refuses_the_login(kit, monkeypatch):
    await kit.create("alice")
    check = login.check_password

    def changed_meanwhile(password: str, stored: str) -> bool:
        ok = check(password, stored)
        kit.store.set_password_hash("alice", login.hash_password("a brand new one"))
        return ok

    monkeypatch.setattr(login, "check_password", changed_meanwhile)
    assert await kit.login_refused("alice") == "bad_credentials"
    assert len(kit.store.devices_of("alice")) == 1
