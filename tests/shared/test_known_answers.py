"""Known-answer values: the safety number's exact digits and PADMÉ's exact sizes. A change to
either (an iteration count, a version byte, a digit chunk, a mask) changes what two people
compare or what the relay sees, so it must show up here, not pass unnoticed."""

from __future__ import annotations

import pytest

from shared import safety_number as safety_module
from shared.identity import SigningKey
from shared.padding import pad, padme_length, unpad
from shared.safety_number import format_groups, safety_number

# Account master keys from fixed seeds: Ed25519 public keys of 32 zero bytes and 32 one bytes.
ALICE_AMK = SigningKey(bytes(32)).public
BOB_AMK = SigningKey(bytes([1]) * 32).public


def test_account_keys_from_fixed_seeds_are_the_known_ed25519_keys():
    assert ALICE_AMK.hex() == "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
    assert BOB_AMK.hex() == "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"


def test_safety_number_of_fixed_account_keys_is_exactly_these_60_digits():
    number = "177569249367843950662558849493205170126167202761543076194027"
    assert safety_number("alice", ALICE_AMK, "bob", BOB_AMK) == number
    assert safety_number("bob", BOB_AMK, "alice", ALICE_AMK) == number
    assert format_groups(number)[:3] == ["17756", "92493", "67843"]
    # Each half belongs to one user: a different name or key changes exactly that half.
    assert safety_number("alice", ALICE_AMK, "bobby", BOB_AMK) != number
    assert safety_number("alice", BOB_AMK, "bob", ALICE_AMK) != number


def test_the_construction_is_signals_numeric_fingerprint(monkeypatch):
    """With Signal's version bytes (0) and libsignal's published test vector (33-byte identity
    keys, phone numbers as identifiers, 5200 iterations) the same code gives libsignal's 60
    digits: Ariadne's number differs from Signal's only in its version bytes and inputs."""
    alice = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
    bob = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
    monkeypatch.setattr(safety_module, "_VERSION", b"\x00\x00")
    assert (
        safety_number("+14152222222", alice, "+14153333333", bob)
        == "300354477692869396892869876765458257569162576843440918079131"
    )


# PADMÉ (Nikitin et al., PETS 2019): E = floor(log2 L), S = floor(log2 E) + 1, the low E - S
# bits are rounded up to zero. Worked by hand, e.g. L = 100: E = 6, S = 3, 3 low bits → 104;
# L = 1,000,000: E = 19, S = 5, 14 low bits → 62 · 16384 = 1,015,808.
PADME = {
    1: 1,
    2: 2,
    3: 3,
    7: 7,
    8: 8,
    9: 10,
    15: 16,
    16: 16,
    17: 18,
    100: 104,
    255: 256,
    256: 256,
    257: 272,
    1000: 1024,
    1025: 1088,
    1_000_000: 1_015_808,
}


@pytest.mark.parametrize(("length", "padded"), PADME.items())
def test_padme_sizes_are_the_known_values(length, padded):
    assert padme_length(length) == padded


def test_padding_is_a_0x80_marker_then_zeros_to_the_padme_size():
    padded = pad(b"x" * 99)  # 99 bytes + the marker = 100 → 104
    assert padded == b"x" * 99 + b"\x80" + bytes(4)
    assert pad(b"") == b"\x80"
    assert pad(b"abcdefg") == b"abcdefg\x80"  # 8 is its own PADMÉ size
    assert unpad(padded) == b"x" * 99 and unpad(b"ab\x00\x80\x00") == b"ab\x00"
