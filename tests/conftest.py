"""Fixtures shared by all test layers: a real relay on 127.0.0.1 with an ephemeral port, real
client profiles in a temp dir, and waiting on conditions with deadlines (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from client.core.client import AriadneClient
from client.core.events import MessageStatus, PairingCodeShown, StoredMessage
from client.core.link import LOCAL_RELAY
from client.core.storage import ProfileStore
from relay.server import Limits, Relay, start_relay
from shared.envelope import new_message_id

FAST = LOCAL_RELAY  # the name the tests use for the local-relay preset
PASSWORD = "correct horse battery"


async def eventually(
    condition: Callable[[], bool], timeout: float = 20.0, message: str = "condition"
) -> None:
    """Wait until ``condition()`` holds, polling the event loop; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.01)


@dataclass
class RunningRelay:
    """The relay under test: SQLite and one node, or (``database``) PostgreSQL and ``nodes``
    nodes on their own ports. ``relay``/``server``/``port`` are the first node's; each account
    is served by one node (the first account's by the first, the next by the next...), and a
    device started again moves to the next node, as behind a load balancer."""

    data_dir: Path
    limits: Limits | None = None
    port: int = 0
    relay: Relay | None = None
    server: object | None = None
    database: str | None = None
    nodes: int = 1
    poll_seconds: float = 2.0
    others: list[tuple[Relay, object, int]] = field(default_factory=list)  # nodes 2…
    _homes: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port, *(port for _, _, port in self.others)]

    @property
    def relays(self) -> list[Relay]:
        assert self.relay is not None
        return [self.relay, *(relay for relay, _, _ in self.others)]

    def url_for(self, username: str, moves: int = 0) -> str:
        """The node an account's devices use (after ``moves`` reconnections)."""
        home = self._homes.setdefault(username, len(self._homes))
        return f"ws://127.0.0.1:{self.ports[(home + moves) % len(self.ports)]}"

    async def _start_node(self, index: int, port: int) -> tuple[Relay, object, int]:
        relay, server = await start_relay(
            "127.0.0.1",
            port,
            self.data_dir if index == 0 else self.data_dir / f"node{index}",
            self.limits,
            database=self.database,
            vault_dir=self.data_dir / "vault",
            poll_seconds=self.poll_seconds,
        )
        return relay, server, server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.relay, self.server, self.port = await self._start_node(0, self.port)
        ports = [port for _, _, port in self.others] or [0] * (self.nodes - 1)
        self.others = [await self._start_node(i + 1, port) for i, port in enumerate(ports)]

    async def stop(self) -> None:
        assert self.server is not None and self.relay is not None
        for relay, server in [(self.relay, self.server), *((r, s) for r, s, _ in self.others)]:
            server.close()  # type: ignore[attr-defined]
            await server.wait_closed()  # type: ignore[attr-defined]
            relay.close()
        self.server = self.relay = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.fixture
