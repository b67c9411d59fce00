"""Group membership (shared.group): the chain of signed changes every member device verifies —
admins only, the author's device key, each change linked to the one before, so a forged, replayed
or dropped change is refused."""

from __future__ import annotations

import msgspec
import pytest

from shared import group as g
from shared.controls import ControlRecord, React, decode_record, encode_record
from shared.envelope import Origin
from shared.errors import DecryptionError, VerificationError
from shared.identity import SigningKey

GID = bytes(range(16))
KEYS = {
    user: SigningKey(bytes([i + 1]) * 32)
    for i, user in enumerate(["alice", "bob", "carol", "dave"])
}
DEVICE = {user: f"{i:016x}" for i, user in enumerate(KEYS)}


def key_of(user: str, device: str) -> bytes | None:
    return KEYS[user].public if DEVICE.get(user) == device else None


def change(state, author, action, users=(), name=None, key=None):
    body = g.next_change(state, GID, author, DEVICE[author], action, users, name)
    return g.sign_change(key or KEYS[author], body)


def build(*steps):
    """Apply (author, action, users, name) steps; returns the states and the signed changes."""
    state, chain = None, []
    for author, action, users, name in steps:
        signed = change(state, author, action, users, name)
        state, _ = g.apply_change(state, signed, key_of)
        chain.append(signed)
    return state, chain


def test_create_add_remove_rename_promote_leave():
    state, chain = build(
        ("alice", "create", ("alice", "bob"), "Climbing"),
        ("alice", "add", ("carol",), None),
        ("alice", "promote", ("bob",), None),
        ("bob", "rename", (), "Crag"),
        ("bob", "remove", ("carol",), None),
        ("alice", "leave", ("alice",), None),
    )
    assert state.members == ("bob",) and state.admins == ("bob",) and state.name == "Crag"
    assert state.seq == 6 and state.head == g.change_hash(chain[-1])
    assert g.verify_chain(chain, key_of) == state


def test_a_non_admin_cannot_add_remove_rename_or_promote():
    state, _ = build(("alice", "create", ("alice", "bob", "carol"), "G"))
    for action, users, name in [
        ("add", ("dave",), None),
        ("remove", ("carol",), None),
        ("rename", (), "Mine"),
        ("promote", ("carol",), None),
    ]:
        with pytest.raises(VerificationError, match="not an admin"):
            g.apply_change(state, change(state, "bob", action, users, name), key_of)
    # but any member may leave, and only by itself
    after, _ = g.apply_change(state, change(state, "bob", "leave", ("bob",)), key_of)
    assert after.members == ("alice", "carol")
    with pytest.raises(VerificationError, match="leaves only by itself"):
        g.apply_change(state, change(state, "bob", "leave", ("carol",)), key_of)


def test_an_outsider_or_a_wrong_key_is_refused():
    state, _ = build(("alice", "create", ("alice", "bob"), "G"))
    with pytest.raises(VerificationError, match="not a member"):
        g.apply_change(state, change(state, "dave", "add", ("dave",)), key_of)
    # A relay forging alice's change with its own key: the signature does not verify.
    forged = change(state, "alice", "add", ("dave",), key=SigningKey.generate())
    with pytest.raises(VerificationError, match="signature"):
        g.apply_change(state, forged, key_of)
    # A device that is not on alice's verified list is not a key for her.
    body = g.next_change(state, GID, "alice", "f" * 16, "add", ("dave",))
    with pytest.raises(VerificationError, match="verified device list"):
        g.apply_change(state, g.sign_change(KEYS["alice"], body), key_of)


def test_a_dropped_or_replayed_change_does_not_link():
    state, chain = build(
        ("alice", "create", ("alice", "bob", "carol"), "G"),
        ("alice", "add", ("dave",), None),
        ("alice", "remove", ("dave",), None),
    )
    created, _ = g.apply_change(None, chain[0], key_of)
    # dropped: change 3 arrives at a device holding change 1 only
    with pytest.raises(VerificationError, match="does not follow"):
        g.apply_change(created, chain[2], key_of)
    # replayed: the signed "add dave" again after dave's removal
    with pytest.raises(VerificationError, match="does not follow"):
        g.apply_change(state, chain[1], key_of)
    # another group's change
    other = g.sign_change(
        KEYS["alice"],
        msgspec.structs.replace(
            g.next_change(state, GID, "alice", DEVICE["alice"], "rename", name="x"),
            group_id=bytes(16),
        ),
    )
    with pytest.raises(VerificationError, match="another group"):
        g.apply_change(state, other, key_of)


def test_the_last_admin_leaving_hands_admin_to_the_first_member_by_name():
    state, _ = build(
        ("alice", "create", ("alice", "carol", "bob"), "G"),
        ("alice", "leave", ("alice",), None),
    )
    assert state.admins == ("bob",)


