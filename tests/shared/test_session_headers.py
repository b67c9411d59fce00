"""Every byte of a sealed envelope is authenticated: the X3DH header through the key agreement, the
ratchet header through the AEAD's associated data, the ciphertext through its tag."""

from __future__ import annotations

import doubleratchet
import msgspec
import pytest

from shared.envelope import decode_sealed, encode_sealed
from shared.errors import DecryptionError, ProtocolError, WireError
from shared.session import _DoubleRatchet, accept_session, session_binding
from tests.shared.test_session import ALICE, BOB, start

BINDING = session_binding(ALICE, BOB)


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_every_ratchet_header_field_is_in_the_associated_data():
    def header(pub: bytes = bytes(range(32)), pn: int = 3, n: int = 5) -> doubleratchet.Header:
        return doubleratchet.Header(
            ratchet_pub=pub, previous_sending_chain_length=pn, sending_chain_length=n
        )

    base = _DoubleRatchet._build_associated_data(b"session", header())
    changed = [header(pub=bytes(range(1, 33))), header(pn=4), header(n=6)]
    built = {_DoubleRatchet._build_associated_data(b"session", h) for h in changed}
    assert len(built) == 3 and base not in built


async def test_a_changed_previous_chain_length_does_not_decrypt():
    """``previous_chain_length`` picks no key within a chain: only the associated data notices."""
    _, bob, alice_session, first, _ = await start()
    bob_session, _ = await accept_session(bob, first, BINDING)
    second = await alice_session.encrypt(b"second")
    for pn in (second.previous_chain_length + 1, 2**31):
        with pytest.raises(DecryptionError):
            await bob_session.decrypt(msgspec.structs.replace(second, previous_chain_length=pn))
    assert await bob_session.decrypt(second) == b"second"


async def test_no_single_bit_flip_anywhere_in_an_envelope_decrypts():
    """Every bit of a session start (X3DH header included) and of a later message."""
    _, bob, alice_session, first, _ = await start()
    encoded = encode_sealed(first)
    for bit in range(len(encoded) * 8):
        try:
            sealed = decode_sealed(flipped(encoded, bit))
        except WireError:
            continue
        with pytest.raises(ProtocolError):
            await accept_session(bob, sealed, BINDING)
    bob_session, plaintext = await accept_session(bob, first, BINDING)
    assert plaintext == b"first"

    later = await alice_session.encrypt(b"later")
    encoded = encode_sealed(later)
    for bit in range(len(encoded) * 8):
        try:
            sealed = decode_sealed(flipped(encoded, bit))
        except WireError:
            continue
        with pytest.raises(DecryptionError):
            await bob_session.decrypt(sealed)
    assert await bob_session.decrypt(later) == b"later"
