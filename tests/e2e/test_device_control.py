"""Device control (PROTOCOL.md §7): approval with a short authentication string, revocation and its
post-revocation secrecy, and what a hostile relay cannot do about either. Real relay, real
clients, real SQLite; the hostile relay is the real one with an attacker at its store."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from client.core.events import DeviceRemoved, EpochChainRefused, PairingCodeShown
from client.core.storage import ProfileStore
from relay.handlers import HANDLERS
from shared import pairing, wire
from shared.boxes import StorageKey
from shared.envelope import decode_sealed
from shared.epoch import grant_context, open_head
from shared.errors import ProtocolError, VerificationError
from shared.mailbox import epoch_mailbox_key, open_message
from shared.session import Session
from tests.conftest import approve, eventually, history, profile_contents

pytestmark = pytest.mark.backends()


async def test_approval_codes_match_and_adding_a_device_keeps_the_safety_number(accounts):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hi")
    await eventually(lambda: bob.messages("alice"))
    before = bob.safety_number("alice")
    laptop = await accounts.pending("alice", "Laptop")
    with pytest.raises(PermissionError, match="compare the pairing code"):
        await alice.approve_device(laptop.device_id)  # no code compared yet
    code = await approve(alice, laptop)
    assert len(code) == 7 and code[3] == " "
    await eventually(lambda: laptop.is_member and laptop.holds_account_key)
    await alice.send_text("bob", "to both my devices")
    await eventually(lambda: bob.directory.known("alice").entry(laptop.device_id) is not None)
    await laptop.directory.refresh("bob")
    assert bob.safety_number("alice") == before == laptop.safety_number("bob")


async def test_a_rejected_device_is_told_and_forgotten(accounts, relay):
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    rejected = []
    laptop.add_listener(
        lambda e: rejected.append(e) if type(e).__name__ == "PairingRejected" else None
    )
    await laptop.offer_pairing()
    await alice.pairing_code(laptop.device_id)
    await alice.reject_device(laptop.device_id)
    await eventually(lambda: rejected, message="the new device hears it was rejected")
    assert relay.relay.store.device(laptop.device_id) is None
    assert await alice.pending_devices() == []


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_a_relay_in_the_middle_cannot_make_the_codes_match(accounts, relay, monkeypatch):
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown: list[str] = []
    laptop.add_listener(lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None)
    await laptop.offer_pairing()
    # The relay shows alice its own storage key for the laptop (to get the grant sealed to it).
    evil = StorageKey.generate()
    db = relay.relay.store._db
    db.execute(
        "UPDATE devices SET storage_key = ? WHERE device_id = ?", (evil.public, laptop.device_id)
    )
    db.commit()
    with pytest.raises(VerificationError, match="commitment"):
        await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown)
    await laptop.offer_pairing()  # that request is spent: the user asks again on the laptop
    # A cleverer relay also swaps the commitment for one of its own and the revealed nonce for the
    # one it committed to: alice's check passes, but the two codes differ.
    own_nonce = os.urandom(pairing.NONCE)
    row = relay.relay.store.device(laptop.device_id)
    substituted = pairing.NewDeviceKeys(
        device_id=row.device_id,
        sign_public=row.sign_public,
        storage_key=evil.public,
        identity_key=row.identity_key,
    )
    db.execute(
        "UPDATE devices SET pairing_commitment = ? WHERE device_id = ?",
        (pairing.commitment(own_nonce, substituted), laptop.device_id),
    )
    db.commit()
    forward = HANDLERS[wire.PairingSend]

    async def swap_reveal(session, frame):
        message = pairing.decode(frame.payload)
        if isinstance(message, pairing.Reveal):
            tampered = pairing.encode(pairing.Reveal(session=message.session, nonce=own_nonce))
            frame = type(frame)(rid=frame.rid, to_device=frame.to_device, payload=tampered)
        return await forward(session, frame)

    monkeypatch.setitem(HANDLERS, wire.PairingSend, swap_reveal)
    shown.clear()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown)
    assert code != shown[-1]  # the user sees two different codes and does not approve


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_a_revoked_device_cannot_read_anything_written_after(accounts, relay, tmp_path):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.setup_recovery()
    doomed = await accounts.add_device(alice, "Old phone")
    for i in range(3):
        await bob.send_text("alice", f"before {i}")
    await eventually(lambda: len(history(doomed, "bob")) == 3)
    await doomed.wait_saved()
    await alice.wait_saved()
    removed = []
    doomed.add_listener(lambda e: removed.append(e) if isinstance(e, DeviceRemoved) else None)

    await alice.remove_device(doomed.device_id)
    await eventually(lambda: removed and doomed.removed, message="the device learns it was removed")
    after = [f"after revocation {i}" for i in range(3)]
    await alice.send_text("bob", after[0])
    await bob.send_text("alice", after[1])
    await eventually(lambda: len(history(alice, "bob")) == 5 and len(history(bob, "alice")) == 5)
    await bob.send_text("alice", after[2])
    await eventually(lambda: len(history(alice, "bob")) == 6)
    await alice.wait_saved()
    await bob.wait_saved()

    # Everything the removed device has: its profile (all keys it ever held, its sessions, the
    # epoch roots it knew) and a full copy of the relay's database and files.
    await doomed.close()
    accounts.clients.remove(doomed)
    stolen = ProfileStore(shutil.copytree(doomed.profile_dir, tmp_path / "stolen"))
    relay_copy = tmp_path / "relay-copy.sqlite3"
    # A backup from a connection with a write in progress waits forever (and this is the
    # relay's loop): commit what the relay has written so far first.
    relay.relay.store._db.commit()
    with sqlite3.connect(relay_copy) as target:
        relay.relay.store._db.backup(target)
    shutil.copytree(relay.data_dir / "vault", tmp_path / "vault-copy")
    db = sqlite3.connect(relay_copy)
    storage = StorageKey(bytes(stolen.get("storage_seed")))
    roots = dict(
        stolen._db.execute("SELECT seq, root FROM epochs WHERE root IS NOT NULL").fetchall()
    )
    sessions = [row[0] for row in stolen._db.execute("SELECT state FROM sessions").fetchall()]
    texts = [t.encode() for t in after]

    # 1. Its database holds none of the new messages; it can still read what it had. (Read
    # decrypted, with its key: the raw files are encrypted and would hold no text anyway.)
    dump = profile_contents(stolen)
    assert not any(t in dump for t in texts)
    assert [m.body for m in stolen.thread_messages("bob") if not m.system] == [
        f"before {i}" for i in range(3)
    ]
    # 2. No envelope in any queue opens with any of its sessions.
    opened = 0
    for (payload,) in db.execute("SELECT payload FROM queue"):
        for state in sessions:
            try:
                await Session.load(state).decrypt(decode_sealed(payload))
                opened += 1
            except ProtocolError:
                pass
    assert opened == 0
    # 3. Grants: with its storage key and each grant's own context, it opens its grants of the
    # epochs it belonged to, and none of the epoch opened by the revocation.
    amk = db.execute("SELECT amk_public FROM accounts WHERE username = 'alice'").fetchone()[0]
    heads = {
        seq: open_head(signed, "alice", amk)
        for seq, signed in db.execute(
            "SELECT seq, signed_head FROM epochs WHERE username = 'alice'"
        )
    }
    newest_known = max(roots)
    opens = {}
    for seq, member_id, sealed in db.execute(
        "SELECT seq, member_id, sealed FROM grants WHERE username = 'alice'"
    ):
        member = heads[seq].member(member_id)
        try:
            storage.open(sealed, grant_context("alice", seq, member))
            opens[seq] = True
        except ProtocolError:
            opens.setdefault(seq, False)
    assert opens[newest_known] is True  # the procedure works on what it was given
    assert [seq for seq, ok in opens.items() if seq > newest_known and ok] == []
    assert any(seq > newest_known for seq in opens)
    # 4. Mailbox items: the old ones open with its roots, the new ones with none.
    readable, unreadable = [], []
    for tid, mid, epoch, sealed in db.execute(
        "SELECT thread_id, message_id, epoch, sealed FROM mailbox WHERE username = 'alice'"
    ):
        body = None
        for seq, root in roots.items():
            try:
                body = open_message(
                    epoch_mailbox_key(root, "alice", seq), "alice", tid, mid, epoch, sealed
                ).body
            except ProtocolError:
                continue
        (readable if body is not None else unreadable).append(body or epoch)
    assert sorted(readable) == [f"before {i}" for i in range(3)]
    assert len(unreadable) == 3 and all(epoch > newest_known for epoch in unreadable)
    stolen.close()


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_a_hostile_relay_cannot_hide_a_revocation(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    phone = await accounts.add_device(alice, "Phone")
    doomed = await accounts.add_device(alice, "Old laptop")
    await bob.send_text("alice", "hello all three")
    await eventually(lambda: all(len(history(d, "bob")) == 1 for d in (alice, phone, doomed)))
    db = relay.relay.store._db
    old_list = db.execute(
        "SELECT version, signed_list FROM device_lists WHERE username = 'alice'"
    ).fetchone()
    old_row = db.execute(
        "SELECT * FROM devices WHERE device_id = ?", (doomed.device_id,)
    ).fetchone()
    phone = await accounts.reopen(phone)
    await accounts.stop(phone)  # the phone is offline while alice revokes

    await alice.remove_device(doomed.device_id)
    await eventually(lambda: doomed.removed)
    # The relay now pretends nothing happened: the old list, the removed device back, the new
    # epoch gone.
    newest = db.execute("SELECT max(seq) FROM epochs WHERE username = 'alice'").fetchone()[0]
    db.execute("DELETE FROM epochs WHERE username = 'alice' AND seq = ?", (newest,))
    db.execute(
        "UPDATE device_lists SET version = ?, signed_list = ? WHERE username = 'alice'", old_list
    )
    db.execute("INSERT INTO devices VALUES (" + ",".join("?" * len(old_row)) + ")", old_row)
    db.execute("INSERT INTO list_members VALUES ('alice', ?)", (doomed.device_id,))
    db.commit()
    relay.relay.forget_members()

    refused = []
    phone = await accounts.start(phone)
    phone.add_listener(lambda e: refused.append(e) if isinstance(e, EpochChainRefused) else None)
    # The phone learns the new list end to end from alice's desktop, and keeps it.
    await eventually(
        lambda: (
            phone.directory.known("alice") is not None
            and doomed.device_id not in phone.directory.known("alice").device_ids
        ),
        message="the phone learns of the revocation despite the relay",
    )
    assert (await phone.directory.refresh("alice")).version == old_list[0] + 1  # old one refused
    await eventually(lambda: refused, message="the phone refuses the truncated epoch chain")
    # Bob learnt it the same way; neither encrypts to the removed device any more.
    await eventually(lambda: doomed.device_id not in bob.directory.known("alice").device_ids)
    await phone.send_text("bob", "from the phone")
    await bob.send_text("alice", "from bob")
    await eventually(
        lambda: (
            phone._store.message(phone.messages("bob")[-1].message_id).status.value == "failed"
            or relay.relay.store.queue_length(doomed.device_id) > 0
        ),
        timeout=20,
    )
    assert relay.relay.store.queue_length(doomed.device_id) == 0
