"""Relay nodes sharing PostgreSQL: what must hold across nodes, on a PostgreSQL server the tests
start (pgserver). A second node runs in its own process where true parallelism matters (PIN
guesses), as ``ariadne-relay --database … --port 0`` does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import websockets

from client.core.client import AriadneClient
from client.core.events import ConnectionState as ConnectionState_
from client.core.events import ConnectionStateChanged
from client.core.port import RelayError
from relay.connection import ConnectionState
from relay.limits import Limits
from relay.migrations import SchemaTooNew
from relay.store_pg import PgRelayStore
from relay.store_pg_schema import MIGRATIONS
from shared import wire
from shared.auth import sign_login
from shared.pin import GUESS_LIMIT, recover_request, stretch
from tests.conftest import FAST, PASSWORD, Accounts, Postgres, RunningRelay, eventually
from tests.e2e.test_limits import logged_in
from tests.e2e.test_node_limits import answers

PIN = "2468"


def test_a_relay_refuses_a_postgres_database_newer_than_itself(postgres: Postgres) -> None:
    uri = postgres.database()
    PgRelayStore(uri).close()
    newer = MIGRATIONS[-1].version + 1

    async def mark_newer() -> None:
        conn = await asyncpg.connect(uri)
        await conn.execute("INSERT INTO schema_version VALUES ($1)", newer)
        await conn.close()

    asyncio.run(mark_newer())
    with pytest.raises(SchemaTooNew) as refused:
        PgRelayStore(uri)
    assert refused.value.found == newer


@pytest.mark.backends("postgres")
async def test_a_missed_wake_up_is_delivered_by_the_poll(
    accounts: Accounts, relay: RunningRelay
) -> None:
    alice = await accounts.create("alice")  # on the first node
    bob = await accounts.create("bob")  # on the second
    for node in relay.relays:
        assert node.nodes is not None
        node.nodes.poll_seconds = 0.2
        node.nodes.drop_notifications = True  # every NOTIFY between the nodes is lost
    await alice.send_text("bob", "through the poll")
    await eventually(lambda: len(bob.messages("alice")) == 1, message="bob gets it anyway")
    assert bob.messages("alice")[0].body == "through the poll"


@pytest.mark.backends("postgres")
async def test_a_device_logged_in_on_two_nodes_keeps_only_the_newest_connection(
    accounts: Accounts, relay: RunningRelay
) -> None:
    await accounts.create("alice")
    bob = await accounts.create("bob")  # on the second node
    second = relay.relays[1]
    await eventually(lambda: bob.device_id in second.connections, message="bob on node 2")
    older = second.connections[bob.device_id]
    await accounts.stop(bob)  # its profile is used below by hand, as a second connection
    again = await AriadneClient.open(bob.profile_dir, relay_url=relay.url_for("bob"), backoff=FAST)
    accounts.clients.append(again)
    await eventually(lambda: older.state is ConnectionState.CLOSED, message="old one gone")
    await eventually(lambda: bob.device_id in second.connections, message="bob back on node 2")
    current = second.connections[bob.device_id]
    # The same device logs in on the first node: the second node closes its connection.
    async with websockets.connect(relay.url, max_size=wire.MAX_FRAME_BYTES) as ws:
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        key = again.profile.sign_key
        signature = sign_login(key, challenge.nonce, "bob", bob.device_id)
        await ws.send(
            wire.encode(
                wire.Resume(rid=1, username="bob", device_id=bob.device_id, signature=signature)
            )
        )
        assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Welcome)
        await eventually(
            lambda: current.state is ConnectionState.CLOSED,
            message="the connection on the other node is closed",
        )


@pytest.mark.backends("postgres")
async def test_health_and_readiness_endpoints(relay: RunningRelay) -> None:
    async def get(path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    assert (await get("/healthz"))[0] == 200
    assert (await get("/readyz"))[0] == 200
    status, body = await get("/counters")
    counters = json.loads(body)
    assert status == 200 and {"connections", "queued", "delivered", "errors"} <= set(counters)
    assert relay.relay is not None
    relay.relay.database_lost()
    assert (await get("/readyz"))[0] == 503


async def start_node_process(
    running: RunningRelay, data_dir: Path, slow_commit: float = 0.0
) -> tuple[asyncio.subprocess.Process, int]:
    """Another node in its own process, on ``running``'s database and vault key: its port.
    ``slow_commit``: each commit waits that long first (``relay_process``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "relay_process.py"),
        "--port",
        "0",
        "--database",
        str(running.database),
        "--data-dir",
        str(data_dir),
        "--vault-dir",
        str(running.data_dir / "vault"),
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "ARIADNE_SLOW_COMMIT": str(slow_commit)},
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    return process, int(line.rsplit(":", 1)[1])


async def stop_node_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await process.wait()


