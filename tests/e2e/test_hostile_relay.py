"""A malicious relay (the real relay, its database in the attacker's hands) cannot read, forge,
replay, add devices or roll device lists back (PROTOCOL.md §8 "Threat model")."""

from __future__ import annotations

import msgspec
import pytest

from client.core.client import SendBlocked
from client.core.events import ContactKeyChanged, DecryptionFailed, DeviceListRefused, MessageStatus
from shared.device_list import DeviceEntry, DeviceList, SignedDeviceList, sign_device_list
from shared.envelope import decode_sealed
from shared.identity import SigningKey, device_id_for
from tests.conftest import eventually

pytestmark = pytest.mark.backends()


class Attacker:
    """Full control of the relay's store, through the relay's own connection."""

    def __init__(self, relay) -> None:
        self.relay = relay.relay
        self.db = relay.relay.store._db

    def rows_for(self, device_id: str) -> list[tuple[int, str, str, int, bytes]]:
        return self.db.execute(
            "SELECT seq, sender_user, sender_device, server_ts, payload FROM queue"
            " WHERE device_id = ? ORDER BY seq",
            (device_id,),
        ).fetchall()

    def replace_payload(self, seq: int, payload: bytes) -> None:
        self.db.execute("UPDATE queue SET payload = ? WHERE seq = ?", (payload, seq))
        self.db.commit()

    def insert(self, device_id: str, row: tuple[int, str, str, int, bytes]) -> None:
        self.db.execute(
            "INSERT INTO queue (device_id, sender_user, sender_device, server_ts,"
            " payload) VALUES (?, ?, ?, ?, ?)",
            (device_id, *row[1:]),
        )
        self.db.commit()

    def serve_device_list(self, username: str, signed: bytes, members: list[str]) -> None:
        self.db.execute(
            "UPDATE device_lists SET signed_list = ? WHERE username = ?", (signed, username)
        )
        self.db.execute("DELETE FROM list_members WHERE username = ?", (username,))
        self.db.executemany(
            "INSERT INTO list_members VALUES (?, ?)", [(username, m) for m in members]
        )
        self.db.commit()
        self.relay.forget_members(username)

    def device_list(self, username: str) -> bytes:
        return self.db.execute(
            "SELECT signed_list FROM device_lists WHERE username = ?", (username,)
        ).fetchone()[0]

    def register_device(self, username: str, key: SigningKey) -> str:
        device_id = device_id_for(key.public)
        self.db.execute(
            "INSERT INTO devices (device_id, username, name, sign_public, storage_key,"
            " registered_at, last_seen, identity_key, signed_pre_key,"
            " signed_pre_key_sig) VALUES (?, ?, 'evil', ?, ?, 0, 0, ?, ?, ?)",
            (device_id, username, key.public, bytes(32), bytes(32), bytes(32), bytes(64)),
        )
        self.db.commit()
        return device_id


