"""Frames of the history backup (PROTOCOL.md, epochs and the account mailbox): epochs with their
grants, the account's mailbox of sealed items (saved, paged, listed by thread, deleted) and the
PIN vault's opaque calls. The relay stores and hands out sealed bytes; it can open none of them.
Gathered with the other areas in :mod:`shared.wire`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.device_list import DeviceId, Key32, Signature
from shared.envelope import MessageId
from shared.wire_frame import MAX_PAYLOAD_BYTES, Frame, Ok, Rid

__all__ = [
    "HISTORY_REPLIES",
    "MAILBOX_PAGE_BYTES",
    "MAX_MAILBOX_PAGE",
    "DeleteMailboxItems",
    "EpochData",
    "EpochRecord",
    "EpochUpload",
    "Epochs",
    "FetchEpochs",
    "FetchMailbox",
    "FetchVaultKey",
    "Grant",
    "ListMailboxThreads",
    "MailboxItem",
    "MailboxPage",
    "MailboxThread",
    "MailboxThreads",
    "PublishEpoch",
    "SaveMessages",
    "ThreadId",
    "VaultCall",
    "VaultKey",
    "VaultReply",
]


ThreadId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
MAX_MAILBOX_PAGE = 500
# Sealed bytes per mailbox page, and per frame of saved items: a page of large items (messages
# with thumbnails) is cut short of its count to stay within MAX_FRAME_BYTES.
MAILBOX_PAGE_BYTES = 384 * 1024


class Grant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    member_id: DeviceId
    sealed: Annotated[bytes, msgspec.Meta(max_length=512)]


class EpochUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new epoch (shared.epoch): signed head, boxes under its root, one grant per member."""

    signed_head: Annotated[bytes, msgspec.Meta(max_length=16 * 1024)]
    prev_root_box: Annotated[bytes, msgspec.Meta(max_length=128)]
    account_box: Annotated[bytes, msgspec.Meta(max_length=512)]
    grants: Annotated[list[Grant], msgspec.Meta(min_length=1, max_length=80)]


class EpochData(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One stored epoch, with the asking member's grant if it has one."""

    signed_head: bytes
    prev_root_box: bytes
    account_box: bytes
    grant: bytes | None


class MailboxItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    thread_id: ThreadId
    message_id: MessageId
    ts: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    epoch: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    sealed: Annotated[bytes, msgspec.Meta(min_length=28, max_length=MAX_PAYLOAD_BYTES)]


class MailboxThread(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    thread_id: ThreadId
    count: int
    newest: MailboxItem


class PublishEpoch(Frame, tag="publish_epoch", frozen=True):
    """A new epoch for the same device list (e.g. a new recovery code, a new virtual device)."""

    rid: Rid
    epoch: EpochUpload


class FetchEpochs(Frame, tag="fetch_epochs", frozen=True):
    """Epochs after ``since``, with ``member_id``'s grants. A device asks for its own; a device
    restoring with a recovery code asks for the virtual device's and shows the virtual device's
    signature over (user, asking device) as its membership ``proof``."""

    rid: Rid
    since: Annotated[int, msgspec.Meta(ge=0)]
    member_id: DeviceId | None = None
    proof: Signature | None = None


class SaveMessages(Frame, tag="save_messages", frozen=True):
    """Items for this user's mailbox, all sealed under the newest epoch."""

    rid: Rid
    items: Annotated[list[MailboxItem], msgspec.Meta(min_length=1, max_length=MAX_MAILBOX_PAGE)]


class FetchMailbox(Frame, tag="fetch_mailbox", frozen=True):
    """A page of one thread, newest first, strictly before ``(before_ts, before_id)`` if given."""

    rid: Rid
    thread_id: ThreadId
    before_ts: int | None = None
    before_id: MessageId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_MAILBOX_PAGE)] = 100


class ListMailboxThreads(Frame, tag="list_mailbox_threads", frozen=True):
    rid: Rid


class FetchVaultKey(Frame, tag="fetch_vault_key", frozen=True):
    rid: Rid


class VaultCall(Frame, tag="vault_call", frozen=True):
    """An opaque request for the vault (shared.pin), sealed to the vault's key."""

    rid: Rid
    sealed: Annotated[bytes, msgspec.Meta(max_length=2048)]


class Epochs(Frame, tag="epochs", frozen=True):
    rid: Rid
    epochs: list[EpochData]


class MailboxPage(Frame, tag="mailbox_page", frozen=True):
    rid: Rid
    items: list[MailboxItem]
    # The page stopped before ``limit`` items to stay within one frame (items with thumbnails
    # are large): there may be more.
    more: bool = False


class MailboxThreads(Frame, tag="mailbox_threads", frozen=True):
    rid: Rid
    threads: list[MailboxThread]


class VaultKey(Frame, tag="vault_key", frozen=True):
    rid: Rid
    public: Key32


class VaultReply(Frame, tag="vault_reply", frozen=True):
    rid: Rid
    sealed: bytes


class EpochRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An epoch as a member device holds it: the signed head and the boxes under its root (no
    grants: those were sealed to each member, and each member keeps what it opened)."""

    signed_head: Annotated[bytes, msgspec.Meta(max_length=16 * 1024)]
    prev_root_box: Annotated[bytes, msgspec.Meta(max_length=128)]
    account_box: Annotated[bytes, msgspec.Meta(max_length=512)]


class DeleteMailboxItems(Frame, tag="delete_mailbox_items", frozen=True):
    """Delete items of one thread of this user's mailbox: the listed message ids, and with
    ``through_ts`` every item up to that time (a deleted conversation). Unsend, delete and expiry
    (PROTOCOL.md §10): each account deletes its own sealed copy."""

    rid: Rid
    thread_id: ThreadId
    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_MAILBOX_PAGE)]
    through_ts: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


# What the relay answers to each of these requests when it takes it (gathered in
# ``shared.wire.REPLIES``).
HISTORY_REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    PublishEpoch: (Ok,),
    FetchEpochs: (Epochs,),
    SaveMessages: (Ok,),
    FetchMailbox: (MailboxPage,),
    ListMailboxThreads: (MailboxThreads,),
    FetchVaultKey: (VaultKey,),
    VaultCall: (VaultReply,),
    DeleteMailboxItems: (Ok,),
}
