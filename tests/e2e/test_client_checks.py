"""Checks in the client core that no other test noticed when each was removed (a mutation audit of
the client's side): each test here fails when its check is taken out. Real relay and clients;
the misbehaving device is played by rewriting what a real client encodes."""

from __future__ import annotations

import logging

import msgspec
import pytest

from client.core import controls as controls_module  # where a control is encoded
from client.core import outbox as outbox_module  # where a sent message is encoded
from client.core.events import DeviceListRefused, MessageStatus, PairingRejected
from client.core.link import RelayError
from relay import login
from relay.handlers import HANDLERS
from shared import wire
from shared.boxes import StorageKey
from shared.device_list import first_device_list, next_device_list
from shared.envelope import Receipt
from shared.errors import VerificationError
from shared.group import AskChanges, Changes, SenderKey, next_change, sign_change
from shared.identity import SigningKey, device_id_for
from shared.pairing import Outcome
from shared.session import new_x3dh_state
from tests.conftest import approve, eventually
from tests.e2e.test_pairing import inject


def _addressed_to_self(encode, user: str):
    """``encode_payload`` with every payload of ``user`` naming ``user``'s own conversation."""

    def encode_for_self(payload):
        if getattr(payload, "peer", None) is not None and payload.origin.user == user:
            payload = msgspec.structs.replace(payload, peer=user)
        return encode(payload)

    return encode_for_self


async def test_a_message_or_control_from_an_own_device_addressed_to_this_account_is_dropped(
    accounts, monkeypatch
):
    """An own device's message or control names its conversation (``peer``); one naming this
    account itself opens no conversation with oneself on the other devices, and what follows
    still arrives."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    await accounts.create("bob")
    monkeypatch.setattr(
        outbox_module, "encode_payload", _addressed_to_self(outbox_module.encode_payload, "alice")
    )
    monkeypatch.setattr(
        controls_module,
        "encode_payload",
        _addressed_to_self(controls_module.encode_payload, "alice"),
    )
    await alice.send_text("bob", "to myself, says the payload")
    alice.controls.set_timer("bob", 300)
    monkeypatch.undo()
    await alice.send_text("bob", "and the next one")
    await eventually(lambda: "and the next one" in [m.body for m in laptop.messages("bob")])
    assert "alice" not in laptop.threads()
    assert laptop.messages("alice") == []


async def test_a_contact_cannot_mark_its_own_messages_read_here(accounts, monkeypatch):
    """A receipt counts only for this user's own messages: a contact naming its own message in
    a read receipt does not mark it read on the receiver (its unread count stays)."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    hello = await bob.send_text("alice", "hello")
    await eventually(lambda: alice.unread_count("bob") == 1)
    await alice.send_text("bob", "hi bob")
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["hello", "hi bob"])
    encode = outbox_module.encode_payload

    def naming_own(payload):
        if isinstance(payload, Receipt) and payload.origin.user == "bob":
            payload = msgspec.structs.replace(payload, message_ids=[hello.message_id])
        return encode(payload)

    monkeypatch.setattr(outbox_module, "encode_payload", naming_own)
    assert await bob.mark_read("alice") == 1
    monkeypatch.undo()
    await bob.send_text("alice", "after the receipt")  # the receipt left before it
    await eventually(lambda: "after the receipt" in [m.body for m in alice.messages("bob")])
    assert alice.message(hello.message_id).status is MessageStatus.RECEIVED
    assert alice.unread_count("bob") == 2
    assert alice._store.receipts(hello.message_id) == []


