"""History handlers against a real store, without websockets: epochs (who opens them, what
chains, who gets a grant) and the mailbox (members only, the newest epoch only, the quota)."""

from __future__ import annotations

import os

import msgspec
import pytest

from relay.limits import Limits
from shared import wire
from shared.device_list import list_hash
from shared.epoch import AccountSecrets, EpochMember, open_epoch
from shared.identity import SigningKey


def _item(epoch: int, ts: int, thread: bytes = b"t" * 16, size: int = 40) -> wire.MailboxItem:
    return wire.MailboxItem(
        thread_id=thread, message_id=os.urandom(16), ts=ts, epoch=epoch, sealed=os.urandom(size)
    )


async def test_a_member_opens_the_next_epoch_and_the_account_is_told(kit):
    alice = await kit.create("alice")
    line = kit.connect(alice)
    epoch = kit.next_epoch("alice")
    reply = await kit.call(alice, wire.PublishEpoch(rid=1, epoch=kit.upload(epoch)))
    assert isinstance(reply, wire.Ok)
    assert line.frames == [wire.Notice(kind="epoch_changed")]
    assert kit.store.latest_epoch("alice").seq == 2
    again = wire.PublishEpoch(rid=1, epoch=kit.upload(epoch))
    assert await kit.refused(alice, again) == "bad_epoch"  # a replay is not the next one


async def test_a_pending_device_opens_no_epoch(kit):
    await kit.create("alice")
    laptop = await kit.pending("alice")
    publish = wire.PublishEpoch(rid=1, epoch=kit.upload(kit.next_epoch("alice")))
    assert await kit.refused(laptop, publish) == "not_a_member"
    assert kit.store.latest_epoch("alice").seq == 1


async def test_an_epoch_that_does_not_chain_or_grants_wrongly_is_refused(kit):
    alice = await kit.create("alice")
    upload = kit.upload(kit.next_epoch("alice"))
    unchained = msgspec.structs.replace(upload, prev_root_box=b"")
    assert await kit.refused(alice, wire.PublishEpoch(rid=1, epoch=unchained)) == "bad_epoch"
    doubled = msgspec.structs.replace(upload, grants=upload.grants * 2)
    assert await kit.refused(alice, wire.PublishEpoch(rid=1, epoch=doubled)) == "bad_epoch"
    assert kit.store.latest_epoch("alice").seq == 1


