"""Who sent a message is what the sender's session and payload say, never only the relay's label.

The relay (its database in the attacker's hands) makes an account whose list claims Bob's device,
relabels queued envelopes, or starts a session with its own identity key in Bob's name: Alice
never shows Bob's words under another name, nor the relay's words under Bob's.
"""

from __future__ import annotations

import time

import msgspec
import pytest

from client.core.client import AriadneClient
from client.core.directory import UnknownUser
from client.core.events import DecryptionFailed, DeviceListRefused, MessageStatus
from shared.device_list import DeviceEntry, first_device_list, next_device_list, open_device_list
from shared.envelope import (
    Origin,
    Text,
    decode_sealed,
    encode_payload,
    encode_sealed,
    new_message_id,
)
from shared.errors import VerificationError
from shared.identity import SigningKey, device_id_for
from shared.session import initiate_session, load_x3dh_state, new_x3dh_state, session_binding
from tests.conftest import eventually


class Attacker:
    """The relay's store, edited through the relay's own connection."""

    def __init__(self, relay) -> None:
        self.relay = relay.relay
        self.db = relay.relay.store._db

    def queued_for(self, device_id: str) -> list[tuple[int, str, str, int, bytes]]:
        return self.db.execute(
            "SELECT seq, sender_user, sender_device, server_ts, payload FROM queue"
            " WHERE device_id = ? ORDER BY seq",
            (device_id,),
        ).fetchall()

    def relabel(self, seq: int, sender_user: str, sender_device: str) -> None:
        self.db.execute(
            "UPDATE queue SET sender_user = ?, sender_device = ? WHERE seq = ?",
            (sender_user, sender_device, seq),
        )
        self.db.commit()

    def enqueue(self, device_id: str, sender_user: str, sender_device: str, payload: bytes) -> None:
        self.db.execute(
            "INSERT INTO queue (device_id, sender_user, sender_device, server_ts, payload)"
            " VALUES (?, ?, ?, ?, ?)",
            (device_id, sender_user, sender_device, time.time_ns() // 1000, payload),
        )
        self.db.commit()

    def make_account(
        self, username: str, device: DeviceEntry, key: SigningKey | None = None
    ) -> None:
        """An account the relay made up, with lists signed by its own account key. With the
        claimed device's signing ``key`` the device authors the first list alone; without it (a
        device of someone else's) a device of the relay's own authors the first list and then a
        second one adding the claimed device."""
        amk = SigningKey.generate()
        if key is not None:
            signed = first_device_list(amk, username, device, key)
            members = [device.device_id]
        else:
            own_key = SigningKey.generate()
            own = msgspec.structs.replace(
                device,
                device_id=device_id_for(own_key.public),
                name="Relay's own",
                sign_public=own_key.public,
                identity_key=bytes(31) + b"\x03",
            )
            first = first_device_list(amk, username, own, own_key)
            signed = next_device_list(
                amk, own_key, open_device_list(first, username, amk.public), first, add=device
            )
            members = [own.device_id, device.device_id]
        version = open_device_list(signed, username, amk.public).version
        self.db.execute(
            "INSERT INTO accounts VALUES (?, 'not a hash', ?, 0)", (username, amk.public)
        )
        self.db.execute("INSERT INTO device_lists VALUES (?, ?, ?)", (username, version, signed))
        self.db.executemany(
            "INSERT INTO list_members VALUES (?, ?)", [(username, m) for m in members]
        )
        self.db.commit()
        self.relay.forget_members(username)


def failures_of(client: AriadneClient) -> list[DecryptionFailed]:
    seen: list[DecryptionFailed] = []
    client.add_listener(lambda e: seen.append(e) if isinstance(e, DecryptionFailed) else None)
    return seen


def refusals_of(client: AriadneClient) -> list[DeviceListRefused]:
    seen: list[DeviceListRefused] = []
    client.add_listener(lambda e: seen.append(e) if isinstance(e, DeviceListRefused) else None)
    return seen


def bodies(client: AriadneClient) -> list[tuple[str, str]]:
    """Every readable message on the device, with the thread it is filed under."""
    return [
        (thread, m.body)
        for thread in client.threads()
        for m in client.messages(thread)
        if m.status in (MessageStatus.RECEIVED, MessageStatus.READ)
    ]


@pytest.fixture
async def talking(accounts):
    """Alice and Bob with sessions both ways."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await alice.send_text("bob", "hello")
    await eventually(lambda: len(bob.messages("alice")) == 1)
    await bob.send_text("alice", "hi")
    await eventually(lambda: len(alice.messages("bob")) == 2)
    return alice, bob


async def test_an_account_the_relay_made_with_bobs_device_does_not_get_bobs_messages(
    talking, accounts, relay
):
    alice, bob = talking
    attacker = Attacker(relay)
    bob_device = alice.directory.known("bob").entry(bob.device_id)
    attacker.make_account("mallory", bob_device)
    await accounts.stop(alice)
    await bob.send_text("alice", "only bob wrote this")
    await eventually(lambda: len(attacker.queued_for(alice.device_id)) == 1)
    attacker.relabel(attacker.queued_for(alice.device_id)[0][0], "mallory", bob.device_id)

    alice = await accounts.start(alice)
    failed = failures_of(alice)
    await eventually(lambda: failed, message="the relabelled envelope fails")
    assert failed[0].sender_user == "mallory"
    assert ("mallory", "only bob wrote this") not in bodies(alice)
    assert [m.body for m in alice.messages("mallory") if not m.undecryptable] == []

    await bob.send_text("alice", "still bob")  # honest delivery: the session is intact
    await eventually(lambda: alice.messages("bob")[-1].body == "still bob")


@pytest.mark.parametrize("claim", ["device id", "identity key"])
async def test_a_client_refuses_a_list_naming_another_users_device(talking, relay, claim):
    alice, bob = talking
    attacker = Attacker(relay)
    bob_device = alice.directory.known("bob").entry(bob.device_id)
    if claim == "device id":  # Bob's device, with an identity key of its own
        claimed = msgspec.structs.replace(bob_device, identity_key=bytes(31) + b"\x01")
        key = None
    else:  # a device of its own, with Bob's identity key
        key = SigningKey.generate()
        claimed = msgspec.structs.replace(
            bob_device, device_id=device_id_for(key.public), sign_public=key.public
        )
    attacker.make_account("mallory", claimed, key)
    refused = refusals_of(alice)
    with pytest.raises(UnknownUser):
        await alice.directory.refresh("mallory")
    assert refused and refused[0].username == "mallory"
    assert "bob's device list" in refused[0].reason
    assert alice.directory.known("mallory") is None


async def test_an_envelope_relabelled_as_another_device_of_the_sender_is_caught(
    talking, accounts, relay
):
    alice, bob = talking
    laptop = await accounts.add_device(bob, "Laptop")
    await alice.send_text("bob", "to both of bob's devices")
    await eventually(
        lambda: "to both of bob's devices" in [m.body for m in laptop.messages("alice")]
    )
    await laptop.send_text("alice", "from the laptop")
    await eventually(lambda: alice.messages("bob")[-1].body == "from the laptop")

    await accounts.stop(alice)
    await bob.send_text("alice", "from the desktop")
    attacker = Attacker(relay)
    await eventually(lambda: len(attacker.queued_for(alice.device_id)) == 1)
    attacker.relabel(attacker.queued_for(alice.device_id)[0][0], "bob", laptop.device_id)
    alice = await accounts.start(alice)
    failed = failures_of(alice)
    await eventually(lambda: failed, message="the relabelled envelope fails")
    assert failed[0].sender_device == laptop.device_id
    assert "from the desktop" not in [body for _, body in bodies(alice)]


async def test_the_sender_named_inside_the_payload_must_match_the_envelope(
    talking, accounts, relay
):
    """Bob's session authenticates a payload that names another of his devices than the one
    the envelope names (what a relabelled envelope would carry if a session were found under the
    wrong label): shown as undecryptable, with the reason."""
    alice, bob = talking
    laptop = await accounts.add_device(bob, "Laptop")
    alice_entry = bob.directory.known("alice").entry(alice.device_id)
    await accounts.stop(alice)
    wrong = Text(
        origin=Origin(user="bob", device=laptop.device_id, counter=10**6),
        message_id=new_message_id(),
        peer="alice",
        sent_at=int(time.time() * 1000),
        body="who sent this?",
    )
    peer = ("alice", alice_entry.device_id)
    async with bob.sessions.locks[peer]:
        sealed = await bob.sessions.encrypt(peer, encode_payload(wrong))
    bob._store.commit()
    Attacker(relay).enqueue(alice.device_id, "bob", bob.device_id, encode_sealed(sealed))

    alice = await accounts.start(alice)
    failed = failures_of(alice)
    await eventually(lambda: failed, message="the mismatch is reported")
    assert "the message says bob's device " + laptop.device_id in failed[0].reason
    assert "who sent this?" not in [body for _, body in bodies(alice)]
    assert [m for m in alice.messages("bob") if m.undecryptable]


async def test_a_session_start_from_a_key_not_on_the_senders_list_is_refused(
    talking, accounts, relay
):
    """The relay starts a session in Bob's name with its own identity key (it has Alice's
    bundle): the binding and every other input are right, only the key is not Bob's."""
    alice, bob = talking
    await accounts.stop(alice)
    bundle = relay.relay.store.take_bundle(alice.device_id)
    relay.relay.store._db.commit()
    forged = Text(
        origin=Origin(user="bob", device=bob.device_id, counter=10**6),
        message_id=new_message_id(),
        peer="alice",
        sent_at=int(time.time() * 1000),
        body="forged in bob's name",
    )
    _, sealed = await initiate_session(
        new_x3dh_state(),
        bundle.identity_key,
        bundle.signed_pre_key,
        bundle.signed_pre_key_sig,
        bundle.one_time_pre_key,
        session_binding(("bob", bob.device_id), ("alice", alice.device_id)),
        encode_payload(forged),
    )
    Attacker(relay).enqueue(alice.device_id, "bob", bob.device_id, encode_sealed(sealed))

    alice = await accounts.start(alice)
    failed = failures_of(alice)
    await eventually(lambda: failed, message="the forged start is refused")
    assert "not on the sender's device list" in failed[0].reason
    assert "forged in bob's name" not in [body for _, body in bodies(alice)]


