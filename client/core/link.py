"""The client's connection to the relay: connect, log in, reconnect with backoff.

It implements :class:`client.core.port.RelayPort` over a websocket.

:class:`RelayLink` owns one websocket at a time. ``request`` sends a frame and waits for the frame
that answers its ``rid``; pushed frames (``Deliver``, ``Notice``, ``PairingPush``) go to ``on_push``
without blocking the reader, so answers keep flowing while pushes are processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import overload

import websockets
from websockets.asyncio.client import ClientConnection, connect

from client.core.events import ConnectionState
from client.core.port import (
    DeviceNotRegistered,
    FrameFactory,
    Offline,
    OtherT,
    RelayError,
    ReplyT,
    checked_reply,
)
from shared import wire
from shared.errors import WireError

log = logging.getLogger("ariadne.client.link")

# Login refusals that retrying cannot fix (or that the user must wait out: a throttled login
# says how long, in ``RelayError.retry_after``).
FATAL_LOGIN_ERRORS = frozenset(
    {
        wire.ErrorCode.USERNAME_TAKEN,
        wire.ErrorCode.BAD_CREDENTIALS,
        wire.ErrorCode.UNKNOWN_DEVICE,
        wire.ErrorCode.BAD_DEVICE_ID,
        wire.ErrorCode.BAD_SIGNATURE,
        wire.ErrorCode.LOGIN_THROTTLED,
        wire.ErrorCode.TOO_MANY_PENDING,
    }
)


class RelayBusy(Exception):
    """Too many connections are logging in to the relay: it refused this one before its
    challenge. Retried like a lost connection."""


@dataclass(frozen=True)
class Backoff:
    first: float = 0.2
    factor: float = 2.0
    longest: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay * random.uniform(0.8, 1.2)
            delay = min(delay * self.factor, self.longest)


# The presets: a person watching a window (the GUI, the demo), and a relay on the same machine
# that is back within milliseconds (tests, benchmarks, screenshots).
INTERACTIVE = Backoff(first=0.2, factor=1.6, longest=3.0)
LOCAL_RELAY = Backoff(first=0.05, factor=1.5, longest=0.3)


LoginBuilder = Callable[[bytes, int], wire.Frame]
"""Given the relay's nonce and a rid, the frame that logs this device in."""


