from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from shared.auth import sign_login, verify_login
from shared.boxes import expand
from shared.envelope import (
    Origin,
    Receipt,
    Text,
    decode_payload,
    encode_payload,
    new_message_id,
)
from shared.errors import WireError
from shared.identity import SigningKey
from shared.padding import pad, padme_length, unpad
from shared.password import check_password, hash_password
from shared.safety_number import format_groups, safety_number


@given(st.binary(max_size=5000))
def test_padding_round_trips_and_leaks_little(data):
    padded = pad(data)
    assert unpad(padded) == data
    assert len(padded) == padme_length(len(data) + 1)
    assert len(padded) <= (len(data) + 1) * 1.12 + 1


def test_padme_sizes_collapse_lengths():
    assert len({padme_length(n) for n in range(1000, 1100)}) < 10


def test_unpad_rejects_garbage():
    with pytest.raises(WireError):
        unpad(b"\x00\x00")


def test_message_ids_are_time_ordered_and_unique():
    ids = [new_message_id(now_ms=1_700_000_000_000 + i) for i in range(100)]
    assert ids == sorted(ids) and len(set(ids)) == 100
    fixed = new_message_id(now_ms=1, entropy=bytes(10))
    assert fixed.hex() == "000000000001" + "70008000000000000000"


def test_payloads_round_trip_and_reject_unknown_kinds():
    origin = Origin(user="alice", device="a" * 16, counter=1)
    text = Text(origin=origin, message_id=new_message_id(), peer="bob", sent_at=1, body="hé")
    assert decode_payload(encode_payload(text)) == text
    receipt = Receipt(origin=origin, status="read", message_ids=[text.message_id])
    assert decode_payload(encode_payload(receipt)) == receipt
    with pytest.raises(WireError):
        decode_payload(pad(b"\x81\xa4kind\xa4nope"))


def test_login_signature_is_bound_to_nonce_user_and_device():
    key = SigningKey.generate()
    signature = sign_login(key, b"n" * 32, "alice", "a" * 16)
    assert verify_login(key.public, signature, b"n" * 32, "alice", "a" * 16)
    assert not verify_login(key.public, signature, b"m" * 32, "alice", "a" * 16)
    assert not verify_login(key.public, signature, b"n" * 32, "bob", "a" * 16)
    assert not verify_login(key.public, signature, b"n" * 32, "alice", "b" * 16)


def test_safety_number_is_symmetric_and_depends_only_on_account_keys():
    a, b = SigningKey.generate().public, SigningKey.generate().public
    number = safety_number("alice", a, "bob", b)
    assert number == safety_number("bob", b, "alice", a)
    assert len(number) == 60 and number.isdigit()
    assert len(format_groups(number)) == 12
    assert number != safety_number("alice", SigningKey.generate().public, "bob", b)


def test_passwords_hash_with_a_fresh_salt():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("$argon2id$")
    assert check_password("correct horse", first)
    assert not check_password("wrong horse", first)
    assert not check_password("correct horse", "not a hash")


def test_expand_is_hkdf_expand_rfc5869():
    """The per-message key is HKDF-SHA-256-Expand to 32 bytes: RFC 5869 test case 1 (the first
    32 bytes of its OKM) and the library's HKDFExpand on varied keys and infos."""
    prk = bytes.fromhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
    assert expand(prk, bytes(range(0xF0, 0xFA))).hex() == okm


@given(st.binary(min_size=32, max_size=64), st.binary(max_size=100))
def test_expand_matches_the_library(prk, info):
    assert expand(prk, info) == HKDFExpand(hashes.SHA256(), 32, info).derive(prk)