def relay_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
async def relay(
    tmp_path: Path, relay_backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[RunningRelay]:
    running = RunningRelay(tmp_path / "relay")
    if relay_backend == "postgres":
        running.database = request.getfixturevalue("postgres").database()
        running.nodes = 2
    await running.start()
    yield running
    if running.server is not None:
        await running.stop()


async def approve(first: AriadneClient, new: AriadneClient) -> str:
    """The approval flow as a user runs it: the new device offers, the approver starts, both
    show a code, the user sees they match, confirms on the new device and approves on the other.
    Returns the code."""
    shown: list[str] = []
    new.add_listener(lambda e: shown.append(e.code) if isinstance(e, PairingCodeShown) else None)
    await new.offer_pairing()
    code = await first.pairing_code(new.device_id)
    await eventually(lambda: shown, message="the new device shows its code")
    assert shown[-1] == code, "the two screens show different codes"
    await new.confirm_pairing()
    await first.approve_device(new.device_id)
    return code


@dataclass
class Accounts:
    """Makes real client profiles against the test relay and closes them at the end."""

    relay: RunningRelay
    root: Path
    clients: list[AriadneClient] = field(default_factory=list)
    _names: itertools.count = field(default_factory=itertools.count)
    _moves: dict[str, int] = field(default_factory=dict)

    def _dir(self, label: str) -> Path:
        return self.root / f"{label}-{next(self._names)}"

    async def create(self, username: str, device: str = "Desktop") -> AriadneClient:
        client = await AriadneClient.create_account(
            self._dir(username),
            self.relay.url_for(username),
            username,
            PASSWORD,
            device,
            backoff=FAST,
        )
        self.clients.append(client)
        await eventually(lambda: client.is_member, message=f"{username} on its device list")
        return client

    async def add_device(self, first: AriadneClient, device: str = "Laptop") -> AriadneClient:
        """A second device of ``first``'s account, approved by ``first``."""
        client = await AriadneClient.add_device(
            self._dir(first.username),
            self.relay.url_for(first.username),
            first.username,
            PASSWORD,
            device,
            backoff=FAST,
        )
        self.clients.append(client)
        await approve(first, client)
        await eventually(lambda: client.is_member, message="new device sees itself listed")
        return client

    async def pending(self, username: str, device: str = "New laptop") -> AriadneClient:
        """A new device logged in with the password: pending until approved or restored."""
        client = await AriadneClient.add_device(
            self._dir(username),
            self.relay.url_for(username),
            username,
            PASSWORD,
            device,
            backoff=FAST,
        )
        self.clients.append(client)
        return client

    async def stop(self, client: AriadneClient) -> None:
        """Take a device offline: its process ends, its profile stays."""
        await client.close()
        self.clients.remove(client)

    async def start(self, client: AriadneClient) -> AriadneClient:
        """Start a stopped device again from its profile (with several relay nodes: on the next
        node, as a load balancer may send it)."""
        self._moves[client.device_id] = self._moves.get(client.device_id, 0) + 1
        url = self.relay.url_for(client.username, self._moves[client.device_id])
        again = await AriadneClient.open(client.profile_dir, relay_url=url, backoff=FAST)
        self.clients.append(again)
        return again

    async def reopen(self, client: AriadneClient) -> AriadneClient:
        await self.stop(client)
        return await self.start(client)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def accounts(relay: RunningRelay, tmp_path: Path) -> AsyncIterator[Accounts]:
    made = Accounts(relay, tmp_path / "profiles")
    yield made
    await made.close()


def conversation(client: AriadneClient, thread: str) -> list[tuple[bytes, str, str]]:
    return [(m.message_id, m.sender_user, m.body) for m in client.messages(thread)]


def history(client: AriadneClient, thread: str) -> list[tuple[bytes, str, str]]:
    """The conversation as the user reads it (without local system lines)."""
    return [(m.message_id, m.sender_user, m.body) for m in client.messages(thread) if not m.system]


def seed_history(
    client: AriadneClient, peer: str, peer_device: str, count: int, after: int
) -> None:
    """Store ``count`` old messages from ``peer`` (relay times after ``after``) on ``client`` and
    mark them to be saved: the client's real mailbox path seals and uploads them. A fast way to
    a long history that skips only the ratchet delivery, which other tests cover."""
    messages = [
        StoredMessage(
            message_id=new_message_id(),
            thread=peer,
            sender_user=peer,
            sender_device=peer_device,
            sent_at=after // 1000 + i,
            server_ts=after + 1 + i,
            body=f"old {i}",
            status=MessageStatus.READ,
        )
        for i in range(count)
    ]
    client._store.insert_messages(messages)
    client._store.save_later(m.message_id for m in messages)
    client._store.commit()


def settled(client: AriadneClient, thread: str, count: int) -> bool:
    """``count`` messages, each with its place in the relay's order (none still "sending",
    which sorts last until the relay accepts it)."""
    messages = client.messages(thread)
    return len(messages) == count and all(m.server_ts is not None for m in messages)


def profile_contents(store: ProfileStore) -> bytes:
    """Every value in every table of a profile database, as it decrypts: what someone holding
    the database and its key reads (the raw files are encrypted)."""
    tables = store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    values = [
        value
        for (table,) in tables
        for row in store._db.execute(f'SELECT * FROM "{table}"')
        for value in row
    ]
    return b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in values)


# ---------------------------------------------------------------------- PostgreSQL

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): run the test against each relay backend: sqlite (one node) and"
        " postgres (two nodes sharing a PostgreSQL the tests start)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "relay_backend" in metafunc.fixturenames:
        metafunc.parametrize("relay_backend", marker.args or BACKENDS, indirect=True)


@dataclass
class Postgres:
    """A PostgreSQL server the tests started (``pgserver``): a fresh database per test."""

    server: object
    _databases: itertools.count = field(default_factory=itertools.count)

    def database(self) -> str:
        name = f"relay_{next(self._databases)}"
        self.server.psql(f"CREATE DATABASE {name}")  # type: ignore[attr-defined]
        return str(self.server.get_uri(name))  # type: ignore[attr-defined]

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again."""
        from pgserver._commands import pg_ctl

        server = self.server
        pg_ctl(
            ["-w", "-m", "fast", "restart"],
            pgdata=server.pgdata,  # type: ignore[attr-defined]
            user=server.system_user,  # type: ignore[attr-defined]
            timeout=30,
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    import pgserver

    # Not under pytest's temporary root: run as root, pgserver starts the server as its own
    # user, which must reach the directory (pytest's root is private to root).
    pgdata = tempfile.mkdtemp(prefix="ariadne-postgres-")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    yield Postgres(server)
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)