class RelayLink:
    def __init__(
        self,
        url: str,
        login: LoginBuilder,
        on_push: Callable[[wire.Frame], None],
        on_state: Callable[[ConnectionState, str], None],
        on_login: Callable[[wire.Welcome], Awaitable[None]],
        backoff: Backoff | None = None,
        request_timeout: float = 15.0,
    ) -> None:
        self.url = url
        self._login = login
        self._on_push = on_push
        self._on_state = on_state
        self._on_login = on_login
        self._backoff = backoff or Backoff()
        self._timeout = request_timeout
        self._ws: ClientConnection | None = None
        self._rids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[wire.Frame]] = {}
        self.online = asyncio.Event()
        self.state = ConnectionState.CONNECTING
        self.login_error: RelayError | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-link")

    def retry(self) -> None:
        """Connect again after a refused login (the user asked to)."""
        if self._task is not None and self._task.done():
            self.login_error = None
            self.start()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._set_state(ConnectionState.CLOSED, "")

    def _set_state(self, state: ConnectionState, detail: str) -> None:
        if state is ConnectionState.ONLINE:
            self.online.set()
        else:
            self.online.clear()
        if state is not self.state or detail:
            self.state = state
            self._on_state(state, detail)

    async def _run(self) -> None:
        delays = self._backoff.delays()
        while True:
            self._set_state(ConnectionState.CONNECTING, "")
            busy = False
            try:
                async with connect(
                    self.url, compression=None, max_size=wire.MAX_FRAME_BYTES, open_timeout=10
                ) as ws:
                    self._ws = ws
                    await self._session(ws)
                    delays = self._backoff.delays()
            except RelayError as refusal:
                self.login_error = refusal
                self._set_state(ConnectionState.FAILED, refusal.code)
                return
            except RelayBusy:
                busy = True
            except (OSError, websockets.WebSocketException, TimeoutError, WireError) as exc:
                log.info("relay connection lost: %s", type(exc).__name__)
            finally:
                self._ws = None
                for waiter in self._waiting.values():
                    if not waiter.done():
                        waiter.set_exception(Offline())
                self._waiting.clear()
            delay = next(delays)
            why = "the relay is busy, " if busy else ""
            self._set_state(ConnectionState.OFFLINE, f"{why}retrying in {delay:.1f} s")
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        challenge = wire.decode_relay_frame(await ws.recv())
        if isinstance(challenge, wire.Error) and challenge.code == wire.ErrorCode.BUSY:
            raise RelayBusy()
        if not isinstance(challenge, wire.Challenge):
            raise WireError("relay did not start with a challenge")
        rid = next(self._rids)
        await ws.send(wire.encode(self._login(challenge.nonce, rid)))
        answer = wire.decode_relay_frame(await ws.recv())
        if isinstance(answer, wire.NotRegistered):
            raise DeviceNotRegistered(answer.lists)
        if isinstance(answer, wire.Error):
            if answer.code in FATAL_LOGIN_ERRORS:
                raise RelayError(answer.code, answer.detail, answer.retry_after)
            raise WireError(f"login failed: {answer.code}")
        if not isinstance(answer, wire.Welcome):
            raise WireError("unexpected answer to login")
        reader = asyncio.create_task(self._read(ws))
        try:
            try:
                await self._on_login(answer)
            except (Offline, RelayError) as exc:
                raise ConnectionError(f"setup after login failed: {exc}") from None
            except Exception as exc:
                # Keep the link alive (and retrying) whatever the setup step hit; say what it was.
                log.exception("setup after login failed")
                raise ConnectionError("setup after login failed") from exc
            self._set_state(ConnectionState.ONLINE, "")
            await reader
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader

    async def _read(self, ws: ClientConnection) -> None:
        async for data in ws:
            try:
                frame = wire.decode_relay_frame(data)
            except WireError as exc:
                log.warning("ignoring a malformed frame from the relay: %s", exc)
                continue
            rid = getattr(frame, "rid", None)
            if isinstance(frame, wire.Deliver | wire.Notice | wire.PairingPush):
                self._on_push(frame)
            elif rid is not None and rid in self._waiting:
                waiter = self._waiting.pop(rid)
                if not waiter.done():
                    waiter.set_result(frame)
            elif isinstance(frame, wire.Error):
                log.warning("relay reported %s", frame.code)

    @overload
    async def request(self, make: FrameFactory) -> wire.Frame: ...

    @overload
    async def request(self, make: FrameFactory, expect: type[ReplyT]) -> ReplyT: ...

    @overload
    async def request(
        self, make: FrameFactory, expect: tuple[type[ReplyT], type[OtherT]]
    ) -> ReplyT | OtherT: ...

    async def request(
        self,
        make: FrameFactory,
        # Any frame by default: for tests that speak to the relay as a client of their own.
        expect: type[ReplyT] | tuple[type[ReplyT], ...] = wire.Frame,  # type: ignore[assignment]
    ) -> ReplyT:
        """Send the frame ``make(rid)`` and return the relay's answer, of type ``expect``
        (the :class:`~client.core.port.RelayPort` contract).

        Raises :class:`Offline` if there is no connection (or it drops meanwhile) and
        :class:`RelayError` if the relay refuses or answers with another type."""
        ws = self._ws
        if ws is None:
            raise Offline()
        rid = next(self._rids)
        waiter: asyncio.Future[wire.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        frame = make(rid)
        try:
            await ws.send(wire.encode(frame))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the answer, and a closing client would never stop.
            async with asyncio.timeout(self._timeout):
                answer = await waiter
        except (websockets.ConnectionClosed, TimeoutError):
            raise Offline() from None
        finally:
            self._waiting.pop(rid, None)
        return checked_reply(frame, answer, expect)

    async def send(self, frame: wire.Frame) -> None:
        """Send a frame that has no answer (an ``Ack``). Silently dropped when offline: the relay
        redelivers whatever was not acknowledged."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(wire.encode(frame))
