from __future__ import annotations

import msgspec
import pytest

from shared.device_list import (
    DeviceEntry,
    DeviceList,
    SignedDeviceList,
    check_successor,
    first_device_list,
    next_device_list,
    open_device_list,
    sign_device_list,
)
from shared.errors import VerificationError, WireError
from shared.identity import SigningKey, device_id_for

KEYS: dict[str, SigningKey] = {}


def entry(name: str) -> DeviceEntry:
    key = KEYS[name] = SigningKey.generate()
    return DeviceEntry(
        device_id=device_id_for(key.public),
        name=name,
        sign_public=key.public,
        identity_key=bytes(32),
        storage_key=bytes(32),
        added_at=1,
    )


def test_chain_of_lists_verifies_and_goes_forward_only():
    amk = SigningKey.generate()
    v1 = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    list1 = open_device_list(v1, "alice", amk.public)
    v2 = next_device_list(amk, KEYS["desktop"], list1, v1, add=entry("laptop"))
    list2 = open_device_list(v2, "alice", amk.public)
    assert check_successor(list1, v1, list2, v2) is True
    assert check_successor(list2, v2, list2, v2) is False
    with pytest.raises(VerificationError, match="rolled back"):
        check_successor(list2, v2, list1, v1)
    fork = next_device_list(amk, KEYS["desktop"], list1, v1, add=entry("phone"))
    with pytest.raises(VerificationError, match="same version"):
        check_successor(list2, v2, open_device_list(fork, "alice", amk.public), fork)


def test_list_not_chained_to_its_predecessor_is_refused():
    amk = SigningKey.generate()
    v1 = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    other = first_device_list(amk, "alice", entry("other"), KEYS["other"])
    list1 = open_device_list(v1, "alice", amk.public)
    unchained = next_device_list(
        amk, KEYS["desktop"], open_device_list(other, "alice", amk.public), other
    )
    with pytest.raises(VerificationError, match="chain"):
        check_successor(list1, v1, open_device_list(unchained, "alice", amk.public), unchained)


def test_every_flipped_bit_of_a_signed_list_is_refused():
    amk = SigningKey.generate()
    signed = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    for bit in range(len(signed) * 8):
        tampered = bytearray(signed)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((VerificationError, WireError)):
            open_device_list(bytes(tampered), "alice", amk.public)


def test_wrong_user_wrong_key_and_mismatched_device_id_are_refused():
    amk = SigningKey.generate()
    signed = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    with pytest.raises(VerificationError, match="another user"):
        open_device_list(signed, "bob", amk.public)
    with pytest.raises(VerificationError, match="different account key"):
        open_device_list(signed, "alice", SigningKey.generate().public)
    bad = msgspec.structs.replace(entry("x"), device_id="0" * 16)
    forged = first_device_list(amk, "alice", bad, KEYS["x"])
    with pytest.raises(VerificationError, match="signing key"):
        open_device_list(forged, "alice", amk.public)
    outer = msgspec.msgpack.decode(signed, type=SignedDeviceList)
    assert outer.signature  # the format is what the relay stores


def test_a_change_is_valid_only_from_an_author_on_the_list_it_replaces():
    amk = SigningKey.generate()
    v1 = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    list1 = open_device_list(v1, "alice", amk.public)
    v2 = next_device_list(amk, KEYS["desktop"], list1, v1, add=entry("laptop"))
    list2 = open_device_list(v2, "alice", amk.public)
    assert list2.author == list1.devices[0].device_id
    # The laptop is removed; with the account key it kept, it signs itself back on.
    v3 = next_device_list(amk, KEYS["desktop"], list2, v2, remove=list2.devices[1].device_id)
    list3 = open_device_list(v3, "alice", amk.public)
    comeback = next_device_list(amk, KEYS["laptop"], list3, v3, add=list2.devices[1])
    with pytest.raises(VerificationError, match="not on the list it replaces"):
        check_successor(list3, v3, open_device_list(comeback, "alice", amk.public), comeback)
    # Naming the desktop as its author, it cannot make the desktop's signature.
    body = msgspec.structs.replace(
        open_device_list(comeback, "alice", amk.public), author=list1.devices[0].device_id
    )
    posing = sign_device_list(amk, KEYS["laptop"], body)
    with pytest.raises(VerificationError, match="author's signature"):
        check_successor(list3, v3, body, posing)
    # A first list is made by its only device.
    lonely = first_device_list(amk, "alice", entry("other"), KEYS["desktop"])
    with pytest.raises(VerificationError, match="author's signature"):
        open_device_list(lonely, "alice", amk.public)


def test_the_recovery_code_named_by_a_list_may_author_the_next_one():
    amk, code = SigningKey.generate(), SigningKey.generate()
    v1 = first_device_list(amk, "alice", entry("desktop"), KEYS["desktop"])
    list1 = open_device_list(v1, "alice", amk.public)
    v2 = next_device_list(amk, KEYS["desktop"], list1, v1, recovery_key=code.public)
    list2 = open_device_list(v2, "alice", amk.public)
    restored = next_device_list(amk, code, list2, v2, add=entry("restored"))
    assert check_successor(list2, v2, open_device_list(restored, "alice", amk.public), restored)
    # Before the list named the code, the code was nobody.
    early = next_device_list(amk, code, list1, v1, add=entry("early"))
    with pytest.raises(VerificationError, match="not on the list it replaces"):
        check_successor(list1, v1, open_device_list(early, "alice", amk.public), early)


def test_a_first_list_names_one_device_its_author_and_a_code_signs_only_as_itself():
    amk, code = SigningKey.generate(), SigningKey.generate()
    desktop, laptop = entry("desktop"), entry("laptop")
    two = DeviceList(
        username="alice",
        version=1,
        prev_hash=b"",
        amk_public=amk.public,
        devices=(desktop, laptop),
        author=desktop.device_id,
    )
    with pytest.raises(VerificationError, match="only device"):
        open_device_list(sign_device_list(amk, KEYS["desktop"], two), "alice", amk.public)
    # A list the code signed names the code as its author, not a device it makes up.
    v1 = first_device_list(amk, "alice", desktop, KEYS["desktop"])
    v2 = next_device_list(
        amk,
        KEYS["desktop"],
        open_device_list(v1, "alice", amk.public),
        v1,
        recovery_key=code.public,
    )
    list2 = open_device_list(v2, "alice", amk.public)
    restored = entry("restored")
    body = open_device_list(next_device_list(amk, code, list2, v2, add=restored), "alice", None)
    posing = sign_device_list(amk, code, msgspec.structs.replace(body, author=restored.device_id))
    with pytest.raises(VerificationError, match="not on the list it replaces"):
        check_successor(list2, v2, open_device_list(posing, "alice", amk.public), posing)
