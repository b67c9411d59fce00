"""Checks of pairing and account changes that no other test would notice if they were removed:
each test here fails when its check is taken out. Real relay and clients; the hostile relay is
played by editing its store."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from client.core import outbox as outbox_module  # where a sent message is encoded
from client.core.epochs import upload
from client.core.events import PairingCodeShown, PairingRejected, PairingRequested
from client.core.link import RelayError
from client.core.pairing import PAIRING_SECONDS
from relay.handlers import HANDLERS
from shared import wire
from shared.device_list import next_device_list, open_device_list
from shared.identity import SigningKey
from tests.conftest import PASSWORD, eventually


def codes_on(client) -> list[str]:
    shown: list[str] = []
    client.add_listener(lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None)
    return shown


async def test_an_expired_code_is_never_shown_again_for_the_same_offer(accounts):
    """(Approver) a code compared more than a few minutes ago is not handed out again: asking
    for a code then runs a new exchange, which the spent offer does not answer."""
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    assert await alice.pairing_code(laptop.device_id) == code  # fresh: the same exchange
    later = time.monotonic() + PAIRING_SECONDS + 1
    alice.pairing.clock = lambda: later
    with pytest.raises(TimeoutError):
        await alice.pairing_code(laptop.device_id, timeout=1.5)
    assert shown == [code]


async def test_a_rejected_request_leaves_no_code_to_confirm(accounts):
    """(New device) once the approver rejects the request, the code on screen is void: confirming
    it afterwards pins no account key."""
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    rejected: list[PairingRejected] = []
    laptop.add_listener(lambda e: rejected.append(e) if isinstance(e, PairingRejected) else None)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    await alice.reject_device(laptop.device_id)
    await eventually(lambda: len(rejected) == 1, message="the laptop is told")
    assert laptop.pairing.offered is None
    with pytest.raises(LookupError):
        await laptop.confirm_pairing()
    assert laptop._store.get("amk_public") is None


async def test_a_too_short_new_password_is_a_clear_error_and_changes_nothing(accounts):
    alice = await accounts.create("alice")
    with pytest.raises(ValueError, match="characters"):
        await alice.change_password("short")
    # The old password still registers a device, and the connection still works.
    laptop = await accounts.pending("alice", "Laptop")
    assert not laptop.is_member
    await alice.change_password(PASSWORD + " and more")


async def test_a_request_without_an_identity_key_is_not_shown_to_the_approver(accounts, relay):
    """A pending device whose identity key the relay withholds cannot be paired (the code covers
    that key): its request is not offered to the user."""
    alice = await accounts.create("alice")
    requests: list[PairingRequested] = []
    alice.add_listener(lambda e: requests.append(e) if isinstance(e, PairingRequested) else None)
    laptop = await accounts.pending("alice", "Laptop")
    await laptop.offer_pairing()
    await eventually(lambda: len(requests) == 1, message="the honest request is shown")
    store = relay.relay.store
    store._db.execute(
        "UPDATE devices SET identity_key = NULL WHERE device_id = ?", (laptop.device_id,)
    )
    store._db.commit()
    requests.clear()
    await alice.account_devices.announce_pairing_offers()
    assert requests == []


async def test_once_a_recovery_code_exists_a_list_is_still_published_only_by_its_author(
    accounts, relay
):
    """The relay lets a device publish a list it did not author only when the author is the
    current list's recovery code (a device restoring with it); a list authored by a member device
    stays that device's to publish, whether or not the account has a code."""
    alice = await accounts.create("alice")
    await alice.setup_recovery()
    assert alice.own_devices().recovery_key is not None
    pending = await accounts.pending("alice", "Tablet")
    own = alice.own_devices()
    signed = alice.directory.signed("alice")
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
    assert relay.relay.store.device_list("alice")[0] == own.version


async def test_a_relay_serving_only_refused_lists_between_cannot_keep_a_client_asking(
    accounts, monkeypatch
):
    """A relay that answers every fetch with a full page of lists that do not verify makes no
    progress: the client stops asking and keeps the list it holds."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    held = await bob.directory.get("alice")
    fetches: list[int | None] = []
    serve = HANDLERS[wire.FetchDeviceList]

    async def junk_between(session, frame):
        reply = await serve(session, frame)
        if session.device_id != bob.device_id or frame.username != "alice":
            return reply
        fetches.append(frame.since)
        return wire.DeviceListReply(
            rid=reply.rid,
            signed_list=reply.signed_list,
            between=[b"not a list"] * wire.MAX_LISTS_BETWEEN,
        )

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, junk_between)
    assert await asyncio.wait_for(bob.directory.refresh("alice"), 10) == held
    assert fetches == [held.version]
    assert alice.own_devices() == held


async def test_an_approval_lists_the_keys_the_code_covered_not_what_the_relay_lists_later(
    accounts, monkeypatch
):
    """After the code was compared the relay lists another signing key for the new device: the
    approval still carries the compared key (the relay's would make a list nobody accepts)."""
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    await laptop.confirm_pairing()
    listed = HANDLERS[wire.ListDevices]

    async def swapped(session, frame):
        reply = await listed(session, frame)
        devices = []
        for device in reply.devices:
            if device.registration.device_id == laptop.device_id:
                other = msgspec.structs.replace(
                    device.registration, sign_public=SigningKey.generate().public
                )
                device = msgspec.structs.replace(device, registration=other)
            devices.append(device)
        return msgspec.structs.replace(reply, devices=devices)

    monkeypatch.setitem(HANDLERS, wire.ListDevices, swapped)
    await alice.approve_device(laptop.device_id)
    entry = alice.own_devices().entry(laptop.device_id)
    assert entry is not None and entry.sign_public == laptop.profile.sign_key.public
    await eventually(lambda: laptop.is_member and laptop.holds_account_key)


async def test_a_sender_counter_beyond_63_bits_is_refused_and_later_messages_still_arrive(
    accounts, monkeypatch
):
    """A contact's device states its counter under the encryption: one that does not fit the
    receiver's store (2**64 - 1) is refused as malformed, not let through to break the receive."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    encode = outbox_module.encode_payload

    def huge_counter(payload):
        origin = getattr(payload, "origin", None)
        if origin is not None and origin.user == "alice":
            payload = msgspec.structs.replace(
                payload, origin=msgspec.structs.replace(origin, counter=2**64 - 1)
            )
        return encode(payload)

    monkeypatch.setattr(outbox_module, "encode_payload", huge_counter)
    await alice.send_text("bob", "from a counter that does not fit")
    monkeypatch.setattr(outbox_module, "encode_payload", encode)
    await alice.send_text("bob", "and the next one")
    await eventually(lambda: "and the next one" in [m.body for m in bob.messages("alice")])
    assert "from a counter that does not fit" not in [m.body for m in bob.messages("alice")]


async def test_removing_a_device_deletes_the_sessions_with_it(accounts):
    """A removed device gets nothing more: the ratchet states with it are deleted, not kept in
    the profile where they would still decrypt what it sends (or be read from the disk)."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    bob = await accounts.create("bob")
    await alice.send_text("bob", "to bob and to my laptop")
    await eventually(
        lambda: [m.body for m in laptop.messages("bob")] == ["to bob and to my laptop"]
    )
    peer = ("alice", laptop.device_id)
    assert alice.sessions.has_session(peer) and bob.is_member
    await alice.remove_device(laptop.device_id)
    assert not alice.sessions.has_session(peer)
    assert alice._store.sessions_with(*peer) == []
