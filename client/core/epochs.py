"""This device's view of its account's epochs (Labyrinth §"Epochs"; PROTOCOL.md §6).

The book keeps every verified epoch head with its boxes, and the roots this device knows. A
device learns a root from its own grant (a member continuing from the previous epoch needs the
previous root; a new member's grant carries it), and any older root by walking back through the
previous-root boxes. Every head is checked against the account master key and the chain: a
chain that forks, skips, goes back, or ends before the newest device list is refused, and the
device then saves nothing until the chain is whole again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from client.core.port import RelayPort
from client.core.storage import ProfileStore
from shared import wire
from shared.boxes import StorageKey
from shared.device_list import DeviceList, list_hash
from shared.epoch import (
    AccountSecrets,
    EpochHead,
    EpochMember,
    OpenedEpoch,
    head_hash,
    open_account_secrets,
    open_epoch,
    open_grant,
    open_head,
    previous_root,
    verify_chain,
)
from shared.errors import DecryptionError, VerificationError
from shared.identity import SigningKey
from shared.mailbox import epoch_mailbox_key

log = logging.getLogger("ariadne.client.epochs")


class EpochBook:
    def __init__(
        self,
        store: ProfileStore,
        link: RelayPort,
        username: str,
        device_id: str,
        storage: StorageKey,
        account_key: Callable[[], bytes | None],
        on_secrets: Callable[[AccountSecrets], None],
    ) -> None:
        self._store = store
        self._link = link
        self.username = username
        self.device_id = device_id
        self._storage = storage
        self._account_key = account_key
        self._on_secrets = on_secrets
        self._heads: dict[int, EpochHead] = {}
        self._mailbox_keys: dict[int, bytes] = {}

    # ------------------------------------------------------------------ what is known

    def latest_seq(self) -> int:
        return self._store.latest_epoch_seq()

    def head(self, seq: int) -> EpochHead:
        head = self._heads.get(seq)
        if head is None:
            row = self._store.epoch(seq)
            if row is None:
                raise LookupError(f"epoch {seq} is not known here")
            amk_public = self._account_key()
            assert amk_public is not None
            head = self._heads[seq] = open_head(row.signed_head, self.username, amk_public)
        return head

    def latest(self) -> tuple[EpochHead, bytes, bytes] | None:
        """(head, signed head, root) of the newest epoch, if this device has its root."""
        seq = self.latest_seq()
        row = self._store.epoch(seq) if seq else None
        if row is None or row.root is None:
            return None
        return self.head(seq), row.signed_head, row.root

    def root(self, seq: int) -> bytes:
        """The root of epoch ``seq``, walking back from the nearest newer root if need be."""
        row = self._store.epoch(seq)
        if row is None:
            raise LookupError(f"epoch {seq} is not known here")
        if row.root is not None:
            return row.root
        newer = self.root(seq + 1)
        newer_row = self._store.epoch(seq + 1)
        assert newer_row is not None
        root = previous_root(newer, self.head(seq + 1), self.head(seq), newer_row.prev_root_box)
        self._store.set_epoch_root(seq, root)
        return root

    def mailbox_key(self, seq: int) -> bytes:
        key = self._mailbox_keys.get(seq)
        if key is None:
            key = self._mailbox_keys[seq] = epoch_mailbox_key(self.root(seq), self.username, seq)
        return key

    # ------------------------------------------------------------------ learning new epochs

    async def refresh(self, own_list_signed: bytes | None) -> bool:
        """Fetch and verify epochs newer than the newest one known; open this device's grants.
        Returns True if something new was learnt. Raises :class:`VerificationError` if the
        relay's chain is forked, rolled back or truncated."""
        known_seq = self.latest_seq()
        answer = await self._link.request(
            lambda rid: wire.FetchEpochs(rid=rid, since=known_seq), expect=wire.Epochs
        )
        return self.accept(answer.epochs, own_list_signed, known_seq)

    def accept(
        self, epochs: list[wire.EpochData], own_list_signed: bytes | None, known_seq: int
    ) -> bool:
        amk_public = self._account_key()
        if amk_public is None:
            raise VerificationError("this device does not know its account key yet")
        known = None
        if known_seq:
            row = self._store.epoch(known_seq)
            assert row is not None
            known = (known_seq, head_hash(row.signed_head))
        heads = verify_chain(
            [e.signed_head for e in epochs],
            self.username,
            amk_public,
            known=known,
            device_list_hash=list_hash(own_list_signed) if own_list_signed else None,
        )
        if (
            not epochs
            and known is not None
            and own_list_signed is not None
            and self.head(known_seq).device_list_hash != list_hash(own_list_signed)
        ):
            raise VerificationError("the relay hides the epoch of the newest device list")
        prev_root = self._store.epoch(known_seq).root if known_seq else None  # type: ignore[union-attr]
        prev_head = self.head(known_seq) if known_seq else None
        roots: list[bytes | None] = []
        # Everything is checked before anything is stored: a grant naming another previous root
        # than the one held, or a previous-root box that does not open to the previous epoch's
        # committed root, refuses the whole answer (VerificationError), not one epoch.
        for data, head in zip(epochs, heads, strict=True):
            root = None
            if data.grant is not None and head.member(self.device_id) is not None:
                try:
                    # (A previous root the grant brings is checked through the box below.)
                    root = open_grant(data.grant, self._storage, head, self.device_id, prev_root)
                except DecryptionError as exc:
                    log.warning("could not open the grant of epoch %d: %s", head.seq, exc)
            if root is not None and prev_head is not None:
                try:
                    previous_root(root, head, prev_head, data.prev_root_box)
                except DecryptionError:
                    raise VerificationError("the previous-root box does not open") from None
            roots.append(root)
            prev_root, prev_head = root, head
        with self._store.transaction():
            for data, head, root in zip(epochs, heads, roots, strict=True):
                self._store.add_epoch(
                    head.seq, data.signed_head, data.prev_root_box, data.account_box, root
                )
                self._heads[head.seq] = head
                if root is not None:
                    self._on_secrets(open_account_secrets(root, head, data.account_box))
        return bool(epochs)

    # ------------------------------------------------------------------ opening epochs

    def next_epoch(
        self,
        amk: SigningKey,
        device_list: DeviceList,
        signed_list: bytes,
        secrets: AccountSecrets,
        virtual: list[EpochMember] | None = None,
    ) -> OpenedEpoch:
        """Open the epoch that follows the newest one for ``device_list`` (its devices are the
        members, with the virtual devices of the current epoch unless ``virtual`` replaces them)."""
        previous = self.latest()
        if self.latest_seq() and previous is None:
            raise VerificationError("this device does not hold the current epoch's root")
        if virtual is None:
            virtual = list(previous[0].virtual_members) if previous else []
        members = [
            EpochMember(member_id=d.device_id, storage_key=d.storage_key)
            for d in device_list.devices
        ]
        return open_epoch(
            amk,
            self.username,
            previous=previous,
            members=members + virtual,
            device_list_hash=list_hash(signed_list),
            secrets=secrets,
        )

    def opened(self, epoch: OpenedEpoch) -> None:
        """Record an epoch this device opened, once the relay stored it."""
        with self._store.transaction():
            self._store.add_epoch(
                epoch.seq, epoch.signed_head, epoch.prev_root_box, epoch.account_box, epoch.root
            )
        self._heads[epoch.seq] = epoch.head


def upload(epoch: OpenedEpoch) -> wire.EpochUpload:
    return wire.EpochUpload(
        signed_head=epoch.signed_head,
        prev_root_box=epoch.prev_root_box,
        account_box=epoch.account_box,
        grants=[wire.Grant(member_id=m, sealed=s) for m, s in epoch.grants.items()],
    )