@pytest.fixture
async def node_process(
    postgres: Postgres, tmp_path: Path
) -> AsyncIterator[tuple[RunningRelay, int, asyncio.subprocess.Process]]:
    """One node in this process and one in its own, on the same database and vault key."""
    running = RunningRelay(tmp_path / "relay", Limits(), database=postgres.database())
    await running.start()
    process, port = await start_node_process(running, tmp_path / "node2")
    yield running, port, process
    await stop_node_process(process)
    await running.stop()


async def test_fifty_parallel_pin_guesses_over_two_nodes_take_exactly_the_tries_left(
    node_process: tuple[RunningRelay, int, asyncio.subprocess.Process], tmp_path: Path
) -> None:
    running, other_port, _ = node_process
    accounts = Accounts(running, tmp_path / "profiles")
    try:
        alice = await accounts.create("alice")
        await alice.setup_recovery(pin=PIN)
        guessers = [
            await AriadneClient.add_device(
                tmp_path / f"guesser-{i}", url, "alice", PASSWORD, f"Guesser {i}", backoff=FAST
            )
            for i, url in enumerate([running.url, f"ws://127.0.0.1:{other_port}"])
        ]
        accounts.clients.extend(guessers)
        for guesser in guessers:
            await guesser.link.online.wait()
        key = await guessers[0].link.request(lambda rid: wire.FetchVaultKey(rid=rid))
        assert isinstance(key, wire.VaultKey)

        wrong_pin = stretch("0000", "alice")  # Argon2id: once, not once per guess

        async def guess(guesser: AriadneClient) -> tuple[str, int]:
            request = recover_request(key.public, "alice", wrong_pin)
            try:
                reply = await guesser.link.request(
                    lambda rid: wire.VaultCall(rid=rid, sealed=request.sealed)
                )
            except RelayError as refused:
                return refused.code, -1
            assert isinstance(reply, wire.VaultReply)
            answer = request.open_answer(reply.sealed)
            return answer.status, answer.tries_left

        answers = await asyncio.gather(*(guess(guessers[i % 2]) for i in range(50)))
        wrong = sorted(tries for status, tries in answers if status == "wrong_pin")
        assert wrong == list(range(1, GUESS_LIMIT)), "each wrong guess counted once, in turn"
        answered = [status for status, _ in answers if status != wire.ErrorCode.RATE_LIMITED]
        assert answered.count("locked") == len(answered) - (GUESS_LIMIT - 1)
        # One bucket per account for both nodes: the burst (plus what refilled meanwhile)
        # passes, not a burst per node.
        limits = Limits()
        assert GUESS_LIMIT <= len(answered) <= limits.vault_call_burst + 5
        # The entry is locked at exactly the limit, its secret overwritten.
        conn = await asyncpg.connect(running.database)
        row = await conn.fetchrow(
            "SELECT verifier, wrapped, wrong_guesses, locked FROM vault_backups"
        )
        await conn.close()
        assert tuple(row) == (None, None, GUESS_LIMIT, True)
    finally:
        await accounts.close()


@pytest.mark.backends("postgres")
async def test_postgres_restarting_under_load_clients_retry_then_everything_arrives(
    accounts: Accounts, relay: RunningRelay, postgres: Postgres
) -> None:
    alice = await accounts.create("alice")  # first node
    bob = await accounts.create("bob")  # second node
    for node in relay.relays:
        assert node.nodes is not None
        node.nodes.poll_seconds = 0.3
    states: list[tuple[ConnectionState_, str]] = []
    alice.add_listener(
        lambda e: (
            states.append((e.state, e.detail)) if isinstance(e, ConnectionStateChanged) else None
        )
    )
    texts = [f"under load {i}" for i in range(30)]
    restart = None
    for i, text in enumerate(texts):
        await alice.send_text("bob", text)
        if i == 10:
            restart = asyncio.create_task(asyncio.to_thread(postgres.restart))
    assert restart is not None
    await restart
    await eventually(
        lambda: [m.body for m in bob.messages("alice")] == texts,
        timeout=60,
        message="bob has every message once, in order",
    )
    assert any(
        state is ConnectionState_.OFFLINE and "retrying" in detail for state, detail in states
    ), "alice was told her relay was away and that she is retrying"


async def test_a_node_killed_mid_stream_its_devices_reconnect_to_the_other_nothing_lost_or_twice(
    node_process: tuple[RunningRelay, int, asyncio.subprocess.Process], tmp_path: Path
) -> None:
    running, other_port, process = node_process
    for node in running.relays:
        assert node.nodes is not None
        node.nodes.poll_seconds = 0.3
    accounts = Accounts(running, tmp_path / "profiles")
    try:
        alice = await accounts.create("alice")  # on the node in this process
        bob = await AriadneClient.create_account(
            tmp_path / "bob", f"ws://127.0.0.1:{other_port}", "bob", PASSWORD, "Bob", backoff=FAST
        )  # on the node in its own process
        accounts.clients.append(bob)
        await eventually(lambda: bob.is_member, message="bob registered on the other node")
        to_bob = [f"to bob {i}" for i in range(30)]
        to_alice = [f"to alice {i}" for i in range(30)]
        for i in range(30):
            await alice.send_text("bob", to_bob[i])
            await bob.send_text("alice", to_alice[i])
            if i == 12:
                process.send_signal(signal.SIGKILL)  # mid-stream: some sends are unanswered
                await process.wait()
                # The load balancer sends bob's device to the node that is left.
                await accounts.stop(bob)
                bob = await AriadneClient.open(
                    tmp_path / "bob", relay_url=running.url, backoff=FAST
                )
                accounts.clients.append(bob)
        await eventually(
            lambda: [m.body for m in bob.messages("alice") if m.sender_user == "alice"] == to_bob,
            timeout=60,
            message="bob has alice's messages once each, in order",
        )
        await eventually(
            lambda: [m.body for m in alice.messages("bob") if m.sender_user == "bob"] == to_alice,
            timeout=60,
            message="alice has bob's messages once each, in order",
        )
    finally:
        await accounts.close()