async def test_a_grant_goes_only_to_its_member(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    own = await kit.call(alice, wire.FetchEpochs(rid=1, since=0))
    assert [e.grant is not None for e in own.epochs] == [True]
    asked = wire.FetchEpochs(rid=1, since=0, member_id=alice.device_id)
    assert await kit.refused(laptop, asked) == "not_a_member"
    with_bad_proof = wire.FetchEpochs(rid=1, since=0, member_id=alice.device_id, proof=bytes(64))
    assert await kit.refused(laptop, with_bad_proof) == "not_a_member"
    theirs = await kit.call(laptop, wire.FetchEpochs(rid=1, since=0))
    assert [e.grant for e in theirs.epochs] == [None]  # records, but no grant of its own


async def test_mailbox_items_are_saved_under_the_newest_epoch_and_paged(kit):
    alice = await kit.create("alice")
    items = [_item(1, ts) for ts in (10, 20, 30)]
    assert isinstance(await kit.call(alice, wire.SaveMessages(rid=1, items=items)), wire.Ok)
    newest = await kit.call(alice, wire.FetchMailbox(rid=2, thread_id=b"t" * 16, limit=2))
    assert [i.ts for i in newest.items] == [30, 20]
    last = newest.items[-1]
    older = wire.FetchMailbox(
        rid=3, thread_id=b"t" * 16, before_ts=last.ts, before_id=last.message_id
    )
    assert [i.ts for i in (await kit.call(alice, older)).items] == [10]
    half = wire.FetchMailbox(rid=3, thread_id=b"t" * 16, before_ts=last.ts)
    assert await kit.refused(alice, half) == "bad_request"
    (thread,) = (await kit.call(alice, wire.ListMailboxThreads(rid=4))).threads
    assert (thread.count, thread.newest) == (3, newest.items[0])


async def test_a_save_under_an_older_epoch_is_refused(kit):
    alice = await kit.create("alice")
    await kit.call(alice, wire.PublishEpoch(rid=1, epoch=kit.upload(kit.next_epoch("alice"))))
    stale = wire.SaveMessages(rid=1, items=[_item(2, 10), _item(1, 20)])
    assert await kit.refused(alice, stale) == "stale_epoch"
    assert kit.store.mailbox_bytes("alice") == 0


async def test_a_pending_device_reads_and_writes_no_mailbox(kit):
    alice = await kit.create("alice")
    await kit.call(alice, wire.SaveMessages(rid=1, items=[_item(1, 10)]))
    laptop = await kit.pending("alice")
    for frame in (
        wire.SaveMessages(rid=1, items=[_item(1, 20)]),
        wire.FetchMailbox(rid=2, thread_id=b"t" * 16),
        wire.ListMailboxThreads(rid=3),
    ):
        assert await kit.refused(laptop, frame) == "pending_device"


@pytest.mark.parametrize("limits", [Limits(mailbox_bytes=100)])
async def test_the_mailbox_quota_refuses_what_would_not_fit(kit):
    alice = await kit.create("alice")
    await kit.call(alice, wire.SaveMessages(rid=1, items=[_item(1, 10, size=60)]))
    over = wire.SaveMessages(rid=1, items=[_item(1, 20, size=30), _item(1, 30, size=30)])
    assert await kit.refused(alice, over) == "mailbox_full"
    assert kit.store.mailbox_bytes("alice") == 60
    fits = wire.SaveMessages(rid=1, items=[_item(1, 20, size=40)])
    assert isinstance(await kit.call(alice, fits), wire.Ok)


def _opened(kit, previous, *, amk=None, signed=None, members=None):  # type: ignore[no-untyped-def]
    """An epoch after ``previous`` = (head, signed head, root) of the account's single device,
    with what the test wants wrong."""
    account = kit.accounts["alice"]
    (device,) = account.device_list.devices
    return open_epoch(
        amk or account.amk,
        "alice",
        previous=previous,
        members=[EpochMember(member_id=device.device_id, storage_key=device.storage_key)]
        if members is None
        else members,
        device_list_hash=list_hash(signed or account.signed_list),
        secrets=AccountSecrets(amk_seed=account.amk.seed, thread_key=bytes(32)),
    )


async def _publish_refused(kit, alice, epoch) -> str:  # type: ignore[no-untyped-def]
    code = await kit.refused(alice, wire.PublishEpoch(rid=1, epoch=kit.upload(epoch)))
    assert kit.store.latest_epoch("alice").seq == 1
    return code


async def test_an_epoch_not_signed_by_the_account_key_is_refused(kit):
    alice = await kit.create("alice")
    first = kit.accounts["alice"].epoch
    forged = _opened(kit, (first.head, first.signed_head, first.root), amk=SigningKey.generate())
    assert await _publish_refused(kit, alice, forged) == "bad_epoch"


async def test_an_epoch_must_be_the_next_one_and_chain_to_it(kit):
    alice = await kit.create("alice")
    first = kit.accounts["alice"].epoch
    # Chains to the current head but claims a later place.
    ahead = msgspec.structs.replace(first.head, seq=5)
    assert await _publish_refused(
        kit, alice, _opened(kit, (ahead, first.signed_head, first.root))
    ) == ("bad_epoch")
    # The right place, but after another head than the current one.
    other = _opened(kit, None)
    assert await _publish_refused(
        kit, alice, _opened(kit, (first.head, other.signed_head, first.root))
    ) == ("bad_epoch")


async def test_an_epoch_is_for_the_current_list_and_exactly_its_devices(kit):
    alice = await kit.create("alice")
    laptop = await kit.pending("alice")
    first = kit.accounts["alice"].epoch
    previous = (first.head, first.signed_head, first.root)
    unpublished, _ = kit.next_list(alice, add=laptop)
    assert (
        await _publish_refused(kit, alice, _opened(kit, previous, signed=unpublished))
        == "bad_epoch"
    )
    assert await _publish_refused(kit, alice, _opened(kit, previous, members=[])) == "bad_epoch"
    wrong_key = [EpochMember(member_id=alice.device_id, storage_key=laptop.storage.public)]
    assert (
        await _publish_refused(kit, alice, _opened(kit, previous, members=wrong_key)) == "bad_epoch"
    )
