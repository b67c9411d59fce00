"""Where the relay link's callbacks go: its pushes (deliveries, notices, pairing messages), its
login and its state changes, each routed to the engine's concerns.

:class:`Router` is built from the context, the engine, the login and the link, so nothing below
:class:`~client.core.client.AriadneClient` calls back into the façade. The link needs its
callbacks before the context and the engine exist; :class:`LinkHooks` is what it is given, bound
to the router once that is built (before the link starts).
"""

from __future__ import annotations

from client.core.context import ClientContext
from client.core.directory import UnknownUser
from client.core.engine import Engine
from client.core.events import ConnectionState, ConnectionStateChanged
from client.core.link import RelayLink
from client.core.login import Login
from client.core.port import DeviceNotRegistered, RelayError
from client.core.rebuild import Rebuild
from shared import wire
from shared.device_list import open_device_list
from shared.errors import ProtocolError


class Router:
    """Routes what the link reports to the concerns of one device."""

    def __init__(
        self,
        context: ClientContext,
        engine: Engine,
        login: Login,
        link: RelayLink,
        rebuild: Rebuild | None = None,
    ) -> None:
        self._context = context
        self._engine = engine
        self._login = login
        self._link = link
        self._rebuild = rebuild

    def on_push(self, frame: wire.Frame) -> None:
        context, engine = self._context, self._engine
        if isinstance(frame, wire.Deliver):
            engine.inbox.put(frame.envelopes)
        elif isinstance(frame, wire.Notice):
            if frame.kind == "device_list_changed" and frame.username == context.username:
                context.in_background(engine.history.refresh_own())
            elif frame.kind == "device_list_changed" and frame.username:
                context.in_background(engine.directory.refresh(frame.username))
            elif frame.kind == "epoch_changed":
                context.in_background(engine.history.refresh_own())
            elif frame.kind == "pairing_offer":
                context.in_background(engine.devices.announce_pairing_offers())
            elif frame.kind == "prekeys_low":
                context.in_background(engine.devices.publish_keys(top_up=True))
        elif isinstance(frame, wire.PairingPush):
            engine.pairing.on_push(frame)

    def on_connection_state(self, state: ConnectionState, detail: str) -> None:
        if state is ConnectionState.CONNECTING:
            self._engine.inbox.connection_lost()  # a new connection: new sequence numbers
        error = self._link.login_error
        if (
            state is ConnectionState.FAILED
            and error is not None
            and error.code == wire.ErrorCode.UNKNOWN_DEVICE
            and self._context.state.role.is_member
        ):
            self._check_removal(error)
        self._context.emit(ConnectionStateChanged(state, detail))

    def _check_removal(self, error: RelayError) -> None:
        """The relay does not know this device: lost data, a hostile relay, or a removal. Only
        a signed list without this device proves a removal, verified under the list rules
        against the lists this device holds (the account key, a higher version, each change's
        author on the list before): the directory moves the role if one does. Otherwise the
        device stays a member and says the relay does not know it."""
        username = self._context.username
        lists = error.lists if isinstance(error, DeviceNotRegistered) else []
        for signed in lists:
            held = self._engine.directory.known(username)
            try:
                version = open_device_list(signed, username, None).version
            except ProtocolError:
                continue
            if held is None or version > held.version:
                self._engine.directory.accept(username, signed)

    async def on_login(self, welcome: wire.Welcome) -> None:
        context, engine = self._context, self._engine
        state, account, devices = context.state, engine.account, engine.devices
        self._login.accepted()
        context.in_background(engine.control_sync.sync_clock())
        if self._rebuild is not None and self._rebuild.pending:
            await self._rebuild.upload()  # the account created again: what this device holds
        elif not state.keys_published:
            await devices.publish_keys(top_up=False)
        elif welcome.one_time_pre_keys_left < wire.PRE_KEYS_LOW:
            await devices.publish_keys(top_up=True)
        # A new device trusts no list of its own account before it confirms a pairing code.
        if account.trusted_public(engine.directory) is not None:
            try:
                await engine.directory.refresh(context.username)
            except UnknownUser:
                if account.key is not None:
                    await devices.publish_first_device_list()
                elif state.approvers is None:
                    raise
                # else: a confirmed device whose approver has not published its list yet
        if account.is_member:
            await engine.history.refresh_epochs()
        engine.outbox.connected()
        context.mailbox_wake.set()


class LinkHooks:
    """The link's three callbacks, forwarded to the :class:`Router` bound with :meth:`bind`."""

    def __init__(self) -> None:
        self._router: Router | None = None

    def bind(self, router: Router) -> None:
        self._router = router

    @property
    def router(self) -> Router:
        if self._router is None:
            raise RuntimeError("the link reported before its router was bound")
        return self._router

    def on_push(self, frame: wire.Frame) -> None:
        self.router.on_push(frame)

    def on_connection_state(self, state: ConnectionState, detail: str) -> None:
        self.router.on_connection_state(state, detail)

    async def on_login(self, welcome: wire.Welcome) -> None:
        await self.router.on_login(welcome)
