"""Pairing against a hostile relay and a password holder: single-use offers, who may start an
exchange, pinning the account key only from the confirmed exchange, and telling two requests
apart. Real relay and clients; the attackers are the relay's own connections (frames injected
into them, or its PairingSend handler wrapped) and pending devices logged in with the password."""

from __future__ import annotations

import logging
import os
import time

import pytest

from client.core.directory import UnknownUser
from client.core.events import PairingCodeShown, PairingRequested
from client.core.link import RelayError
from client.core.pairing import PAIRING_SECONDS
from relay.handlers import HANDLERS
from shared import pairing, wire
from shared.device_list import DeviceEntry, DeviceList, sign_device_list
from shared.identity import SigningKey, device_id_for
from tests.conftest import eventually


def codes_on(client) -> list[str]:
    shown: list[str] = []
    client.add_listener(lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None)
    return shown


def recorded_sends(monkeypatch, from_device: str) -> list[pairing.PairingMessage]:
    """What ``from_device`` asks the relay to forward, recorded before the relay's checks (a
    hostile relay sees every pairing message)."""
    sent: list[pairing.PairingMessage] = []
    forward = HANDLERS[wire.PairingSend]

    async def record(session, frame):
        if session.device_id == from_device:
            sent.append(pairing.decode(frame.payload))
        return await forward(session, frame)

    monkeypatch.setitem(HANDLERS, wire.PairingSend, record)
    return sent


def inject(relay, to_device: str, from_device: str, message: pairing.PairingMessage) -> None:
    """The relay pushes a pairing message of its own making, labelled as it likes."""
    relay.relay.connections[to_device].push_frame(
        wire.PairingPush(from_device=from_device, payload=pairing.encode(message))
    )


def relay_approver(claimed_device: str) -> pairing.ApproverKeys:
    """Approver keys of the relay's making: its own device key and account key."""
    return pairing.ApproverKeys(
        device_id=claimed_device,
        sign_public=SigningKey.generate().public,
        amk_public=SigningKey.generate().public,
    )


def ignored_starts(caplog) -> int:
    return caplog.text.count("ignored a pairing start")


async def test_an_offer_is_revealed_once_so_a_dummy_start_cannot_be_followed_by_a_ground_one(
    accounts, relay, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="ariadne.client.pairing")
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    reveals = recorded_sends(monkeypatch, laptop.device_id)
    await laptop.offer_pairing()
    # 1. A dummy Start from the relay, labelled as alice's desktop: it learns the nonce.
    fake = relay_approver(alice.device_id)
    dummy = pairing.Start(session=os.urandom(16), approver=fake, nonce=os.urandom(pairing.NONCE))
    inject(relay, laptop.device_id, alice.device_id, dummy)
    await eventually(lambda: len(reveals) == 1, message="the laptop reveals to the first Start")
    learnt = reveals[0]
    assert isinstance(learnt, pairing.Reveal)
    # With that nonce the relay could grind an approver nonce (~10^6 hashes) so that a second
    # exchange shows alice's code on the laptop. The laptop never answers a second Start:
    ground = pairing.Start(session=os.urandom(16), approver=fake, nonce=os.urandom(pairing.NONCE))
    inject(relay, laptop.device_id, alice.device_id, ground)
    await eventually(lambda: ignored_starts(caplog) == 1, message="the second Start is ignored")
    with pytest.raises(TimeoutError):  # alice's own Start gets nothing either: ask again
        await alice.pairing_code(laptop.device_id, timeout=1.5)
    assert ignored_starts(caplog) == 2
    assert [type(m) for m in reveals] == [pairing.Reveal] and len(shown) == 1
    # Asking again is a new offer: a new nonce, never the one the relay learnt, and the code
    # shown for the spent one can no longer be confirmed.
    await laptop.offer_pairing()
    with pytest.raises(LookupError):
        await laptop.confirm_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: len(shown) == 2)
    assert shown[-1] == code
    assert len(reveals) == 2 and reveals[1].nonce != learnt.nonce


