"""This device's history: its account's epochs, the save loop to the mailbox, the recovery code,
restoring a new device with it, and loading conversations back from the mailbox.

The epoch book (:mod:`~client.core.epochs`) verifies the chain and the mailbox
(:mod:`~client.core.mailbox`) seals and opens items; :class:`History` decides when: it learns new
epochs when the account's list or epochs change (one refresh at a time), saves what is marked
whenever there is work and the relay is there, and turns a refused save into the state the user
sees. A device that becomes a full member here (approved elsewhere, or restored) loads its
conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from client.core import recovery
from client.core.account import Account
from client.core.context import ClientContext
from client.core.devices import Devices
from client.core.directory import Directory
from client.core.epochs import EpochBook
from client.core.events import EpochChainRefused, RelayLimitReached
from client.core.mailbox import Mailbox
from client.core.outbox import Outbox
from client.core.port import Offline, RelayError
from client.core.profile import DeviceRole
from shared import wire
from shared.device_list import next_device_list
from shared.epoch import EpochMember
from shared.errors import VerificationError
from shared.identity import SigningKey
from shared.pin import check_pin
from shared.recovery_code import generate as generate_recovery_code
from shared.recovery_code import virtual_device

log = logging.getLogger("ariadne.client")

MAILBOX_FULL_TEXT = (
    "Your history backup on the relay is full — new messages are kept on this device only"
)


class History:
    def __init__(
        self,
        ctx: ClientContext,
        account: Account,
        directory: Directory,
        epochs: EpochBook,
        mailbox: Mailbox,
        devices: Devices,
        outbox: Outbox,
    ) -> None:
        self._ctx = ctx
        self._account = account
        self._directory = directory
        self._epochs = epochs
        self._mailbox = mailbox
        self._devices = devices
        self._outbox = outbox
        self._epoch_lock = asyncio.Lock()

    # ------------------------------------------------------------------ epochs

    async def refresh_own(self) -> None:
        """The account's device list or epochs changed: learn both (a device just approved
        becomes a member here, and opens its grant)."""
        await self._directory.refresh(self._ctx.username)
        if self._account.is_member:
            await self.refresh_epochs()

    async def refresh_epochs(self) -> None:
        """Learn new epochs. A chain that does not end at the newest own device list may just be
        a race with a change in progress: refetch the list and try once more before refusing."""
        async with self._epoch_lock:
            before = self._account.role
            await self._refresh_epochs_locked()
            became_full = before is DeviceRole.MEMBER and self._account.role is DeviceRole.FULL
        if became_full:
            # Approved by another device: this device now holds the root, so the history.
            self._ctx.in_background(self.load_conversations())

    async def _refresh_epochs_locked(self) -> None:
        username = self._ctx.username
        for attempt in range(2):
            try:
                if await self._epochs.refresh(self._directory.signed(username)):
                    self._ctx.mailbox_wake.set()
                return
            except VerificationError as exc:
                if attempt == 0:
                    await self._directory.refresh(username)
                    continue
                log.warning("refused the relay's epoch chain: %s", exc)
                self._ctx.emit(EpochChainRefused(str(exc)))

    # ------------------------------------------------------------------ saving

    async def run(self) -> None:
        """The save loop: whenever woken and online, save what is marked to the mailbox."""
        ctx = self._ctx
        while True:
            await ctx.mailbox_wake.wait()
            await ctx.port.online.wait()
            ctx.mailbox_wake.clear()
            try:
                await self._mailbox.save_pending()
            except Offline:
                await asyncio.sleep(0.05)
                ctx.mailbox_wake.set()
            except RelayError as exc:
                if exc.code == wire.ErrorCode.STALE_EPOCH:
                    before = self._epochs.latest_seq()
                    with contextlib.suppress(Offline, RelayError):
                        await self.refresh_epochs()
                    if self._epochs.latest_seq() > before:
                        ctx.mailbox_wake.set()
                    else:  # the relay calls our newest epoch stale yet shows none newer
                        ctx.emit(EpochChainRefused("the relay no longer serves the newest epoch"))
                elif exc.code == wire.ErrorCode.MAILBOX_FULL:
                    # The items stay marked for saving: the next message retries them.
                    ctx.emit(RelayLimitReached(exc.code, MAILBOX_FULL_TEXT))
                else:
                    log.warning("saving to the mailbox failed: %s", exc.code)

    async def wait_saved(self, timeout: float = 30.0) -> None:
        """Wait until every message this device stored has been saved to the mailbox."""
        async with asyncio.timeout(timeout):
            while self._ctx.store.unsaved_count():
                self._ctx.mailbox_wake.set()
                await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ recovery

    async def setup_recovery(self, pin: str | None = None) -> str:
        """Make a new recovery code (and, with ``pin``, back it up in the vault) and return it,
        to be shown once: it is stored nowhere. The code is a new virtual device, made a member
        by opening a new epoch; an earlier code's virtual device is dropped (rotation)."""
        amk = self._account.key
        if amk is None or not self._account.is_member:
            raise PermissionError("only a full member device can set up recovery")
        if pin is not None:
            check_pin(pin)
        ctx = self._ctx
        code = generate_recovery_code(ctx.state.codes_made)
        virtual = virtual_device(code)
        member = EpochMember(
            member_id=virtual.member_id,
            storage_key=virtual.storage.public,
            virtual=True,
            sign_public=virtual.signing.public,
            endorsement=virtual.endorse(amk.public),
        )
        if pin is not None:
            await recovery.back_up_pin(ctx.port, ctx.store, ctx.username, pin, code, amk)
        own = self._directory.known(ctx.username)
        signed = self._directory.signed(ctx.username)
        if own is None or signed is None:
            raise PermissionError("this device has no verified list of its own account")
        # The new list names the code's key: a device restoring with the code may then author
        # the next list, which is how it puts itself on a list it is not yet on.
        signed = next_device_list(
            amk, ctx.profile.sign_key, own, signed, recovery_key=virtual.signing.public
        )
        await self._devices.publish_device_list(signed, [member])
        self._outbox.share_device_list(signed)
        with ctx.store.transaction():
            ctx.state.count_code_made()
        return code

    async def restore(self, code: str | None = None, pin: str | None = None) -> list[str]:
        """Make this pending device a full member with the recovery code (or the PIN, which gets
        the code from the vault), then load the first page of every conversation. Returns the
        conversations found; :meth:`backfill` loads the rest.

        Raises :class:`~shared.recovery_code.InvalidRecoveryCode`,
        :class:`~client.core.recovery.WrongRecoveryCode`, :class:`~shared.pin.WrongPin`,
        :class:`~shared.pin.VaultLocked`, :class:`~shared.pin.NoBackup`, or
        :class:`~shared.errors.VerificationError` if the relay's data is forged."""
        if self._account.is_member:
            raise PermissionError("this device is already a member of its account")
        if (code is None) == (pin is None):
            raise ValueError("restore with a recovery code or a PIN")
        ctx = self._ctx
        if pin is not None:
            code = await recovery.code_from_vault(ctx.port, ctx.store, ctx.username, pin)
        assert code is not None
        recovered = await recovery.recover(ctx.port, ctx.username, ctx.device_id, code)
        amk = SigningKey(recovered.secrets.amk_seed)
        # The code's endorsement authenticates this key: it overrides what the relay showed at
        # login (or what an unconfirmed pairing request claimed).
        known = self._directory.known(ctx.username)
        async with ctx.store.transaction():  # durable before this device publishes itself
            if known is not None and known.amk_public != amk.public:
                log.warning("the relay showed this device another account key; using the code's")
                self._directory.forget(ctx.username)
            ctx.state.pin_account_public(amk.public)
            # The code, not a pairing exchange, makes this device a member: no approver's list.
            ctx.state.forget_approvers()
            own = await self._directory.refresh(ctx.username)
            own_signed = self._directory.signed(ctx.username)
            self._epochs.accept(recovered.epochs, own_signed, 0)
            ctx.store.set_epoch_root(self._epochs.latest_seq(), recovered.root)
            self._account.take_secrets(recovered.secrets)  # still pending: history loads below
        # Authored by the code's virtual device, which the current list names: the only author
        # a device that is on no list yet can show.
        signed = next_device_list(
            amk, recovered.virtual.signing, own, own_signed or b"", add=self._devices.own_entry()
        )
        await self._devices.publish_device_list(signed)
        return await self.load_conversations()

    # ------------------------------------------------------------------ loading

    async def load_conversations(self) -> list[str]:
        """Learn the conversations the mailbox holds and load each one's newest page."""
        cursors = await self._mailbox.sync_threads()
        for cursor in cursors:
            if cursor.loaded == 0:
                await self._mailbox.load_page(cursor.thread)
        return [c.thread for c in cursors]

    async def load_older(self, thread: str, limit: int = 100) -> int:
        """Fetch one more page of ``thread`` from the mailbox (when scrolling up past what this
        device holds). Returns how many messages were new here."""
        return await self._mailbox.load_page(thread, limit)

    def has_older(self, thread: str) -> bool:
        return self._mailbox.has_older(thread)

    def has_history_to_load(self) -> bool:
        return any(not c.done for c in self._ctx.store.mailbox_cursors())

    def progress(self) -> tuple[int, int]:
        """(messages loaded from the mailbox, messages it holds) over all conversations."""
        cursors = self._ctx.store.mailbox_cursors()
        return sum(c.loaded for c in cursors), sum(c.total for c in cursors)

    async def backfill(self) -> int:
        """Load all remaining history, page by page (``HistoryLoaded`` events report progress)."""
        return await self._mailbox.backfill()
