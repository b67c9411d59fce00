"""A removed device keeps the account key: the list-author rule keeps it out. Every device-list
change is signed by the account key and by its author, a device of the list it replaces; the
relay takes a list only from its author, and every client checks the author itself. Members only
write to the account (list, epoch, mailbox, Inspect, password); a password change ends the old
password's logins. Real relay, real clients; the hostile relay is the real one with an attacker
at its store."""

from __future__ import annotations

import dataclasses
import os

import msgspec
import pytest

from client.core.client import AriadneClient, RegistrationError
from client.core.epochs import upload
from client.core.events import DeviceListRefused, EpochChainRefused, MessageStatus
from client.core.link import RelayError
from client.core.storage import ProfileStore
from relay import login
from shared import wire
from shared.boxes import StorageKey, derive, seal
from shared.device_list import list_hash, next_device_list, open_device_list, sign_device_list
from shared.epoch import AccountSecrets, EpochMember, SignedHead, open_epoch, open_head
from shared.errors import VerificationError
from shared.identity import SigningKey, device_id_for
from shared.recovery_code import virtual_device
from tests.conftest import FAST, PASSWORD, eventually, history


def _listen(client: AriadneClient, kind: type) -> list:
    seen: list = []
    client.add_listener(lambda e: seen.append(e) if isinstance(e, kind) else None)
    return seen


def _stored_list(relay, username: str) -> tuple[int, bytes]:
    return relay.relay.store.device_list(username)


def _comeback_epoch(removed: AriadneClient, relay, signed: bytes) -> wire.EpochUpload:
    """What a removed device can make for its comeback list: an epoch signed with the account
    key it kept, chained to the relay's newest head, over a root it makes up (it never learnt
    the real one)."""
    latest = relay.relay.store.latest_epoch("alice")
    amk = removed.account.key
    head = open_head(latest.signed_head, "alice", amk.public)
    device_list = open_device_list(signed, "alice", amk.public)
    members = [
        EpochMember(member_id=d.device_id, storage_key=d.storage_key) for d in device_list.devices
    ]
    return upload(
        open_epoch(
            amk,
            "alice",
            previous=(head, latest.signed_head, os.urandom(32)),
            members=members + list(head.virtual_members),
            device_list_hash=list_hash(signed),
            secrets=AccountSecrets(amk_seed=amk.seed, thread_key=os.urandom(32)),
        )
    )


async def _log_in_again(removed: AriadneClient) -> AriadneClient:
    """The removed device logs in again with the password, with its own keys: the relay forgot
    it, so it is a pending device of the account again, and it still holds the account key."""
    await removed.close()
    store = ProfileStore(removed.profile_dir)
    store.put("registration", "add")
    store.commit()
    again = AriadneClient(removed.profile_dir, store, FAST, PASSWORD)
    again.start()
    await again.wait_online()
    return again