async def test_an_unsolicited_start_changes_nothing_on_the_new_device(accounts, relay, caplog):
    caplog.set_level(logging.INFO, logger="ariadne.client.pairing")
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    fake = relay_approver(alice.device_id)

    def start() -> pairing.Start:
        return pairing.Start(session=os.urandom(16), approver=fake, nonce=os.urandom(32))

    # No offer yet: nothing shown, nothing pinned.
    inject(relay, laptop.device_id, alice.device_id, start())
    await eventually(lambda: ignored_starts(caplog) == 1)
    assert shown == [] and laptop._store.get("amk_public") is None
    # The user confirms alice's code; a later Start under the relay's key pins nothing.
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    await laptop.confirm_pairing()
    inject(relay, laptop.device_id, alice.device_id, start())
    await eventually(lambda: ignored_starts(caplog) == 2)
    assert shown == [code]
    assert laptop._store.get("amk_public") == alice.own_devices().amk_public
    with pytest.raises(LookupError):  # nothing left to confirm
        await laptop.confirm_pairing()
    await alice.approve_device(laptop.device_id)
    await eventually(lambda: laptop.is_member and laptop.holds_account_key)


async def test_a_start_naming_another_device_than_its_sender_is_ignored(accounts, relay, caplog):
    caplog.set_level(logging.INFO, logger="ariadne.client.pairing")
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    fake = relay_approver(device_id_for(SigningKey.generate().public))
    inject(
        relay,
        laptop.device_id,
        alice.device_id,
        pairing.Start(session=os.urandom(16), approver=fake, nonce=os.urandom(32)),
    )
    await eventually(lambda: ignored_starts(caplog) == 1)
    code = await alice.pairing_code(laptop.device_id)  # the offer was not spent on it
    await eventually(lambda: shown == [code])


async def test_the_approver_takes_a_reveal_only_from_the_device_it_started_with(
    accounts, relay, monkeypatch
):
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    forward = HANDLERS[wire.PairingSend]

    async def answer_first(session, frame):
        message = pairing.decode(frame.payload)
        if isinstance(message, pairing.Start):  # a reveal for alice's session, from elsewhere
            wrong = pairing.Reveal(session=message.session, nonce=os.urandom(32))
            inject(relay, alice.device_id, device_id_for(SigningKey.generate().public), wrong)
        return await forward(session, frame)

    monkeypatch.setitem(HANDLERS, wire.PairingSend, answer_first)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])


async def test_only_a_member_may_start_and_only_with_a_device_that_offered(accounts, relay):
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    laptop = await accounts.pending("alice", "Laptop")
    intruder = await accounts.pending("alice", "Laptop")  # the password holder's device
    shown = codes_on(laptop)
    message = pairing.encode(
        pairing.Start(
            session=os.urandom(16),
            approver=relay_approver(intruder.device_id),
            nonce=os.urandom(32),
        )
    )

    async def send(sender, to_device: str) -> None:
        await sender.link.request(
            lambda rid: wire.PairingSend(rid=rid, to_device=to_device, payload=message)
        )

    with pytest.raises(RelayError, match="no_offer"):  # the laptop has not asked
        await send(alice, laptop.device_id)
    with pytest.raises(RelayError, match="no_offer"):  # nor is a member ever pending
        await send(alice, phone.device_id)
    await laptop.offer_pairing()
    with pytest.raises(RelayError, match="not_started"):  # a pending device cannot start
        await send(intruder, laptop.device_id)
    with pytest.raises(RelayError, match="not_started"):  # nor answer unasked
        await send(laptop, alice.device_id)
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    with pytest.raises(RelayError, match="pairing_busy"):  # one approver per offer
        await send(phone, laptop.device_id)
    with pytest.raises(RelayError, match="not_started"):  # the reveal goes to the starter only
        await send(laptop, phone.device_id)
    # An offer older than the relay's window is closed too.
    await laptop.offer_pairing()
    db = relay.relay.store._db
    db.execute("UPDATE devices SET pairing_at = 0 WHERE device_id = ?", (laptop.device_id,))
    db.commit()
    with pytest.raises(RelayError, match="no_offer"):
        await send(alice, laptop.device_id)


