"""The pure Labyrinth pieces: epochs and their heads, recovery codes, mailbox records."""

from __future__ import annotations

import msgspec
import pytest

from shared.boxes import StorageKey
from shared.epoch import (
    AccountSecrets,
    EpochMember,
    SignedHead,
    head_hash,
    open_account_secrets,
    open_epoch,
    open_grant,
    open_head,
    previous_root,
    verify_chain,
)
from shared.errors import DecryptionError, VerificationError
from shared.identity import SigningKey
from shared.mailbox import SavedMessage, epoch_mailbox_key, open_message, seal_message
from shared.recovery_code import (
    ALPHABET,
    InvalidRecoveryCode,
    candidates,
    generate,
    is_valid,
    virtual_device,
)

LIST_HASH = bytes(32)


def _chain(amk, devices, epochs=3):
    """Open ``epochs`` epochs; devices[i] = (member_id, StorageKey). Returns the opened epochs."""
    secrets = AccountSecrets(amk_seed=amk.seed, thread_key=bytes(32))
    members = [EpochMember(member_id=m, storage_key=k.public) for m, k in devices]
    opened, previous = [], None
    for _ in range(epochs):
        epoch = open_epoch(
            amk,
            "alice",
            previous=previous,
            members=members,
            device_list_hash=LIST_HASH,
            secrets=secrets,
        )
        opened.append(epoch)
        previous = (epoch.head, epoch.signed_head, epoch.root)
    return opened


def _device(n: int) -> tuple[str, StorageKey]:
    return (f"{n:016x}", StorageKey.generate())


def test_members_follow_the_roots_and_walk_back_through_all_epochs():
    amk = SigningKey.generate()
    desk = _device(1)
    epochs = _chain(amk, [desk])
    root = None
    for epoch in epochs:  # a continuing member derives each root from the previous one
        root = open_grant(epoch.grants[desk[0]], desk[1], epoch.head, desk[0], root)
        assert root == epoch.root
    for newer, older in zip(reversed(epochs[1:]), reversed(epochs[:-1]), strict=True):
        root = previous_root(root, newer.head, older.head, newer.prev_root_box)
        assert root == older.root
    secrets = open_account_secrets(epochs[-1].root, epochs[-1].head, epochs[-1].account_box)
    assert secrets.amk_seed == amk.seed


def test_a_new_member_gets_the_previous_root_a_continuing_one_does_not():
    amk = SigningKey.generate()
    desk, laptop = _device(1), _device(2)
    first = _chain(amk, [desk], 1)[0]
    members = [EpochMember(member_id=m, storage_key=k.public) for m, k in (desk, laptop)]
    second = open_epoch(
        amk,
        "alice",
        previous=(first.head, first.signed_head, first.root),
        members=members,
        device_list_hash=LIST_HASH,
        secrets=AccountSecrets(amk_seed=amk.seed, thread_key=bytes(32)),
    )
    assert open_grant(second.grants[laptop[0]], laptop[1], second.head, laptop[0], None) == (
        second.root
    )
    with pytest.raises(DecryptionError, match="previous root"):
        open_grant(second.grants[desk[0]], desk[1], second.head, desk[0], None)
    # A grant opened with the wrong key, or for another member's slot, gives nothing.
    with pytest.raises((DecryptionError, VerificationError)):
        open_grant(second.grants[desk[0]], laptop[1], second.head, laptop[0], None)


def test_a_root_that_does_not_match_the_signed_commitment_is_refused():
    amk = SigningKey.generate()
    desk = _device(1)
    epoch = _chain(amk, [desk], 1)[0]
    forged_head = msgspec.structs.replace(epoch.head, root_commitment=bytes(32))
    with pytest.raises(VerificationError, match="commits to"):
        open_grant(epoch.grants[desk[0]], desk[1], forged_head, desk[0], None)