def flip_bit(payload: bytes, bit: int) -> bytes:
    data = bytearray(payload)
    data[-1 - bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@pytest.fixture
async def pair(accounts):
    """Alice and Bob with sessions both ways and no receipt still in flight, so each queue holds
    exactly what a test sends next."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    hello = await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    hi = await bob.send_text("alice", "hi")
    await eventually(lambda: len(alice.messages("bob")) == 2)
    await eventually(
        lambda: (
            alice._store.message(hello.message_id).status is MessageStatus.DELIVERED
            and bob._store.message(hi.message_id).status is MessageStatus.DELIVERED
        ),
        message="both receipts consumed",
    )
    return alice, bob


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_flipped_bit_is_rejected_and_the_session_survives(pair, accounts, relay):
    alice, bob = pair
    await accounts.stop(bob)
    await alice.send_text("bob", "tampered with")
    await alice.send_text("bob", "intact")
    attacker = Attacker(relay)
    await eventually(lambda: len(attacker.rows_for(bob.device_id)) == 2)
    first = attacker.rows_for(bob.device_id)[0]
    attacker.replace_payload(first[0], flip_bit(first[4], bit=5))

    bob = await accounts.start(bob)
    failures = []
    bob.add_listener(lambda e: failures.append(e) if isinstance(e, DecryptionFailed) else None)
    await eventually(lambda: len(bob.messages("alice")) == 4)
    shown = bob.messages("alice")
    assert [m.status for m in shown[2:]] == [MessageStatus.UNDECRYPTABLE, MessageStatus.RECEIVED]
    assert shown[3].body == "intact"
    assert len(failures) == 1 and failures[0].sender_user == "alice"

    await bob.send_text("alice", "still talking")
    await eventually(lambda: alice.messages("bob")[-1].body == "still talking")


def bits_to_flip(payload: bytes) -> list[int]:
    """Bit positions across a whole encoded envelope: a few in each field of the X3DH header,
    the ratchet key, both counters (their low bits: a small change the ratchet alone would not
    notice) and the ciphertext, then a sample spread evenly over every byte."""
    sealed = decode_sealed(payload)
    assert sealed.x3dh is not None
    bits = []
    for value in (
        sealed.x3dh.identity_key,
        sealed.x3dh.ephemeral_key,
        sealed.x3dh.signed_pre_key,
        sealed.x3dh.one_time_pre_key,
        sealed.ratchet_pub,
    ):
        at = payload.index(value)
        bits += [8 * at, 8 * (at + 16) + 3, 8 * (at + 31) + 7]  # the last: the top bit
    for key in (b"\xb5previous_chain_length", b"\xacchain_length"):
        at = payload.index(key) + len(key)
        bits += [8 * at, 8 * at + 1]
    at = payload.index(sealed.ciphertext)
    bits += [8 * at, 8 * (at + len(sealed.ciphertext) // 2), 8 * len(payload) - 1]
    bits += range(5, 8 * len(payload), 8 * len(payload) // 24)
    return bits


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_every_bit_of_an_envelope_is_authenticated(accounts, relay):
    """One flipped bit in each of many envelopes, over the whole envelope, headers included:
    each is refused ("couldn't decrypt", never a wrong text), and the session works after."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await accounts.stop(bob)
    attacker = Attacker(relay)
    await alice.send_text("bob", "first 000")  # until bob answers, each envelope repeats X3DH
    await eventually(lambda: len(attacker.rows_for(bob.device_id)) == 1)
    positions = bits_to_flip(attacker.rows_for(bob.device_id)[0][4])
    for i in range(len(positions)):
        await alice.send_text("bob", f"probe {i:03d}")  # one length: one layout
    await alice.send_text("bob", "last")
    await eventually(lambda: len(attacker.rows_for(bob.device_id)) == len(positions) + 2)
    rows = attacker.rows_for(bob.device_id)
    assert {len(row[4]) for row in rows[:-1]} == {len(rows[0][4])}
    for row, bit in zip(rows[1:], positions, strict=False):
        data = bytearray(row[4])
        data[bit // 8] ^= 1 << (bit % 8)
        attacker.replace_payload(row[0], bytes(data))

    bob = await accounts.start(bob)
    await eventually(lambda: len(bob.messages("alice")) == len(positions) + 2)
    received = bob.messages("alice")
    assert received[0].body == "first 000" and received[-1].body == "last"
    assert all(m.undecryptable for m in received[1:-1])
    await bob.send_text("alice", "still talking")
    await eventually(lambda: alice.messages("bob")[-1].body == "still talking")
    await alice.send_text("bob", "and back")
    await eventually(lambda: bob.messages("alice")[-1].body == "and back")


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_replayed_envelope_is_dropped(pair, accounts, relay):
    alice, bob = pair
    await accounts.stop(bob)
    await alice.send_text("bob", "say it once")
    attacker = Attacker(relay)
    await eventually(lambda: len(attacker.rows_for(bob.device_id)) == 1)
    recorded = attacker.rows_for(bob.device_id)[0]
    bob = await accounts.start(bob)
    await eventually(lambda: not attacker.rows_for(bob.device_id), message="acknowledged")
    attacker.insert(bob.device_id, recorded)
    bob = await accounts.reopen(bob)  # the replay is delivered on the next connection
    await eventually(lambda: not attacker.rows_for(bob.device_id), message="replay consumed")
    bodies = [m.body for m in bob.messages("alice")]
    assert bodies.count("say it once") == 1
    assert not [m for m in bob.messages("alice") if m.undecryptable]


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_device_added_without_the_account_key_receives_nothing(pair, accounts, relay):
    alice, _bob = pair
    attacker = Attacker(relay)
    evil_key = SigningKey.generate()
    evil_id = attacker.register_device("bob", evil_key)
    genuine = msgspec.msgpack.decode(attacker.device_list("bob"), type=SignedDeviceList)
    body = msgspec.msgpack.decode(genuine.body, type=DeviceList)
    evil_entry = DeviceEntry(
        device_id=evil_id,
        name="Bob's new phone",
        sign_public=evil_key.public,
        identity_key=bytes(32),
        storage_key=bytes(32),
        added_at=0,
    )
    injected = msgspec.structs.replace(
        body, version=body.version + 1, devices=(*body.devices, evil_entry)
    )
    members = [d.device_id for d in injected.devices]
    refused = []
    alice.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)

    # 1. The genuine signature over a different body.
    forged = msgspec.msgpack.encode(
        SignedDeviceList(
            body=msgspec.msgpack.encode(injected),
            signature=genuine.signature,
            author_signature=genuine.author_signature,
        )
    )
    attacker.serve_device_list("bob", forged, members)
    message = await alice.send_text("bob", "for bob's eyes only")
    await eventually(
        lambda: alice._store.message(message.message_id).status is MessageStatus.FAILED,
        message="send refused",
    )
    assert refused and "signature" in refused[-1].reason

    # 2. A whole new chain signed by a key that is not bob's account key: to alice this is
    # bob's account key changing. Sending to bob pauses until she acknowledges it.
    other_amk = SigningKey.generate()
    resigned = sign_device_list(
        other_amk,
        evil_key,
        msgspec.structs.replace(
            injected,
            amk_public=other_amk.public,
            version=1,
            prev_hash=b"",
            devices=(evil_entry,),
            author=evil_id,
        ),
    )
    attacker.serve_device_list("bob", resigned, members)
    changed = []
    alice.add_listener(lambda e: changed.append(e) if isinstance(e, ContactKeyChanged) else None)
    await alice.directory.refresh("bob")
    assert changed and changed[0].username == "bob" and alice.key_changed("bob")
    with pytest.raises(SendBlocked):
        await alice.send_text("bob", "still for bob only")

    assert attacker.rows_for(evil_id) == []
    assert alice.directory.known("bob").device_ids == body.device_ids


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_rolled_back_device_list_is_refused(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    attacker = Attacker(relay)
    version_1 = attacker.device_list("alice")
    laptop = await accounts.add_device(alice, "Laptop")
    await bob.send_text("alice", "hi both")
    await eventually(lambda: len(laptop.messages("bob")) == 1)
    assert len(bob.directory.known("alice").devices) == 2

    attacker.serve_device_list("alice", version_1, [alice.device_id])
    refused = []
    bob.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)
    current = await bob.directory.refresh("alice")
    assert current.version == 2 and laptop.device_id in current.device_ids
    assert "rolled back" in refused[0].reason


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_acknowledging_a_new_account_key_resumes_sending_and_clears_verified(pair, relay):
    alice, _bob = pair
    alice.mark_verified("bob")
    attacker = Attacker(relay)
    genuine = msgspec.msgpack.decode(attacker.device_list("bob"), type=SignedDeviceList)
    body = msgspec.msgpack.decode(genuine.body, type=DeviceList)
    new_amk = SigningKey.generate()  # as if bob had started over with a new account key
    renewed = sign_device_list(
        new_amk,
        _bob.profile.sign_key,
        msgspec.structs.replace(
            body, amk_public=new_amk.public, version=1, prev_hash=b"", author=_bob.device_id
        ),
    )
    attacker.serve_device_list("bob", renewed, [d.device_id for d in body.devices])
    before = alice.safety_number("bob")
    await alice.directory.refresh("bob")
    assert alice.key_changed("bob") and alice.safety_number("bob") == before
    with pytest.raises(SendBlocked):
        await alice.send_text("bob", "paused")

    alice.acknowledge_key_change("bob")
    assert not alice.key_changed("bob") and not alice.is_verified("bob")
    assert alice.safety_number("bob") != before
    assert alice.messages("bob")[-1].body == "bob's safety number changed"
    await alice.send_text("bob", "sending again")  # no longer blocked
