"""Sender Keys (shared.sender_keys): the chain's known answers, one encryption opened by every
holder, out-of-order delivery within the skip window, and everything a relay or another member
could try — a replay, a forged signature, another sender's key, a message far ahead."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared import sender_keys as sk
from shared.errors import DecryptionError, DuplicateMessage, WireError
from shared.identity import SigningKey

GROUP = bytes(range(16))
ALICE_DEVICE = "a" * 16


def fixed_key() -> sk.OwnSenderKey:
    return sk.OwnSenderKey(
        group_id=GROUP, key_id=7, iteration=0, chain_key=bytes(32), signing_seed=bytes([9]) * 32
    )


def receiver(own: sk.OwnSenderKey) -> sk.PeerSenderKey:
    return sk.accept_distribution(own.distribution(), "alice", ALICE_DEVICE)


def test_the_chain_is_hmac_sha256_with_signals_constants():
    """Known answers, computed here independently of the module: message key = HMAC(ck, 01),
    next chain key = HMAC(ck, 02); AES key and nonce are HKDF-SHA-256 of the message key."""
    message_key, chain_1 = sk.step(bytes(32))
    assert message_key == hmac.digest(bytes(32), b"\x01", hashlib.sha256)
    assert chain_1 == hmac.digest(bytes(32), b"\x02", hashlib.sha256)
    material = HKDF(hashes.SHA256(), 44, None, b"ariadne/sender-key/message-key/v1").derive(
        message_key
    )
    sealed, after = sk.encrypt(fixed_key(), "alice", ALICE_DEVICE, b"hello")
    message = sk.decode_message(sealed)
    header = msgspec.msgpack.encode((GROUP, "alice", ALICE_DEVICE, 7, 0))
    assert AESGCM(material[:32]).decrypt(material[32:], message.ciphertext, header) == b"hello"
    assert after.iteration == 1 and after.chain_key == chain_1


def test_the_known_chain_values_do_not_drift():
    """Pinned bytes: a changed constant, label or layout shows up here."""
    message_key, chain_1 = sk.step(bytes(32))
    assert message_key.hex() == "3d7afb663124ecbf2c953f863d4fc8796eeb2d372b64aad58697ec5264649cdb"
    assert chain_1.hex() == "4ee7be0c7872360ca67414608081e9bd60fd580a7bbd209701d2a5a0b4316d0d"
    sealed, _ = sk.encrypt(fixed_key(), "alice", ALICE_DEVICE, b"hello")
    assert sk.decode_message(sealed).ciphertext.hex() == (
        "81164c90d478aef4c0ea29fa3fe1f5c23ba2be6189"
    )


def test_one_encryption_is_opened_by_every_holder_and_chains_move_forward():
    own = fixed_key()
    holders = [receiver(own) for _ in range(3)]
    for n in range(5):
        sealed, own = sk.encrypt(own, "alice", ALICE_DEVICE, f"m{n}".encode())
        message = sk.decode_message(sealed)
        assert message.iteration == n
        for i, holder in enumerate(holders):
            plaintext, holders[i] = sk.decrypt(holder, message)
            assert plaintext == f"m{n}".encode()
    assert all(h.iteration == 5 and not h.skipped for h in holders)


def test_a_replayed_message_is_refused():
    own = fixed_key()
    peer = receiver(own)
    sealed, own = sk.encrypt(own, "alice", ALICE_DEVICE, b"pay bob 10")
    _, peer = sk.decrypt(peer, sk.decode_message(sealed))
    with pytest.raises(DuplicateMessage):
        sk.decrypt(peer, sk.decode_message(sealed))


def test_out_of_order_within_the_window_opens_once_and_the_key_is_deleted():
    own = fixed_key()
    peer = receiver(own)
    sent = []
    for n in range(4):
        sealed, own = sk.encrypt(own, "alice", ALICE_DEVICE, bytes([n]))
        sent.append(sk.decode_message(sealed))
    plaintext, peer = sk.decrypt(peer, sent[3])
    assert plaintext == bytes([3]) and sorted(peer.skipped) == [0, 1, 2]
    plaintext, peer = sk.decrypt(peer, sent[1])
    assert plaintext == bytes([1]) and sorted(peer.skipped) == [0, 2]
    with pytest.raises(DuplicateMessage):
        sk.decrypt(peer, sent[1])


def test_a_message_beyond_the_skip_window_is_refused_and_old_skipped_keys_are_dropped():
    own = fixed_key()
    peer = receiver(own)
    far = msgspec.structs.replace(own, iteration=sk.MAX_SKIP + 1)
    sealed, _ = sk.encrypt(far, "alice", ALICE_DEVICE, b"x")
    with pytest.raises(DecryptionError, match="too far ahead"):
        sk.decrypt(peer, sk.decode_message(sealed))
    # Within the window: every skipped key is kept, no more than MAX_SKIP.
    state = own
    for _ in range(sk.MAX_SKIP):
        _, state = sk.encrypt(state, "alice", ALICE_DEVICE, b"")
    sealed, _ = sk.encrypt(state, "alice", ALICE_DEVICE, b"last")
    plaintext, peer = sk.decrypt(peer, sk.decode_message(sealed))
    assert plaintext == b"last" and len(peer.skipped) == sk.MAX_SKIP


def test_a_forged_signature_or_a_rewritten_header_is_refused():
    own = fixed_key()
    peer = receiver(own)
    sealed, _ = sk.encrypt(own, "alice", ALICE_DEVICE, b"hi")
    message = sk.decode_message(sealed)
    # Another member holds the chain key but not the signing key: its forgery does not verify.
    forger = msgspec.structs.replace(own, signing_seed=SigningKey.generate().seed)
    forged, _ = sk.encrypt(forger, "alice", ALICE_DEVICE, b"forged")
    with pytest.raises(DecryptionError, match="signature"):
        sk.decrypt(peer, sk.decode_message(forged))
    # A relay that moves the message to another iteration breaks the signature.
    moved = msgspec.structs.replace(message, iteration=1)
    with pytest.raises(DecryptionError):
        sk.decrypt(peer, moved)
    # Naming another sender, or another key id, is refused before anything is tried.
    with pytest.raises(DecryptionError, match="another sender key"):
        sk.decrypt(peer, msgspec.structs.replace(message, sender_user="mallory"))
    with pytest.raises(DecryptionError, match="another sender key"):
        sk.decrypt(peer, msgspec.structs.replace(message, key_id=8))


def test_a_late_joiner_reads_nothing_sent_before_its_distribution():
    own = fixed_key()
    early = []
    for n in range(3):
        sealed, own = sk.encrypt(own, "alice", ALICE_DEVICE, bytes([n]))
        early.append(sk.decode_message(sealed))
    late = receiver(own)  # given the chain key at iteration 3
    for message in early:
        with pytest.raises(DuplicateMessage):
            sk.decrypt(late, message)
    sealed, own = sk.encrypt(own, "alice", ALICE_DEVICE, b"now")
    assert sk.decrypt(late, sk.decode_message(sealed))[0] == b"now"


def test_a_rotated_key_is_unrelated_to_the_old_one():
    first = sk.new_sender_key(GROUP)
    second = sk.new_sender_key(GROUP)
    old_holder = receiver(first)
    sealed, _ = sk.encrypt(second, "alice", ALICE_DEVICE, b"after removal")
    assert first.key_id != second.key_id and first.chain_key != second.chain_key
    with pytest.raises(DecryptionError):
        sk.decrypt(old_holder, sk.decode_message(sealed))
    # Even with the key id relabelled to the old one, the old holder cannot open it.
    relabelled = msgspec.structs.replace(sk.decode_message(sealed), key_id=first.key_id)
    with pytest.raises(DecryptionError):
        sk.decrypt(old_holder, relabelled)


def test_states_round_trip_and_garbage_is_a_clear_error():
    own = fixed_key()
    assert sk.decode_own(sk.encode_state(own)) == own
    peer = receiver(own)
    assert sk.decode_peer(sk.encode_state(peer)) == peer
    assert sk.decode_distribution(sk.encode_state(own.distribution())) == own.distribution()
    with pytest.raises(WireError):
        sk.decode_message(b"\x81\xa1k\xa5group")
    with pytest.raises(DecryptionError):
        sk.decode_distribution(b"\x00")
