"""X3DH + Double Ratchet as configured in shared.session, without any network."""

from __future__ import annotations

import msgspec
import pytest

from shared.envelope import decode_sealed, encode_sealed
from shared.errors import DecryptionError, DuplicateMessage
from shared.session import (
    Session,
    accept_session,
    dump_x3dh_state,
    initiate_session,
    load_x3dh_state,
    new_x3dh_state,
    session_binding,
)

ALICE, BOB = ("alice", "a" * 16), ("bob", "b" * 16)


async def start(bob_state=None):
    alice = new_x3dh_state()
    bob = bob_state or new_x3dh_state()
    bob.generate_pre_keys(3)
    bundle = bob.bundle
    one_time = sorted(bundle.pre_keys)[0]
    session, sealed = await initiate_session(
        alice,
        bundle.identity_key,
        bundle.signed_pre_key,
        bundle.signed_pre_key_sig,
        one_time,
        session_binding(ALICE, BOB),
        b"first",
    )
    return alice, bob, session, sealed, one_time


async def test_session_start_reply_and_restore_from_storage():
    _, bob, alice_session, sealed, one_time = await start()
    bob_session, plaintext = await accept_session(bob, sealed, session_binding(ALICE, BOB))
    assert plaintext == b"first"
    assert sealed.x3dh is not None and sealed.x3dh.one_time_pre_key == one_time
    reply = await bob_session.encrypt(b"reply")
    assert reply.x3dh is None
    assert await alice_session.decrypt(reply) == b"reply"
    assert alice_session.pending_header is None  # the peer answered: stop resending X3DH

    restored = Session.load(alice_session.dump())
    assert await bob_session.decrypt(await restored.encrypt(b"after restore")) == b"after restore"


async def test_messages_before_the_reply_all_carry_the_x3dh_header():
    _, _, alice_session, first, _ = await start()
    second = await alice_session.encrypt(b"second")
    assert second.x3dh == first.x3dh


async def test_tampered_ciphertext_fails_and_leaves_state_usable():
    _, bob, alice_session, sealed, _ = await start()
    bob_session, _ = await accept_session(bob, sealed, session_binding(ALICE, BOB))
    message = await alice_session.encrypt(b"secret")
    assert decode_sealed(encode_sealed(message)) == message
    for field in ("ciphertext", "ratchet_pub"):
        value = bytearray(getattr(message, field))
        value[len(value) // 2] ^= 0x10
        with pytest.raises(DecryptionError):
            await bob_session.decrypt(msgspec.structs.replace(message, **{field: bytes(value)}))
    with pytest.raises(DecryptionError):
        await bob_session.decrypt(msgspec.structs.replace(message, chain_length=7))
    assert await bob_session.decrypt(message) == b"secret"
    with pytest.raises(DuplicateMessage):
        await bob_session.decrypt(message)


async def test_wrong_binding_cannot_accept_a_session():
    _, bob, _, sealed, _ = await start()
    with pytest.raises(DecryptionError):
        await accept_session(bob, sealed, session_binding(ALICE, ("bob", "c" * 16)))


async def test_one_time_pre_key_survives_a_forged_first_message():
    """BaseState: the pre-key is not consumed by a failed first message."""
    _, bob, _, sealed, one_time = await start()
    forged = msgspec.structs.replace(sealed, ciphertext=bytes(len(sealed.ciphertext)))
    with pytest.raises(DecryptionError):
        await accept_session(bob, forged, session_binding(ALICE, BOB))
    assert one_time in bob.bundle.pre_keys
    _bob_session, plaintext = await accept_session(bob, sealed, session_binding(ALICE, BOB))
    assert plaintext == b"first"


async def test_x3dh_state_round_trips():
    state = new_x3dh_state()
    state.generate_pre_keys(5)
    again = load_x3dh_state(dump_x3dh_state(state))
    assert again.bundle == state.bundle
