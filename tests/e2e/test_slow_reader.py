"""Delivery to a device that reads slowly. The relay writes what is ready for a device straight
to its socket while the socket takes it, and leaves the rest to the connection's writer task,
which waits for the socket: a device whose socket is full while fan-outs keep arriving must still
get every envelope once, in queue order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.server import Limits
from tests.conftest import Accounts, RunningRelay
from tests.e2e.flood import (
    MESSAGES,
    all_accepted,
    fan_out_to_bob,
    flood_a_device_that_reads_nothing,
    read_some,
)
from tests.e2e.test_limits import logged_in


@pytest.fixture
async def small(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Accounts]:
    """A relay whose connections keep few envelopes in memory and read small pages (the
    ``Limits`` given by ``backlog``), and accounts on it."""
    running = RunningRelay(tmp_path / "relay", request.param)
    await running.start()
    made = Accounts(running, tmp_path / "profiles")
    yield made
    await made.close()
    await running.stop()


def backlog(live: int, page: int) -> pytest.MarkDecorator:
    limits = Limits(live_backlog=live, delivery_page=page)
    return pytest.mark.parametrize("small", [limits], indirect=True, ids=["small"])


@pytest.mark.backends()
async def test_a_slow_reader_gets_every_envelope_once_in_queue_order(
    accounts: Accounts, relay: RunningRelay
):
    alice, bob = await accounts.create("alice"), await accounts.create("bob")
    await accounts.stop(alice)
    await accounts.stop(bob)
    async with (
        logged_in(relay.url_for("bob"), bob) as reader,
        logged_in(relay.url_for("alice"), alice) as sender,
    ):
        # Bob's device first reads nothing while fan-outs come: its socket fills, and the
        # relay's buffer for it. Then it reads one frame per fan-out sent, staying behind:
        # envelopes are committed for it while the relay waits for its socket to drain.
        answers = asyncio.create_task(all_accepted(sender))
        got: list[tuple[int, int]] = []
        for rid in range(1, MESSAGES + 1):
            await sender.send(fan_out_to_bob(rid, bob.device_id))
            if rid > MESSAGES // 3:
                await read_some(reader, alice.device_id, got, 1)
        await answers
        while len(got) < MESSAGES:
            await read_some(reader, alice.device_id, got, 1)
    seqs = [seq for seq, _ in got]
    assert seqs == sorted(set(seqs)), "envelopes out of queue order, or twice"
    assert [number for _, number in got] == list(range(1, MESSAGES + 1))


@backlog(live=8, page=4)
async def test_a_device_that_reads_nothing_costs_the_relay_one_buffer_not_its_queue(
    small: Accounts,
):
    """Its envelopes stay in the store; the relay's buffer for it stays near the socket's
    limit; when it reads again it gets the whole backlog, paged from the store, in order."""
    buffered: list[int] = []
    got = await flood_a_device_that_reads_nothing(
        small, lambda bob: buffered.append(bob.ws.transport.get_write_buffer_size())
    )
    # The socket's limit, plus at most one round of the writer (a page, or the live backlog).
    assert buffered[0] < 1_000_000, buffered
    seqs = [seq for seq, _ in got]
    assert seqs == sorted(set(seqs)), "envelopes out of queue order, or twice"
    assert [number for _, number in got] == list(range(1, MESSAGES + 1))


@backlog(live=2, page=2)
async def test_a_burst_beyond_the_live_backlog_is_paged_from_the_store(small: Accounts):
    """More envelopes at once than a connection keeps in memory: it reads them from the store,
    page by page, and the device gets them all in order."""
    alice, bob = await small.create("alice"), await small.create("bob")
    await small.stop(alice)
    await small.stop(bob)
    async with (
        logged_in(small.relay.url, bob) as reader,
        logged_in(small.relay.url, alice) as sender,
    ):
        answers = asyncio.create_task(all_accepted(sender))
        # One write of all the fan-outs: the relay reads them in one go and commits them together.
        for rid in range(1, MESSAGES + 1):
            sender.protocol.send_binary(fan_out_to_bob(rid, bob.device_id, size=16))
        sender.transport.write(b"".join(sender.protocol.data_to_send()))
        await answers
        got: list[tuple[int, int]] = []
        while len(got) < MESSAGES:
            await read_some(reader, alice.device_id, got, 1)
    assert [number for _, number in got] == list(range(1, MESSAGES + 1))