async def test_a_one_time_pre_key_is_deleted_once_the_first_message_authenticates(accounts, relay):
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await accounts.stop(alice)
    await bob.send_text("alice", "first contact")
    attacker = Attacker(relay)
    await eventually(lambda: len(attacker.queued_for(alice.device_id)) == 1)
    header = decode_sealed(attacker.queued_for(alice.device_id)[0][4]).x3dh
    assert header is not None and header.one_time_pre_key is not None

    alice = await accounts.start(alice)
    await eventually(lambda: [m.body for m in alice.messages("bob")] == ["first contact"])
    assert header.one_time_pre_key not in alice._x3dh.bundle.pre_keys
    stored = load_x3dh_state(str(alice._store.get("x3dh_state")))
    assert header.one_time_pre_key not in stored.bundle.pre_keys


async def test_a_forged_first_message_does_not_burn_the_one_time_pre_key(accounts, relay):
    """The relay hands out one of Alice's one-time pre-keys and forges a session start with it
    under Bob's (public) identity key: it does not authenticate, and the key stays usable."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await accounts.stop(alice)
    await bob.directory.get("alice")
    bob_identity = bob.directory.known("bob").entry(bob.device_id).identity_key
    bundle = relay.relay.store.take_bundle(alice.device_id)
    relay.relay.store._db.commit()
    _, sealed = await initiate_session(
        new_x3dh_state(),
        bundle.identity_key,
        bundle.signed_pre_key,
        bundle.signed_pre_key_sig,
        bundle.one_time_pre_key,
        session_binding(("bob", bob.device_id), ("alice", alice.device_id)),
        b"\x00" * 64,
    )
    assert sealed.x3dh is not None
    forged = msgspec.structs.replace(
        sealed, x3dh=msgspec.structs.replace(sealed.x3dh, identity_key=bob_identity)
    )
    attacker = Attacker(relay)
    attacker.enqueue(alice.device_id, "bob", bob.device_id, encode_sealed(forged))

    alice = await accounts.start(alice)
    failed = failures_of(alice)
    await eventually(lambda: failed, message="the forged start fails")
    await eventually(lambda: not attacker.queued_for(alice.device_id), message="acknowledged")
    assert bundle.one_time_pre_key in alice._x3dh.bundle.pre_keys
    stored = load_x3dh_state(str(alice._store.get("x3dh_state")))
    assert bundle.one_time_pre_key in stored.bundle.pre_keys

    # The relay now gives Bob that very pre-key: the genuine session starts with it.
    attacker.db.execute("DELETE FROM one_time_pre_keys WHERE device_id = ?", (alice.device_id,))
    attacker.db.execute(
        "INSERT INTO one_time_pre_keys VALUES (?, ?)", (alice.device_id, bundle.one_time_pre_key)
    )
    attacker.db.commit()
    await bob.send_text("alice", "the real first message")
    await eventually(lambda: alice.messages("bob")[-1].body == "the real first message")
    assert bundle.one_time_pre_key not in alice._x3dh.bundle.pre_keys


async def test_acknowledging_a_key_change_refuses_a_device_another_user_now_holds(talking, relay):
    """Bob's list under a new account key waits for Alice's acknowledgement; meanwhile another
    account's list claims its device. Acknowledging it then must not give the device two users."""
    alice, bob = talking
    attacker = Attacker(relay)
    key = SigningKey.generate()
    new_device = msgspec.structs.replace(
        alice.directory.known("bob").entry(bob.device_id),
        device_id=device_id_for(key.public),
        sign_public=key.public,
        identity_key=bytes(31) + b"\x02",
    )
    new_amk = SigningKey.generate()
    attacker.db.execute(
        "UPDATE device_lists SET signed_list = ? WHERE username = 'bob'",
        (first_device_list(new_amk, "bob", new_device, key),),
    )
    attacker.db.commit()
    await alice.directory.refresh("bob")
    assert alice.key_changed("bob")
    attacker.make_account("mallory", new_device, key)
    assert (await alice.directory.refresh("mallory")).entry(new_device.device_id) is not None
    with pytest.raises(VerificationError, match="mallory's device list"):
        alice.acknowledge_key_change("bob")
    assert alice.directory.known("bob").entry(bob.device_id) is not None
