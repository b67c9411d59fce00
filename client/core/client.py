"""The client engine's façade: one device of one account, the API the GUI and the tests use.

:class:`AriadneClient` builds the engine's concerns around one :class:`~client.core.context.
ClientContext` (store, relay port, profile, events, background tasks), routes the relay's pushes
to them, and keeps today's public API:

- :mod:`~client.core.inbox`: envelopes pushed by the relay, decrypted in batches, each batch one
  transaction, acknowledged only once committed.
- :mod:`~client.core.outbox`: sending, fan-out, receipts and read state.
- :mod:`~client.core.timeline`: each sender's own order, and the system lines.
- here: login and keys, the device's role (:mod:`~client.core.profile`), its own device list,
  pairing and removal, epochs and the mailbox, recovery and restore.
- **Events.** Everything the user should see is an :mod:`client.core.events` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from client.core import recovery
from client.core.at_rest import KeyPlace, forget_key
from client.core.context import ClientContext
from client.core.directory import Directory, UnknownUser
from client.core.epochs import EpochBook, upload
from client.core.events import (
    ConnectionState,
    ConnectionStateChanged,
    DeviceRemoved,
    EpochChainRefused,
    Event,
    PairingRequested,
    RelayLimitReached,
    StoredMessage,
)
from client.core.inbox import Inbox
from client.core.link import Backoff, Offline, RelayError, RelayLink
from client.core.mailbox import Mailbox
from client.core.outbox import Outbox
from client.core.outbox import SendBlocked as SendBlocked
from client.core.outbox import SendError as SendError
from client.core.outbox import SendLater as SendLater
from client.core.pairing import Pairing
from client.core.profile import (
    DeviceRole,
    Profile,
    ProfileState,
    Registration,
    next_role,
    write_new_profile,
)
from client.core.sessions import SessionBook
from client.core.storage import ProfileStore
from client.core.timeline import Timeline
from shared import pairing, wire
from shared.auth import sign_login
from shared.boxes import StorageKey
from shared.device_list import (
    DeviceEntry,
    DeviceList,
    first_device_list,
    next_device_list,
    open_device_list,
)
from shared.epoch import AccountSecrets, EpochMember
from shared.errors import (
    VerificationError,
)
from shared.identity import SigningKey, device_id_for
from shared.pin import check_pin
from shared.recovery_code import generate as generate_recovery_code
from shared.recovery_code import virtual_device
from shared.safety_number import safety_number
from shared.session import dump_x3dh_state, load_x3dh_state, new_x3dh_state

log = logging.getLogger("ariadne.client")

PRE_KEY_BATCH = 100
MAILBOX_FULL_TEXT = (
    "Your history backup on the relay is full — new messages are kept on this device only"
)


class RegistrationError(Exception):
    """Creating an account or adding a device was refused (``code`` says why; a throttled login
    says in ``retry_after`` how many seconds to wait)."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.retry_after = retry_after


