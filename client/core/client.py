"""The client engine: one device of one account (design brief §4.1–4.4).

:class:`AriadneClient` ties the pieces together and is the API the GUI and the tests use:

- **Inbox.** Envelopes pushed by the relay are decrypted in order, in batches. For each batch the
  ratchet steps, used one-time pre-keys and messages are committed in one transaction, and only
  then acknowledged, so a crash at any point loses nothing (the relay redelivers what was not
  acknowledged; duplicates are recognised by the ratchet and by message id).
- **Outbox.** A composed message is stored first (state "sending"), then encrypted to every
  device on the recipient's and on our own verified device lists; the advanced ratchets are
  committed *before* the envelopes leave, so a message key is never used twice. If the relay says
  the fan-out does not match the current devices, the signed lists are fetched again and the send
  retried.
- **Events.** Everything the user should see is an :mod:`client.core.events` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from client.core import recovery
from client.core.at_rest import KeyPlace, forget_key
from client.core.directory import Directory, UnknownUser
from client.core.epochs import EpochBook, upload
from client.core.events import (
    ConnectionState,
    ConnectionStateChanged,
    DecryptionFailed,
    DeliveryUpdated,
    DeviceRemoved,
    EpochChainRefused,
    Event,
    MessageQueued,
    MessageReceived,
    MessageStatus,
    OutOfOrderDelivery,
    PairingRequested,
    RelayLimitReached,
    SendDeferred,
    StoredMessage,
)
from client.core.link import Backoff, Offline, RelayError, RelayLink
from client.core.mailbox import Mailbox
from client.core.ordering import place
from client.core.pairing import Pairing
from client.core.sessions import SessionBook
from client.core.storage import ProfileStore
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
from shared.envelope import (
    MAX_TEXT,
    DeviceListUpdate,
    Origin,
    Payload,
    Receipt,
    Text,
    decode_payload,
    decode_sealed,
    encode_payload,
    encode_sealed,
    new_message_id,
)
from shared.epoch import AccountSecrets, EpochMember
from shared.errors import (
    DecryptionError,
    DuplicateMessage,
    VerificationError,
    WireError,
)
from shared.identity import SigningKey, device_id_for
from shared.pin import check_pin
from shared.recovery_code import generate as generate_recovery_code
from shared.recovery_code import virtual_device
from shared.safety_number import safety_number
from shared.session import dump_x3dh_state, load_x3dh_state, new_x3dh_state

log = logging.getLogger("ariadne.client")

PRE_KEY_BATCH = 100
PRE_KEYS_LOW = 20
INBOX_BATCH = 200
SEND_ATTEMPTS = 4
# A message the relay cannot take yet (a full queue, too many new sessions at once) is tried
# again after this many seconds, doubling up to the longest.
LATER_FIRST = 1.0
LATER_LONGEST = 60.0
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


class SendError(Exception):
    """A message cannot be sent: no such user, or the relay's devices never match the signed one."""


class SendBlocked(SendError):
    """The contact's account key changed: sending waits for the user's acknowledgement."""


