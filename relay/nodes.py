"""Several relay nodes over one PostgreSQL store: wake-ups, pushes and hang-ups between them.

A node reaches a device connected to another node through PostgreSQL ``LISTEN/NOTIFY`` on one
channel, with no other service. Messages (one line each, no content beyond what a push to that
device carries anyway):

- ``wake <node> <device>…``: something was queued for these devices; the node holding one reads
  its queue from the store.
- ``frame <node> <device> <base64>``: a notice or pairing message for a connected device.
- ``hangup <node> <device> <code> <reason>``: close the device's connection (removed, rejected).
- ``takeover <node> <device> <connection>``: the device logged in again there; any other
  connection of it is closed (a device keeps only its newest connection, whichever node).

Nothing depends on a notification arriving: the store is the truth. Every ``poll_seconds`` a node
reads which of its devices have envelopes past their cursor and wakes them, and closes its
connections that the ``connections`` table says were replaced elsewhere; a node that reconnects
to the database does the same at once. A lost notification costs at most one poll of latency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
from typing import TYPE_CHECKING, Any

import asyncpg

from relay.storage import StoreUnavailable
from relay.store_pg import PgRelayStore
from shared import wire
from shared.errors import WireError

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.server import Relay
    from relay.store_queue import QueuedEnvelope

log = logging.getLogger("ariadne.relay")

CHANNEL = "ariadne"
NOTIFY_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
_connection_ids = itertools.count(1)


class Nodes:
    """This node's side of the conversation between nodes."""

    def __init__(self, relay: Relay, store: PgRelayStore, poll_seconds: float = 2.0) -> None:
        self.relay = relay
        self.store = store
        self.poll_seconds = poll_seconds
        self.node_id = os.urandom(6).hex()
        self.drop_notifications = False  # a fault to inject in tests: the poll must cover it
        self._listener: asyncpg.Connection | None = None
        self._waking: set[str] = set()
        self._claims: dict[str, int] = {}  # device → the id of its connection here
        self._poller: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._listen_soon()
        self._poller = asyncio.create_task(self._poll_forever())

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                self.store.link.call(listener.close(timeout=2))

    def _listen_soon(self) -> None:
        self.store.link.submit(self._listen())

    async def _listen(self) -> None:
        """On the store's link loop: (re)open the listening connection."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            conn = await self.store.link.connect()
            await conn.add_listener(CHANNEL, self._heard)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return  # the poll tries again
        self._listener = conn

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._received, payload)

    def _notify(self, payload: str) -> None:
        listener = self._listener
        if listener is None or listener.is_closed():
            return  # the other nodes' polls will find it
        self.store.link.submit(self._send(listener, payload))

    @staticmethod
    async def _send(listener: asyncpg.Connection, payload: str) -> None:
        with contextlib.suppress(Exception):
            await listener.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    # ------------------------------------------------------------------ telling the others

    def wake(self, device_id: str) -> None:
        """An envelope was committed for a device not connected here (sent once per turn)."""
        if not self._waking:
            asyncio.get_running_loop().call_soon(self._flush_wakes)
        self._waking.add(device_id)

    def _flush_wakes(self) -> None:
        waking, self._waking = sorted(self._waking), set()
        line = f"wake {self.node_id}"
        for device_id in waking:
            if len(line) + len(device_id) + 1 > NOTIFY_BYTES:
                self._notify(line)
                line = f"wake {self.node_id}"
            line += f" {device_id}"
        self._notify(line)

    def deliver_here(self, connection: Connection, envelope: QueuedEnvelope) -> None:
        """A committed envelope for a device connected to this node. Another node may have
        committed one with a smaller seq whose wake-up is still on its way: the envelope is
        pushed only if the connection was handed everything its queue held before it, else
        the queue is read in order from the connection's cursor."""
        previous = self.store.preceding(envelope.seq)
        if previous is None:
            connection.reread()
        else:
            connection.push_after(envelope, previous)

    def push(self, device_id: str, frame: wire.Frame) -> None:
        encoded = base64.b64encode(wire.encode(frame)).decode()
        self._notify(f"frame {self.node_id} {device_id} {encoded}")

    def hang_up(self, device_id: str, code: int, reason: str) -> None:
        self._notify(f"hangup {self.node_id} {device_id} {code} {reason}")

    def connected(self, device_id: str) -> int:
        """Claim the device's newest connection for this node; returns its id."""
        connection = next(_connection_ids)
        self.store._execute(
            "INSERT INTO connections VALUES ($1, $2, $3) ON CONFLICT (device_id)"
            " DO UPDATE SET node = excluded.node, connection = excluded.connection",
            device_id,
            self.node_id,
            connection,
        )
        self._claims[device_id] = connection
        self._notify(f"takeover {self.node_id} {device_id} {connection}")
        return connection

    def disconnected(self, device_id: str) -> None:
        connection = self._claims.pop(device_id, None)
        if connection is None:
            return
        with contextlib.suppress(StoreUnavailable):
            self.store._execute(
                "DELETE FROM connections WHERE device_id = $1 AND node = $2 AND connection = $3",
                device_id,
                self.node_id,
                connection,
            )

    def is_connected(self, device_id: str) -> bool:
        return (
            self.store._value("SELECT 1 FROM connections WHERE device_id = $1", device_id)
            is not None
        )

    # ------------------------------------------------------------------ hearing the others

    def _received(self, payload: str) -> None:
        if self.drop_notifications:
            return
        kind, node, *rest = payload.split(" ", 3)
        if node == self.node_id:
            return
        connections = self.relay.connections
        if kind == "wake":
            for device_id in " ".join(rest).split():
                if (connection := connections.get(device_id)) is not None:
                    connection.reread()
        elif kind == "frame" and (connection := connections.get(rest[0])) is not None:
            try:
                connection.push_frame(wire.decode_relay_frame(base64.b64decode(rest[1])))
            except (WireError, ValueError):
                log.warning("unreadable frame from node %s", node)
        elif kind == "hangup" and (connection := connections.get(rest[0])) is not None:
            reason = rest[2] if len(rest) > 2 else ""
            self.relay.close_soon(connection, int(rest[1]), reason)
        elif kind == "takeover" and (connection := connections.get(rest[0])) is not None:
            self.relay.close_soon(connection, 4000, "replaced by a newer connection")

    # ------------------------------------------------------------------ the poll

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                self.poll()
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("poll failed")

    def poll(self) -> None:
        """Catch what notifications missed: queued envelopes past a connection's cursor, and
        connections replaced on another node; bring the relay back when the database is."""
        if not self.relay.ready:
            if not self.store.ping():
                return
            self.relay.ready = True
            log.info("database reachable again")
        self._listen_soon()
        local = dict(self.relay.connections)
        if not local:
            return
        ids = list(local)
        for row in self.store._committed_rows(
            "SELECT device_id, max(seq) FROM queue WHERE device_id = ANY($1::text[])"
            " GROUP BY device_id",
            ids,
        ):
            connection = local[row[0]]
            if row[1] > connection.cursor:
                connection.reread()
        claimed = {
            row[0]: (row[1], row[2])
            for row in self.store._rows(
                "SELECT device_id, node, connection FROM connections"
                " WHERE device_id = ANY($1::text[])",
                ids,
            )
        }
        for device_id, connection in local.items():
            if claimed.get(device_id) != (self.node_id, self._claims.get(device_id)):
                self.relay.close_soon(connection, 4000, "replaced by a newer connection")