async def test_a_pre_key_bundle_the_relay_swapped_for_its_own_starts_no_session(
    accounts, monkeypatch
):
    """The relay answers Alice's first bundle fetch for Bob with keys of its own making (a
    well-formed bundle, its signed pre-key signed by its identity key): Alice encrypts nothing
    to them, as their identity key is not the one on Bob's signed list; the message reaches Bob
    once the relay hands out his real bundle."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    forward = HANDLERS[wire.FetchBundles]
    swapped: list[wire.FetchBundles] = []

    async def swap_first(session, frame):
        answer = await forward(session, frame)
        if frame.username != "bob" or swapped or not isinstance(answer, wire.Bundles):
            return answer
        swapped.append(frame)
        own = new_x3dh_state()
        own.generate_pre_keys(1)
        keys = own.bundle
        return msgspec.structs.replace(
            answer,
            bundles=[
                wire.PreKeyBundle(
                    device_id=b.device_id,
                    identity_key=keys.identity_key,
                    signed_pre_key=keys.signed_pre_key,
                    signed_pre_key_sig=keys.signed_pre_key_sig,
                    one_time_pre_key=sorted(keys.pre_keys)[0],
                )
                for b in answer.bundles
            ],
        )

    monkeypatch.setitem(HANDLERS, wire.FetchBundles, swap_first)
    await alice.send_text("bob", "hello")
    await eventually(lambda: [m.body for m in bob.messages("alice")] == ["hello"])
    assert swapped
    assert all(m.status is not MessageStatus.UNDECRYPTABLE for m in bob.messages("alice"))


async def test_a_list_that_does_not_decode_beside_the_removal_does_not_hide_it(
    accounts, monkeypatch
):
    """A relay answering "not registered" with a malformed list among the signed ones: that one
    is skipped, and the genuine list without the device still proves its removal. The lists
    older than the one the device holds (the relay sends the newest few) are passed over, not
    refused as rollbacks."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    await laptop.close()  # offline while it is removed: it learns it only from the relay
    accounts.clients.remove(laptop)
    await alice.remove_device(laptop.device_id)
    newest = login._newest_lists

    def with_junk_first(relay, username):
        return [b"not a device list", *newest(relay, username)]

    monkeypatch.setattr(login, "_newest_lists", with_junk_first)
    laptop = await accounts.start(laptop)
    refused: list[DeviceListRefused] = []  # (listening before its connection does anything)
    laptop.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)
    await eventually(lambda: laptop.removed, message="the signed list proves the removal")
    assert refused == []


async def test_a_list_of_ones_own_account_under_another_account_key_is_refused_not_held(
    accounts, monkeypatch
):
    """A contact's new account key is held for the user to acknowledge; one's own account key
    never changes, so a list of one's own account signed by another key is refused outright:
    there is nothing to acknowledge that would let the relay's key in."""
    alice = await accounts.create("alice")
    own = alice.directory.known("alice")
    relays_amk, relays_device = SigningKey.generate(), SigningKey.generate()
    entry = msgspec.structs.replace(
        own.devices[0],
        device_id=device_id_for(relays_device.public),
        sign_public=relays_device.public,
    )
    relays_list = first_device_list(relays_amk, "alice", entry, relays_device)
    forward = HANDLERS[wire.FetchDeviceList]

    async def relays_own(session, frame):
        answer = await forward(session, frame)
        if frame.username != "alice" or not isinstance(answer, wire.DeviceListReply):
            return answer
        return msgspec.structs.replace(answer, signed_list=relays_list, between=[])

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, relays_own)
    refused: list[DeviceListRefused] = []
    alice.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)
    assert await alice.directory.refresh("alice") == own
    assert refused and "different account key" in refused[-1].reason
    assert not alice.key_changed("alice")


async def test_a_relay_that_stops_serving_a_contacts_list_is_told_not_believed(
    accounts, monkeypatch
):
    """The relay answers that Bob has no device list any more: Alice keeps the list she holds
    (his devices stay the ones she sends to) and says the relay no longer serves it."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    held = await alice.directory.refresh("bob")
    forward = HANDLERS[wire.FetchDeviceList]

    async def none_for_bob(session, frame):
        answer = await forward(session, frame)
        if frame.username != "bob" or not isinstance(answer, wire.DeviceListReply):
            return answer
        return msgspec.structs.replace(answer, signed_list=None, between=[])

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, none_for_bob)
    refused: list[DeviceListRefused] = []
    alice.add_listener(lambda e: refused.append(e) if isinstance(e, DeviceListRefused) else None)
    assert await alice.directory.refresh("bob") == held
    assert [e.reason for e in refused] == ["the relay no longer serves a device list"]


async def test_a_device_cannot_remove_itself(accounts):
    """Removing this very device is refused with a clear error (another device removes it), and
    the account's list stays as it was."""
    alice = await accounts.create("alice")
    await accounts.add_device(alice)
    before = alice.directory.signed("alice")
    with pytest.raises(ValueError, match="another one"):
        await alice.remove_device(alice.device_id)
    assert alice.directory.signed("alice") == before and alice.is_member


