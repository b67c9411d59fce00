"""Session-book and control checks a mutation audit found no test for: each test here
fails when its check is taken out."""

from __future__ import annotations

import pytest

from client.core.controls import Controls
from client.core.events import MessageStatus, StoredMessage
from client.core.sessions import KEEP_SESSIONS_PER_DEVICE
from client.core.storage import ProfileStore
from client.core.store_controls import SAVED
from shared.controls import Action, ControlRecord, DeleteForMe, Edit, React, SetTimer
from shared.errors import DuplicateMessage
from shared.mailbox import SavedMessage
from shared.wire import PreKeyBundle
from tests.client.engine import engine
from tests.client.fake_relay import FakeRelay
from tests.client.test_session_book import ALICE, BOB, book, device


def _message(
    key: bytes,
    body: str,
    status: MessageStatus,
    *,
    thread: str = "bob",
    sender: str = "bob",
    sent_at: int = 1,
) -> StoredMessage:
    """A stored message of ``thread``, its relay time ``sent_at`` seconds on (no sender: a line
    that did not open)."""
    return StoredMessage(
        message_id=key * 16,
        thread=thread,
        sender_user=sender,
        sender_device=BOB if sender else "",
        sent_at=sent_at,
        server_ts=sent_at * 1000,
        body=body,
        status=status,
    )


def _control(
    key: bytes, action: Action, sent_at: int, *, sender: str = "bob", device: str = BOB
) -> ControlRecord:
    """A control of the conversation with Bob, made by ``sender``'s ``device``."""
    return ControlRecord(
        control_id=key * 16,
        thread="bob",
        sender_user=sender,
        sender_device=device,
        sent_at=sent_at,
        action=action,
    )


def _bundle(x3dh, device_id: str) -> PreKeyBundle:  # type: ignore[no-untyped-def]
    keys = x3dh.bundle
    return PreKeyBundle(
        device_id=device_id,
        identity_key=keys.identity_key,
        signed_pre_key=keys.signed_pre_key,
        signed_pre_key_sig=keys.signed_pre_key_sig,
        one_time_pre_key=sorted(keys.pre_keys)[0],
    )


async def test_an_envelope_decrypted_before_is_a_duplicate_not_undecryptable(tmp_path):
    """The inbox drops a duplicate silently (a relay replaying it, re-encoded so its digest is
    new, gets no "couldn't decrypt" line shown): the book says duplicate, whichever session."""
    alice, alice_x3dh = book(ProfileStore(tmp_path / "alice"), "alice", ALICE)
    bob, bob_x3dh = book(ProfileStore(tmp_path / "bob"), "bob", BOB)
    bob_device = device(BOB, bob_x3dh.bundle.identity_key)
    first = await bob.start(
        "alice", device(ALICE, alice_x3dh.bundle.identity_key), _bundle(alice_x3dh, ALICE), b"one"
    )
    assert await alice.decrypt("bob", bob_device, first) == b"one"
    await bob.decrypt(
        "alice",
        device(ALICE, alice_x3dh.bundle.identity_key),
        await alice.encrypt(("bob", BOB), b"ok"),
    )
    second = await bob.encrypt(("alice", ALICE), b"two")
    assert second.x3dh is None
    assert await alice.decrypt("bob", bob_device, second) == b"two"
    with pytest.raises(DuplicateMessage):
        await alice.decrypt("bob", bob_device, second)


async def test_no_more_than_a_few_sessions_are_kept_per_peerdevice(tmp_path):
    """Each session start from a peer device adds a session; only the newest few are kept, in
    memory and in the profile (a peer, or a relay replaying its starts, cannot grow it)."""
    alice_store = ProfileStore(tmp_path / "alice")
    alice, alice_x3dh = book(alice_store, "alice", ALICE, pre_keys=KEEP_SESSIONS_PER_DEVICE + 2)
    bob, bob_x3dh = book(ProfileStore(tmp_path / "bob"), "bob", BOB)
    alice_device = device(ALICE, alice_x3dh.bundle.identity_key)
    bob_device = device(BOB, bob_x3dh.bundle.identity_key)
    for n in range(KEEP_SESSIONS_PER_DEVICE + 2):
        bob.forget(("alice", ALICE))  # bob starts afresh each time
        start = await bob.start("alice", alice_device, _bundle(alice_x3dh, ALICE), b"%d" % n)
        assert await alice.decrypt("bob", bob_device, start) == b"%d" % n
    assert len(alice_store.sessions_with("bob", BOB)) == KEEP_SESSIONS_PER_DEVICE
    newest = await bob.encrypt(("alice", ALICE), b"newest")
    assert await alice.decrypt("bob", bob_device, newest) == b"newest"