def test_creation_rules_and_the_member_limit():
    with pytest.raises(VerificationError, match="first change"):
        g.apply_change(None, change(None, "alice", "rename", (), "x"), key_of)
    with pytest.raises(VerificationError, match="creator"):
        g.apply_change(None, change(None, "alice", "create", ("bob",), "x"), key_of)
    state, _ = build(("alice", "create", ("alice", "bob"), "G"))
    with pytest.raises(VerificationError, match="created once"):
        g.apply_change(state, change(state, "alice", "create", ("alice",), "x"), key_of)
    with pytest.raises(VerificationError, match="not members yet"):
        g.apply_change(state, change(state, "alice", "add", ("bob",)), key_of)
    many = tuple(f"user{i}" for i in range(g.MAX_MEMBERS))
    with pytest.raises(VerificationError, match="at most"):
        g.apply_change(state, change(state, "alice", "add", many), key_of)


def test_garbage_is_a_verification_error_and_threads_are_not_usernames():
    with pytest.raises(VerificationError):
        g.apply_change(None, b"\x00garbage", key_of)
    thread = g.group_thread(GID)
    assert g.is_group_thread(thread) and g.group_id_of(thread) == GID
    assert not g.is_group_thread("alice")
    with pytest.raises(ValueError):
        g.group_id_of("alice")


def test_a_fork_with_the_right_number_but_another_history_is_refused():
    """Two changes numbered 2 by the admin, on different chains: the one that does not name
    this device's change 1 by hash is refused even though its number fits."""
    created, _ = build(("alice", "create", ("alice", "bob"), "G"))
    other_start = change(None, "alice", "create", ("alice", "bob", "dave"), "G")
    forked_base, _ = g.apply_change(None, other_start, key_of)
    fork = change(forked_base, "alice", "rename", (), "Forked")
    with pytest.raises(VerificationError, match="does not follow"):
        g.apply_change(created, fork, key_of)


def test_each_change_names_the_right_users():
    state, _ = build(("alice", "create", ("alice", "bob", "carol"), "G"))
    refused = [
        ("remove", ("dave",), None, "other members"),  # not a member
        ("remove", ("alice",), None, "other members"),  # oneself: that is a leave
        ("remove", (), None, "other members"),
        ("promote", ("alice",), None, "not admins"),  # already an admin
        ("promote", ("dave",), None, "not admins"),  # not a member
        ("add", (), None, "not members yet"),
        ("rename", (), None, "new name"),
    ]
    for action, users, name, why in refused:
        with pytest.raises(VerificationError, match=why):
            g.apply_change(state, change(state, "alice", action, users, name), key_of)
    left, _ = g.apply_change(state, change(state, "carol", "leave", ("carol",)), key_of)
    with pytest.raises(VerificationError, match="not a member"):
        g.apply_change(left, change(left, "carol", "leave", ("carol",)), key_of)
    twice = msgspec.structs.replace(
        g.next_change(state, GID, "alice", DEVICE["alice"], "add", ("dave",)),
        users=("dave", "dave"),
    )
    with pytest.raises(VerificationError, match="twice"):
        g.apply_change(state, g.sign_change(KEYS["alice"], twice), key_of)


def test_a_sealed_group_control_never_decodes_as_a_text_and_takes_its_membership():
    """The plaintext under a sender key is a text or a control: each decodes as itself only, and
    the membership it leaves with is stamped on it (PROTOCOL.md §10 "In groups")."""
    origin = Origin(user="carol", device="0" * 16, counter=3)
    control = g.GroupControl(
        origin=origin,
        control_id=b"c" * 16,
        sent_at=1,
        action=React(target=b"t" * 16, emoji="👍", seq=1),
        seq=0,
        head=bytes(32),
    )
    text = g.GroupText(
        origin=origin, message_id=b"m" * 16, sent_at=1, body="hi", seq=0, head=bytes(32)
    )
    stamped = g.decode_sealed(g.for_membership(g.encode_message(control), 7, b"h" * 32))
    assert isinstance(stamped, g.GroupControl) and (stamped.seq, stamped.head) == (7, b"h" * 32)
    assert stamped.action == control.action
    assert isinstance(g.decode_sealed(g.encode_message(text)), g.GroupText)
    with pytest.raises(DecryptionError):
        g.decode_text(g.encode_message(control))
    with pytest.raises(DecryptionError):
        g.decode_sealed(b"\x81\xa1x\x01")
    # A control record names a group's thread; a made-up thread name does not decode.
    record = ControlRecord(
        control_id=b"c" * 16,
        thread=g.group_thread(b"g" * 16),
        sender_user="carol",
        sender_device="0" * 16,
        sent_at=1,
        action=control.action,
    )
    assert decode_record(encode_record(record)) == record
    with pytest.raises(Exception, match="control record"):
        decode_record(encode_record(msgspec.structs.replace(record, thread="#nothex")))
