"""Checks in the shared protocol code that the other tests did not notice when each was removed
(a mutation audit of the client's side): each test here fails when its check is taken out."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import group as g
from shared import pairing, sender_keys
from shared.boxes import StorageKey, derive, seal, seal_to
from shared.controls import SEQ_STEP, is_emoji, within_step
from shared.device_list import DeviceEntry, DeviceList, open_device_list, sign_device_list
from shared.envelope import decode_sealed, encode_sealed
from shared.epoch import (
    AccountSecrets,
    EpochHead,
    EpochMember,
    SignedHead,
    open_account_secrets,
    open_epoch,
    open_grant,
    open_head,
    previous_root,
    verify_chain,
)
from shared.errors import DecryptionError, DuplicateMessage, VerificationError, WireError
from shared.identity import SigningKey, device_id_for
from shared.mailbox import ITEM_V2, epoch_mailbox_key, item_ad, open_message, thread_key
from shared.padding import pad, unpad
from shared.pin import VaultRequest, check_pin, open_request, request_info
from shared.session import accept_session, initiate_session, new_x3dh_state, session_binding

ALICE, BOB = ("alice", "a" * 16), ("bob", "b" * 16)
CURVE25519_P = 2**255 - 19
HEAD_DOMAIN = b"ariadne/epoch-head/v1"  # what shared.epoch signs heads under


async def _first_message():
    alice, bob = new_x3dh_state(), new_x3dh_state()
    bob.generate_pre_keys(1)
    bundle = bob.bundle
    session, sealed = await initiate_session(
        alice,
        bundle.identity_key,
        bundle.signed_pre_key,
        bundle.signed_pre_key_sig,
        sorted(bundle.pre_keys)[0],
        session_binding(ALICE, BOB),
        b"first",
    )
    return bob, session, sealed


async def test_a_public_key_spelt_as_p_itself_is_not_canonical():
    """p reduces to 0: the first non-canonical spelling is p, not p + 1 (the bound is ``>=``)."""
    _, _, sealed = await _first_message()
    respelt = msgspec.structs.replace(sealed, ratchet_pub=CURVE25519_P.to_bytes(32, "little"))
    with pytest.raises(WireError, match="canonical"):
        decode_sealed(encode_sealed(respelt))
    below = msgspec.structs.replace(sealed, ratchet_pub=(CURVE25519_P - 1).to_bytes(32, "little"))
    decode_sealed(encode_sealed(below))  # the largest canonical spelling decodes


async def test_only_a_session_start_is_accepted_as_one():
    """An envelope without an X3DH header given to accept_session is refused as such, a clear
    DecryptionError rather than whatever the libraries make of a missing header."""
    bob, session, _ = await _first_message()
    later = msgspec.structs.replace(await session.encrypt(b"second"), x3dh=None)
    with pytest.raises(DecryptionError, match="not a session start"):
        await accept_session(bob, later, session_binding(ALICE, BOB))


def _entry(key: SigningKey) -> DeviceEntry:
    return DeviceEntry(
        device_id=device_id_for(key.public),
        name="Desktop",
        sign_public=key.public,
        identity_key=bytes(32),
        storage_key=bytes(32),
        added_at=1,
    )


def test_a_device_list_naming_a_device_twice_is_refused():
    amk, desktop, laptop = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    twice = DeviceList(
        username="alice",
        version=2,
        prev_hash=bytes(32),
        amk_public=amk.public,
        devices=(_entry(desktop), _entry(laptop), _entry(laptop)),
        author=device_id_for(desktop.public),
    )
    with pytest.raises(VerificationError, match="repeats a device"):
        open_device_list(sign_device_list(amk, desktop, twice), "alice", amk.public)


@pytest.mark.parametrize(
    ("version", "prev_hash"), [(1, bytes(32)), (2, b"")], ids=["v1-after-a-list", "v2-after-none"]
)
def test_a_device_list_must_start_its_chain_at_version_one_and_only_there(version, prev_hash):
    """Version 1 names no predecessor, and every later version names one: a later list without
    one would escape the chain check and the first-list rules both."""
    amk, desktop = SigningKey.generate(), SigningKey.generate()
    listed = DeviceList(
        username="alice",
        version=version,
        prev_hash=prev_hash,
        amk_public=amk.public,
        devices=(_entry(desktop),),
        author=device_id_for(desktop.public),
    )
    with pytest.raises(VerificationError, match="chain start"):
        open_device_list(sign_device_list(amk, desktop, listed), "alice", amk.public)


def _epochs(amk: SigningKey, desk: tuple[str, StorageKey], count: int):
    secrets = AccountSecrets(amk_seed=amk.seed, thread_key=bytes(32))
    members = [EpochMember(member_id=desk[0], storage_key=desk[1].public)]
    opened, previous = [], None
    for _ in range(count):
        epoch = open_epoch(
            amk,
            "alice",
            previous=previous,
            members=members,
            device_list_hash=bytes(32),
            secrets=secrets,
        )
        opened.append(epoch)
        previous = (epoch.head, epoch.signed_head, epoch.root)
    return opened


def _resigned(amk: SigningKey, head: EpochHead) -> bytes:
    body = msgspec.msgpack.encode(head)
    return msgspec.msgpack.encode(SignedHead(body=body, signature=amk.sign(HEAD_DOMAIN, body)))


def test_epoch_heads_of_another_format_a_bad_chain_start_or_a_repeated_member_are_refused():
    amk, desk = SigningKey.generate(), ("d" * 16, StorageKey.generate())
    first, second = _epochs(amk, desk, 2)
    with pytest.raises(WireError, match="version"):
        open_head(_resigned(amk, msgspec.structs.replace(first.head, v=2)), "alice", amk.public)
    for head in (
        msgspec.structs.replace(first.head, prev_head_hash=bytes(32)),
        msgspec.structs.replace(second.head, prev_head_hash=b""),
    ):
        with pytest.raises(VerificationError, match="chain start"):
            open_head(_resigned(amk, head), "alice", amk.public)
    repeated = msgspec.structs.replace(first.head, members=first.head.members * 2)
    with pytest.raises(VerificationError, match="repeats a member"):
        open_head(_resigned(amk, repeated), "alice", amk.public)


def test_an_account_with_no_epochs_is_refused_when_nothing_is_known():
    """A relay that serves no epoch at all to a device that knows none (a restore) is refused;
    one that knows an epoch may be told there is nothing newer."""
    amk = SigningKey.generate()
    with pytest.raises(VerificationError, match="no epochs"):
        verify_chain([], "alice", amk.public, known=None, device_list_hash=None)
    assert verify_chain([], "alice", amk.public, known=(1, bytes(32)), device_list_hash=None) == []


def test_a_grant_opens_only_with_the_storage_key_the_head_names_for_the_member():
    amk, desk = SigningKey.generate(), ("d" * 16, StorageKey.generate())
    epoch = _epochs(amk, desk, 1)[0]
    with pytest.raises(VerificationError, match="not a member"):
        open_grant(epoch.grants[desk[0]], StorageKey.generate(), epoch.head, desk[0], None)


def test_a_previous_root_box_must_hold_the_previous_epochs_root_exactly():
    """The box must open to the root the previous head commits to, and to those 32 bytes only:
    the commitment is an HMAC keyed with the root, and HMAC pads a short key with zeros, so the
    root followed by a zero byte has the same commitment and would be another spelling of it
    (every key derived from it would differ)."""
    amk, desk = SigningKey.generate(), ("d" * 16, StorageKey.generate())
    first, second, third = _epochs(amk, desk, 3)
    assert previous_root(second.root, second.head, first.head, second.prev_root_box) == first.root
    with pytest.raises(VerificationError, match="previous epoch"):
        previous_root(third.root, third.head, first.head, third.prev_root_box)
    ctx = b"alice\x00" + (2).to_bytes(8, "big")
    respelt = seal(derive(second.root, b"ariadne/previous-root/v1", ctx), first.root + b"\x00", ctx)
    with pytest.raises(VerificationError, match="previous epoch"):
        previous_root(second.root, second.head, first.head, respelt)


def test_account_secrets_must_hold_the_account_key_the_head_names():
    amk, desk = SigningKey.generate(), ("d" * 16, StorageKey.generate())
    other = AccountSecrets(amk_seed=SigningKey.generate().seed, thread_key=bytes(32))
    epoch = open_epoch(
        amk,
        "alice",
        previous=None,
        members=[EpochMember(member_id=desk[0], storage_key=desk[1].public)],
        device_list_hash=bytes(32),
        secrets=other,
    )
    with pytest.raises(VerificationError, match="different account key"):
        open_account_secrets(epoch.root, epoch.head, epoch.account_box)


GROUP = bytes(range(16))
MEMBER_KEYS = {user: SigningKey(bytes([i + 1]) * 32) for i, user in enumerate(["alice", "bob"])}


def _member_key(user: str, device: str) -> bytes | None:
    return MEMBER_KEYS[user].public if user in MEMBER_KEYS and device == "d" * 16 else None


def _change(state, action, users=(), name=None, **changed):
    body = g.next_change(state, GROUP, "alice", "d" * 16, action, users, name)
    return g.sign_change(MEMBER_KEYS["alice"], msgspec.structs.replace(body, **changed))


def test_a_group_change_must_carry_the_next_number_as_well_as_the_previous_hash():
    state, _ = g.apply_change(None, _change(None, "create", ("alice", "bob"), "G"), _member_key)
    jumped = _change(state, "rename", name="H", seq=state.seq + 2)  # the right prev, seq skips
    with pytest.raises(VerificationError, match="does not follow"):
        g.apply_change(state, jumped, _member_key)


def test_a_group_holds_exactly_its_member_limit():
    state, _ = g.apply_change(None, _change(None, "create", ("alice", "bob"), "G"), _member_key)
    to_the_limit = tuple(f"user{i:03}" for i in range(g.MAX_MEMBERS - 2))
    full, _ = g.apply_change(state, _change(state, "add", to_the_limit), _member_key)
    assert len(full.members) == g.MAX_MEMBERS
    one_more = (*to_the_limit, "user999")
    with pytest.raises(VerificationError, match="at most"):
        g.apply_change(state, _change(state, "add", one_more), _member_key)
    too_many = tuple(f"user{i:03}" for i in range(g.MAX_MEMBERS + 1))
    with pytest.raises(VerificationError):  # a create naming more than the limit
        g.apply_change(None, _change(None, "create", ("alice", *too_many[1:]), "G"), _member_key)


def test_an_empty_chain_of_group_changes_is_refused():
    with pytest.raises(VerificationError, match="empty chain"):
        g.verify_chain([], _member_key)


def test_a_mailbox_record_that_authenticates_but_is_not_padded_is_a_decryption_error():
    """Only a holder of the epoch's root can seal it; it is still refused as undecryptable (the
    caller shows "couldn't decrypt"), not raised as a malformed frame."""
    key = epoch_mailbox_key(bytes(range(32)), "alice", 2)
    thread, message_id, nonce = b"t" * 16, b"m" * 16, bytes(12)
    unpadded = msgspec.msgpack.encode(["bob", "alice", "0" * 16, 1, 2, "hi"])
    ad = item_ad("alice", thread, message_id, 2)
    sealed = ITEM_V2 + nonce + AESGCM(thread_key(key, thread)).encrypt(nonce, unpadded, ad)
    with pytest.raises(DecryptionError, match="padding"):
        open_message(key, "alice", thread, message_id, 2, sealed)


def test_a_receiver_keeps_no_more_than_max_skip_skipped_sender_keys():
    """Past the window the oldest skipped key is deleted: its message no longer opens."""
    own = sender_keys.OwnSenderKey(
        group_id=GROUP, key_id=7, iteration=0, chain_key=bytes(32), signing_seed=bytes([9]) * 32
    )
    peer = sender_keys.accept_distribution(own.distribution(), "alice", "a" * 16)
    sent, state = [], own
    for _ in range(sender_keys.MAX_SKIP + 2):
        sealed, state = sender_keys.encrypt(state, "alice", "a" * 16, b"m")
        sent.append(sender_keys.decode_message(sealed))
    _, peer = sender_keys.decrypt(peer, sent[sender_keys.MAX_SKIP])  # skips 0 .. MAX_SKIP - 1
    _, peer = sender_keys.decrypt(peer, sent[sender_keys.MAX_SKIP + 1])  # nothing more skipped
    assert len(peer.skipped) == sender_keys.MAX_SKIP
    last, state = sender_keys.encrypt(state, "alice", "a" * 16, b"m")
    sealed, _ = sender_keys.encrypt(state, "alice", "a" * 16, b"m")  # skips ``last``
    _, peer = sender_keys.decrypt(peer, sender_keys.decode_message(sealed))
    assert len(peer.skipped) == sender_keys.MAX_SKIP
    with pytest.raises(DuplicateMessage):
        sender_keys.decrypt(peer, sent[0])  # the oldest skipped key was deleted
    plaintext, _ = sender_keys.decrypt(peer, sender_keys.decode_message(last))
    assert plaintext == b"m"  # the newest skipped key was kept


def test_the_vault_opens_a_request_only_for_the_user_it_names_inside():
    """The vault acts on the username inside the request (whose backup to read or replace); one
    sealed under a logged-in user's name but naming another user inside is refused, so a login
    as mallory cannot guess alice's PIN or overwrite her backup."""
    vault = StorageKey.generate()
    request = VaultRequest(op="recover", username="alice", reply_key=bytes(32), verifier=bytes(32))
    sealed = seal_to(vault.public, msgspec.msgpack.encode(request), request_info("mallory"))
    with pytest.raises(DecryptionError, match="another user"):
        open_request(vault, "mallory", sealed)


