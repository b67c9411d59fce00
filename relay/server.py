"""The relay's websocket server and the state all its connections share.

:class:`Relay` holds what outlives one connection: the store and the vault, the limits counted
across connections, the connected devices, the cache of each account's device-list members, the
bounded "server view" of what was seen, and who started each pairing. A device's connection
(``relay.connection``) logs it in and runs a session; the request handlers (``relay.handlers``)
reach other devices only through the public methods here: push a frame or an envelope to a
connected device, notify an account's devices, hang up on a device.

Delivery: envelopes are appended to each recipient device's durable queue and the sender gets
``Accepted`` only after the group commit; connected recipients get them pushed at that moment.

Several nodes (a store ``shared_between_nodes``, PostgreSQL): a device connected to another node
is reached through ``relay.nodes``; what the nodes must agree on is read from the store, not kept
here (``relay.store_pg_shared``). The HTTP endpoints and counters are in ``relay.health``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, MutableMapping
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve

from relay.connection import Connection
from relay.handlers import HANDLERS
from relay.health import Counters, answer_http, log_counters
from relay.limits import Limits, SharedLimits
from relay.nodes import Nodes
from relay.session import Handler
from relay.storage import RelayStorage
from relay.store import QueuedEnvelope, RelayStore
from relay.store_pg import PgRelayStore
from relay.store_pg_shared import StoredPairings, StoredSeen, stored_limits
from relay.vault import Vault
from relay.vault_pg import PgVault
from shared import wire

log = logging.getLogger("ariadne.relay")

SEEN_PER_CONVERSATION = 500
SEEN_CONVERSATIONS = 10_000
SEEN_EXCERPT = 48

__all__ = ["Limits", "Relay", "start_relay"]


class Relay:
    """The relay's state shared by all connections."""

    def __init__(
        self, store: RelayStorage, limits: Limits | None = None, vault: Vault | None = None
    ) -> None:
        self.store = store
        self.vault = vault
        self.limits = limits or Limits()
        self.connections: dict[str, Connection] = {}
        self.shared = SharedLimits(self.limits)
        # Closing another device's connection runs in the background (a close handshake can take
        # seconds) and is held here, not by the connection that asked: it may end first.
        self._closing: set[asyncio.Task[None]] = set()
        self._members: dict[str, frozenset[str]] = {}
        self._last_ts = 0
        # What the relay saw of each conversation (keyed by the users of a fan-out), for the
        # "server view". In memory and bounded: the relay keeps no longer metadata log than this.
        self.seen: dict[frozenset[str], deque[wire.SeenEnvelope]] = {}
        # Who started pairing with each pending device's current offer (its commitment): the
        # only device its reveal may go to. In memory: a restart only means asking again.
        # The dispatch table this relay serves with: the shared one, unless the demo's attack
        # layer (relay.attacks) wrapped some handlers for this relay alone.
        self.handlers: dict[type, Handler] = HANDLERS
        self.pairing_started: MutableMapping[str, tuple[bytes | None, str]] = {}
        self.nodes: Nodes | None = None  # with a store shared between nodes
        self.stored_seen: StoredSeen | None = None  # the same: "seen" is read from the store
        self.ready = True  # the store answers (a shared store can be lost for a while)
        self.counters = Counters()
        self.background: set[asyncio.Task[None]] = set()  # cancelled at close
        if isinstance(store, PgRelayStore):
            self.shared = stored_limits(self.limits, store)
            self.pairing_started = StoredPairings(store)
            self.stored_seen = StoredSeen(store)
            self.nodes = Nodes(self, store)
            store.on_unavailable = self.database_lost

    def record_seen(
        self, users: frozenset[str], queued: list[QueuedEnvelope], recipient_of: dict[str, str]
    ) -> None:
        if self.stored_seen is not None:
            self.stored_seen.record(users, _seen(queued, recipient_of))
            return
        log_ = self.seen.pop(users, None) or deque(maxlen=SEEN_PER_CONVERSATION)
        self.seen[users] = log_  # most recently active last
        while len(self.seen) > SEEN_CONVERSATIONS:
            del self.seen[next(iter(self.seen))]
        log_.extend(_seen(queued, recipient_of))

    def seen_by(self, users: frozenset[str]) -> Iterable[wire.SeenEnvelope]:
        """What the relay saw of a conversation (the "server view"), oldest first."""
        if self.stored_seen is not None:
            return self.stored_seen.get(users)
        return self.seen.get(users, ())

    def database_lost(self) -> None:
        """The shared store cannot be reached: hang up on every device (each retries, and
        resends what was not acknowledged) and answer new connections ``busy`` until the poll
        finds the database again."""
        if self.ready:
            log.error("database unreachable: closing %d connections", len(self.connections))
        self.ready = False
        for connection in list(self.connections.values()):
            self.close_soon(connection, 1013, "database unavailable, try again")

    def is_connected(self, device_id: str) -> bool:
        """Connected to this node or, with several nodes, to any."""
        if device_id in self.connections:
            return True
        return self.nodes is not None and self.nodes.is_connected(device_id)

    def close(self) -> None:
        for task in self.background:
            task.cancel()
        if self.nodes is not None:
            self.nodes.stop()
        if self.vault is not None:
            self.vault.close()  # first: a vault on PostgreSQL uses the store's link
        self.store.close()

    def members(self, username: str) -> frozenset[str]:
        """The devices on the user's current signed list (cached: read on every fan-out)."""
        if self.store.shared_between_nodes:
            return self.store.list_members(username)  # other nodes change it: never cached
        members = self._members.get(username)
        if members is None:
            members = self._members[username] = self.store.list_members(username)
        return members

    def forget_members(self, username: str | None = None) -> None:
        if username is None:
            self._members.clear()
        else:
            self._members.pop(username, None)

    def next_timestamp(self) -> int:
        """Microseconds; strictly increasing, so every fan-out has its own place in the order."""
        self._last_ts = max(self._last_ts + 1, time.time_ns() // 1000)
        return self._last_ts

    async def handle(self, websocket: ServerConnection) -> None:
        await Connection(self, websocket).run()

    def connection_started(self, connection: Connection) -> None:
        """A device logged in: it replaces the device's older connection, if any."""
        previous = self.connections.get(connection.device_id)
        self.connections[connection.device_id] = connection
        self.counters.connections += 1
        if previous is not None:
            self.close_soon(previous, 4000, "replaced by a newer connection")
        if self.nodes is not None:
            self.nodes.connected(connection.device_id)

    def connection_ended(self, connection: Connection) -> None:
        if self.connections.get(connection.device_id) is connection:
            del self.connections[connection.device_id]
            if self.nodes is not None:
                self.nodes.disconnected(connection.device_id)

    def disconnect(self, device_id: str, code: int, reason: str) -> None:
        """Hang up on the device's connection, if it has one (it was removed, rejected...)."""
        connection = self.connections.get(device_id)
        if connection is not None:
            self.close_soon(connection, code, reason)
        elif self.nodes is not None:
            self.nodes.hang_up(device_id, code, reason)

    def close_soon(self, connection: Connection, code: int, reason: str) -> None:
        task = asyncio.create_task(connection.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def push_to(self, device_id: str, frame: wire.Frame) -> bool:
        """Queue a frame for a connected device; False if it is not connected."""
        connection = self.connections.get(device_id)
        if connection is None:
            if self.nodes is not None:
                self.nodes.push(device_id, frame)
            return False
        connection.push_frame(frame)
        return True

    def deliver(self, envelope: QueuedEnvelope) -> None:
        """A committed envelope, to its device's writer if the device is connected."""
        self.counters.queued += 1
        connection = self.connections.get(envelope.device_id)
        if connection is not None and self.nodes is not None:
            self.nodes.deliver_here(connection, envelope)
        elif connection is not None:
            connection.push(envelope)
        elif self.nodes is not None:
            self.nodes.wake(envelope.device_id)

    def notify_user(self, username: str, notice: wire.Notice) -> None:
        for device_id in self.members(username) | {
            d.device_id for d in self.store.devices_of(username)
        }:
            self.push_to(device_id, notice)


async def start_relay(
    host: str,
    port: int,
    data_dir: Path,
    limits: Limits | None = None,
    *,
    vault: bool = True,
    database: str | None = None,
    vault_dir: Path | None = None,
    poll_seconds: float = 2.0,
) -> tuple[Relay, Server]:
    """Open the store and start serving; returns when the socket listens. The store is SQLite
    in ``data_dir``, or PostgreSQL at ``database`` (a ``postgresql://`` URI), shared with the
    other nodes started on it. The PIN vault is started beside it (its key in ``vault_dir``,
    default ``data_dir/vault``; its rows in the same database) unless ``vault`` is False."""
    data_dir.mkdir(parents=True, exist_ok=True)
    vault_dir = vault_dir or data_dir / "vault"
    store: RelayStorage
    if database is not None:
        store = PgRelayStore(database)
        relay_vault: Vault | None = PgVault(vault_dir, store.link) if vault else None
    else:
        store = RelayStore(data_dir / "relay.sqlite3")
        relay_vault = Vault(vault_dir) if vault else None
    store.forget_old_fan_outs(time.time_ns() // 1000)
    relay = Relay(store, limits, relay_vault)
    if relay.nodes is not None:
        relay.nodes.poll_seconds = poll_seconds
        await relay.nodes.start()
    server = await serve(
        relay.handle,
        host,
        port,
        max_size=wire.MAX_FRAME_BYTES,
        compression=None,
        max_queue=64,
        process_request=lambda connection, request: answer_http(relay, request),
    )
    log_counters(relay)
    return relay, server


def _seen(queued: list[QueuedEnvelope], recipient_of: dict[str, str]) -> list[wire.SeenEnvelope]:
    return [
        wire.SeenEnvelope(
            seq=envelope.seq,
            server_ts=envelope.server_ts,
            sender_user=envelope.sender_user,
            sender_device=envelope.sender_device,
            recipient_user=recipient_of[envelope.device_id],
            device_id=envelope.device_id,
            size=len(envelope.payload),
            excerpt=envelope.payload[-SEEN_EXCERPT:],
            queued=True,
        )
        for envelope in queued
    ]
