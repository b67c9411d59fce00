"""The client engine's façade: one device of one account, the API the GUI and the tests use.

:class:`AriadneClient` builds the concerns (:func:`client.core.engine.build_engine`) around one
:class:`~client.core.context.ClientContext` (store, relay port, profile, events, background
tasks) and delegates to them; :mod:`client.core.routing` routes the relay link's pushes, login and
state changes to them. Each concern's module documents its behaviour. Everything the user should
see is an :mod:`client.core.events` event.

This module builds, starts and closes the client and answers for its connection; the calls that
only hand on to a concern are grouped by what they are about: :mod:`client.core.client_devices`,
:mod:`client.core.client_history`, :mod:`client.core.client_messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from client.core.at_rest import KeyPlace, forget_key
from client.core.attachment_release import BlobReleases
from client.core.attachments import Attachments
from client.core.client_devices import DeviceCalls
from client.core.client_history import HistoryCalls
from client.core.client_messages import MessageCalls
from client.core.context import ClientContext
from client.core.conversation import Conversations
from client.core.engine import build_engine
from client.core.events import (
    ConnectionState,
    Event,
)
from client.core.history import MAILBOX_FULL_TEXT as MAILBOX_FULL_TEXT
from client.core.link import Backoff, RelayLink
from client.core.login import Login, RegistrationError, new_profile
from client.core.outbox import SendBlocked as SendBlocked
from client.core.outbox import SendError as SendError
from client.core.outbox import SendLater as SendLater
from client.core.overdue import DeliveryWatch
from client.core.profile import (
    DeviceRole,
    Profile,
    ProfileState,
    Registration,
)
from client.core.rebuild import Rebuild
from client.core.routing import LinkHooks, Router
from client.core.storage import ProfileStore
from shared import wire
from shared.session import load_x3dh_state

log = logging.getLogger("ariadne.client")


class AriadneClient(DeviceCalls, HistoryCalls, MessageCalls):
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
        self._x3dh = load_x3dh_state(self._state.x3dh_state)
        self.login = Login(self.profile, store, password)
        hooks = LinkHooks()
        self.link = RelayLink(
            self.relay_url,
            self.login.frame,
            hooks.on_push,
            hooks.on_connection_state,
            hooks.on_login,
            backoff,
        )
        self.context = ClientContext(store, self.link, self.profile, self._state)
        engine = build_engine(self.context, self._x3dh)
        self.engine = engine
        self.timeline, self.account = engine.timeline, engine.account
        self.directory, self.sessions, self.epochs = (
            engine.directory,
            engine.sessions,
            engine.epochs,
        )
        self.mailbox, self.pairing = engine.mailbox, engine.pairing
        self.outbox, self.inbox = engine.outbox, engine.inbox
        self.account_devices, self.history = engine.devices, engine.history
        self.controls, self.control_sync = engine.controls, engine.control_sync
        self.control_sync.expire_all_due()  # before anything is shown: what expired while closed
        self.conversations = Conversations(store, self.directory, self.outbox, self.username)
        self.groups, self.group_messages = engine.groups, engine.group_messages
        self.attachments = Attachments(self.context, engine.directory, profile_dir / "attachments")
        self.rebuild = Rebuild(self.context, engine, self.login, self.link)
        hooks.bind(Router(self.context, engine, self.login, self.link, self.rebuild))
        self.control_sync.releases = BlobReleases(self.context, self.attachments.folder)
        self.delivery_watch = DeliveryWatch(self.context)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # ------------------------------------------------------------------ construction

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
        store = new_profile(
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
        store = new_profile(profile_dir, relay_url, username, device_name, Registration.ADD, False)
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
            asyncio.create_task(self.history.run(), name="mailbox"),
            asyncio.create_task(self.control_sync.run(), name="controls"),
        ]
        self.link.start()
        self.context.outbox_wake.set()
        self.context.mailbox_wake.set()
        self.attachments.resume_uploads()  # what was uploading when the app was closed

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

    @property
    def database_key_place(self) -> KeyPlace:
        """Where this profile's database key is kept (the OS keyring, or a file beside it)."""
        return self._store.key_place

    @property
    def removed(self) -> bool:
        """This device was removed from its account (it cannot read anything new)."""
        return self._state.role is DeviceRole.REMOVED

    @property
    def unknown_to_relay(self) -> bool:
        """The relay refused this member device's login as unknown, with no proof that it was
        removed: the relay may have lost its data (retry, or restore the relay)."""
        error = self.link.login_error
        return (
            error is not None
            and error.code == wire.ErrorCode.UNKNOWN_DEVICE
            and self._state.role.is_member
        )

    def retry_connection(self) -> None:
        """Connect again after the relay refused this device's login."""
        self.link.retry()

    async def rebuild_account(self, password: str) -> None:
        """Create this account again on a relay that lost it, from what this device holds."""
        await self.rebuild.run(password)

    async def delete_local_data(self) -> None:
        """Close and delete this profile: messages, keys, everything this device held."""
        await self.close()
        forget_key(self.profile_dir)
        shutil.rmtree(self.profile_dir, ignore_errors=True)