async def test_two_pending_devices_of_the_same_name_never_look_alike(accounts, relay):
    alice = await accounts.create("alice")
    requests: dict[str, PairingRequested] = {}
    alice.add_listener(
        lambda e: requests.update({e.device_id: e}) if isinstance(e, PairingRequested) else None
    )
    laptop = await accounts.pending("alice", "Laptop")
    intruder = await accounts.pending("alice", "Laptop")
    await laptop.offer_pairing()
    await intruder.offer_pairing()
    await eventually(lambda: {laptop.device_id, intruder.device_id} <= set(requests))
    real, fake = requests[laptop.device_id], requests[intruder.device_id]
    assert real.name == fake.name == "Laptop"
    assert real.fingerprint == laptop.own_fingerprint  # what the laptop's own screen shows
    assert fake.fingerprint == intruder.own_fingerprint
    assert real.fingerprint != fake.fingerprint and len(real.fingerprint) == 14
    assert abs(real.asked_at - time.time()) < 60 and abs(fake.asked_at - time.time()) < 60
    # The user compared the laptop's code: that code approves the laptop and nothing else.
    shown = codes_on(laptop)
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    assert pairing.fingerprint(alice.pairing.compared(laptop.device_id)) == real.fingerprint
    assert alice.pairing.compared(intruder.device_id) is None
    with pytest.raises(PermissionError, match="compare the pairing code"):
        await alice.approve_device(intruder.device_id)
    # Even if the relay now lists other keys under the laptop's id, the entry carries the keys
    # the code covered.
    db = relay.relay.store._db
    db.execute(
        "UPDATE devices SET storage_key = ? WHERE device_id = ?",
        (SigningKey.generate().public, laptop.device_id),
    )
    db.commit()
    await laptop.confirm_pairing()
    approved = await alice.approve_device(laptop.device_id)
    entry = approved.entry(laptop.device_id)
    assert entry is not None and entry.storage_key == laptop.profile.storage_key.public
    assert approved.entry(intruder.device_id) is None


async def test_an_approved_device_joins_the_account_its_code_covered_not_the_one_shown(
    accounts, relay, monkeypatch
):
    alice = await accounts.create("alice")
    # At the laptop's login the relay shows a list of its own, under its own account key, with
    # the laptop already on it (so the laptop would be "approved" without any code).
    evil = SigningKey.generate()
    evil_desktop = SigningKey.generate()
    fetch_list = HANDLERS[wire.FetchDeviceList]

    async def fake_list(session, frame):
        if session.device_id not in (alice.device_id,):
            row = relay.relay.store.device(session.device_id)
            devices = tuple(
                DeviceEntry(
                    device_id=device_id_for(k),
                    name=n,
                    sign_public=k,
                    identity_key=i,
                    storage_key=s,
                    added_at=0,
                )
                for k, n, i, s in (
                    (evil_desktop.public, "Desktop", bytes(32), bytes(32)),
                    (row.sign_public, row.name, row.identity_key or bytes(32), row.storage_key),
                )
            )
            listed = DeviceList(
                "alice", 2, bytes(32), evil.public, devices, device_id_for(evil_desktop.public)
            )
            signed = sign_device_list(evil, evil_desktop, listed)
            return wire.DeviceListReply(rid=frame.rid, signed_list=signed)
        return await fetch_list(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, fake_list)
    laptop = await accounts.pending("alice", "Laptop")
    with pytest.raises(UnknownUser):  # asked outright, it still trusts nothing it is shown
        await laptop.directory.refresh("alice")
    assert laptop.directory.known("alice") is None and not laptop.is_member
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    await laptop.confirm_pairing()
    # Confirmed: the relay's list is now refused outright (another account key).
    with pytest.raises(UnknownUser):
        await laptop.directory.refresh("alice")
    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, fetch_list)
    await alice.approve_device(laptop.device_id)
    await eventually(lambda: laptop.is_member and laptop.holds_account_key)
    assert laptop.own_devices().amk_public == alice.own_devices().amk_public
    assert laptop.account.key.public == alice.account.key.public


async def test_an_approval_or_confirmation_after_the_code_expired_is_refused(accounts):
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    later = time.monotonic() + PAIRING_SECONDS + 1
    alice.pairing.clock = laptop.pairing.clock = lambda: later
    with pytest.raises(PermissionError, match="compare the pairing code"):
        await alice.approve_device(laptop.device_id)
    with pytest.raises(LookupError, match="expired"):
        await laptop.confirm_pairing()
    assert laptop._store.get("amk_public") is None


async def test_a_list_approving_the_device_before_it_confirmed_waits_for_the_confirmation(
    accounts, caplog
):
    caplog.set_level(logging.INFO, logger="ariadne.client.directory")
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    shown = codes_on(laptop)
    await laptop.offer_pairing()
    code = await alice.pairing_code(laptop.device_id)
    await eventually(lambda: shown == [code])
    await alice.approve_device(laptop.device_id)
    await eventually(lambda: "not trusting a list" in caplog.text, message="the list arrives")
    assert not laptop.is_member and laptop.own_devices() is None
    await laptop.confirm_pairing()
    await eventually(lambda: laptop.is_member and laptop.holds_account_key)