@pytest.mark.parametrize("pin", ["123", "x" * 65, "    ", "\t\n  "])
def test_a_pin_has_four_to_sixty_four_characters_not_all_blank(pin):
    with pytest.raises(ValueError, match="characters"):
        check_pin(pin)


def test_padding_must_end_in_its_marker():
    assert unpad(pad(b"abc")) == b"abc"
    for data in (b"abc\x81\x00\x00", b"abc", b"\x00\x00"):
        with pytest.raises(WireError, match="bad padding"):
            unpad(data)


def test_a_pairing_commitment_binds_the_nonce_and_every_key():
    keys = pairing.NewDeviceKeys(
        device_id="d" * 16, sign_public=bytes(32), storage_key=bytes(32), identity_key=bytes(32)
    )
    nonce = bytes(pairing.NONCE)
    committed = pairing.commitment(nonce, keys)
    pairing.check_commitment(committed, nonce, keys)
    for other_nonce, other_keys in (
        (b"\x01" + nonce[1:], keys),
        (nonce, msgspec.structs.replace(keys, identity_key=b"\x01" * 32)),
    ):
        with pytest.raises(VerificationError, match="commitment"):
            pairing.check_commitment(committed, other_nonce, other_keys)


@pytest.mark.parametrize(
    "emoji", ["", "👍", "👍🏽", "1\ufe0f\u20e3", "🏴\U000e0067\U000e0062\U000e007f"]
)
def test_a_reaction_may_be_an_emoji(emoji):
    assert is_emoji(emoji)


@pytest.mark.parametrize("text", ["ok", "👍 ok", "👍\n", "\u200d", "\ufe0f\u20e3", "1"])
def test_a_reaction_may_not_be_words_breaks_or_glue_alone(text):
    """A reaction is shown under the bubble: words, line breaks, or only the characters that
    join emoji (which draw nothing) are refused."""
    assert not is_emoji(text)


def test_a_timer_setting_may_move_its_sequence_at_most_one_step_ahead():
    """A contact jumping to the top of the range would hold the timer for good: the exact step
    is allowed, one more is not."""
    assert within_step(SEQ_STEP, None) and not within_step(SEQ_STEP + 1, None)
    assert within_step(7 + SEQ_STEP, 7) and not within_step(7 + SEQ_STEP + 1, 7)