class SendLater(Exception):
    """A relay limit stops this message for now; it stays in the outbox. ``reason`` is for the
    user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        self.username = str(store.get("username"))
        self.device_id = str(store.get("device_id"))
        self.device_name = str(store.get("device_name"))
        self.relay_url = str(store.get("relay_url"))
        self._sign_key = SigningKey(bytes(store.get("sign_seed")))  # type: ignore[arg-type]
        self._storage_key = StorageKey(bytes(store.get("storage_seed")))  # type: ignore[arg-type]
        amk_seed = store.get("amk_seed")
        self._amk = SigningKey(amk_seed) if isinstance(amk_seed, bytes) else None
        self._x3dh = load_x3dh_state(str(store.get("x3dh_state")))
        self._password = password  # only until the relay accepted the registration
        self._listeners: list[Callable[[Event], None]] = []
        self.link = RelayLink(
            self.relay_url,
            self._login_frame,
            self._on_push,
            self._on_connection_state,
            self._on_login,
            backoff,
        )
        self.directory = Directory(store, self.link, self._emit, self._device_list_changed)
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
        self.mailbox = Mailbox(store, self.link, self.epochs, self.username, self._emit)
        self.pairing = Pairing(self.link, self._emit, self._pairing_keys)
        self._inbox: asyncio.Queue[wire.Delivered] = asyncio.Queue()
        self._outbox_wake = asyncio.Event()
        # Why an outgoing message still waits (a relay limit), by message id, for its bubble.
        self.send_notes: dict[bytes, str] = {}
        self._mailbox_wake = asyncio.Event()
        self._epoch_lock = asyncio.Lock()
        self._became_full = False  # set when an approved device opens its first grant
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[object]] = set()
        self._closed = False

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _new_profile(
        profile_dir: Path,
        relay_url: str,
        username: str,
        device_name: str,
        registration: str,
        with_amk: bool,
        encrypt: bool = True,
    ) -> ProfileStore:
        if ProfileStore.exists(profile_dir):
            raise FileExistsError(f"a profile already exists in {profile_dir}")
        store = ProfileStore(profile_dir, encrypt=encrypt)
        sign_key = SigningKey.generate()
        x3dh = new_x3dh_state()
        x3dh.generate_pre_keys(PRE_KEY_BATCH)
        values: dict[str, object] = {
            "username": username,
            "device_name": device_name,
            "relay_url": relay_url,
            "device_id": device_id_for(sign_key.public),
            "sign_seed": sign_key.seed,
            "storage_seed": StorageKey.generate().private,
            "x3dh_state": dump_x3dh_state(x3dh),
            "registration": registration,
            "keys_published": 0,
        }
        if with_amk:
            amk = SigningKey.generate()
            values |= {
                "amk_seed": amk.seed,
                "amk_public": amk.public,
                "thread_key": os.urandom(32),
            }
        for key, value in values.items():
            store.put(key, value)  # type: ignore[arg-type]
        store.commit()
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
        store = cls._new_profile(profile_dir, relay_url, username, device_name, "create", True)
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
        store = cls._new_profile(profile_dir, relay_url, username, device_name, "add", False)
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
            store.put("relay_url", relay_url)
            store.commit()
        client = cls(profile_dir, store, backoff)
        client.start()
        return client

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._inbox_loop(), name="inbox"),
            asyncio.create_task(self._outbox_loop(), name="outbox"),
            asyncio.create_task(self._mailbox_loop(), name="mailbox"),
        ]
        self.link.start()
        self._outbox_wake.set()
        self._mailbox_wake.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.link.close()
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
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
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    def _on_connection_state(self, state: ConnectionState, detail: str) -> None:
        self._emit(ConnectionStateChanged(state, detail))
        error = self.link.login_error
        if (
            state is ConnectionState.FAILED
            and error is not None
            and error.code == "unknown_device"
            and self._store.get("was_member")
        ):
            self._mark_removed()

    def _mark_removed(self) -> None:
        if not self._store.get("removed"):
            self._store.put("removed", 1)
            self._store.commit()
            self._emit(DeviceRemoved(self.username))

    @property
    def database_key_place(self) -> KeyPlace:
        """Where this profile's database key is kept (the OS keyring, or a file beside it)."""
        return self._store.key_place

    @property
    def removed(self) -> bool:
        """This device was removed from its account (it cannot read anything new)."""
        return bool(self._store.get("removed"))

    async def delete_local_data(self) -> None:
        """Close and delete this profile: messages, keys, everything this device held."""
        await self.close()
        forget_key(self.profile_dir)
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    # ------------------------------------------------------------------ login and keys

    def _login_frame(self, nonce: bytes, rid: int) -> wire.Frame:
        signature = sign_login(self._sign_key, nonce, self.username, self.device_id)
        registration = self._store.get("registration")
        if registration == "done":
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
        if registration == "create":
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
        if self._store.get("registration") != "done":
            self._store.put("registration", "done")
            self._store.commit()
            self._password = None
        if not self._store.get("keys_published"):
            await self._publish_keys(top_up=False)
        elif welcome.one_time_pre_keys_left < PRE_KEYS_LOW:
            await self._publish_keys(top_up=True)
        # A new device trusts no list of its own account before it confirms a pairing code.
        if self._account_public() is not None:
            try:
                await self.directory.refresh(self.username)
            except UnknownUser:
                if self._amk is not None:
                    await self._publish_first_device_list()
                elif self._store.get("approvers") is None:
                    raise
                # else: a confirmed device whose approver has not published its list yet
        if self.is_member:
            await self._refresh_epochs()
        self._outbox_wake.set()
        self._mailbox_wake.set()

    async def _publish_keys(self, top_up: bool) -> None:
        before = self._x3dh.bundle.pre_keys if top_up else frozenset()
        if top_up:
            self._x3dh.generate_pre_keys(PRE_KEY_BATCH)
            self._store.put("x3dh_state", dump_x3dh_state(self._x3dh))
            self._store.commit()  # private halves are safe before the public ones leave
        bundle = self._x3dh.bundle
        await self.link.request(
            lambda rid: wire.PublishKeys(
                rid=rid,
                identity_key=bundle.identity_key,
                signed_pre_key=bundle.signed_pre_key,
                signed_pre_key_sig=bundle.signed_pre_key_sig,
                one_time_pre_keys=sorted(bundle.pre_keys - before),
            )
        )
        self._store.put("keys_published", 1)
        self._store.commit()

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
            lambda rid: wire.PublishDeviceList(rid=rid, signed_list=signed, epoch=upload(epoch))
        )
        accepted = self.directory.accept(self.username, signed)
        assert accepted is not None
        self.epochs.opened(epoch)
        self._mailbox_wake.set()
        return accepted

    # ------------------------------------------------------------------ epochs and history

    def _account_public(self) -> bytes | None:
        """The account key this device trusts: its own if it holds it, else the one its verified
        own device list is signed with."""
        pinned = self._store.get("amk_public")
        if isinstance(pinned, bytes):
            return pinned
        own = self.directory.known(self.username)
        return own.amk_public if own else None

    def _account_secrets(self) -> AccountSecrets:
        thread_key = self._store.get("thread_key")
        assert self._amk is not None and isinstance(thread_key, bytes)
        return AccountSecrets(amk_seed=self._amk.seed, thread_key=thread_key)

    def _on_secrets(self, secrets: AccountSecrets) -> None:
        """An epoch's account box opened: this device now holds the account key (it became a
        full member) and the thread key. Committed with the epoch by the caller."""
        if self._amk is None:
            self._amk = SigningKey(secrets.amk_seed)
            self._store.put("amk_seed", secrets.amk_seed)
            self._store.put("amk_public", self._amk.public)
            self._became_full = True
        if self._store.get("thread_key") is None:
            self._store.put("thread_key", secrets.thread_key)

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
            await self._refresh_epochs_locked()
        if self._became_full:
            # Approved by another device: this device now holds the root, so the history.
            self._became_full = False
            self._in_background(self.load_conversations())

    async def _refresh_epochs_locked(self) -> None:
        for attempt in range(2):
            try:
                if await self.epochs.refresh(self.directory.signed(self.username)):
                    self._mailbox_wake.set()
                return
            except VerificationError as exc:
                if attempt == 0:
                    await self.directory.refresh(self.username)
                    continue
                log.warning("refused the relay's epoch chain: %s", exc)
                self._emit(EpochChainRefused(str(exc)))

    async def _mailbox_loop(self) -> None:
        while True:
            await self._mailbox_wake.wait()
            await self.link.online.wait()
            self._mailbox_wake.clear()
            try:
                await self.mailbox.save_pending()
            except Offline:
                await asyncio.sleep(0.05)
                self._mailbox_wake.set()
            except RelayError as exc:
                if exc.code == "stale_epoch":
                    before = self.epochs.latest_seq()
                    with contextlib.suppress(Offline, RelayError):
                        await self._refresh_epochs()
                    if self.epochs.latest_seq() > before:
                        self._mailbox_wake.set()
                    else:  # the relay calls our newest epoch stale yet shows none newer
                        self._emit(EpochChainRefused("the relay no longer serves the newest epoch"))
                elif exc.code == "mailbox_full":
                    # The items stay marked for saving: the next message retries them.
                    self._emit(RelayLimitReached(exc.code, MAILBOX_FULL_TEXT))
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
        code = generate_recovery_code(int(self._store.get("codes_made") or 0))
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
        self._share_device_list(signed)
        self._store.put("codes_made", int(self._store.get("codes_made") or 0) + 1)
        self._store.commit()
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
        if known is not None and known.amk_public != amk.public:
            log.warning("the relay showed this device another account key; using the code's")
            self.directory.forget(self.username)
        self._store.put("amk_public", amk.public)
        # The code, not a pairing exchange, makes this device a member: no approver's list.
        self._store.put("approvers", None)
        own = await self.directory.refresh(self.username)
        own_signed = self.directory.signed(self.username)
        self.epochs.accept(recovered.epochs, own_signed, 0)
        self._store.set_epoch_root(self.epochs.latest_seq(), recovered.root)
        self._on_secrets(recovered.secrets)
        self._became_full = False  # the history is loaded below, not in the background
        self._store.commit()
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
                self._mailbox_wake.set()
                await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ devices

    def _device_list_changed(self, old: DeviceList | None, new: DeviceList) -> None:
        """Everyone sees when a user's devices change: a system line in the conversations
        concerned (with that user, or all of one's own when it is one's own list)."""
        if new.username == self.username:
            if new.entry(self.device_id) is not None:
                self._store.put("was_member", 1)
            elif old is not None and old.entry(self.device_id) is not None:
                self._mark_removed()
        if old is None:
            return  # first contact: nothing changed from the user's point of view
        if old.amk_public != new.amk_public:
            line = f"{new.username}'s safety number changed"
            self._system_line([new.username], line)
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
            self._system_line(threads, line)

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

    def _system_line(self, threads: list[str], line: str) -> None:
        now = time.time_ns() // 1000
        for thread in threads:
            message = StoredMessage(
                new_message_id(), thread, "", "", now // 1000, now, line, MessageStatus.SYSTEM
            )
            self._store.insert_message(message)
            self._emit(MessageReceived(message))

    @property
    def is_member(self) -> bool:
        """Whether this device is on its account's verified device list (else it is pending)."""
        own = self.directory.known(self.username)
        return own is not None and own.entry(self.device_id) is not None

    @property
    def holds_account_key(self) -> bool:
        return self._amk is not None

    def own_devices(self) -> DeviceList | None:
        return self.directory.known(self.username)

    async def devices(self) -> list[wire.RegisteredDevice]:
        """Every device the relay knows for this account: members (with when they were last
        seen) and pending ones (with a fresh pairing request, if any)."""
        answer = await self.link.request(lambda rid: wire.ListDevices(rid=rid))
        assert isinstance(answer, wire.Devices)
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
        self._store.put("amk_public", approver.amk_public)
        # Its first own list must be one that an approver whose code it confirmed makes
        # (Directory._first_own): this one, or one of an earlier exchange that still approves.
        earlier = str(self._store.get("approvers") or "")
        self._store.put("approvers", f"{earlier} {approver.device_id}".strip())
        self._store.commit()
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
                self._emit(
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
        self._share_device_list(signed)
        return accepted

    async def reject_device(self, device_id: str) -> None:
        """Discard a pending device's request: it is told, and the relay forgets it."""
        self.pairing.forget(device_id)
        with contextlib.suppress(RelayError):
            await self.pairing.tell_rejected(device_id)
        await self.link.request(lambda rid: wire.RejectDevice(rid=rid, device_id=device_id))

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
        self._share_device_list(signed)
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
        await self.link.request(lambda rid: wire.ChangePassword(rid=rid, password=password))

    def _share_device_list(self, signed: bytes) -> None:
        """Send the new list end to end to this user's other devices and every contact: a relay
        cannot hold it back from them (and serve them the older list) without holding back
        everything this user sends."""
        contacts = [self.username] + [t for t in self._store.threads() if t != self.username]
        for start in range(0, len(contacts), wire.MAX_RECIPIENT_USERS):
            self._store.enqueue(
                contacts[start : start + wire.MAX_RECIPIENT_USERS],
                encode_payload(DeviceListUpdate(origin=self._origin(), signed_list=signed)),
                None,
            )
        self._store.commit()
        self._outbox_wake.set()

    # ------------------------------------------------------------------ safety numbers

    def is_verified(self, peer: str) -> bool:
        return self._store.verified(peer)

    def mark_verified(self, peer: str, verified: bool = True) -> None:
        """The user compared the safety number with ``peer`` (digits or QR code)."""
        if self.directory.known(peer) is None:
            raise LookupError(f"no verified device list for {peer} yet")
        self._store.set_verified(peer, verified)
        self._store.commit()

    def key_changed(self, peer: str) -> bool:
        """``peer``'s account key changed and the user has not acknowledged it yet."""
        return self.directory.key_changed(peer)

    def acknowledge_key_change(self, peer: str) -> None:
        """Accept ``peer``'s new account key: sending resumes; the verified mark is cleared."""
        self.directory.accept_key_change(peer)
        self._outbox_wake.set()

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
        answer = await self.link.request(lambda rid: wire.Inspect(rid=rid, peer=peer))
        assert isinstance(answer, wire.Inspection)
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
        unread = self._store.unread(thread)
        if not unread:
            return 0
        for message_id in unread:
            self._set_status(message_id, MessageStatus.READ, None)
        self._store.enqueue(
            [thread, self.username],
            encode_payload(Receipt(origin=self._origin(), status="read", message_ids=unread)),
            None,
        )
        self._store.commit()
        self._outbox_wake.set()
        return len(unread)

    # ------------------------------------------------------------------ sending

    async def send_text(self, peer: str, text: str) -> StoredMessage:
        """Store a message to ``peer`` and queue it; it leaves as soon as the relay is reachable.
        Raises :class:`SendBlocked` while ``peer``'s changed account key is unacknowledged."""
        if self.directory.key_changed(peer):
            raise SendBlocked(f"{peer}'s safety number changed: acknowledge it to send again")
        if peer == self.username:
            raise ValueError("notes to self are not supported")
        if not text.strip() or len(text) > MAX_TEXT:
            raise ValueError(f"a message has 1 to {MAX_TEXT} characters")
        message_id = new_message_id()
        sent_at = int(time.time() * 1000)
        origin = self._origin()
        payload = Text(origin=origin, message_id=message_id, peer=peer, sent_at=sent_at, body=text)
        message = StoredMessage(
            message_id,
            peer,
            self.username,
            self.device_id,
            sent_at,
            None,
            text,
            MessageStatus.SENDING,
        )
        self._store.insert_message(message)
        self._store.record_sender_order(
            message_id, peer, self.username, self.device_id, origin.counter
        )
        self._store.enqueue([peer, self.username], encode_payload(payload), message_id)
        self._store.commit()
        self._emit(MessageQueued(message))
        self._outbox_wake.set()
        return message

    async def _outbox_loop(self) -> None:
        later = LATER_FIRST
        while True:
            await self._outbox_wake.wait()
            await self.link.online.wait()
            item = self._store.next_outgoing()
            if item is None:
                self._outbox_wake.clear()
                continue
            try:
                server_ts = await self._fan_out(item.send_id, item.users, item.payload)
            except Offline:
                await asyncio.sleep(0.05)  # the link reconnects; online clears meanwhile
                continue
            except SendLater as exc:
                log.info("the relay cannot take an outgoing item yet: %s", exc)
                message = self._store.message(item.message_id) if item.message_id else None
                if message is not None:
                    self.send_notes[message.message_id] = exc.reason
                    self._emit(SendDeferred(message.message_id, message.thread, exc.reason))
                await asyncio.sleep(later)
                later = min(later * 2, LATER_LONGEST)
                continue
            except SendError as exc:
                log.warning("giving up on an outgoing item: %s", exc)
                self._store.remove_outgoing(item.id)
                if item.message_id is not None:
                    self.send_notes.pop(item.message_id, None)
                    self._set_status(item.message_id, MessageStatus.FAILED, None)
                self._store.commit()
                continue
            later = LATER_FIRST
            self._store.remove_outgoing(item.id)
            if item.message_id is not None:
                self.send_notes.pop(item.message_id, None)
                server_ts = self._sent_in_order(item.message_id, server_ts)
                self._set_status(item.message_id, MessageStatus.SENT, server_ts)
                self._store.save_later([item.message_id])
                self._mailbox_wake.set()
            self._store.commit()

    def _origin(self) -> Origin:
        """This device as the sender of its next payload. The counter goes up by one per payload
        in the order payloads enter the outbox, which sends them in that order (committed by the
        caller together with the outbox entry)."""
        counter = int(self._store.get("send_counter") or 0) + 1
        self._store.put("send_counter", counter)
        return Origin(user=self.username, device=self.device_id, counter=counter)

    def _sent_in_order(self, message_id: bytes, server_ts: int) -> int:
        """The relay accepted one of this device's messages at ``server_ts``: place it in this
        device's own order (the relay's answer could contradict it too)."""
        message = self._store.message(message_id)
        counter = self._store.sender_counter(message_id)
        if message is None or counter is None:
            return server_ts
        placed, reordered = self._in_sender_order(message, counter, server_ts)
        for event in reordered:
            self._emit(event)
        self._report_reordering(reordered)
        return placed

    def _in_sender_order(
        self, message: StoredMessage, counter: int, server_ts: int
    ) -> tuple[int, list[Event]]:
        """Place a stored message in its sending device's order; returns its time and, if the
        relay's times contradicted that order, the events for the messages that moved."""
        placement = place(
            self._store,
            message.thread,
            message.sender_user,
            message.sender_device,
            message.message_id,
            counter,
            server_ts,
        )
        if not placement.contradicted:
            return placement.server_ts, []
        log.warning(
            "relay times contradict the order of device %s: %d messages moved",
            message.sender_device,
            len(placement.moved),
        )
        events: list[Event] = []
        for moved_id, moved_ts in placement.moved:
            moved = self._store.message(moved_id)
            if moved is not None:
                events.append(DeliveryUpdated(moved_id, moved.thread, moved.status, moved_ts))
        events.append(
            OutOfOrderDelivery(message.thread, message.sender_user, message.sender_device)
        )
        return placement.server_ts, events

    def _report_reordering(self, events: Iterable[Event]) -> None:
        """One system line per conversation and sender whose order the relay contradicted."""
        reported = [(e.thread, e.sender_user) for e in events if isinstance(e, OutOfOrderDelivery)]
        for thread, user in dict.fromkeys(reported):
            whose, who = ("your", "you") if user == self.username else (f"{user}'s", user)
            self._system_line(
                [thread],
                f"the relay delivered {whose} messages out of order;"
                f" they are shown in the order {who} sent them",
            )

    async def _fan_out(self, send_id: bytes, users: tuple[str, ...], payload: bytes) -> int:
        """Encrypt ``payload`` to every current device of ``users`` (but this one) and send it as
        one fan-out. Returns the relay's timestamp."""
        for _attempt in range(SEND_ATTEMPTS):
            recipients = []
            for username in users:
                if self.directory.key_changed(username):
                    raise SendBlocked(f"{username}'s safety number changed")
                try:
                    devices = await self.directory.get(username)
                except UnknownUser:
                    raise SendError(f"there is no user {username}") from None
                targets = [d for d in devices.devices if d.device_id != self.device_id]
                envelopes = await self._encrypt_to(username, targets, payload)
                recipients.append(wire.RecipientEnvelopes(username=username, envelopes=envelopes))
            self._store.commit()  # the ratchets' new state is durable before anything leaves
            try:
                answer = await self.link.request(
                    lambda rid, r=recipients: wire.Send(rid=rid, send_id=send_id, recipients=r)
                )
            except RelayError as exc:
                if exc.code == "rate_limited":
                    await asyncio.sleep(0.5)
                    continue
                if exc.code == "queue_full":
                    raise SendLater(self._queue_full_text(exc.detail, users)) from None
                raise SendError(str(exc)) from None
            if isinstance(answer, wire.Accepted):
                return answer.server_ts
            assert isinstance(answer, wire.Mismatch)
            for mismatch in answer.users:
                await self.directory.refresh(mismatch.username)
        raise SendError("the relay's device list does not match the signed one")

    def _queue_full_text(self, detail: str, users: tuple[str, ...]) -> str:
        """What the bubble says. The relay's detail names the user; it is believed only when it
        is one of the message's own users, so the relay cannot put its own words on a bubble."""
        named = detail.split(" ")[0]
        if named == self.username:
            return "Your other device has too many waiting messages — try later"
        who = f"{named}'s device" if named in users else "A recipient's device"
        return f"{who} has too many waiting messages — try later"

    async def _encrypt_to(
        self, username: str, targets: list[DeviceEntry], payload: bytes
    ) -> list[wire.Envelope]:
        envelopes = []
        new = [d for d in targets if not self.sessions.has_session((username, d.device_id))]
        bundles: dict[str, wire.PreKeyBundle] = {}
        if new:
            try:
                answer = await self.link.request(
                    lambda rid: wire.FetchBundles(
                        rid=rid, username=username, device_ids=[d.device_id for d in new]
                    )
                )
            except RelayError as exc:
                if exc.code != "rate_limited":
                    raise SendError(str(exc)) from None
                raise SendLater("Too many new conversations at once — try later") from None
            assert isinstance(answer, wire.Bundles)
            bundles = {b.device_id: b for b in answer.bundles}
        for device in targets:
            peer = (username, device.device_id)
            async with self.sessions.locks[peer]:
                try:
                    if self.sessions.has_session(peer):
                        sealed = await self.sessions.encrypt(peer, payload)
                    elif device.device_id in bundles:
                        sealed = await self.sessions.start(
                            username, device, bundles[device.device_id], payload
                        )
                    else:
                        continue  # no keys for it yet: the relay's answer will tell
                except DecryptionError as exc:
                    log.warning("cannot start a session with %s: %s", device.device_id, exc)
                    continue
            envelopes.append(
                wire.Envelope(device_id=device.device_id, payload=encode_sealed(sealed))
            )
        return envelopes

    def _set_status(self, message_id: bytes, status: MessageStatus, server_ts: int | None) -> None:
        """Record the relay's timestamp whenever it comes, and move the status only forward: a
        receipt can overtake the relay's answer (after a reconnect), and must not hide it."""
        message = self._store.message(message_id)
        if message is None:
            return
        if status is MessageStatus.FAILED:
            forward = message.status is MessageStatus.SENDING
        else:
            forward = status.rank > message.status.rank
        new_status = status if forward else message.status
        new_ts = server_ts if server_ts is not None else message.server_ts
        if new_status is message.status and new_ts == message.server_ts:
            return
        self._store.set_status(message_id, new_status, new_ts)
        self._emit(DeliveryUpdated(message_id, message.thread, new_status, new_ts))

    # ------------------------------------------------------------------ receiving

    def _on_push(self, frame: wire.Frame) -> None:
        if isinstance(frame, wire.Deliver):
            for envelope in frame.envelopes:
                self._inbox.put_nowait(envelope)
        elif isinstance(frame, wire.Notice):
            if frame.kind == "device_list_changed" and frame.username == self.username:
                self._in_background(self._refresh_own())
            elif frame.kind == "device_list_changed" and frame.username:
                self._in_background(self.directory.refresh(frame.username))
            elif frame.kind == "epoch_changed":
                self._in_background(self._refresh_own())
            elif frame.kind == "pairing_offer":
                self._in_background(self._announce_pairing_offers())
            elif frame.kind == "prekeys_low":
                self._in_background(self._publish_keys(top_up=True))
        elif isinstance(frame, wire.PairingPush):
            self.pairing.on_push(frame)

    def _in_background(self, coroutine) -> None:  # type: ignore[no-untyped-def]
        async def guarded() -> None:
            with contextlib.suppress(Offline, RelayError, UnknownUser):
                await coroutine

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _inbox_loop(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while len(batch) < INBOX_BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            done: list[int] = []
            events: list[Event] = []
            receipts: dict[str, list[bytes]] = {}
            try:
                for deliver in batch:
                    events.extend(await self._open(deliver, receipts))
                    done.append(deliver.seq)
            except Offline:
                pass  # what is not acknowledged is redelivered after reconnecting
            for sender, message_ids in receipts.items():
                self._store.enqueue(
                    [sender],
                    encode_payload(
                        Receipt(origin=self._origin(), status="delivered", message_ids=message_ids)
                    ),
                    None,
                )
            self._report_reordering(events)
            self._store.commit()  # ratchets, pre-keys, messages, receipts: then acknowledge
            if done:
                await self.link.send(wire.Ack(seqs=done))
            for event in events:
                self._emit(event)
            if receipts:
                self._outbox_wake.set()

    async def _open(self, deliver: wire.Delivered, receipts: dict[str, list[bytes]]) -> list[Event]:
        try:
            sealed = decode_sealed(deliver.payload)
        except WireError:
            return self._undecryptable(deliver, "malformed envelope")
        peer = await self._sender_entry(deliver.sender_user, deliver.sender_device)
        if peer is None:
            return self._undecryptable(deliver, "sender device is not on its signed device list")
        async with self.sessions.locks[(deliver.sender_user, deliver.sender_device)]:
            try:
                plaintext = await self.sessions.decrypt(deliver.sender_user, peer, sealed)
            except DuplicateMessage:
                log.debug("dropped a duplicate envelope %d", deliver.seq)
                return []
            except DecryptionError as exc:
                return self._undecryptable(deliver, str(exc))
        try:
            payload = decode_payload(plaintext)
        except WireError:
            return self._undecryptable(deliver, "unreadable payload")
        origin = payload.origin
        if (origin.user, origin.device) != (deliver.sender_user, deliver.sender_device):
            return self._undecryptable(
                deliver,
                f"the relay says {deliver.sender_user}'s device {deliver.sender_device} sent"
                f" this, the message says {origin.user}'s device {origin.device}",
            )
        return self._apply(deliver, payload, receipts)

    async def _sender_entry(self, username: str, device_id: str) -> DeviceEntry | None:
        known = self.directory.known(username)
        if known is not None and (entry := known.entry(device_id)) is not None:
            return entry
        try:
            fresh = await self.directory.refresh(username)
        except (RelayError, UnknownUser):
            return None
        return fresh.entry(device_id)

    def _apply(
        self, deliver: wire.Delivered, payload: Payload, receipts: dict[str, list[bytes]]
    ) -> list[Event]:
        from_self = deliver.sender_user == self.username
        if isinstance(payload, Text):
            thread = payload.peer if from_self else deliver.sender_user
            if from_self and thread == self.username:
                return []
            message = StoredMessage(
                payload.message_id,
                thread,
                deliver.sender_user,
                deliver.sender_device,
                payload.sent_at,
                deliver.server_ts,
                payload.body,
                MessageStatus.SENT if from_self else MessageStatus.RECEIVED,
            )
            if not self._store.insert_message(message):
                return []  # a duplicate: already shown
            counter = payload.origin.counter
            self._store.record_sender_order(
                message.message_id, thread, deliver.sender_user, deliver.sender_device, counter
            )
            server_ts, reordered = self._in_sender_order(message, counter, deliver.server_ts)
            message = dataclasses.replace(message, server_ts=server_ts)
            self._store.save_later([message.message_id])
            self._mailbox_wake.set()
            if not from_self:
                receipts.setdefault(deliver.sender_user, []).append(payload.message_id)
            return [*reordered, MessageReceived(message)]
        if isinstance(payload, DeviceListUpdate):
            # Verified like any list (the sender's own, pinned key, version, chain).
            self.directory.accept(deliver.sender_user, payload.signed_list)
            return []
        if isinstance(payload, Receipt) and from_self and payload.status == "read":
            # Read on another of this user's devices: the same messages are read here too.
            synced: list[Event] = []
            for message_id in payload.message_ids:
                message = self._store.message(message_id)
                if message is not None and message.status is MessageStatus.RECEIVED:
                    self._store.set_status(message_id, MessageStatus.READ)
                    synced.append(
                        DeliveryUpdated(
                            message_id, message.thread, MessageStatus.READ, message.server_ts
                        )
                    )
            return synced
        if isinstance(payload, Receipt) and not from_self:
            status = MessageStatus(payload.status)
            events: list[Event] = []
            for message_id in payload.message_ids:
                message = self._store.message(message_id)
                if (
                    message is None
                    or message.sender_user != self.username
                    or message.thread != deliver.sender_user
                    or status.rank <= message.status.rank
                ):
                    continue
                self._store.set_status(message_id, status)
                events.append(
                    DeliveryUpdated(message_id, message.thread, status, message.server_ts)
                )
            return events
        return []

    def _undecryptable(self, deliver: wire.Delivered, reason: str) -> list[Event]:
        log.info(
            "could not decrypt envelope %d from %s: %s", deliver.seq, deliver.sender_device, reason
        )
        placeholder = StoredMessage(
            new_message_id(),
            deliver.sender_user,
            deliver.sender_user,
            deliver.sender_device,
            deliver.server_ts // 1000,
            deliver.server_ts,
            "",
            MessageStatus.UNDECRYPTABLE,
        )
        self._store.insert_message(placeholder)
        return [
            MessageReceived(placeholder),
            DecryptionFailed(
                deliver.sender_user, deliver.sender_user, deliver.sender_device, reason
            ),
        ]
