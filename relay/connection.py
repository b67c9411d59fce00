"""One device's websocket connection: transport, login, per-connection limits and the writer.

Each connection is a small state machine: ``CHALLENGED`` (the relay sent a nonce and waits for a
signed login) → ``AUTHENTICATED`` (frames are served) → ``CLOSED``. Every frame is decoded
strictly by ``shared.wire``; a bad frame gets an ``Error`` frame, and a connection that keeps
sending bad frames, or floods, is closed. A decoded frame goes to its handler through the
dispatch table with this connection's :class:`~relay.session.Session`; no handler lets one
connection's bad input reach the store or another connection.

Delivery: a connected device gets envelopes pushed in queue order (paged from the store until
caught up, then live); it acknowledges after persisting, and the relay deletes on ack. What is
ready for a device is written once per turn of the event loop, straight to its socket in one
write, while the socket takes it; only a device that reads slowly (its socket's buffer full) or
that is catching up from the store is served by its own writer task, which waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import websockets
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from relay.limits import TokenBucket
from relay.login import NotRegistered, log_in
from relay.login_scope import login_scope
from relay.session import Reject, Session
from relay.storage import StoreUnavailable
from relay.store import QueuedEnvelope
from shared import wire
from shared.auth import NONCE_LENGTH
from shared.errors import WireError
from shared.wire import ErrorCode

if TYPE_CHECKING:
    from relay.server import Relay

log = logging.getLogger("ariadne.relay")


class ConnectionState(enum.Enum):
    CHALLENGED = "challenged"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class Connection:
    def __init__(self, relay: Relay, websocket: ServerConnection) -> None:
        self.relay = relay
        self.store = relay.store
        self.limits = relay.limits
        self.ws = websocket
        self.state = ConnectionState.CHALLENGED
        self.session: Session | None = None
        self._frames = TokenBucket(self.limits.frames_per_second, self.limits.frame_burst)
        self._bad_frames = 0
        self._rate_violations = 0
        # Delivery: a cursor over the queue, a backlog of live pushes, and a wake-up event.
        self._cursor = 0
        self._draining = True
        self._live: deque[QueuedEnvelope] = deque()
        self._outgoing: deque[wire.Frame] = deque()  # answers and notices, sent by the writer
        self._wake = asyncio.Event()
        self._flush_scheduled = False

    @property
    def device_id(self) -> str:
        return self.session.device_id if self.session is not None else ""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        peer = self.ws.remote_address
        shared = self.relay.shared
        try:
            source = self._source()
            if (
                not self.relay.ready  # a shared store is unreachable: come back later
                or shared.unauthenticated >= self.limits.unauthenticated_connections
                or shared.unauthenticated_from[source] >= self.limits.unauthenticated_per_source
            ):
                await self._send(
                    wire.Error(rid=None, code=ErrorCode.BUSY, detail="try again shortly")
                )
                await self.close(1013, "too many connections logging in")
                return
            shared.unauthenticated += 1
            shared.unauthenticated_from[source] += 1
            try:
                nonce = os.urandom(NONCE_LENGTH)
                await self.ws.send(wire.encode(wire.Challenge(nonce=nonce)))
                session = await self._login(nonce, source)
            finally:
                shared.unauthenticated -= 1
                shared.unauthenticated_from[source] -= 1
                if not shared.unauthenticated_from[source]:
                    del shared.unauthenticated_from[source]
            if session is None:
                return
            log.info("device %s of %s connected from %s", session.device_id, session.username, peer)
            writer = asyncio.create_task(self._deliver())
            try:
                async for data in self.ws:
                    await self._serve(session, data)
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        except websockets.ConnectionClosed:
            pass
        finally:
            self.state = ConnectionState.CLOSED
            self.relay.connection_ended(self)
            if self.device_id:
                log.info("device %s disconnected", self.device_id)

    async def _send(self, frame: wire.Frame) -> None:
        if isinstance(frame, wire.Error):
            self.relay.counters.errors += 1
        await self.ws.send(wire.encode(frame))

    async def close(self, code: int, reason: str) -> None:
        log.warning("closing connection of %s: %s", self.device_id or "unauthenticated", reason)
        await self.ws.close(code, reason)

    def _source(self) -> str:
        address = self.ws.remote_address
        return str(address[0]) if isinstance(address, tuple) and address else "unknown"

    # ------------------------------------------------------------------ login

    async def _login(self, nonce: bytes, source: str) -> Session | None:
        try:
            data = await asyncio.wait_for(self.ws.recv(), self.limits.login_timeout)
        except TimeoutError:
            await self.close(1008, "login timeout")
            return None
        try:
            frame = wire.decode_client_frame(data)
        except WireError as exc:
            await self._send(wire.Error(rid=None, code=ErrorCode.BAD_FRAME, detail=str(exc)[:200]))
            await self.close(1008, "bad login frame")
            return None
        rid = getattr(frame, "rid", None)
        try:
            username, device_id = await log_in(self.relay, frame, nonce, source)
        except Reject as rejection:
            log.info("login refused: %s", rejection.code)
            if isinstance(rejection, NotRegistered):
                await self._send(rejection.answer(cast(int, rid)))  # a Resume has a rid
            else:
                await self._send(rejection.frame(rid))
            await self.close(1008, "login refused")
            return None
        if self.ws.state is not State.OPEN:
            # The device hung up while its login was being checked (a login frame read from an
            # already closed socket): it must not replace the device's live connection.
            log.info("login of %s from a closed connection ignored", device_id)
            return None
        self.session = Session(self.relay, username, device_id, self.push_frame)
        with login_scope(self.store):
            self.relay.connection_started(self)
            self.state = ConnectionState.AUTHENTICATED
            self.store.touch(device_id, int(time.time()))
            pre_keys_left = self.store.pre_key_count(device_id)
        await self._send(
            wire.Welcome(
                rid=cast(int, rid),  # log_in accepts only login frames, and each carries a rid
                device_id=device_id,
                one_time_pre_keys_left=pre_keys_left,
            )
        )
        return self.session

    # ------------------------------------------------------------------ serving frames

    async def _serve(self, session: Session, data: bytes | str) -> None:
        try:
            frame = wire.decode_client_frame(data)
        except WireError as exc:
            self._bad_frames += 1
            log.debug("bad frame from %s: %s", session.device_id, exc)
            await self._send(wire.Error(rid=None, code=ErrorCode.BAD_FRAME, detail=str(exc)[:200]))
            if self._bad_frames >= self.limits.max_bad_frames:
                await self.close(1008, "too many bad frames")
            return
        rid = getattr(frame, "rid", None)
        if not self._frames.take():
            self._rate_violations += 1
            if self._rate_violations > self.limits.max_rate_violations:
                await self.close(1008, "rate limit")
            else:
                await self._send(wire.Error(rid=rid, code=ErrorCode.RATE_LIMITED))
            return
        handler = self.relay.handlers.get(type(frame))
        try:
            if handler is None:
                raise Reject(ErrorCode.UNSUPPORTED)
            reply = await handler(session, frame)
        except Reject as rejection:
            reply = rejection.frame(rid)
        except StoreUnavailable:
            # The relay hangs up on every device (Relay.database_lost); the device resends
            # what was not answered when it is back.
            return
        except Exception:
            # A bug must cost one request, not the connection or the relay. The traceback names
            # the frame type only; payloads never reach the log.
            log.exception("internal error serving %s", type(frame).__name__)
            reply = wire.Error(rid=rid, code=ErrorCode.INTERNAL_ERROR)
        if reply is not None:
            await self._send(reply)

    # ------------------------------------------------------------------ delivery

    def push(self, envelope: QueuedEnvelope) -> None:
        if self._draining:
            return  # the writer reads the queue from the store and will find it there
        if len(self._live) >= self.limits.live_backlog:
            self._live.clear()
            self._draining = True  # a slow reader: go back to paging from the store
        else:
            self._live.append(envelope)
        self._kick()

    def push_after(self, envelope: QueuedEnvelope, previous: int) -> None:
        """Push ``envelope`` if this connection was handed every envelope of its queue up to
        ``previous`` (the greatest seq the queue held before it), else read the queue again.
        The call-back comes a turn or more after the commit, so the connection may have read
        ``envelope`` from the store meanwhile: then it is not handed again."""
        handed = self._live[-1].seq if self._live else self._cursor
        if envelope.seq <= handed:
            return
        if previous > handed:
            self.reread()
        else:
            self.push(envelope)

    @property
    def cursor(self) -> int:
        """The last seq sent to the device on this connection."""
        return self._cursor

    def reread(self) -> None:
        """Something may have been queued for this device by another node: read the queue from
        the store again, from the cursor on."""
        self._draining = True
        self._live.clear()
        self._kick()

    def push_frame(self, frame: wire.Frame) -> None:
        self._outgoing.append(frame)
        self._kick()

    def _kick(self) -> None:
        """Something is ready to send: write it at the end of this turn of the event loop, so
        that everything one commit made ready for this device goes out in one write."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is ready straight to the socket while the socket takes it. The rest is the
        writer task's: reading the store while the device catches up, and waiting for a socket
        whose buffer is full, so that a device that does not read holds the relay's memory
        to one buffer and its queue stays in the store."""
        self._flush_scheduled = False
        transport = self.ws.transport
        if (
            self._draining
            or self.ws.protocol.state is not State.OPEN
            or transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]
        ):
            self._wake.set()
            return
        frames, _ = self._ready_frames()
        self._write(frames)

    def _write(self, frames: list[bytes]) -> None:
        """Write frames in one write: a write each would cost a system call each."""
        protocol = self.ws.protocol
        for data in frames:
            protocol.send_binary(data)
        if frames:
            self.ws.transport.write(b"".join(protocol.data_to_send()))

    def _ready_frames(self) -> tuple[list[bytes], bool]:
        """One round of the writer's work, encoded: answers and notices first, then the next
        envelopes in queue order (paged from the store until caught up, then live, as many per
        frame as are ready). Also says whether more may be waiting in the store."""
        frames = []
        while self._outgoing:
            frame = self._outgoing.popleft()
            if isinstance(frame, wire.Error):
                self.relay.counters.errors += 1
            frames.append(wire.encode(frame))
        if self._draining:
            page = self.store.queued(self.device_id, self._cursor, self.limits.delivery_page)
            if len(page) < self.limits.delivery_page:
                # Caught up. Nothing can be committed between this read and this line (one
                # thread), so from here on every new envelope arrives through push().
                self._draining = False
                self._live.clear()
        else:
            page = list(self._live)
            self._live.clear()
        # No envelope comes both from a read and from a push: the read sees committed rows only;
        # a SQLite commit pushes in the same step (a read after it comes after the push, which
        # is ignored while reading the store), and a shared store's commit, called back later,
        # pushes only what the connection was not handed yet (push_after;
        # tests/e2e/test_catch_up_race.py).
        for chunk in _frames_of(page):
            self._cursor = chunk[-1].seq
            self.relay.counters.delivered += len(chunk)
            frames.append(
                wire.encode(
                    wire.Deliver(
                        envelopes=[
                            wire.Delivered(
                                seq=e.seq,
                                sender_user=e.sender_user,
                                sender_device=e.sender_device,
                                server_ts=e.server_ts,
                                payload=e.payload,
                            )
                            for e in chunk
                        ]
                    )
                )
            )
        return frames, bool(page)

    async def _deliver(self) -> None:
        """The connection's writer task: serves the device while it catches up from the store,
        and whenever the socket cannot take more (it waits for the socket to drain). It writes
        each round at once and waits only after: no older frame is ever held back while a
        newer one is written."""
        while True:
            frames, more = self._ready_frames()
            if frames:
                if self.ws.protocol.state is State.OPEN:
                    self._write(frames[:-1])
                await self.ws.send(frames[-1])  # waits while the socket's buffer is full
            if not (more or self._outgoing or self._live or self._draining):
                self._wake.clear()
                await self._wake.wait()


# Payload bytes per Deliver frame: room left for one more envelope's fields, so envelopes that
# carry thumbnails (up to MAX_PAYLOAD_BYTES each) never make a frame the device refuses.
DELIVER_BYTES = wire.MAX_FRAME_BYTES - wire.MAX_PAYLOAD_BYTES


def _frames_of(envelopes: list[QueuedEnvelope]) -> Iterator[list[QueuedEnvelope]]:
    """Queue order kept, at most MAX_DELIVER envelopes and DELIVER_BYTES bytes per frame."""
    page: list[QueuedEnvelope] = []
    size = 0
    for envelope in envelopes:
        cost = len(envelope.payload) + 128  # the Delivered fields around it
        if page and (len(page) == wire.MAX_DELIVER or size + cost > DELIVER_BYTES):
            yield page
            page, size = [], 0
        page.append(envelope)
        size += cost
    if page:
        yield page
