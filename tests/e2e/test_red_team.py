"""A red-team pass over the defences against a hostile relay, a password holder and a removed
device: each test is an attack that no other test tries. Real relay on 127.0.0.1 and real
clients; the attackers are the relay's own handlers wrapped, its store edited, or a removed
device that kept the account key."""

from __future__ import annotations

import time

import msgspec
import pytest

from client.core import outbox as outbox_module  # where sent messages get their ids
from client.core.directory import UnknownUser
from client.core.events import DeviceListRefused, PairingCodeShown
from client.core.link import RelayError
from relay.handlers import HANDLERS
from shared import wire
from shared.device_list import next_device_list, open_device_list, sign_device_list
from shared.envelope import new_message_id
from shared.recovery_code import virtual_device
from tests.conftest import eventually, history
from tests.e2e.test_list_authors import _comeback_epoch

pytestmark = pytest.mark.backends()


def _codes_on(client) -> list[str]:
    shown: list[str] = []
    client.add_listener(lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None)
    return shown


async def test_a_new_device_takes_no_list_a_removed_device_forked(accounts, relay, monkeypatch):
    """A removed laptop kept the account key. A tablet the user adds later never saw the
    removal, so a relay could show it a fork the laptop authored from the last list it was on,
    with the tablet added: the tablet would take the laptop for one of its own devices and
    encrypt to it. The tablet knows who approved it (the code covered that device's keys), so
    it takes as its first list only one that names it and that its approver made."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice, "Laptop")
    before_removal = alice.directory.signed("alice")
    await alice.remove_device(laptop.device_id)
    await eventually(lambda: laptop.removed, message="the laptop learns it was removed")
    assert laptop.holds_account_key

    tablet = await accounts.pending("alice", "Tablet")
    shown = _codes_on(tablet)
    await tablet.offer_pairing()
    code = await alice.pairing_code(tablet.device_id)
    await eventually(lambda: shown == [code])

    # The fork: the list before the removal, with the tablet added, authored by the laptop (on
    # that list) and signed with the account key it kept.
    base = open_device_list(before_removal, "alice", None)
    fork = next_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        base,
        before_removal,
        add=tablet.account_devices.own_entry(),
    )
    # Also one it forked without the tablet first, then added the tablet to (each step by an
    # author on the list before).
    first = next_device_list(laptop.account.key, laptop.profile.sign_key, base, before_removal)
    second = next_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        open_device_list(first, "alice", None),
        first,
        add=tablet.account_devices.own_entry(),
    )
    fetch_list = HANDLERS[wire.FetchDeviceList]
    # One that names the approver as its author (signed by the laptop in its place).
    posing = sign_device_list(
        laptop.account.key,
        laptop.profile.sign_key,
        msgspec.structs.replace(open_device_list(fork, "alice", None), author=alice.device_id),
    )
    # And the approver's own earlier list (the one that added the laptop), then the fork on it.
    served = [([], fork), ([first], second), ([], posing), ([before_removal], fork)]

    async def hostile(session, frame):
        if session.device_id == tablet.device_id:
            between, current = served[0]
            return wire.DeviceListReply(rid=frame.rid, signed_list=current, between=between)
        return await fetch_list(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, hostile)
    await tablet.confirm_pairing()  # pins the account key, which the fork is signed with
    for _ in range(len(served)):
        try:
            known = await tablet.directory.refresh("alice")
        except UnknownUser:
            known = None
        assert known is None or laptop.device_id not in known.device_ids
        assert not tablet.is_member
        served.pop(0)

    # The approval its approver made is taken (and the honest flow still works).
    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, fetch_list)
    await alice.approve_device(tablet.device_id)
    await eventually(lambda: tablet.is_member and tablet.holds_account_key)
    assert tablet.own_devices().device_ids == {alice.device_id, tablet.device_id}


async def _confirmed(accounts, alice, name: str = "Tablet"):
    """A pending device that compared its code with ``alice`` and confirmed it."""
    tablet = await accounts.pending("alice", name)
    shown = _codes_on(tablet)
    await tablet.offer_pairing()
    code = await alice.pairing_code(tablet.device_id)
    await eventually(lambda: shown == [code])
    await tablet.confirm_pairing()
    return tablet


async def test_a_confirmed_device_finds_its_approval_behind_later_changes(accounts):
    """The approver's list is the new device's first; it walks the account's lists from the
    first to find it, past more than one page of earlier changes (here recovery codes), and
    on to the changes another device made after it (which it was offline for). It stays online
    while it waits for the approval (no list of its own account yet)."""
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    for _ in range(wire.MAX_LISTS_BETWEEN):
        await alice.setup_recovery()
    tablet = await _confirmed(accounts, alice)
    tablet = await accounts.reopen(tablet)
    await tablet.wait_online()
    await accounts.stop(tablet)
    await alice.approve_device(tablet.device_id)
    await eventually(lambda: phone.epochs.latest_seq() == alice.epochs.latest_seq())
    await phone.setup_recovery()
    tablet = await accounts.start(tablet)
    await eventually(lambda: tablet.is_member and tablet.holds_account_key)
    await eventually(lambda: tablet.own_devices().version == phone.own_devices().version)


async def test_a_device_that_confirmed_a_code_can_still_restore_with_the_recovery_code(accounts):
    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    tablet = await _confirmed(accounts, alice)
    await tablet.restore(code=code)
    assert tablet.is_member and tablet.holds_account_key
    await eventually(lambda: tablet.device_id in alice.own_devices().device_ids)


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
async def test_a_rotated_recovery_code_authors_nothing(accounts, relay):
    """Someone kept an old recovery code (and, through the epochs it opened, the account key).
    After the user made a new code, the old one's virtual device may author no list: the relay
    refuses it from a device logged in with the password, and a relay that stores it anyway is
    refused by the account's other device and by a contact, which hold the list naming the new
    code."""
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    bob = await accounts.create("bob")
    await bob.send_text("alice", "hello")
    await eventually(lambda: len(history(phone, "bob")) == 1)
    old = virtual_device(await alice.setup_recovery())
    await alice.setup_recovery()
    version, current_signed = relay.relay.store.device_list("alice")
    await eventually(lambda: bob.directory.known("alice").version == version)
    await eventually(lambda: phone.directory.known("alice").version == version)

    intruder = await accounts.pending("alice", "Laptop")
    current = open_device_list(current_signed, "alice", None)
    comeback = next_device_list(
        alice.account.key,
        old.signing,
        current,
        current_signed,
        add=intruder.account_devices.own_entry(),
    )
    with pytest.raises(RelayError, match="not on the list it replaces"):
        await intruder.link.request(
            lambda rid: wire.PublishDeviceList(
                rid=rid, signed_list=comeback, epoch=_comeback_epoch(alice, relay, comeback)
            )
        )
    db = relay.relay.store._db
    db.execute(
        "UPDATE device_lists SET version = ?, signed_list = ? WHERE username = 'alice'",
        (version + 1, comeback),
    )
    db.execute("INSERT INTO list_members VALUES ('alice', ?)", (intruder.device_id,))
    db.commit()
    relay.relay.forget_members("alice")
    for client in (phone, bob):
        refused = []
        client.add_listener(
            lambda e, r=refused: r.append(e) if isinstance(e, DeviceListRefused) else None
        )
        known = await client.directory.refresh("alice")
        assert known.version == version and intruder.device_id not in known.device_ids
        assert refused and "not on the list it replaces" in refused[0].reason


@pytest.mark.backends("sqlite")  # reads or edits the SQLite files
@pytest.mark.parametrize("delivered", [(0, 1), (1, 0), (2, 0, 1), (2, 3, 0, 1)])
async def test_a_relay_that_gives_one_devices_messages_the_same_time_changes_nothing(
    accounts, relay, monkeypatch, delivered
):
    """Messages bob's device sent within one millisecond (their ids then differ only in their
    random part), all given one time by the relay and delivered in the order ``delivered``: the
    conversation's order within one time is the message ids', which is not bob's, so his order
    must come from his counter (a message placed between two moves the next ones on)."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    await bob.send_text("alice", "hi")
    await eventually(lambda: len(history(alice, "bob")) == 1)
    await accounts.stop(alice)
    now = int(time.time() * 1000)
    sent = [f"number {i}" for i in range(len(delivered))]
    # Ids in the reverse of bob's order: what two ids of one millisecond are half the time.
    ids = iter([new_message_id(now, bytes([15 - 4 * i]) * 10) for i in range(len(sent))])
    monkeypatch.setattr(outbox_module, "new_message_id", lambda: next(ids))
    for text in sent:
        await bob.send_text("alice", text)
    monkeypatch.undo()
    db = relay.relay.store._db
    queued = lambda: db.execute(  # noqa: E731
        "SELECT seq, server_ts, payload FROM queue WHERE device_id = ? ORDER BY seq",
        (alice.device_id,),
    ).fetchall()
    await eventually(lambda: len(queued()) == len(sent))
    rows = queued()
    for (seq, _, _), index in zip(rows, delivered, strict=True):
        db.execute(
            "UPDATE queue SET server_ts = ?, payload = ? WHERE seq = ?",
            (rows[0][1], rows[index][2], seq),
        )
    db.commit()
    alice = await accounts.start(alice)
    await eventually(lambda: len(history(alice, "bob")) == 1 + len(sent))
    assert [body for _, _, body in history(alice, "bob")] == ["hi", *sent]


async def test_an_approval_from_an_earlier_confirmed_exchange_is_still_taken(accounts):
    """The tablet confirmed the desktop's code, asked again and confirmed the phone's; the
    desktop, whose compared code is still fresh, approves: the tablet takes its list (both
    approvers' keys were covered by a code the user confirmed)."""
    alice = await accounts.create("alice")
    phone = await accounts.add_device(alice, "Phone")
    tablet = await _confirmed(accounts, alice)
    shown = _codes_on(tablet)
    await tablet.offer_pairing()
    code = await phone.pairing_code(tablet.device_id)
    await eventually(lambda: shown == [code])
    await tablet.confirm_pairing()
    await alice.approve_device(tablet.device_id)
    await eventually(lambda: tablet.is_member and tablet.holds_account_key)