@pytest.fixture
async def revoked(accounts):
    """alice (Desktop, Phone, and a Laptop she removed) and bob, who talk to each other."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    phone = await accounts.add_device(alice, "Phone")
    laptop = await accounts.add_device(alice, "Laptop")
    await bob.send_text("alice", "hello")
    await eventually(lambda: all(len(history(d, "bob")) == 1 for d in (alice, phone, laptop)))
    await alice.remove_device(laptop.device_id)
    await eventually(lambda: laptop.removed, message="the laptop learns it was removed")
    await eventually(lambda: laptop.device_id not in bob.directory.known("alice").device_ids)
    await eventually(lambda: laptop.device_id not in phone.directory.known("alice").device_ids)
    accounts.clients.remove(laptop)
    laptop = await _log_in_again(laptop)
    accounts.clients.append(laptop)
    return alice, phone, laptop, bob


async def test_a_removed_device_cannot_sign_itself_back_on_through_an_honest_relay(revoked, relay):
    alice, _phone, laptop, _bob = revoked
    version, current_signed = _stored_list(relay, "alice")
    current = open_device_list(current_signed, "alice", None)
    assert laptop.holds_account_key and laptop.device_id not in current.device_ids
    # It signs the current list with itself added, with the account key it kept: it is the
    # author, and it is not on the list it changes.
    comeback = next_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        current,
        current_signed,
        add=laptop.account_devices.own_entry(),
    )
    with pytest.raises(RelayError, match="not on the list it replaces"):
        await laptop.link.request(
            lambda rid: wire.PublishDeviceList(
                rid=rid, signed_list=comeback, epoch=_comeback_epoch(laptop, relay, comeback)
            )
        )
    # Naming the desktop as the author does not help: it cannot make the desktop's signature.
    body = open_device_list(comeback, "alice", None)
    posing = sign_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        msgspec.structs.replace(body, author=alice.device_id),
    )
    with pytest.raises(RelayError, match="author's signature"):
        await laptop.link.request(
            lambda rid: wire.PublishDeviceList(
                rid=rid, signed_list=posing, epoch=_comeback_epoch(laptop, relay, posing)
            )
        )
    assert _stored_list(relay, "alice")[0] == version
    assert laptop.device_id not in relay.relay.members("alice")


async def test_a_hostile_relay_that_stores_the_comeback_list_is_refused_by_every_client(
    revoked, relay
):
    alice, phone, laptop, bob = revoked
    version, current_signed = _stored_list(relay, "alice")
    current = open_device_list(current_signed, "alice", None)
    refusals = {
        c.device_name + c.username: _listen(c, DeviceListRefused) for c in (alice, phone, bob)
    }
    db = relay.relay.store._db

    def serve(signed: bytes, listed_version: int) -> None:
        db.execute(
            "UPDATE device_lists SET version = ?, signed_list = ? WHERE username = 'alice'",
            (listed_version, signed),
        )
        db.execute("INSERT INTO list_members VALUES ('alice', ?)", (laptop.device_id,))
        db.execute("DELETE FROM device_list_history WHERE username = 'alice'")
        db.commit()
        relay.relay.forget_members("alice")

    # The next version, and (in case a client accepted jumps more loosely) one two versions on.
    comeback = next_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        current,
        current_signed,
        add=laptop.account_devices.own_entry(),
    )
    serve(comeback, version + 1)
    for client in (alice, phone, bob):
        assert laptop.device_id not in (await client.directory.refresh("alice")).device_ids
    far = next_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        open_device_list(comeback, "alice", None),
        comeback,
        remove=phone.device_id,
    )
    db.execute(
        "DELETE FROM list_members WHERE username = 'alice' AND device_id = ?", (laptop.device_id,)
    )
    serve(far, version + 2)
    for client in (alice, phone, bob):
        known = await client.directory.refresh("alice")
        assert known.version == version and laptop.device_id not in known.device_ids
    for refused in refusals.values():
        assert len(refused) == 2
        assert all("not on the list it replaces" in r.reason for r in refused)
    # The relay now wants bob to encrypt to the laptop too; he would rather not send.
    message = await bob.send_text("alice", "not for the laptop")
    await eventually(
        lambda: bob._store.message(message.message_id).status is MessageStatus.FAILED,
        message="bob's send fails rather than reach the laptop",
    )
    assert relay.relay.store.queue_length(laptop.device_id) == 0


async def test_a_list_is_published_only_by_its_author(accounts, relay):
    alice = await accounts.create("alice")
    pending = await accounts.pending("alice", "Tablet")
    own = alice.own_devices()
    signed = alice.directory.signed("alice")
    # A list the desktop made (adding the tablet), published by the tablet instead.
    made = next_device_list(
        alice.account.key,
        alice.profile.sign_key,
        own,
        signed,
        add=pending.account_devices.own_entry(),
    )
    epoch = alice.epochs.next_epoch(
        alice.account.key, open_device_list(made, "alice", None), made, alice.account.secrets()
    )
    with pytest.raises(RelayError, match="not_a_member"):
        await pending.link.request(
            lambda rid: wire.PublishDeviceList(rid=rid, signed_list=made, epoch=upload(epoch))
        )
    assert _stored_list(relay, "alice")[0] == own.version


async def test_only_members_write_epochs_mailbox_inspect_and_the_password(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await bob.send_text("alice", "hi")
    await eventually(lambda: history(alice, "bob"))
    pending = await accounts.pending("alice", "Tablet")
    # The pending device holds the account key here (as a removed device would): still no.
    epoch = alice.epochs.next_epoch(
        alice.account.key,
        alice.own_devices(),
        alice.directory.signed("alice"),
        alice.account.secrets(),
    )
    with pytest.raises(RelayError, match="not_a_member"):
        await pending.link.request(lambda rid: wire.PublishEpoch(rid=rid, epoch=upload(epoch)))
    assert relay.relay.store.latest_epoch("alice").seq == alice.epochs.latest_seq()
    latest = alice.epochs.latest_seq()
    item = wire.MailboxItem(
        thread_id=b"t" * 16, message_id=b"m" * 16, ts=1, epoch=latest, sealed=os.urandom(64)
    )
    with pytest.raises(RelayError, match="pending_device"):
        await pending.link.request(lambda rid: wire.SaveMessages(rid=rid, items=[item]))
    with pytest.raises(RelayError, match="pending_device"):
        await pending.link.request(lambda rid: wire.Inspect(rid=rid, peer="bob"))
    with pytest.raises(RelayError, match="pending_device"):
        await pending.link.request(
            lambda rid: wire.ChangePassword(rid=rid, password="taken over by a pending device")
        )
    assert b"t" * 16 not in {tid for tid, _ in relay.relay.store.mailbox_threads("alice")}
    assert await alice.inspect("bob")  # a member may


async def test_a_password_change_ends_every_login_made_with_the_old_one(accounts, relay):
    alice = await accounts.create("alice")
    stranger = await accounts.pending("alice", "Laptop")  # someone who knew the password
    await alice.change_password("a brand new password")
    await eventually(
        lambda: (
            relay.relay.store.device(stranger.device_id) is None
            and stranger.device_id not in relay.relay.connections
        ),
        message="the pending device is forgotten and disconnected",
    )
    await eventually(lambda: not stranger.link.online.is_set(), message="its connection ended")
    assert relay.relay.store.devices_of("alice") == [relay.relay.store.device(alice.device_id)]
    with pytest.raises(RegistrationError) as refused:
        await accounts.pending("alice", "Old password")
    assert refused.value.code == "bad_credentials"
    again = await AriadneClient.add_device(
        accounts._dir("alice"), relay.url, "alice", "a brand new password", "New password"
    )
    accounts.clients.append(again)
    assert relay.relay.store.device(again.device_id) is not None


def _store_epoch(relay, opened) -> None:
    """The hostile relay stores an epoch as if a member had published it."""
    db = relay.relay.store._db
    db.execute(
        "INSERT INTO epochs VALUES ('alice', ?, ?, ?, ?)",
        (opened.seq, opened.signed_head, opened.prev_root_box, opened.account_box),
    )
    db.executemany(
        "INSERT INTO grants VALUES ('alice', ?, ?, ?)",
        [(member, opened.seq, sealed) for member, sealed in opened.grants.items()],
    )
    db.commit()


def _next_epoch_by_the_account_key(alice, *, prev_root: bytes, every_grant_carries_it: bool):
    """The next epoch for alice's current list, signed with her account key (which a removed
    device keeps), over ``prev_root`` as the previous root."""
    seq = alice.epochs.latest_seq()
    head = alice.epochs.head(seq)
    signed_head = alice._store.epoch(seq).signed_head
    if every_grant_carries_it:  # as if nobody had been a member before: every grant carries it
        head = msgspec.structs.replace(head, members=head.virtual_members)
    own = alice.own_devices()
    return open_epoch(
        alice.account.key,
        "alice",
        previous=(head, signed_head, prev_root),
        members=[EpochMember(member_id=d.device_id, storage_key=d.storage_key) for d in own.devices]
        + list(alice.epochs.head(seq).virtual_members),
        device_list_hash=list_hash(alice.directory.signed("alice")),
        secrets=alice.account.secrets(),
    )


async def test_a_continuing_member_refuses_a_grant_with_another_previous_root(accounts, relay):
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    await eventually(lambda: phone.epochs.latest() is not None)
    seq = alice.epochs.latest_seq()
    forged = _next_epoch_by_the_account_key(
        alice, prev_root=os.urandom(32), every_grant_carries_it=True
    )
    _store_epoch(relay, forged)
    for device in (alice, phone):
        refused = _listen(device, EpochChainRefused)
        await device.history.refresh_epochs()
        assert refused and "another previous root" in refused[-1].reason
        assert device.epochs.latest_seq() == seq  # nothing of it was stored


async def test_a_previous_root_box_that_is_not_the_previous_epochs_is_refused(accounts, relay):
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    await eventually(lambda: phone.epochs.latest() is not None)
    seq = alice.epochs.latest_seq()
    opened = _next_epoch_by_the_account_key(
        alice, prev_root=alice.epochs.root(seq), every_grant_carries_it=False
    )
    ctx = b"alice\x00" + opened.seq.to_bytes(8, "big")
    box = seal(derive(opened.root, b"ariadne/previous-root/v1", ctx), os.urandom(32), ctx)
    _store_epoch(relay, dataclasses.replace(opened, prev_root_box=box))
    refused = _listen(phone, EpochChainRefused)
    await phone.history.refresh_epochs()
    assert refused and "previous-root box does not match" in refused[-1].reason
    assert phone.epochs.latest_seq() == seq
    # A box that does not even open is refused the same way.
    db = relay.relay.store._db
    db.execute("UPDATE epochs SET prev_root_box = ? WHERE seq = ?", (os.urandom(60), opened.seq))
    db.commit()
    await phone.history.refresh_epochs()
    assert "previous-root box does not open" in refused[-1].reason
    assert phone.epochs.latest_seq() == seq


async def test_a_restoring_device_refuses_a_previous_root_that_is_not_the_previous_epochs(
    accounts, relay
):
    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    # The next epoch, signed with the account key, whose grant to the code's virtual device
    # brings a previous root of the signer's choosing.
    _store_epoch(
        relay,
        _next_epoch_by_the_account_key(
            alice, prev_root=os.urandom(32), every_grant_carries_it=False
        ),
    )
    device = await accounts.pending("alice")
    with pytest.raises(VerificationError, match="not the previous epoch's"):
        await device.restore(code=code)
    assert not device.is_member and not device.holds_account_key


async def test_an_epoch_head_with_one_flipped_signature_bit_is_refused(accounts, relay):
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    await eventually(lambda: phone.epochs.latest() is not None)
    seq = alice.epochs.latest_seq()

    def flipped(signed_head: bytes, bit: int) -> bytes:
        outer = msgspec.msgpack.decode(signed_head, type=SignedHead)
        signature = bytearray(outer.signature)
        signature[bit // 8] ^= 1 << (bit % 8)
        return msgspec.msgpack.encode(msgspec.structs.replace(outer, signature=bytes(signature)))

    # The relay refuses it from a member.
    epoch = alice.epochs.next_epoch(
        alice.account.key,
        alice.own_devices(),
        alice.directory.signed("alice"),
        alice.account.secrets(),
    )
    tampered = msgspec.structs.replace(upload(epoch), signed_head=flipped(epoch.signed_head, 77))
    with pytest.raises(RelayError, match="not signed by the account key"):
        await alice.link.request(lambda rid: wire.PublishEpoch(rid=rid, epoch=tampered))
    # A client refuses it from the relay.
    phone = await accounts.reopen(phone)
    await accounts.stop(phone)
    await alice.setup_recovery()  # a new list and its epoch while the phone is away
    db = relay.relay.store._db
    (signed_head,) = db.execute(
        "SELECT signed_head FROM epochs WHERE username = 'alice' AND seq = ?", (seq + 1,)
    ).fetchone()
    db.execute(
        "UPDATE epochs SET signed_head = ? WHERE username = 'alice' AND seq = ?",
        (flipped(signed_head, 300), seq + 1),
    )
    db.commit()
    phone = await accounts.start(phone)
    refused = _listen(phone, EpochChainRefused)
    await eventually(lambda: refused, message="the phone refuses the tampered head")
    assert "not signed by the account key" in refused[-1].reason
    assert phone.epochs.latest_seq() == seq


async def test_restore_checks_the_codes_endorsement_of_the_account_key(accounts, relay):
    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    real = alice.epochs.head(alice.epochs.latest_seq())
    (member,) = real.virtual_members
    # The relay makes a whole account of its own: its own account key, its own device, and the
    # code's virtual device (its public keys are in the real head) with the real endorsement,
    # which is of alice's key, not of the relay's. The grant to the virtual device opens.
    evil, evil_device = SigningKey.generate(), StorageKey.generate()
    evil_id = device_id_for(SigningKey.generate().public)
    opened = open_epoch(
        evil,
        "alice",
        previous=None,
        members=[EpochMember(member_id=evil_id, storage_key=evil_device.public), member],
        device_list_hash=bytes(32),
        secrets=AccountSecrets(amk_seed=evil.seed, thread_key=os.urandom(32)),
    )
    db = relay.relay.store._db
    db.execute("DELETE FROM epochs WHERE username = 'alice'")
    db.execute("DELETE FROM grants WHERE username = 'alice'")
    db.execute("UPDATE accounts SET amk_public = ? WHERE username = 'alice'", (evil.public,))
    db.commit()
    _store_epoch(relay, opened)
    assert virtual_device(code).member_id == member.member_id
    device = await accounts.pending("alice")
    with pytest.raises(VerificationError, match="endorsed"):
        await device.restore(code=code)
    assert device._store.get("amk_public") != evil.public and not device.holds_account_key


async def test_the_relay_refuses_mailbox_items_under_an_older_epoch(accounts, relay):
    alice = await accounts.create("alice")
    await alice.setup_recovery()
    latest = alice.epochs.latest_seq()
    assert latest == 2

    def item(epoch: int, n: int) -> wire.MailboxItem:
        return wire.MailboxItem(
            thread_id=b"t" * 16, message_id=bytes([n]) * 16, ts=n, epoch=epoch, sealed=bytes(64)
        )

    for items in ([item(1, 1)], [item(2, 2), item(1, 3)]):
        with pytest.raises(RelayError, match="stale_epoch"):
            await alice.link.request(lambda rid, i=items: wire.SaveMessages(rid=rid, items=i))
    assert relay.relay.store.mailbox_page("alice", b"t" * 16, None, 10) == []
    await alice.link.request(lambda rid: wire.SaveMessages(rid=rid, items=[item(2, 4)]))
    assert len(relay.relay.store.mailbox_page("alice", b"t" * 16, None, 10)) == 1


async def test_revocation_removes_the_devices_rows_pre_keys_queue_and_fan_outs(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    laptop = await accounts.add_device(alice, "Laptop")
    await laptop.send_text("bob", "from the laptop")  # the relay remembers its fan-out
    await eventually(lambda: history(bob, "alice"))
    await accounts.stop(laptop)
    await bob.send_text("alice", "waits in the laptop's queue")
    store, db = relay.relay.store, relay.relay.store._db

    def fan_outs() -> int:
        return db.execute(
            "SELECT count(*) FROM fan_outs WHERE device_id = ?", (laptop.device_id,)
        ).fetchone()[0]

    await eventually(lambda: store.queue_length(laptop.device_id) > 0)
    assert store.pre_key_count(laptop.device_id) > 0 and fan_outs() > 0
    assert store.device(laptop.device_id) is not None

    await alice.remove_device(laptop.device_id)
    assert store.device(laptop.device_id) is None
    assert store.queue_length(laptop.device_id) == 0
    assert store.pre_key_count(laptop.device_id) == 0
    assert fan_outs() == 0


async def test_a_device_that_missed_lists_checks_each_author_in_turn(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hi")
    await eventually(lambda: history(bob, "alice"))
    await accounts.stop(bob)
    laptop = await accounts.add_device(alice, "Laptop")  # version 2, made by the desktop
    phone = await accounts.add_device(laptop, "Phone")  # version 3, made by the laptop
    # The desktop says who made the change: the laptop, not "You".
    await eventually(
        lambda: any(m.body == "Laptop added a device 'Phone'" for m in alice.messages("bob")),
        message="the desktop names the laptop as the author",
    )
    assert any(m.body == "You added a device 'Laptop'" for m in alice.messages("bob"))
    # The relay withholds the lists sent to bob end to end; he fetches the newest himself, and
    # the one between, whose author (the desktop) vouches for the laptop.
    await eventually(lambda: relay.relay.store.queue_length(bob.device_id) >= 2)
    relay.relay.store._db.execute("DELETE FROM queue WHERE device_id = ?", (bob.device_id,))
    relay.relay.store._db.commit()
    bob = await accounts.start(bob)
    await bob.wait_online()
    refused = _listen(bob, DeviceListRefused)
    known = await bob.directory.refresh("alice")
    assert known.version == 3 and phone.device_id in known.device_ids and not refused


async def test_a_login_checked_while_the_password_changes_is_refused(accounts, relay, monkeypatch):
    alice = await accounts.create("alice")
    check = login.check_password

    def changed_meanwhile(password: str, stored: str) -> bool:
        ok = check(password, stored)
        # A member's ChangePassword commits while this login's password is being checked.
        relay.relay.store.set_password_hash("alice", login.hash_password("a brand new one"))
        return ok

    monkeypatch.setattr(login, "check_password", changed_meanwhile)
    with pytest.raises(RegistrationError) as refused:
        await accounts.pending("alice", "Racing")
    assert refused.value.code == "bad_credentials"
    assert [d.device_id for d in relay.relay.store.devices_of("alice")] == [alice.device_id]


async def test_a_new_recovery_codes_list_reaches_the_other_devices_end_to_end(accounts, relay):
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    phone = await accounts.reopen(phone)
    await accounts.stop(phone)
    db = relay.relay.store._db
    old = db.execute("SELECT version, signed_list FROM device_lists WHERE username = 'alice'")
    old = old.fetchone()
    await alice.setup_recovery()  # a list naming the code's key, while the phone is away
    # The relay hides it: it serves the older list and forgets the newer one.
    db.execute("UPDATE device_lists SET version = ?, signed_list = ? WHERE username = 'alice'", old)
    db.execute("DELETE FROM device_list_history WHERE username = 'alice' AND version > ?", old[:1])
    db.commit()
    phone = await accounts.start(phone)
    await eventually(
        lambda: (
            phone.directory.known("alice") is not None
            and phone.directory.known("alice").recovery_key is not None
        ),
        message="the phone learns the code's list from the desktop itself",
    )