def test_a_saved_control_that_does_not_decode_does_not_stop_the_page(tmp_path):
    """A mailbox page holding a control record that does not decode (sealed by any holder of
    the epoch's root) skips that record; the messages beside it are kept."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)
    message = _message(b"m", "kept", MessageStatus.READ)
    junk = SavedMessage("bob", "bob", BOB, 1, 1000, "", control=b"not a control")
    plain = SavedMessage("bob", "bob", BOB, 1, 1000, "kept")
    opened = [(message, junk), (message, plain)]
    with made.store.transaction():
        assert controls.mailbox_page(opened) == [message]
        assert controls.mailbox_page_stored(opened) == []
    made.store.close()


def test_a_control_is_applied_once_and_a_replay_is_not_saved_again(tmp_path):
    """A control that comes again (replayed by the relay, or once from the relay and once from
    the mailbox) does nothing the second time: no change shown again, and one already saved to
    the mailbox is not marked to be saved again."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)
    message = _message(b"m", "first words", MessageStatus.RECEIVED, sent_at=1_000)
    edit = _control(b"c", Edit(target=message.message_id, version=2, body="second words"), 2_000)
    with made.store.transaction():
        made.store.insert_message(message)
        assert controls.apply(edit, 2_000_000) != []
        made.store.mark_control(edit.control_id, SAVED)
        assert controls.apply(edit, 2_000_000) == []
        assert made.store.control_state(edit.control_id) == SAVED
    assert made.store.message(message.message_id).body == "second words"
    made.store.close()


def test_a_timer_setting_that_arrives_after_a_newer_one_does_not_win(tmp_path):
    """Last writer wins by sequence, whatever order the settings arrive in: the older one only
    adds its line to the conversation."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)

    def setting(key: bytes, seconds: int, seq: int) -> ControlRecord:
        return _control(key, SetTimer(seconds=seconds, seq=seq), seq)

    with made.store.transaction():
        controls.apply(setting(b"n", 3600, 2), 2_000)
        controls.apply(setting(b"o", 300, 1), 3_000)  # older, arriving later
    assert made.store.timer("bob").seconds == 3600
    made.store.close()


def test_a_deletion_removes_only_messages_of_its_own_conversation(tmp_path):
    """A "delete for me" from another device of this account names its conversation; a target
    it names from another conversation is left alone."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)

    def message(key: bytes, thread: str) -> StoredMessage:
        return _message(key, f"to {thread}", MessageStatus.RECEIVED, thread=thread, sender=thread)

    with made.store.transaction():
        made.store.insert_message(message(b"b", "bob"))
        made.store.insert_message(message(b"c", "carol"))
        deletion = DeleteForMe(targets=[b"b" * 16, b"c" * 16])
        controls.apply(_control(b"d", deletion, 2, sender="alice", device=ALICE), 2_000)
    assert made.store.thread_messages("bob") == []
    assert [m.body for m in made.store.thread_messages("carol")] == ["to carol"]
    made.store.close()


def test_a_reaction_to_a_message_that_could_not_be_opened_is_dropped(tmp_path):
    """A mailbox item that did not open keeps its id as a "couldn't decrypt" line: a control
    naming it (a reaction, which either party may make) changes nothing on it."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)
    placeholder = _message(b"u", "", MessageStatus.UNDECRYPTABLE, sender="")
    with made.store.transaction():
        made.store.insert_message(placeholder)
        reaction = React(target=placeholder.message_id, emoji="👍", seq=1)
        events = controls.apply(_control(b"r", reaction, 2), 2_000)
    assert events == [] and made.store.reaction(placeholder.message_id, "bob") is None
    made.store.close()


def test_a_line_about_the_conversation_cannot_be_edited_by_the_contact_it_names(tmp_path):
    """A system line (here Bob's timer setting, stored under his name) is this device's own
    words: an edit from Bob naming it does not put his words there."""
    made = engine(tmp_path, FakeRelay())
    controls = Controls(made.context)
    body = "bob set disappearing messages to 5 minutes"
    line = _message(b"t", body, MessageStatus.SYSTEM, sent_at=1_000)
    with made.store.transaction():
        made.store.insert_message(line)
        edit = Edit(target=line.message_id, version=2, body="alice turned off encryption")
        events = controls.apply(_control(b"e", edit, 2_000), 2_000_000)
    assert events == [] and made.store.message(line.message_id).body == line.body
    made.store.close()
