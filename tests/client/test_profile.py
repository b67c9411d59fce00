"""The typed profile and the device-role state machine."""

from __future__ import annotations

import itertools

import pytest

from client.core.profile import (
    TRANSITIONS,
    DeviceRole,
    Profile,
    ProfileState,
    Registration,
    RoleError,
    next_role,
    write_new_profile,
)
from client.core.storage import ProfileStore
from shared.boxes import StorageKey
from shared.identity import SigningKey, device_id_for

PENDING, MEMBER, FULL, REMOVED = DeviceRole


@pytest.fixture
def store(tmp_path):
    store = ProfileStore(tmp_path, encrypt=False)
    sign_key = SigningKey.generate()
    identity = Profile(
        username="alice",
        device_id=device_id_for(sign_key.public),
        device_name="Desktop",
        relay_url="ws://relay",
        sign_key=sign_key,
        storage_key=StorageKey.generate(),
    )
    write_new_profile(store, identity, "{}", Registration.ADD, None)
    yield store
    store.close()


def test_the_allowed_transitions_are_exactly_the_lifecycle():
    lifecycle = {
        (PENDING, MEMBER),
        (PENDING, FULL),
        (MEMBER, FULL),
        (MEMBER, REMOVED),
        (FULL, REMOVED),
    }
    assert lifecycle == TRANSITIONS


@pytest.mark.parametrize("start,end", list(itertools.permutations(DeviceRole, 2)))
def test_a_role_moves_only_along_the_transitions(store, start, end):
    store.put("role", start.value)
    state = ProfileState(store)
    if (start, end) in TRANSITIONS:
        assert state.move_to(end) and state.role is end
    else:
        with pytest.raises(RoleError):
            state.move_to(end)
        assert state.role is start


@pytest.mark.parametrize(
    "current,listed,holds_key,expected",
    [
        (PENDING, False, False, PENDING),  # not approved yet
        (PENDING, False, True, PENDING),  # a restore before its list is published
        (PENDING, True, False, MEMBER),  # approved, grant not opened yet
        (PENDING, True, True, FULL),  # the first device's first list; a restore's
        (MEMBER, True, False, MEMBER),
        (MEMBER, True, True, FULL),
        (FULL, True, True, FULL),
        (MEMBER, False, False, REMOVED),
        (FULL, False, True, REMOVED),
        (REMOVED, True, True, REMOVED),  # a removed device never comes back
    ],
)
def test_the_role_a_device_list_gives(current, listed, holds_key, expected):
    assert next_role(current, listed, holds_key) is expected
    assert expected is current or (current, expected) in TRANSITIONS


def test_the_profile_reads_back_typed(store):
    profile = Profile.read(store)
    state = ProfileState(store)
    assert profile.username == "alice" and profile.device_id == device_id_for(
        profile.sign_key.public
    )
    assert state.role is PENDING and state.registration is Registration.ADD
    assert state.account_key is None and state.thread_key is None
    assert [state.next_send_counter() for _ in range(3)] == [1, 2, 3]
    key = SigningKey.generate()
    state.set_account_key(key)
    assert state.account_key.public == key.public == state.pinned_account_public
    state.add_approver("b" * 16)
    state.add_approver("a" * 16)
    assert state.approvers == {"a" * 16, "b" * 16}
    state.forget_approvers()
    assert state.approvers is None


@pytest.mark.parametrize(
    "flags,holds_key,expected",
    [
        ({}, False, PENDING),
        ({"was_member": 1}, False, MEMBER),
        ({"was_member": 1}, True, FULL),
        ({"was_member": 1, "removed": 1}, True, REMOVED),
    ],
)
def test_a_profile_from_before_roles_takes_its_role_from_its_flags(
    store, flags, holds_key, expected
):
    store.put("role", None)
    for key, value in flags.items():
        store.put(key, value)
    if holds_key:
        ProfileState(store).set_account_key(SigningKey.generate())
    assert ProfileState(store).role is expected
