"""The relay's websocket server and the state all its connections share.

:class:`Relay` holds what outlives one connection: the store and the vault, the limits counted
across connections, the connected devices, the cache of each account's device-list members, the
bounded "server view" of what was seen, and who started each pairing. A device's connection
(``relay.connection``) logs it in and runs a session; the request handlers (``relay.handlers``)
reach other devices only through the public methods here: push a frame or an envelope to a
connected device, notify an account's devices, hang up on a device.

Delivery: envelopes are appended to each recipient device's durable queue and the sender gets
``Accepted`` only after the group commit; connected recipients get them pushed at that moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve

from relay.connection import Connection
from relay.handlers import HANDLERS
from relay.limits import Limits, SharedLimits
from relay.session import Handler
from relay.store import QueuedEnvelope, RelayStore
from relay.vault import Vault
from shared import wire

log = logging.getLogger("ariadne.relay")

SEEN_PER_CONVERSATION = 500
SEEN_CONVERSATIONS = 10_000
SEEN_EXCERPT = 48

__all__ = ["Limits", "Relay", "start_relay"]


class Relay:
    """The relay's state shared by all connections."""

    def __init__(
        self, store: RelayStore, limits: Limits | None = None, vault: Vault | None = None
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
        self.pairing_started: dict[str, tuple[bytes | None, str]] = {}
        # The dispatch table this relay serves with: the shared one, unless the demo's attack
        # layer (relay.attacks) wrapped some handlers for this relay alone.
        self.handlers: dict[type, Handler] = HANDLERS

    def record_seen(
        self, users: frozenset[str], queued: list[QueuedEnvelope], recipient_of: dict[str, str]
    ) -> None:
        log_ = self.seen.pop(users, None) or deque(maxlen=SEEN_PER_CONVERSATION)
        self.seen[users] = log_  # most recently active last
        while len(self.seen) > SEEN_CONVERSATIONS:
            del self.seen[next(iter(self.seen))]
        for envelope in queued:
            log_.append(
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
            )

    def close(self) -> None:
        self.store.close()
        if self.vault is not None:
            self.vault.close()

    def members(self, username: str) -> frozenset[str]:
        """The devices on the user's current signed list (cached: read on every fan-out)."""
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
        if previous is not None:
            self._close_soon(previous, 4000, "replaced by a newer connection")

    def connection_ended(self, connection: Connection) -> None:
        if self.connections.get(connection.device_id) is connection:
            del self.connections[connection.device_id]

    def disconnect(self, device_id: str, code: int, reason: str) -> None:
        """Hang up on the device's connection, if it has one (it was removed, rejected...)."""
        connection = self.connections.get(device_id)
        if connection is not None:
            self._close_soon(connection, code, reason)

    def _close_soon(self, connection: Connection, code: int, reason: str) -> None:
        task = asyncio.create_task(connection.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def push_to(self, device_id: str, frame: wire.Frame) -> bool:
        """Queue a frame for a connected device; False if it is not connected."""
        connection = self.connections.get(device_id)
        if connection is None:
            return False
        connection.push_frame(frame)
        return True

    def deliver(self, envelope: QueuedEnvelope) -> None:
        """A committed envelope, to its device's writer if the device is connected."""
        connection = self.connections.get(envelope.device_id)
        if connection is not None:
            connection.push(envelope)

    def notify_user(self, username: str, notice: wire.Notice) -> None:
        for device_id in self.members(username) | {
            d.device_id for d in self.store.devices_of(username)
        }:
            self.push_to(device_id, notice)


async def start_relay(
    host: str, port: int, data_dir: Path, limits: Limits | None = None, *, vault: bool = True
) -> tuple[Relay, Server]:
    """Open the store in ``data_dir`` and start serving; returns when the socket listens.
    The PIN vault is started beside it (in ``data_dir/vault``, with its own key and storage)
    unless ``vault`` is False."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = RelayStore(data_dir / "relay.sqlite3")
    store.forget_old_fan_outs(time.time_ns() // 1000)
    relay = Relay(store, limits, Vault(data_dir / "vault") if vault else None)
    server = await serve(
        relay.handle,
        host,
        port,
        max_size=wire.MAX_FRAME_BYTES,
        compression=None,
        max_queue=64,
    )
    return relay, server