async def test_a_removed_device_holding_the_account_key_is_refused_on_the_device(accounts):
    """A removed device keeps every key it held, the account key included; asking it to approve
    a new device or to set up a recovery code is refused on the device itself, with a clear
    error, not left to the relay."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    await eventually(lambda: laptop.account.key is not None, message="the laptop holds the key")
    await alice.remove_device(laptop.device_id)
    await eventually(lambda: laptop.removed)
    phone = await accounts.pending("alice", "Phone")
    await phone.offer_pairing()
    with pytest.raises(PermissionError, match="account key"):
        await laptop.pairing_code(phone.device_id)
    with pytest.raises(PermissionError, match="full member"):
        await laptop.setup_recovery()


async def test_a_device_that_another_account_s_list_holds_is_not_taken_into_ones_own(
    accounts, monkeypatch
):
    """The relay shows Alice a list of Mallory's (signed by Mallory's own keys) that names the
    laptop Alice is about to approve: when Alice then publishes her own list with it, her own
    device refuses that list, and says so, rather than take a device another account claims."""
    alice = await accounts.create("alice")
    mallory = await accounts.create("mallory")
    laptop = await accounts.pending("alice", "Laptop")
    held = alice.directory.known("mallory") or await alice.directory.refresh("mallory")
    claimed = next_device_list(
        mallory.account.key,
        mallory.context.profile.sign_key,
        held,
        alice.directory.signed("mallory"),
        add=laptop.account_devices.own_entry(),
    )
    forward = HANDLERS[wire.FetchDeviceList]

    async def mallorys_claim(session, frame):
        answer = await forward(session, frame)
        if frame.username != "mallory" or not isinstance(answer, wire.DeviceListReply):
            return answer
        return msgspec.structs.replace(answer, signed_list=claimed, between=[])

    monkeypatch.setitem(HANDLERS, wire.FetchDeviceList, mallorys_claim)
    assert laptop.device_id in (await alice.directory.refresh("mallory")).device_ids
    with pytest.raises(RelayError, match="did not verify"):
        await approve(alice, laptop)
    assert laptop.device_id not in alice.directory.known("alice").device_ids


async def test_a_group_s_membership_goes_only_to_members_who_ask(accounts):
    """Anyone Alice has a session with can ask her for a group's changes: only a member (or
    one the changes name) is answered, so a stranger learns neither its name nor its members."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    mallory = await accounts.create("mallory")
    state = await alice.groups.create("Climbing", ["bob"])
    await alice.send_text("mallory", "hi")  # a session between them
    await eventually(lambda: [m.body for m in mallory.messages("alice")] == ["hi"])
    with mallory._store.transaction():
        mallory.groups.enqueue(["alice"], AskChanges(group_id=state.group_id, seq=0))
    mallory.context.outbox_wake.set()
    await mallory.send_text("alice", "after my question")
    await eventually(lambda: "after my question" in [m.body for m in alice.messages("mallory")])
    await alice.send_text("mallory", "after her question")  # leaves after any answer
    await eventually(lambda: "after her question" in [m.body for m in mallory.messages("alice")])
    assert mallory.groups.state(state.thread) is None
    assert mallory._store.group(state.group_id) is None


async def test_a_grant_that_does_not_open_does_not_stop_the_epochs_around_it(accounts, monkeypatch):
    """The relay hands the laptop a grant that does not open for the newest epoch: the laptop
    still takes the verified chain (that epoch without its root; the log says why), rather than
    refuse every epoch for one grant."""
    alice = await accounts.create("alice")
    laptop = await accounts.add_device(alice)
    forward = HANDLERS[wire.FetchEpochs]

    async def junk_grant(session, frame):
        answer = await forward(session, frame)
        if session.device_id != laptop.device_id or not isinstance(answer, wire.Epochs):
            return answer
        epochs = [
            msgspec.structs.replace(e, grant=b"not a grant" * 8) if e.grant else e
            for e in answer.epochs
        ]
        return msgspec.structs.replace(answer, epochs=epochs)

    monkeypatch.setitem(HANDLERS, wire.FetchEpochs, junk_grant)
    await accounts.add_device(alice, "Phone")  # a new epoch for the new list
    newest = alice.epochs.latest_seq()
    await eventually(lambda: laptop.epochs.latest_seq() == newest, message="the laptop takes it")


async def test_a_missing_membership_change_is_asked_for_once_per_gap(accounts):
    """Every group message sent for a membership this device does not hold yet would ask again;
    one question (and one line saying so) per gap is enough."""
    alice = await accounts.create("alice")
    await accounts.create("bob")
    state = await alice.groups.create("Climbing", ["bob"])
    for _ in range(2):  # two messages from bob ahead of the membership held here
        with alice._store.transaction():
            alice.groups.ask_missing(state.group_id, state, "bob")
    asked = "a membership change has not arrived; asked bob for it"
    assert [m.body for m in alice.messages(state.thread)].count(asked) == 1


