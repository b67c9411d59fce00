"""History handlers: epochs (their signed heads, boxes and per-member grants) and the mailbox of
sealed messages.

The relay checks what it can of a new epoch so that no client has to deal with a malformed one,
hands a grant only to its member, and takes mailbox writes only from members under the latest
epoch (an older one would let a removed device read them).
"""

from __future__ import annotations

from relay.session import Handler, Reject, Session
from relay.store import EpochRow
from shared import wire
from shared.device_list import DeviceList, list_hash, open_device_list
from shared.epoch import EpochHead, head_hash, open_head
from shared.errors import ProtocolError
from shared.identity import device_id_for
from shared.recovery_code import check_membership_proof
from shared.wire import ErrorCode


def checked_epoch(
    session: Session, upload: wire.EpochUpload, device_list: DeviceList, signed_list: bytes
) -> EpochRow:
    """AMK signature, next in the chain, opened for this device list, its device members exactly
    the listed devices (with their storage keys), one grant per member."""
    store, username = session.store, session.username
    amk_public = store.amk_public(username) or b""
    try:
        head = open_head(upload.signed_head, username, amk_public)
    except ProtocolError as exc:
        raise Reject(ErrorCode.BAD_EPOCH, str(exc)) from None
    latest = store.latest_epoch(username)
    if head.seq != (latest.seq + 1 if latest else 1):
        raise Reject(ErrorCode.BAD_EPOCH, "epochs must go up one at a time")
    if latest is not None and head.prev_head_hash != head_hash(latest.signed_head):
        raise Reject(ErrorCode.BAD_EPOCH, "epoch does not chain to the previous one")
    if head.device_list_hash != list_hash(signed_list):
        raise Reject(ErrorCode.BAD_EPOCH, "epoch is not for this device list")
    if not _members_match(head, device_list):
        raise Reject(ErrorCode.BAD_EPOCH, "epoch members are not the listed devices")
    granted = [g.member_id for g in upload.grants]
    if len(set(granted)) != len(granted) or set(granted) != {m.member_id for m in head.members}:
        raise Reject(ErrorCode.BAD_EPOCH, "one grant per member, no more")
    if (head.seq == 1) != (upload.prev_root_box == b""):
        raise Reject(ErrorCode.BAD_EPOCH, "previous-root box missing or unexpected")
    return EpochRow(head.seq, upload.signed_head, upload.prev_root_box, upload.account_box)


def _members_match(head: EpochHead, device_list: DeviceList) -> bool:
    devices = {m.member_id: m for m in head.members if not m.virtual}
    if set(devices) != device_list.device_ids:
        return False
    for entry in device_list.devices:
        if devices[entry.device_id].storage_key != entry.storage_key:
            return False
    return all(
        m.sign_public is not None
        and m.endorsement is not None
        and device_id_for(m.sign_public) == m.member_id
        for m in head.virtual_members
    )


async def publish_epoch(session: Session, frame: wire.PublishEpoch) -> wire.Frame:
    store, username = session.store, session.username
    if not session.is_member:
        raise Reject(ErrorCode.NOT_A_MEMBER, "only a device on the device list opens epochs")
    stored = store.device_list(username)
    if stored is None:
        raise Reject(ErrorCode.BAD_EPOCH, "the account has no device list yet")
    listed = open_device_list(stored[1], username, None)
    epoch = checked_epoch(session, frame.epoch, listed, stored[1])
    store.add_epoch(username, epoch, ((g.member_id, g.sealed) for g in frame.epoch.grants))
    await store.durable()
    session.relay.notify_user(username, wire.Notice(kind="epoch_changed"))
    return wire.Ok(rid=frame.rid)


async def fetch_epochs(session: Session, frame: wire.FetchEpochs) -> wire.Frame:
    """Epoch records go to any device of the account (they are signed, and sealed); a grant
    only to its member: the device itself, or a device proving it holds a virtual device's
    key (the recovery code) with a signature the signed head lets the relay check."""
    store, username = session.store, session.username
    member_id = frame.member_id or session.device_id
    amk_public = store.amk_public(username) or b""
    epochs = store.epochs_after(username, frame.since)
    allowed = member_id == session.device_id
    if not allowed and frame.proof is not None and epochs:
        head = open_head(epochs[-1].signed_head, username, amk_public)
        member = head.member(member_id)
        allowed = (
            member is not None
            and member.virtual
            and member.sign_public is not None
            and check_membership_proof(member.sign_public, frame.proof, username, session.device_id)
        )
    if not allowed:
        raise Reject(ErrorCode.NOT_A_MEMBER, "grants go only to their member")
    grants = store.grants_for(username, member_id, frame.since)
    return wire.Epochs(
        rid=frame.rid,
        epochs=[
            wire.EpochData(
                signed_head=e.signed_head,
                prev_root_box=e.prev_root_box,
                account_box=e.account_box,
                grant=grants.get(e.seq),
            )
            for e in epochs
        ],
    )


async def save_messages(session: Session, frame: wire.SaveMessages) -> wire.Frame:
    session.require_member()
    store, username, quota = session.store, session.username, session.limits.mailbox_bytes
    latest = store.latest_epoch(username)
    if latest is None or any(item.epoch != latest.seq for item in frame.items):
        # Saving under an older epoch would let a removed device read it: refuse.
        raise Reject(ErrorCode.STALE_EPOCH, f"save under epoch {latest.seq if latest else 0}")
    adding = sum(len(item.sealed) for item in frame.items)
    if store.mailbox_bytes(username) + adding > quota:
        raise Reject(ErrorCode.MAILBOX_FULL, f"the mailbox holds {quota} bytes")
    store.save_to_mailbox(
        username, ((i.thread_id, i.ts, i.message_id, i.epoch, i.sealed) for i in frame.items)
    )
    await store.durable()
    return wire.Ok(rid=frame.rid)


def _item(row: tuple[bytes, bytes, int, int, bytes]) -> wire.MailboxItem:
    return wire.MailboxItem(
        thread_id=row[0], message_id=row[1], ts=row[2], epoch=row[3], sealed=row[4]
    )


async def fetch_mailbox(session: Session, frame: wire.FetchMailbox) -> wire.Frame:
    session.require_member()
    if (frame.before_ts is None) != (frame.before_id is None):
        raise Reject(ErrorCode.BAD_REQUEST, "before_ts and before_id go together")
    before = (
        (frame.before_ts, frame.before_id)
        if frame.before_ts is not None and frame.before_id is not None
        else None
    )
    rows = session.store.mailbox_page(session.username, frame.thread_id, before, frame.limit)
    kept, size = 0, 0
    for row in rows:
        size += len(row[4])
        if kept and size > wire.MAILBOX_PAGE_BYTES:
            break
        kept += 1
    items = [_item(r) for r in rows[:kept]]
    return wire.MailboxPage(rid=frame.rid, items=items, more=kept < len(rows))


async def mailbox_threads(session: Session, frame: wire.ListMailboxThreads) -> wire.Frame:
    session.require_member()
    store, username = session.store, session.username
    threads = [
        wire.MailboxThread(
            thread_id=thread_id,
            count=count,
            newest=_item(store.mailbox_page(username, thread_id, None, 1)[0]),
        )
        for thread_id, count in store.mailbox_threads(username)
    ]
    return wire.MailboxThreads(rid=frame.rid, threads=threads)


HANDLERS: dict[type, Handler] = {
    wire.PublishEpoch: publish_epoch,
    wire.FetchEpochs: fetch_epochs,
    wire.SaveMessages: save_messages,
    wire.FetchMailbox: fetch_mailbox,
    wire.ListMailboxThreads: mailbox_threads,
}