class AriadneClient:
    """One device profile, connected to its relay. Build with :meth:`create_account`,
    :meth:`add_device` or :meth:`open`; call :meth:`close` when done."""

    def __init__(
        self,
        profile_dir: Path,
        store: ProfileStore,
        backoff: Backoff | None = None,
        password: str | None = None,
    ) -> None:
        self.profile_dir = profile_dir
        self._store = store
        self.profile = Profile.read(store)
        self._state = ProfileState(store)
        self.username = self.profile.username
        self.device_id = self.profile.device_id
        self.device_name = self.profile.device_name
        self.relay_url = self.profile.relay_url
        self._sign_key = self.profile.sign_key
        self._storage_key = self.profile.storage_key
        self._amk = self._state.account_key
        self._x3dh = load_x3dh_state(self._state.x3dh_state)
        self._password = password  # only until the relay accepted the registration
        self.link = RelayLink(
            self.relay_url,
            self._login_frame,
            self._on_push,
            self._on_connection_state,
            self._on_login,
            backoff,
        )
        self.context = ClientContext(store, self.link, self.profile, self._state)
        self.directory = Directory(
            store,
            self.link,
            self.context.emit,
            self._device_list_changed,
            own_username=self.username,
            own_device=self.device_id,
        )
        self.sessions = SessionBook(store, self._x3dh, (self.username, self.device_id))
        self.epochs = EpochBook(
            store,
            self.link,
            self.username,
            self.device_id,
            self._storage_key,
            self._account_public,
            self._on_secrets,
        )
        self.mailbox = Mailbox(store, self.link, self.epochs, self.username, self.context.emit)
        self.pairing = Pairing(self.link, self.context.emit, self._pairing_keys)
        self.timeline = Timeline(self.context)
        self.outbox = Outbox(self.context, self.directory, self.sessions, self.timeline)
        self.inbox = Inbox(self.context, self.directory, self.sessions, self.timeline)
        self._epoch_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _new_profile(
        profile_dir: Path,
        relay_url: str,
        username: str,
        device_name: str,
        registration: Registration | str,
        with_amk: bool,
        encrypt: bool = True,
    ) -> ProfileStore:
        if ProfileStore.exists(profile_dir):
            raise FileExistsError(f"a profile already exists in {profile_dir}")
        store = ProfileStore(profile_dir, encrypt=encrypt)
        sign_key = SigningKey.generate()
        x3dh = new_x3dh_state()
        x3dh.generate_pre_keys(PRE_KEY_BATCH)
        identity = Profile(
            username=username,
            device_id=device_id_for(sign_key.public),
            device_name=device_name,
            relay_url=relay_url,
            sign_key=sign_key,
            storage_key=StorageKey.generate(),
        )
        account_key = SigningKey.generate() if with_amk else None
        write_new_profile(
            store, identity, dump_x3dh_state(x3dh), Registration(registration), account_key
        )
        return store

    @classmethod
    async def create_account(
        cls,
        profile_dir: Path,
        relay_url: str,
        username: str,
        password: str,
        device_name: str,
        *,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
    ) -> AriadneClient:
        """Create an account with this as its first device, which holds the account master key."""
        store = cls._new_profile(
            profile_dir, relay_url, username, device_name, Registration.CREATE, True
        )
        return await cls._register(profile_dir, store, password, backoff, timeout)

    @classmethod
    async def add_device(
        cls,
        profile_dir: Path,
        relay_url: str,
        username: str,
        password: str,
        device_name: str,
        *,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
    ) -> AriadneClient:
        """Log in to an existing account from a new device. The device is *pending* (it receives
        nothing) until one of the account's devices approves it."""
        store = cls._new_profile(
            profile_dir, relay_url, username, device_name, Registration.ADD, False
        )
        return await cls._register(profile_dir, store, password, backoff, timeout)

    @classmethod
    async def _register(
        cls,
        profile_dir: Path,
        store: ProfileStore,
        password: str,
        backoff: Backoff | None,
        timeout: float,
    ) -> AriadneClient:
        client = cls(profile_dir, store, backoff, password)
        client.start()
        try:
            await client.wait_online(timeout)
        except (TimeoutError, RegistrationError) as exc:
            await client.close()
            for leftover in profile_dir.glob("ariadne.sqlite3*"):
                leftover.unlink(missing_ok=True)
            forget_key(profile_dir)
            if isinstance(exc, RegistrationError):
                raise
            raise RegistrationError("unreachable", "the relay could not be reached") from None
        return client

    @classmethod
    async def open(
        cls, profile_dir: Path, *, relay_url: str | None = None, backoff: Backoff | None = None
    ) -> AriadneClient:
        """Open an existing profile and connect in the background (to ``relay_url`` if given,
        which is remembered; otherwise to the relay the profile was made with)."""
        if not ProfileStore.exists(profile_dir):
            raise FileNotFoundError(f"no profile in {profile_dir}")
        store = ProfileStore(profile_dir)
        if relay_url is not None:
            with store.transaction():
                ProfileState(store).set_relay_url(relay_url)
        client = cls(profile_dir, store, backoff)
        client.start()
        return client

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.inbox.run(), name="inbox"),
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self._mailbox_loop(), name="mailbox"),
        ]
        self.link.start()
        self.context.outbox_wake.set()
        self.context.mailbox_wake.set()

    @property
    def send_notes(self) -> dict[bytes, str]:
        """Why an outgoing message still waits (a relay limit), by message id, for its bubble."""
        return self.outbox.send_notes

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.link.close()
        for task in [*self._tasks, *self.context.background]:
            task.cancel()
        for task in [*self._tasks, *self.context.background]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._store.close()

    async def wait_online(self, timeout: float = 30.0) -> None:
        """Wait until logged in; raises :class:`RegistrationError` if the relay refuses."""
        async with asyncio.timeout(timeout):
            while not self.link.online.is_set():
                if self.link.state is ConnectionState.FAILED:
                    error = self.link.login_error
                    raise RegistrationError(
                        error.code if error else "failed",
                        error.detail if error else "",
                        error.retry_after if error else None,
                    )
                await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ events

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self.context.listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self.context.listeners:
            self.context.listeners.remove(listener)

    def _on_connection_state(self, state: ConnectionState, detail: str) -> None:
        self.context.emit(ConnectionStateChanged(state, detail))
        error = self.link.login_error
        if (
            state is ConnectionState.FAILED
            and error is not None
            and error.code == "unknown_device"
            and self._state.role.is_member
        ):
            self._take_role(DeviceRole.REMOVED)

    def _take_role(self, role: DeviceRole) -> None:
        if self._state.move_to(role) and role is DeviceRole.REMOVED:
            self.context.emit(DeviceRemoved(self.username))

    @property
    def database_key_place(self) -> KeyPlace:
        """Where this profile's database key is kept (the OS keyring, or a file beside it)."""
        return self._store.key_place

    @property
    def removed(self) -> bool:
        """This device was removed from its account (it cannot read anything new)."""
        return self._state.role is DeviceRole.REMOVED

    async def delete_local_data(self) -> None:
        """Close and delete this profile: messages, keys, everything this device held."""
        await self.close()
        forget_key(self.profile_dir)
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    # ------------------------------------------------------------------ login and keys

    def _login_frame(self, nonce: bytes, rid: int) -> wire.Frame:
        signature = sign_login(self._sign_key, nonce, self.username, self.device_id)
        registration = self._state.registration
        if registration is Registration.DONE:
            return wire.Resume(
                rid=rid, username=self.username, device_id=self.device_id, signature=signature
            )
        if self._password is None:
            raise RegistrationError("unfinished", "registration was interrupted; start again")
        device = wire.DeviceRegistration(
            device_id=self.device_id,
            name=self.device_name,
            sign_public=self._sign_key.public,
            storage_key=self._storage_key.public,
        )
        if registration is Registration.CREATE:
            assert self._amk is not None
            return wire.CreateAccount(
                rid=rid,
                username=self.username,
                password=self._password,
                device=device,
                amk_public=self._amk.public,
                signature=signature,
            )
        return wire.AddDevice(
            rid=rid,
            username=self.username,
            password=self._password,
            device=device,
            signature=signature,
        )

    async def _on_login(self, welcome: wire.Welcome) -> None:
        if self._state.registration is not Registration.DONE:
            with self._store.transaction():
                self._state.set_registered()
            self._password = None
        if not self._state.keys_published:
            await self._publish_keys(top_up=False)
        elif welcome.one_time_pre_keys_left < wire.PRE_KEYS_LOW:
            await self._publish_keys(top_up=True)
        # A new device trusts no list of its own account before it confirms a pairing code.
        if self._account_public() is not None:
            try:
                await self.directory.refresh(self.username)
            except UnknownUser:
                if self._amk is not None:
                    await self._publish_first_device_list()
                elif self._state.approvers is None:
                    raise
                # else: a confirmed device whose approver has not published its list yet
        if self.is_member:
            await self._refresh_epochs()
        self.context.outbox_wake.set()
        self.context.mailbox_wake.set()

    async def _publish_keys(self, top_up: bool) -> None:
        before = self._x3dh.bundle.pre_keys if top_up else frozenset()
        if top_up:
            async with self._store.transaction():  # private halves are safe before the public
                self._x3dh.generate_pre_keys(PRE_KEY_BATCH)  # ones leave
                self._state.set_x3dh_state(dump_x3dh_state(self._x3dh))
        bundle = self._x3dh.bundle
        await self.link.request(
            lambda rid: wire.PublishKeys(
                rid=rid,
                identity_key=bundle.identity_key,
                signed_pre_key=bundle.signed_pre_key,
                signed_pre_key_sig=bundle.signed_pre_key_sig,
                one_time_pre_keys=sorted(bundle.pre_keys - before),
            ),
            expect=wire.Ok,
        )
        with self._store.transaction():
            self._state.set_keys_published()

    def _own_entry(self) -> DeviceEntry:
        return DeviceEntry(
            device_id=self.device_id,
            name=self.device_name,
            sign_public=self._sign_key.public,
            identity_key=self._x3dh.bundle.identity_key,
            storage_key=self._storage_key.public,
            added_at=int(time.time()),
        )

    async def _publish_first_device_list(self) -> None:
        assert self._amk is not None
        signed = first_device_list(self._amk, self.username, self._own_entry(), self._sign_key)
        await self._publish_device_list(signed)

    async def _publish_device_list(
        self, signed: bytes, virtual: list[EpochMember] | None = None
    ) -> DeviceList:
        """Publish a new own device list together with the epoch opened for it (its devices
        and virtual devices are the members), and take both into use."""
        assert self._amk is not None
        device_list = open_device_list(signed, self.username, self._amk.public)
        epoch = self.epochs.next_epoch(
            self._amk, device_list, signed, self._account_secrets(), virtual
        )
        await self.link.request(
            lambda rid: wire.PublishDeviceList(rid=rid, signed_list=signed, epoch=upload(epoch)),
            expect=wire.Ok,
        )
        accepted = self.directory.accept(self.username, signed)
        assert accepted is not None
        self.epochs.opened(epoch)
        self.context.mailbox_wake.set()
        return accepted

    # ------------------------------------------------------------------ epochs and history

    def _account_public(self) -> bytes | None:
        """The account key this device trusts: its own if it holds it, else the one its verified
        own device list is signed with."""
        pinned = self._state.pinned_account_public
        if pinned is not None:
            return pinned
        own = self.directory.known(self.username)
        return own.amk_public if own else None

    def _account_secrets(self) -> AccountSecrets:
        thread_key = self._state.thread_key
        assert self._amk is not None and thread_key is not None
        return AccountSecrets(amk_seed=self._amk.seed, thread_key=thread_key)

    def _on_secrets(self, secrets: AccountSecrets) -> None:
        """An epoch's account box opened: this device now holds the account key (a member
        becomes a full member) and the thread key. Committed with the epoch by the caller."""
        if self._amk is None:
            self._amk = SigningKey(secrets.amk_seed)
            self._state.set_account_key(self._amk)
            if self._state.role is DeviceRole.MEMBER:
                self._take_role(DeviceRole.FULL)
        if self._state.thread_key is None:
            self._state.set_thread_key(secrets.thread_key)

    async def _refresh_own(self) -> None:
        """The account's device list or epochs changed: learn both (a device just approved
        becomes a member here, and opens its grant)."""
        await self.directory.refresh(self.username)
        if self.is_member:
            await self._refresh_epochs()

    async def _refresh_epochs(self) -> None:
        """Learn new epochs. A chain that does not end at the newest own device list may just be
        a race with a change in progress: refetch the list and try once more before refusing."""
        async with self._epoch_lock:
            before = self._state.role
            await self._refresh_epochs_locked()
            became_full = before is DeviceRole.MEMBER and self._state.role is DeviceRole.FULL
        if became_full:
            # Approved by another device: this device now holds the root, so the history.
            self.context.in_background(self.load_conversations())

    async def _refresh_epochs_locked(self) -> None:
        for attempt in range(2):
            try:
                if await self.epochs.refresh(self.directory.signed(self.username)):
                    self.context.mailbox_wake.set()
                return
            except VerificationError as exc:
                if attempt == 0:
                    await self.directory.refresh(self.username)
                    continue
                log.warning("refused the relay's epoch chain: %s", exc)
                self.context.emit(EpochChainRefused(str(exc)))

    async def _mailbox_loop(self) -> None:
        while True:
            await self.context.mailbox_wake.wait()
            await self.link.online.wait()
            self.context.mailbox_wake.clear()
            try:
                await self.mailbox.save_pending()
            except Offline:
                await asyncio.sleep(0.05)
                self.context.mailbox_wake.set()
            except RelayError as exc:
                if exc.code == "stale_epoch":
                    before = self.epochs.latest_seq()
                    with contextlib.suppress(Offline, RelayError):
                        await self._refresh_epochs()
                    if self.epochs.latest_seq() > before:
                        self.context.mailbox_wake.set()
                    else:  # the relay calls our newest epoch stale yet shows none newer
                        self.context.emit(
                            EpochChainRefused("the relay no longer serves the newest epoch")
                        )
                elif exc.code == "mailbox_full":
                    # The items stay marked for saving: the next message retries them.
                    self.context.emit(RelayLimitReached(exc.code, MAILBOX_FULL_TEXT))
                else:
                    log.warning("saving to the mailbox failed: %s", exc.code)

    async def setup_recovery(self, pin: str | None = None) -> str:
        """Make a new recovery code (and, with ``pin``, back it up in the vault) and return it,
        to be shown once: it is stored nowhere. The code is a new virtual device, made a member
        by opening a new epoch; an earlier code's virtual device is dropped (rotation)."""
        if self._amk is None or not self.is_member:
            raise PermissionError("only a full member device can set up recovery")
        if pin is not None:
            check_pin(pin)
        code = generate_recovery_code(self._state.codes_made)
        virtual = virtual_device(code)
        member = EpochMember(
            member_id=virtual.member_id,
            storage_key=virtual.storage.public,
            virtual=True,
            sign_public=virtual.signing.public,
            endorsement=virtual.endorse(self._amk.public),
        )
        if pin is not None:
            await recovery.back_up_pin(self.link, self._store, self.username, pin, code, self._amk)
        own = self.directory.known(self.username)
        signed = self.directory.signed(self.username)
        assert own is not None and signed is not None
        # The new list names the code's key: a device restoring with the code may then author
        # the next list, which is how it puts itself on a list it is not yet on.
        signed = next_device_list(
            self._amk, self._sign_key, own, signed, recovery_key=virtual.signing.public
        )
        await self._publish_device_list(signed, [member])
        self.outbox.share_device_list(signed)
        with self._store.transaction():
            self._state.count_code_made()
        return code

    async def restore(self, code: str | None = None, pin: str | None = None) -> list[str]:
        """Make this pending device a full member with the recovery code (or the PIN, which gets
        the code from the vault), then load the first page of every conversation. Returns the
        conversations found; :meth:`backfill` loads the rest.

        Raises :class:`~shared.recovery_code.InvalidRecoveryCode`,
        :class:`~client.core.recovery.WrongRecoveryCode`, :class:`~shared.pin.WrongPin`,
        :class:`~shared.pin.VaultLocked`, :class:`~shared.pin.NoBackup`, or
        :class:`~shared.errors.VerificationError` if the relay's data is forged."""
        if self.is_member:
            raise PermissionError("this device is already a member of its account")
        if (code is None) == (pin is None):
            raise ValueError("restore with a recovery code or a PIN")
        if pin is not None:
            code = await recovery.code_from_vault(self.link, self._store, self.username, pin)
        assert code is not None
        recovered = await recovery.recover(self.link, self.username, self.device_id, code)
        amk = SigningKey(recovered.secrets.amk_seed)
        # The code's endorsement authenticates this key: it overrides what the relay showed at
        # login (or what an unconfirmed pairing request claimed).
        known = self.directory.known(self.username)
        async with self._store.transaction():  # durable before this device publishes itself
            if known is not None and known.amk_public != amk.public:
                log.warning("the relay showed this device another account key; using the code's")
                self.directory.forget(self.username)
            self._state.pin_account_public(amk.public)
            # The code, not a pairing exchange, makes this device a member: no approver's list.
            self._state.forget_approvers()
            own = await self.directory.refresh(self.username)
            own_signed = self.directory.signed(self.username)
            self.epochs.accept(recovered.epochs, own_signed, 0)
            self._store.set_epoch_root(self.epochs.latest_seq(), recovered.root)
            self._on_secrets(recovered.secrets)  # still pending: history is loaded below
        # Authored by the code's virtual device, which the current list names: the only author
        # a device that is on no list yet can show.
        signed = next_device_list(
            amk, recovered.virtual.signing, own, own_signed or b"", add=self._own_entry()
        )
        await self._publish_device_list(signed)
        return await self.load_conversations()

    async def load_conversations(self) -> list[str]:
        """Learn the conversations the mailbox holds and load each one's newest page."""
        cursors = await self.mailbox.sync_threads()
        for cursor in cursors:
            if cursor.loaded == 0:
                await self.mailbox.load_page(cursor.thread)
        return [c.thread for c in cursors]

    async def load_older(self, thread: str, limit: int = 100) -> int:
        """Fetch one more page of ``thread`` from the mailbox (when scrolling up past what this
        device holds). Returns how many messages were new here."""
        return await self.mailbox.load_page(thread, limit)

    def has_older(self, thread: str) -> bool:
        return self.mailbox.has_older(thread)

    def has_history_to_load(self) -> bool:
        return any(not c.done for c in self._store.mailbox_cursors())

    def history_progress(self) -> tuple[int, int]:
        """(messages loaded from the mailbox, messages it holds) over all conversations."""
        cursors = self._store.mailbox_cursors()
        return sum(c.loaded for c in cursors), sum(c.total for c in cursors)

    async def backfill(self) -> int:
        """Load all remaining history, page by page (``HistoryLoaded`` events report progress)."""
        return await self.mailbox.backfill()

    async def wait_saved(self, timeout: float = 30.0) -> None:
        """Wait until every message this device stored has been saved to the mailbox."""
        async with asyncio.timeout(timeout):
            while self._store.unsaved_count():
                self.context.mailbox_wake.set()
                await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ devices

    def _device_list_changed(self, old: DeviceList | None, new: DeviceList) -> None:
        """Everyone sees when a user's devices change: a system line in the conversations
        concerned (with that user, or all of one's own when it is one's own list)."""
        if new.username == self.username:
            listed = new.entry(self.device_id) is not None
            self._take_role(next_role(self._state.role, listed, self._amk is not None))
        if old is None:
            return  # first contact: nothing changed from the user's point of view
        if old.amk_public != new.amk_public:
            line = f"{new.username}'s safety number changed"
            self.timeline.system_line([new.username], line)
            return
        who = self._change_author(old, new)
        lines = [
            f"{who} added a device '{d.name}'"
            for d in new.devices
            if d.device_id not in old.device_ids
        ]
        lines += [
            f"{who} removed a device '{d.name}'"
            for d in old.devices
            if d.device_id not in new.device_ids
        ]
        threads = (
            self._store.threads()
            if new.username == self.username
            else ([new.username] if new.username in self._store.threads() else [])
        )
        for line in lines:
            self.timeline.system_line(threads, line)

    def _change_author(self, old: DeviceList, new: DeviceList) -> str:
        """Who made a change, as a system line names them: a contact by name; on one's own
        account the device that made it ("Desktop"), "You" for this one, or the recovery code.
        The author was verified (a device of the previous list, or its recovery code)."""
        if new.username != self.username:
            return new.username
        if new.author == self.device_id:
            return "You"
        entry = old.entry(new.author)
        return entry.name if entry is not None else "The recovery code"

    @property
    def is_member(self) -> bool:
        """Whether this device is on its account's verified device list (else it is pending)."""
        return self._state.role.is_member

    @property
    def role(self) -> DeviceRole:
        return self._state.role

    @property
    def holds_account_key(self) -> bool:
        return self._amk is not None

    def own_devices(self) -> DeviceList | None:
        return self.directory.known(self.username)

    async def devices(self) -> list[wire.RegisteredDevice]:
        """Every device the relay knows for this account: members (with when they were last
        seen) and pending ones (with a fresh pairing request, if any)."""
        answer = await self.link.request(lambda rid: wire.ListDevices(rid=rid), expect=wire.Devices)
        return answer.devices

    async def pending_devices(self) -> list[wire.RegisteredDevice]:
        return [d for d in await self.devices() if not d.member]

    # ------------------------------------------------------------------ approving devices

    def _pairing_keys(self) -> pairing.NewDeviceKeys:
        return pairing.NewDeviceKeys(
            device_id=self.device_id,
            sign_public=self._sign_key.public,
            storage_key=self._storage_key.public,
            identity_key=self._x3dh.bundle.identity_key,
        )

    async def confirm_pairing(self) -> None:
        """(New device) the user saw the same code on both screens: pin the account key of that
        exchange, and only of that one. Until then this device trusts no list of its own account
        (what the relay showed at login counts for nothing), so an unsolicited Start or a list
        signed by another key changes nothing."""
        approver = self.pairing.confirm()
        with self._store.transaction():
            self._state.pin_account_public(approver.amk_public)
            # Its first own list must be one that an approver whose code it confirmed makes
            # (Directory._first_own): this one, or one of an earlier exchange that still approves.
            self._state.add_approver(approver.device_id)
        with contextlib.suppress(UnknownUser):
            await self._refresh_own()  # the approval may already be there

    @property
    def own_fingerprint(self) -> str:
        """This device's keys as the approver sees them next to its request."""
        return pairing.fingerprint(self._pairing_keys())

    async def offer_pairing(self) -> None:
        """(New device) ask the account's other devices to approve this one. The code to
        compare arrives as a ``PairingCodeShown`` event when one of them starts."""
        if self.is_member:
            raise PermissionError("this device is already a member of its account")
        await self.pairing.offer()

    async def _announce_pairing_offers(self) -> None:
        if self._amk is None or not self.is_member:
            return
        for device in await self.pending_devices():
            if device.pairing_commitment is not None and device.identity_key is not None:
                registration = device.registration
                keys = pairing.NewDeviceKeys(
                    device_id=registration.device_id,
                    sign_public=registration.sign_public,
                    storage_key=registration.storage_key,
                    identity_key=device.identity_key,
                )
                self.context.emit(
                    PairingRequested(
                        registration.device_id,
                        registration.name,
                        pairing.fingerprint(keys),
                        device.pairing_at or device.registered_at,
                    )
                )

    async def pairing_code(self, device_id: str, timeout: float = 30.0) -> str:
        """(Approver) run the pairing exchange with a pending device; returns the six-digit code
        the user compares with the one on the new device before approving."""
        if self._amk is None or not self.is_member:
            raise PermissionError("only a device holding the account key can approve devices")
        pending = {d.registration.device_id: d for d in await self.pending_devices()}
        if device_id not in pending:
            raise LookupError("no such pending device")
        approver = pairing.ApproverKeys(
            device_id=self.device_id, sign_public=self._sign_key.public, amk_public=self._amk.public
        )
        return await self.pairing.start(pending[device_id], approver, timeout)

    async def approve_device(self, device_id: str) -> DeviceList:
        """Add a pending device whose pairing code the user compared: publish the signed list
        with it and the epoch opened for it (its grant carries the root and, in the account box,
        the AMK), and tell the contacts."""
        if self._amk is None:
            raise PermissionError("only a device holding the account key can approve devices")
        keys = self.pairing.compared(device_id)
        if keys is None:
            raise PermissionError("compare the pairing code with the new device first")
        pending = {d.registration.device_id: d for d in await self.pending_devices()}
        if device_id not in pending:
            raise LookupError("no such pending device")
        # The entry carries the keys the compared code covered, whatever the relay lists now.
        registration = pending[device_id].registration
        current = await self.directory.refresh(self.username)
        signed = next_device_list(
            self._amk,
            self._sign_key,
            current,
            self.directory.signed(self.username) or b"",
            add=DeviceEntry(
                device_id=device_id,
                name=registration.name,
                sign_public=keys.sign_public,
                identity_key=keys.identity_key,
                storage_key=keys.storage_key,
                added_at=int(time.time()),
            ),
        )
        self.pairing.forget(device_id)
        accepted = await self._publish_device_list(signed)
        self.outbox.share_device_list(signed)
        return accepted

    async def reject_device(self, device_id: str) -> None:
        """Discard a pending device's request: it is told, and the relay forgets it."""
        self.pairing.forget(device_id)
        with contextlib.suppress(RelayError):
            await self.pairing.tell_rejected(device_id)
        await self.link.request(
            lambda rid: wire.RejectDevice(rid=rid, device_id=device_id), expect=wire.Ok
        )

    async def remove_device(self, device_id: str) -> DeviceList:
        """Revocation: a new signed list without the device and a new epoch whose entropy goes
        only to the remaining devices (and the recovery code's virtual device). The relay drops
        the device's credentials, queue and pre-keys; contacts get the new list end to end."""
        if self._amk is None:
            raise PermissionError("only a device holding the account key can remove devices")
        if device_id == self.device_id:
            raise ValueError("remove this device from another one")
        current = await self.directory.refresh(self.username)
        if current.entry(device_id) is None:
            raise LookupError("that device is not on the account's device list")
        signed = next_device_list(
            self._amk,
            self._sign_key,
            current,
            self.directory.signed(self.username) or b"",
            remove=device_id,
        )
        accepted = await self._publish_device_list(signed)
        self.sessions.forget((self.username, device_id))
        self.outbox.share_device_list(signed)
        return accepted

    async def change_password(self, password: str) -> None:
        """Set the account's new password (a member device only). Every login made with the old
        one ends: the relay forgets the account's pending devices and closes their connections,
        and the old password registers nothing any more. Offered with removing a device, which
        may know the password."""
        if not wire.MIN_PASSWORD <= len(password) <= wire.MAX_PASSWORD:
            raise ValueError(
                f"a password has {wire.MIN_PASSWORD} to {wire.MAX_PASSWORD} characters"
            )
        await self.link.request(
            lambda rid: wire.ChangePassword(rid=rid, password=password), expect=wire.Ok
        )

    # ------------------------------------------------------------------ safety numbers

    def is_verified(self, peer: str) -> bool:
        return self._store.verified(peer)

    def mark_verified(self, peer: str, verified: bool = True) -> None:
        """The user compared the safety number with ``peer`` (digits or QR code)."""
        if self.directory.known(peer) is None:
            raise LookupError(f"no verified device list for {peer} yet")
        with self._store.transaction():
            self._store.set_verified(peer, verified)

    def key_changed(self, peer: str) -> bool:
        """``peer``'s account key changed and the user has not acknowledged it yet."""
        return self.directory.key_changed(peer)

    def acknowledge_key_change(self, peer: str) -> None:
        """Accept ``peer``'s new account key: sending resumes; the verified mark is cleared."""
        self.directory.accept_key_change(peer)
        self.context.outbox_wake.set()

    def safety_number(self, peer: str) -> str | None:
        """The 60-digit number both users see for their pair of account keys (None until this
        device has verified the peer's device list)."""
        theirs = self.directory.known(peer)
        mine = self.directory.known(self.username)
        if theirs is None or mine is None:
            return None
        return safety_number(self.username, mine.amk_public, peer, theirs.amk_public)

    async def inspect(self, peer: str) -> list[wire.SeenEnvelope]:
        """What the relay holds and has seen of the conversation with ``peer`` (server view)."""
        answer = await self.link.request(
            lambda rid: wire.Inspect(rid=rid, peer=peer), expect=wire.Inspection
        )
        return answer.envelopes

    # ------------------------------------------------------------------ reading

    def messages(
        self, thread: str, limit: int | None = None, before: tuple[int, bytes] | None = None
    ) -> list[StoredMessage]:
        return self._store.thread_messages(thread, limit, before)

    def messages_after(
        self, thread: str, after: tuple[int, bytes], limit: int
    ) -> list[StoredMessage]:
        return self._store.thread_messages_after(thread, after, limit)

    def threads(self) -> list[str]:
        return self._store.threads()

    def unread_count(self, thread: str) -> int:
        return len(self._store.unread(thread))

    def last_message(self, thread: str) -> StoredMessage | None:
        return self._store.last_message(thread)

    async def mark_read(self, thread: str) -> int:
        """Mark what the user has now seen in ``thread`` as read: the sender's devices learn it
        (read receipts) and so do this user's other devices (their unread counts clear too)."""
        return self.outbox.mark_read(thread)

    # ------------------------------------------------------------------ sending

    async def send_text(self, peer: str, text: str) -> StoredMessage:
        """Store a message to ``peer`` and queue it; it leaves as soon as the relay is reachable.
        Raises :class:`SendBlocked` while ``peer``'s changed account key is unacknowledged."""
        return await self.outbox.send_text(peer, text)

    # ------------------------------------------------------------------ receiving

    def _on_push(self, frame: wire.Frame) -> None:
        if isinstance(frame, wire.Deliver):
            self.inbox.put(frame.envelopes)
        elif isinstance(frame, wire.Notice):
            if frame.kind == "device_list_changed" and frame.username == self.username:
                self.context.in_background(self._refresh_own())
            elif frame.kind == "device_list_changed" and frame.username:
                self.context.in_background(self.directory.refresh(frame.username))
            elif frame.kind == "epoch_changed":
                self.context.in_background(self._refresh_own())
            elif frame.kind == "pairing_offer":
                self.context.in_background(self._announce_pairing_offers())
            elif frame.kind == "prekeys_low":
                self.context.in_background(self._publish_keys(top_up=True))
        elif isinstance(frame, wire.PairingPush):
            self.pairing.on_push(frame)
