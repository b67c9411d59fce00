"""Mailbox items, version 2 (one key per epoch and thread): each item still opens only in its
own place, the version byte cannot be changed or stripped, and version 1 items sealed before
still open."""

from __future__ import annotations

import hmac
import os

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.boxes import expand
from shared.device_list import Username
from shared.errors import DecryptionError
from shared.mailbox import (
    ITEM_V2,
    SavedMessage,
    ThreadBox,
    ThreadName,
    _ad_v1,
    _NameCheck,
    epoch_mailbox_key,
    item_ad,
    open_message,
    seal_message,
    thread_key,
)
from shared.padding import pad

KEY = epoch_mailbox_key(bytes(range(32)), "alice", 2)
THREAD, OTHER_THREAD = b"t" * 16, b"u" * 16
ONE, TWO = b"m" * 16, b"n" * 16


def _saved(body: str) -> SavedMessage:
    return SavedMessage("bob", "alice", "0" * 16, 1, 2, body)


def _seal_v1(message_id: bytes, saved: SavedMessage, nonce: bytes | None = None) -> bytes:
    """An item as devices sealed it before version 2: a key per message, no version byte."""
    key = expand(KEY, THREAD + message_id)
    nonce = nonce or os.urandom(12)
    ad = _ad_v1("alice", THREAD, message_id, 2)
    return nonce + AESGCM(key).encrypt(nonce, pad(msgspec.msgpack.encode(saved)), ad)


def test_the_thread_key_is_one_hkdf_expand_of_the_epochs_mailbox_key():
    expected = hmac.digest(KEY, b"ariadne/mailbox-thread/v2\x00" + THREAD + b"\x01", "sha256")
    assert thread_key(KEY, THREAD) == expected
    assert thread_key(KEY, OTHER_THREAD) != expected


def test_a_version_2_item_opens_only_in_its_place():
    sealed = seal_message(KEY, "alice", THREAD, ONE, 2, _saved("hello"))
    assert sealed[:1] == ITEM_V2
    assert open_message(KEY, "alice", THREAD, ONE, 2, sealed).body == "hello"
    for place in [
        ("alice", OTHER_THREAD, ONE, 2),
        ("alice", THREAD, TWO, 2),
        ("alice", THREAD, ONE, 3),
        ("mallory", THREAD, ONE, 2),
    ]:
        with pytest.raises(DecryptionError):
            open_message(KEY, *place, sealed)
    # The same epoch number under another epoch's key (another root) does not open either.
    other_root = epoch_mailbox_key(bytes(32), "alice", 2)
    with pytest.raises(DecryptionError):
        open_message(other_root, "alice", THREAD, ONE, 2, sealed)


def test_two_items_of_one_thread_share_a_key_yet_cannot_trade_places():
    box = ThreadBox(KEY, "alice", THREAD, 2)
    one, two = box.seal(ONE, _saved("first")), box.seal(TWO, _saved("second"))
    assert box.open(ONE, one).body == "first" and box.open(TWO, two).body == "second"
    with pytest.raises(DecryptionError):
        box.open(ONE, two)
    with pytest.raises(DecryptionError):
        box.open(TWO, one)


def test_every_seal_takes_a_fresh_random_nonce():
    box = ThreadBox(KEY, "alice", THREAD, 2)
    nonces = {box.seal(ONE, _saved("same"))[1:13] for _ in range(200)}
    assert len(nonces) == 200


def test_the_version_byte_cannot_be_stripped_or_changed():
    sealed = seal_message(KEY, "alice", THREAD, ONE, 2, _saved("hello"))
    for forged in (sealed[1:], b"\x01" + sealed[1:], b"\x03" + sealed[1:], ITEM_V2 + sealed):
        with pytest.raises(DecryptionError):
            open_message(KEY, "alice", THREAD, ONE, 2, forged)


def test_version_1_items_still_open_in_their_place_only():
    old = _seal_v1(ONE, _saved("from before"))
    assert open_message(KEY, "alice", THREAD, ONE, 2, old).body == "from before"
    # One in 256 old items begins with the version 2 byte by chance: it opens all the same.
    lookalike = _seal_v1(ONE, _saved("nonce starts 0x02"), nonce=ITEM_V2 + os.urandom(11))
    assert open_message(KEY, "alice", THREAD, ONE, 2, lookalike).body == "nonce starts 0x02"
    for place in [("alice", THREAD, TWO, 2), ("alice", OTHER_THREAD, ONE, 2)]:
        with pytest.raises(DecryptionError):
            open_message(KEY, *place, old)
    # Dressed up as version 2, an old item opens under neither version.
    with pytest.raises(DecryptionError):
        open_message(KEY, "alice", THREAD, ONE, 2, ITEM_V2 + old)


def test_a_malformed_item_is_refused_not_raised():
    for sealed in (b"", ITEM_V2, ITEM_V2 + bytes(27), bytes(28)):
        with pytest.raises(DecryptionError):
            open_message(KEY, "alice", THREAD, ONE, 2, sealed)


def _seal_record(fields: list[object]) -> bytes:
    """A version 2 item in its right place whose record holds whatever ``fields`` say: what a
    device holding the epoch's root (one removed since, say) could seal."""
    nonce = os.urandom(12)
    record = pad(msgspec.msgpack.encode(fields))
    ad = item_ad("alice", THREAD, ONE, 2)
    return ITEM_V2 + nonce + AESGCM(thread_key(KEY, THREAD)).encrypt(nonce, record, ad)


NAMES = ["bob", "a.b_c-9", "Bob", "bob smith", "", "x" * 32, "x" * 33, "#" + "0a" * 16]
NAMES += ["#" + "0A" * 16, "#" + "0a" * 15, "bob\n", "élise"]


@pytest.mark.parametrize("name", NAMES)
def test_a_record_names_a_valid_thread_and_sender_or_does_not_open(name):
    """The record's names are checked exactly as ThreadName and Username say, however often
    a name comes back (checked names are remembered)."""
    box = ThreadBox(KEY, "alice", THREAD, 2)
    for _ in range(2):
        for fields, kind in (
            ([name, "alice", "0" * 16, 1, 2, "hi"], ThreadName),
            (["bob", name, "0" * 16, 1, 2, "hi"], Username),
        ):
            try:
                msgspec.convert(name, kind)
            except msgspec.ValidationError:
                with pytest.raises(DecryptionError):
                    box.open(ONE, _seal_record(fields))
            else:
                assert box.open(ONE, _seal_record(fields)).body == "hi"


def test_checked_names_are_remembered_up_to_a_bound():
    """Names are matched once each, and no more of them are kept than the bound."""
    check = _NameCheck(Username, remember=3)
    names = [f"user{i}" for i in range(5)]
    assert all(check(name) for name in names) and all(check(name) for name in names)
    assert check.matched == set(names[:3])
    assert not check("Not A Name") and "Not A Name" not in check.matched