async def test_a_member_sending_another_history_of_the_group_is_called_out(accounts):
    """Bob sends Alice a change numbered like one she holds but different (another history of
    the group): nothing changes, and the conversation says Bob contradicted it."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    state = await alice.groups.create("Climbing", ["bob"])
    await eventually(lambda: bob.groups.state(state.thread) is not None)
    other = sign_change(
        bob.profile.sign_key,
        next_change(None, state.group_id, "bob", bob.device_id, "create", ("alice", "bob"), "Mine"),
    )
    with bob._store.transaction():
        bob.groups.enqueue(["alice"], Changes(group_id=state.group_id, changes=[other]))
    bob.context.outbox_wake.set()
    await eventually(
        lambda: any("contradicts" in m.body for m in alice.messages(state.thread)),
        message="alice says bob contradicted the group's history",
    )
    assert alice.groups.state(state.thread) == state


async def test_a_member_device_is_refused_a_restore(accounts):
    """Restoring joins a device to its account with the code; a device already a member is
    refused (it would open a new epoch for nothing), with a clear error and nothing changed."""
    alice = await accounts.create("alice")
    code = await alice.setup_recovery()
    before = alice.epochs.latest_seq()
    with pytest.raises(PermissionError, match="already a member"):
        await alice.restore(code=code)
    assert alice.epochs.latest_seq() == before


async def test_a_sender_key_held_here_is_not_replaced_by_its_distribution_again(accounts):
    """A member gives its sender key again (at another iteration, with another chain): the key
    held here under that id only moves forward, so spent iterations never open again."""
    alice = await accounts.create("alice")
    bob = await accounts.create("bob")
    state = await alice.groups.create("Climbing", ["bob"])
    await eventually(lambda: bob.groups.state(state.thread) is not None)
    await bob.send_text(state.thread, "first")
    await eventually(lambda: "first" in [m.body for m in alice.messages(state.thread)])
    own, _ = bob._store.own_sender_key(state.group_id)
    held = alice._store.peer_sender_key(state.group_id, "bob", bob.device_id, own.key_id)
    assert held is not None and held.iteration == 1
    again = msgspec.structs.replace(own, iteration=0, chain_key=bytes(32)).distribution()
    with bob._store.transaction():
        bob.groups.enqueue(["alice"], SenderKey(group_id=state.group_id, distribution=again))
    await bob.send_text("alice", "after the key")  # leaves after it
    await eventually(lambda: "after the key" in [m.body for m in alice.messages("bob")])
    kept = alice._store.peer_sender_key(state.group_id, "bob", bob.device_id, own.key_id)
    assert kept == held


async def test_a_relay_presenting_another_vault_key_gets_no_pin_request(accounts, monkeypatch):
    """The vault's key is pinned on first use: a relay that later presents a key of its own
    (to open what the device seals to the vault: the PIN's verifier and wrapped code) is
    refused before anything is sealed to it."""
    alice = await accounts.create("alice")
    await alice.setup_recovery(pin="2468")
    sealed_to: list[wire.VaultCall] = []
    relays_key = StorageKey.generate().public

    async def relays_vault_key(session, frame):
        return wire.VaultKey(rid=frame.rid, public=relays_key)

    forward = HANDLERS[wire.VaultCall]

    async def watch(session, frame):
        sealed_to.append(frame)
        return await forward(session, frame)

    monkeypatch.setitem(HANDLERS, wire.FetchVaultKey, relays_vault_key)
    monkeypatch.setitem(HANDLERS, wire.VaultCall, watch)
    with pytest.raises(VerificationError, match="different vault key"):
        await alice.setup_recovery(pin="1357")
    assert sealed_to == []


async def test_a_rejection_for_no_open_request_is_ignored(accounts, relay, caplog):
    """The relay pushes "rejected" to a new device that has no request open: it is ignored (and
    logged), not shown as a rejection of a request the user never made."""
    caplog.set_level(logging.INFO, logger="ariadne.client.pairing")
    alice = await accounts.create("alice")
    laptop = await accounts.pending("alice", "Laptop")
    rejected: list[PairingRejected] = []
    laptop.add_listener(lambda e: rejected.append(e) if isinstance(e, PairingRejected) else None)
    inject(relay, laptop.device_id, alice.device_id, Outcome(session=bytes(16), approved=False))
    await eventually(lambda: "ignored an unexpected pairing message" in caplog.text)
    assert rejected == []