def test_epoch_chain_refuses_forgery_truncation_rollback_and_forks():
    amk = SigningKey.generate()
    epochs = _chain(amk, [_device(1)], 4)
    signed = [e.signed_head for e in epochs]
    assert [
        h.seq
        for h in verify_chain(signed, "alice", amk.public, known=None, device_list_hash=LIST_HASH)
    ] == [1, 2, 3, 4]
    with pytest.raises(VerificationError, match="not signed"):
        verify_chain(
            signed, "alice", SigningKey.generate().public, known=None, device_list_hash=None
        )
    with pytest.raises(VerificationError, match="skips"):
        verify_chain(
            signed[:1] + signed[2:], "alice", amk.public, known=None, device_list_hash=None
        )
    known = (3, head_hash(signed[2]))
    with pytest.raises(VerificationError, match="skips or repeats"):
        verify_chain(signed[1:2], "alice", amk.public, known=known, device_list_hash=None)
    fork = _chain(amk, [_device(1)], 4)[3].signed_head
    with pytest.raises(VerificationError, match="broken or forked"):
        verify_chain([fork], "alice", amk.public, known=known, device_list_hash=None)
    with pytest.raises(VerificationError, match="newest device list"):
        verify_chain(signed, "alice", amk.public, known=None, device_list_hash=b"\x01" * 32)
    with pytest.raises(VerificationError, match="another user"):
        open_head(signed[0], "mallory", amk.public)


def test_recovery_codes_detect_and_correct_typos():
    code = generate(3)
    assert len(code) == 40 and is_valid(code) and all(c in ALPHABET for c in code)
    assert candidates(code.lower()) == [code]
    spaced = " ".join(code[i : i + 4] for i in range(0, 40, 4))
    assert candidates(spaced) == [code]
    typo = code[:10] + ("A" if code[10] != "A" else "C") + code[11:]
    assert not is_valid(typo)
    assert code in candidates(typo)
    with pytest.raises(InvalidRecoveryCode, match="40 characters"):
        candidates(code[:30])


def test_virtual_device_is_derived_from_the_code_alone():
    code = generate()
    one, two = virtual_device(code), virtual_device(code)
    assert one.member_id == two.member_id and one.storage.public == two.storage.public
    amk = SigningKey.generate()
    assert two.endorses(amk.public, one.endorse(amk.public))
    assert not virtual_device(generate()).endorses(amk.public, one.endorse(amk.public))


def test_a_mailbox_record_opens_only_in_its_place():
    key = epoch_mailbox_key(bytes(range(32)), "alice", 2)
    thread, other_thread = b"t" * 16, b"u" * 16
    message_id, other_id = b"m" * 16, b"n" * 16
    saved = SavedMessage("bob", "alice", "0" * 16, 1, 2, "hello")
    sealed = seal_message(key, "alice", thread, message_id, 2, saved)
    assert open_message(key, "alice", thread, message_id, 2, sealed) == saved
    for place in [
        ("alice", other_thread, message_id, 2),
        ("alice", thread, other_id, 2),
        ("alice", thread, message_id, 3),
        ("mallory", thread, message_id, 2),
    ]:
        with pytest.raises(DecryptionError):
            open_message(key, *place, sealed)
    other_epoch_key = epoch_mailbox_key(bytes(range(32)), "alice", 3)
    with pytest.raises(DecryptionError):
        open_message(other_epoch_key, "alice", thread, message_id, 3, sealed)


def test_a_grant_must_agree_with_the_previous_root_held_and_the_previous_commitment():
    amk = SigningKey.generate()
    desk, laptop = _device(1), _device(2)
    first = _chain(amk, [desk], 1)[0]
    members = [EpochMember(member_id=m, storage_key=k.public) for m, k in (desk, laptop)]
    # Whoever signs the head (any holder of the account key) names another previous root, and
    # gives it to everyone in their grants, as if nobody had been a member before.
    nobody_before = msgspec.structs.replace(first.head, members=())
    forged = open_epoch(
        amk,
        "alice",
        previous=(nobody_before, first.signed_head, bytes(range(32))),
        members=members,
        device_list_hash=LIST_HASH,
        secrets=AccountSecrets(amk_seed=amk.seed, thread_key=bytes(32)),
    )
    with pytest.raises(VerificationError, match="another previous root"):
        open_grant(forged.grants[desk[0]], desk[1], forged.head, desk[0], first.root)
    with pytest.raises(VerificationError, match="not the previous epoch's"):
        open_grant(forged.grants[laptop[0]], laptop[1], forged.head, laptop[0], None, first.head)


def test_every_flipped_bit_of_an_epoch_heads_signature_is_refused():
    amk = SigningKey.generate()
    signed = _chain(amk, [_device(1)], 1)[0].signed_head
    outer = msgspec.msgpack.decode(signed, type=SignedHead)
    for bit in range(len(outer.signature) * 8):
        signature = bytearray(outer.signature)
        signature[bit // 8] ^= 1 << (bit % 8)
        tampered = msgspec.msgpack.encode(
            msgspec.structs.replace(outer, signature=bytes(signature))
        )
        with pytest.raises(VerificationError, match="not signed"):
            open_head(tampered, "alice", amk.public)
