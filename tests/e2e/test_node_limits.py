"""Every rate limit and quota holds across relay nodes sharing PostgreSQL: the attempts are
spread over two nodes and sent at once, and exactly the bound passes, each refusal with its own
error code. (PIN guesses: ``test_nodes``.)

Each test runs two nodes on one PostgreSQL (pgserver) with small limits, real accounts made by
real clients, then speaks the wire protocol directly on one connection per node, so that many
requests are in flight on both nodes together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from client.core.client import AriadneClient
from relay.server import Limits
from shared import wire
from tests.conftest import PASSWORD, Accounts, Postgres, RunningRelay
from tests.e2e.test_limits import add_device, code_of, logged_in


@pytest.fixture
async def nodes(
    tmp_path: Path, postgres: Postgres, request: pytest.FixtureRequest
) -> AsyncIterator[Accounts]:
    """Two nodes on one PostgreSQL with the test's ``Limits``: one in this process (where the
    accounts are made), one in its own process, so that both run their transactions truly at
    once. ``node_urls`` gives both."""
    limits: Limits = request.param
    running = RunningRelay(tmp_path / "relay", limits, database=postgres.database())
    await running.start()
    changed = {
        name: getattr(limits, name)
        for name in Limits.__dataclass_fields__
        if getattr(limits, name) != getattr(Limits(), name)
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "relay_process.py"),
        "--port",
        "0",
        "--database",
        str(running.database),
        "--data-dir",
        str(tmp_path / "node2"),
        "--vault-dir",
        str(tmp_path / "relay" / "vault"),
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "ARIADNE_LIMITS": json.dumps(changed)},
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    made = Accounts(running, tmp_path / "profiles")
    made.other_url = f"ws://127.0.0.1:{int(line.rsplit(':', 1)[1])}"  # type: ignore[attr-defined]
    yield made
    await made.close()
    process.send_signal(signal.SIGTERM)
    await process.wait()
    await running.stop()


def limits(**changed: object) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("nodes", [Limits(**changed)], indirect=True, ids=["limits"])


def node_urls(accounts: Accounts) -> list[str]:
    return [accounts.relay.url, accounts.other_url]  # type: ignore[attr-defined]


async def answers(ws: ClientConnection, frames: list[wire.Frame]) -> list[wire.Frame]:
    """Send every frame at once, then collect the answer to each (by rid; pushes skipped)."""
    for frame in frames:
        await ws.send(wire.encode(frame))
    waiting = {frame.rid for frame in frames}  # type: ignore[attr-defined]
    got: dict[int, wire.Frame] = {}
    while waiting:
        answer = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 30))
        rid = getattr(answer, "rid", None)
        if rid in waiting:
            waiting.discard(rid)
            got[rid] = answer
    return [got[frame.rid] for frame in frames]  # type: ignore[attr-defined]


async def two_devices_offline(accounts: Accounts, username: str) -> list[AriadneClient]:
    """Two member devices of one account, stopped (so that raw connections stand for them)."""
    first = await accounts.create(username)
    second = await accounts.add_device(first)
    await accounts.stop(first)
    await accounts.stop(second)
    return [first, second]


async def on_both_nodes(
    accounts: Accounts, devices: list[AriadneClient], frames: list[list[wire.Frame]]
) -> list[wire.Frame]:
    """``devices[i]`` sends ``frames[i]`` through node ``i``, both at once: every answer."""

    async def one(url: str, device: AriadneClient, batch: list[wire.Frame]) -> list[wire.Frame]:
        async with logged_in(url, device) as ws:
            return await answers(ws, batch)

    batches = await asyncio.gather(
        *(
            one(url, device, batch)
            for url, device, batch in zip(node_urls(accounts), devices, frames, strict=True)
        )
    )
    return [answer for batch in batches for answer in batch]


def tally(replies: list[wire.Frame]) -> Counter[str]:
    return Counter(code_of(reply) for reply in replies)


@limits(bundle_fetch_burst=5.0, bundle_fetches_per_second=0.001)
async def test_bundle_fetches_of_one_account_share_one_bucket_across_nodes(nodes):
    devices = await two_devices_offline(nodes, "alice")
    bob = await nodes.create("bob")
    fetches = [
        [wire.FetchBundles(rid=i, username="bob", device_ids=[bob.device_id]) for i in range(6)]
        for _ in devices
    ]
    # The devices fetched each other's bundles when the second was approved: what is left.
    tokens = nodes.relay.relay.store._value(
        "SELECT tokens FROM buckets WHERE kind = 'bundles' AND key = 'alice'"
    )
    left = int(tokens) if tokens is not None else 5
    assert left >= 3
    replies = await on_both_nodes(nodes, devices, fetches)
    assert tally(replies) == {"Bundles": left, wire.ErrorCode.RATE_LIMITED: 12 - left}


@limits(
    free_login_failures_per_account=3,
    free_login_failures_per_source=1000,
    login_wait_first=30.0,
    login_wait_longest=60.0,
)
async def test_wrong_passwords_for_one_account_at_once_on_both_nodes_are_counted_exactly(nodes):
    await nodes.create("alice")
    urls = node_urls(nodes)
    replies = await asyncio.gather(
        *(add_device(urls[i % 2], "alice", f"wrong password {i:02}") for i in range(12))
    )
    # ``free`` failures pass unthrottled, and one more is checked (it is the first to wait):
    # not one per node, nor every guess that was in flight when the first failed.
    assert tally(replies) == {
        wire.ErrorCode.BAD_CREDENTIALS: 4,
        wire.ErrorCode.LOGIN_THROTTLED: 8,
    }


@limits(
    free_login_failures_per_account=1000,
    free_login_failures_per_source=2,
    login_wait_first=30.0,
    login_wait_longest=60.0,
)
async def test_wrong_passwords_from_one_address_at_once_on_both_nodes_are_counted_exactly(nodes):
    names = ["alice", "bob", "carol"]
    for name in names:
        await nodes.create(name)
    urls = node_urls(nodes)
    replies = await asyncio.gather(
        *(add_device(urls[i % 2], names[i % 3], f"wrong password {i:02}") for i in range(9))
    )
    assert tally(replies) == {
        wire.ErrorCode.BAD_CREDENTIALS: 3,
        wire.ErrorCode.LOGIN_THROTTLED: 6,
    }


@limits(mailbox_bytes=1000)
async def test_the_mailbox_quota_is_exact_under_saves_on_both_nodes(nodes):
    devices = await two_devices_offline(nodes, "alice")
    store = nodes.relay.relay.store
    epoch = store.latest_epoch("alice")
    assert epoch is not None
    saves = [
        [
            wire.SaveMessages(
                rid=i,
                items=[
                    wire.MailboxItem(
                        thread_id=bytes(16),
                        message_id=os.urandom(16),
                        ts=i,
                        epoch=epoch.seq,
                        sealed=os.urandom(150),
                    )
                ],
            )
            for i in range(7)
        ]
        for _ in devices
    ]
    before = store.mailbox_bytes("alice")
    fit = (1000 - before) // 150
    replies = await on_both_nodes(nodes, devices, saves)
    assert tally(replies) == {"Ok": fit, wire.ErrorCode.MAILBOX_FULL: 14 - fit}
    assert store.mailbox_bytes("alice") == before + 150 * fit


@limits(queue_bytes=5 * 400 + 399)
async def test_a_device_queue_quota_is_exact_under_senders_on_both_nodes(nodes):
    alice = await nodes.create("alice")
    carol = await nodes.create("carol")
    bob = await nodes.create("bob")
    await nodes.stop(bob)  # bob's queue only fills
    await nodes.stop(alice)
    await nodes.stop(carol)

    def sends() -> list[wire.Frame]:
        return [
            wire.Send(
                rid=i,
                send_id=os.urandom(16),
                recipients=[
                    wire.RecipientEnvelopes(
                        username="bob",
                        envelopes=[wire.Envelope(device_id=bob.device_id, payload=os.urandom(400))],
                    )
                ],
            )
            for i in range(6)
        ]

    store = nodes.relay.relay.store
    # Bob's device took earlier messages: their bytes no longer count (the stored count, an
    # upper bound that acknowledgements do not lower, is made exact when it says no).
    async with logged_in(node_urls(nodes)[0], alice) as ws:
        assert tally(await answers(ws, sends()[:3])) == {"Accepted": 3}
    store.acknowledge(bob.device_id, [e.seq for e in store.queued(bob.device_id, 0, 1000)])
    await store.durable()
    replies = await on_both_nodes(nodes, [alice, carol], [sends(), sends()])
    assert tally(replies) == {"Accepted": 5, wire.ErrorCode.QUEUE_FULL: 7}
    assert store.queue_bytes(bob.device_id) == 5 * 400


@limits(pending_devices=2, free_login_failures_per_account=100, free_login_failures_per_source=100)
async def test_pending_devices_are_capped_exactly_under_logins_on_both_nodes(nodes):
    await nodes.create("alice")
    urls = node_urls(nodes)
    replies = await asyncio.gather(*(add_device(urls[i % 2], "alice", PASSWORD) for i in range(8)))
    assert tally(replies) == {"Welcome": 2, wire.ErrorCode.TOO_MANY_PENDING: 6}
    store = nodes.relay.relay.store
    assert len(store.devices_of("alice")) == 1 + 2


@limits(blob_bytes=1000)
async def test_the_blob_quota_is_exact_under_uploads_started_on_both_nodes(nodes):
    devices = await two_devices_offline(nodes, "alice")
    starts = [
        [
            wire.StartUpload(rid=i, size=150, capability_hash=os.urandom(32), readers=[])
            for i in range(5)
        ]
        for _ in devices
    ]
    replies = await on_both_nodes(nodes, devices, starts)
    assert tally(replies) == {"UploadSlot": 6, wire.ErrorCode.BLOB_QUOTA: 4}
    assert nodes.relay.relay.store.owned_blob_bytes("alice") == 900