@pytest.mark.backends()
async def test_a_device_list_changed_on_one_node_is_what_the_other_node_checks_fan_outs_against(
    accounts: Accounts, relay: RunningRelay
) -> None:
    alice = await accounts.create("alice")  # first node
    bob = await accounts.create("bob")  # second node (with PostgreSQL)
    await bob.send_text("alice", "before")  # bob's node reads alice's list for this fan-out
    await eventually(lambda: len(alice.messages("bob")) == 1, message="alice gets it")
    laptop = await accounts.add_device(alice, "Alice laptop")  # alice's list changes on hers
    await bob.send_text("alice", "after")
    for device in (alice, laptop):
        await eventually(
            lambda d=device: "after" in [m.body for m in d.messages("bob")],
            message="both of alice's devices get bob's next message",
        )


async def test_senders_on_two_nodes_into_one_queue_the_reader_never_skips_a_message(
    postgres: Postgres, tmp_path: Path
) -> None:
    """Fan-outs into one device's queue commit in parallel on two nodes (two processes), read
    by a third. A row
    gets its ``seq`` at insert but is visible at commit: if a larger seq could commit first, the
    reader's cursor would move past the smaller one, which this connection would then never
    deliver. Every accepted message arrives on the one connection, in increasing seq."""
    running = RunningRelay(tmp_path / "relay", Limits(), database=postgres.database())
    await running.start()
    # The senders' nodes commit slowly (as on a slow disk): rows wait longer between getting
    # their seq and becoming visible.
    senders = [
        await start_node_process(running, tmp_path / f"node{i}", slow_commit=0.2) for i in (2, 3)
    ]
    accounts = Accounts(running, tmp_path / "profiles")
    try:
        alice = await accounts.create("alice")
        carol = await accounts.create("carol")
        bob = await accounts.create("bob")
        for client in (alice, carol, bob):
            await accounts.stop(client)
        per_sender = 250

        def sends(sender: int) -> list[wire.Frame]:
            return [
                wire.Send(
                    rid=i,
                    send_id=os.urandom(16),
                    recipients=[
                        wire.RecipientEnvelopes(
                            username="bob",
                            envelopes=[
                                wire.Envelope(
                                    device_id=bob.device_id,
                                    payload=bytes([sender]) + i.to_bytes(4, "big"),
                                )
                            ],
                        )
                    ],
                )
                for i in range(per_sender)
            ]

        received: list[tuple[int, bytes]] = []
        async with logged_in(running.url, bob) as reader:

            async def read() -> None:
                while True:
                    frame = wire.decode_relay_frame(await reader.recv())
                    if isinstance(frame, wire.Deliver):
                        received.extend((e.seq, e.payload) for e in frame.envelopes)

            reading = asyncio.create_task(read())
            # The senders on the two other nodes, both at once; the reader's node only reads.
            urls = [f"ws://127.0.0.1:{port}" for _, port in senders]
            batches = [sends(0), sends(1)]

            async def send_all(url: str, sender: AriadneClient, batch: list[wire.Frame]) -> set:
                async with logged_in(url, sender) as ws:
                    replies = await answers(ws, batch)
                return {
                    frame.recipients[0].envelopes[0].payload  # type: ignore[attr-defined]
                    for frame, reply in zip(batch, replies, strict=True)
                    if isinstance(reply, wire.Accepted)
                }

            accepted = await asyncio.gather(
                *(
                    send_all(url, sender, batch)
                    for url, sender, batch in zip(urls, (alice, carol), batches, strict=True)
                )
            )
            expected = accepted[0] | accepted[1]
            assert len(expected) > per_sender, "most sends accepted"
            try:
                await eventually(
                    lambda: {payload for _, payload in received} >= expected,
                    timeout=30,
                    message="every accepted message delivered on this one connection",
                )
            finally:
                reading.cancel()
        seqs = [seq for seq, _ in received]
        assert seqs == sorted(set(seqs)), "in queue order, each once"
    finally:
        await accounts.close()
        for process, _ in senders:
            await stop_node_process(process)
        await running.stop()
