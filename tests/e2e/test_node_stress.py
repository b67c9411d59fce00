"""Relay nodes on one PostgreSQL under crossing load: nothing deadlocks, nothing is lost, skipped,
reordered or delivered twice.

Three nodes (one in this process, two in their own, one of them committing slowly and unevenly)
take at once, on raw websocket connections: fan-outs between every pair of devices in both
directions (A→B while B→A, so the lock sets of transactions on different nodes overlap in
opposite orders), fan-outs to every other user at once, acknowledgements of everything delivered,
and, on an account of its own, logins moving from node to node and devices added and removed
(transactions that take ``GROUP_LOCK`` exclusively between the fan-outs' shared ones). A deadlock
shows as an answer that never comes (every request has a deadline) or as PostgreSQL's deadlock
error, which rolls the node's transaction back and closes its connections; neither may happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from client.core.client import AriadneClient
from relay.limits import Limits
from shared import wire
from tests.conftest import PASSWORD, Accounts, Postgres, RunningRelay, eventually
from tests.e2e.test_limits import add_device, ask, logged_in
from tests.e2e.test_nodes import start_node_process, stop_node_process

ANSWER_SECONDS = 20.0  # far beyond a busy machine's slowest answer: only a deadlock waits so long
ROUNDS = 45


@dataclass
class Device:
    """One device's raw connection: what it was sent and what it got, in arrival order."""

    index: int
    client: AriadneClient
    url: str
    ws: ClientConnection | None = None
    got: list[tuple[int, bytes]] = field(default_factory=list)
    errors: list[wire.Frame] = field(default_factory=list)
    waiting: dict[int, asyncio.Future[wire.Frame]] = field(default_factory=dict)

    async def read(self) -> None:
        """Every frame: deliveries are recorded and acknowledged at once, answers handed over."""
        assert self.ws is not None
        async for raw in self.ws:
            frame = wire.decode_relay_frame(raw)
            if isinstance(frame, wire.Deliver):
                self.got.extend((e.seq, e.payload) for e in frame.envelopes)
                await self.ws.send(wire.encode(wire.Ack(seqs=[e.seq for e in frame.envelopes])))
            elif isinstance(frame, wire.Error):
                self.errors.append(frame)
            answer = self.waiting.pop(getattr(frame, "rid", -1), None)
            if answer is not None:
                answer.set_result(frame)

    async def send(self, frames: list[wire.Send]) -> list[wire.Frame]:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        for frame in frames:
            self.waiting[frame.rid] = loop.create_future()
        pending = [self.waiting[frame.rid] for frame in frames]
        for frame in frames:
            await self.ws.send(wire.encode(frame))
        return list(await asyncio.wait_for(asyncio.gather(*pending), ANSWER_SECONDS))


def fan_out(rid: int, to: list[Device], payload: bytes) -> wire.Send:
    return wire.Send(
        rid=rid,
        send_id=os.urandom(16),
        recipients=[
            wire.RecipientEnvelopes(
                username=d.client.username,
                envelopes=[wire.Envelope(device_id=d.client.device_id, payload=payload)],
            )
            for d in to
        ],
    )


async def test_crossing_fan_outs_acks_logins_and_device_changes_on_three_nodes(
    postgres: Postgres, tmp_path: Path
) -> None:
    running = RunningRelay(tmp_path / "relay", Limits(), database=postgres.database())
    await running.start()
    others = [
        await start_node_process(running, tmp_path / "node2"),
        await start_node_process(running, tmp_path / "node3", slow_commit=0.05),
    ]
    urls = [running.url, *(f"ws://127.0.0.1:{port}" for _, port in others)]
    accounts = Accounts(running, tmp_path / "profiles")
    try:
        clients = [await accounts.create(name) for name in ("alice", "bob", "carol", "dave")]
        erin = await accounts.create("erin")
        for client in (*clients, erin):
            await accounts.stop(client)
        devices = [Device(i, c, urls[i % len(urls)]) for i, c in enumerate(clients)]
        sent_to: dict[int, set[bytes]] = defaultdict(set)  # accepted payloads per device

        async def traffic(me: Device) -> None:
            """Each round: one fan-out to each other device and one to all of them, at once."""
            peers = [d for d in devices if d is not me]
            for round_ in range(ROUNDS):
                frames, targets = [], []
                for k, to in enumerate([*([p] for p in peers), peers]):
                    payload = bytes([me.index, round_, k]) + os.urandom(8)
                    frames.append(fan_out(round_ * 10 + k, to, payload))
                    targets.append(to)
                answers = await me.send(frames)
                for frame, to, answer in zip(frames, targets, answers, strict=True):
                    assert isinstance(answer, wire.Accepted), answer
                    for d in to:
                        sent_to[d.index].add(frame.recipients[0].envelopes[0].payload)

        async def device_changes() -> int:
            """erin logs in on each node in turn; each time a new device of hers is added (a
            password login on the next node) and she removes it again."""
            changes = 0
            for turn in range(2 * len(urls)):
                async with logged_in(urls[turn % len(urls)], erin) as ws:
                    added = await asyncio.wait_for(
                        add_device(urls[(turn + 1) % len(urls)], "erin", PASSWORD),
                        ANSWER_SECONDS,
                    )
                    assert isinstance(added, wire.Welcome), added
                    removed = await asyncio.wait_for(
                        ask(ws, wire.RejectDevice(rid=1, device_id=added.device_id)),
                        ANSWER_SECONDS,
                    )
                    assert isinstance(removed, wire.Ok), removed
                    changes += 1
            return changes

        readers = []
        async with contextlib.AsyncExitStack() as connections:
            for device in devices:
                device.ws = await connections.enter_async_context(
                    logged_in(device.url, device.client)
                )
                readers.append(asyncio.create_task(device.read()))
            results = await asyncio.gather(
                *(traffic(d) for d in devices), device_changes(), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, f"requests failed or hung (a deadlock?): {failures!r}"
            assert results[-1] == 2 * len(urls)
            for device in devices:
                await eventually(
                    lambda d=device: (
                        {p for _, p in d.got} >= sent_to[d.index] or any(r.done() for r in readers)
                    ),
                    timeout=30,
                    message=f"{device.client.username} gets every accepted message",
                )
        done = await asyncio.gather(*readers, return_exceptions=True)
        for device in devices:
            payloads = [p for _, p in device.got]
            seqs = [s for s, _ in device.got]
            assert set(payloads) == sent_to[device.index], f"{device.client.username}: lost"
            assert len(payloads) == len(set(payloads)), f"{device.client.username}: twice"
            assert seqs == sorted(set(seqs)), f"{device.client.username}: out of queue order"
            assert not device.errors, f"{device.client.username}: {device.errors}"
        assert all(r is None for r in done), f"a connection failed: {done!r}"
        assert len(sent_to) == len(devices) and all(
            len(s) == ROUNDS * (len(devices) - 1) * 2 for s in sent_to.values()
        )
    finally:
        await accounts.close()
        for process, _ in others:
            await stop_node_process(process)
        await running.stop()


async def test_a_fan_out_waiting_on_one_queue_never_lets_a_later_seq_pass_it_in_another(
    postgres: Postgres, tmp_path: Path
) -> None:
    """The reader-skip race, made wide. A fan-out to two queues draws both ``seq`` values as it
    inserts, then locks each queue's byte counter in turn: if the first is held by a transaction
    that commits slowly, the fan-out waits there with its row in the second queue numbered but
    not committed. A fan-out into only that second queue, from a third node, gets a larger seq
    and commits at once: unless the queue's lock was taken before either drew its seq, the
    readers (on the node where that one was sent) move past the smaller seq and never deliver
    it. Slow single-queue fan-outs into both queues come from one node, the two-queue ones from
    another, fast single-queue ones from the readers' node; every accepted message must reach
    its reader, in increasing seq."""
    running = RunningRelay(tmp_path / "relay", Limits(), database=postgres.database())
    await running.start()
    slow = await start_node_process(running, tmp_path / "slow", slow_commit=0.3)
    fast = await start_node_process(running, tmp_path / "fast")
    urls = {"slow": f"ws://127.0.0.1:{slow[1]}", "fast": f"ws://127.0.0.1:{fast[1]}"}
    accounts = Accounts(running, tmp_path / "profiles")
    try:
        names = ("bob", "dave", "carol", "alice", "erin")
        made = {name: await accounts.create(name) for name in names}
        for client in made.values():
            await accounts.stop(client)
        readers = [Device(i, made[name], running.url) for i, name in enumerate(("bob", "dave"))]
        senders = [  # who sends, through which node, to which of the readers' queues
            (made["carol"], urls["slow"], [[readers[0]], [readers[1]]]),
            (made["alice"], urls["fast"], [readers]),
            (made["erin"], running.url, [[readers[0]], [readers[1]]]),
        ]
        sent_to: dict[int, set[bytes]] = defaultdict(set)
        refused: list[wire.Frame] = []

        async def send(index: int, client: AriadneClient, url: str, to: list[list[Device]]) -> None:
            async with logged_in(url, client) as ws:
                me = Device(index, client, url, ws)
                reading = asyncio.create_task(me.read())
                for round_ in range(40):
                    frames = [
                        fan_out(k, group, bytes([index, round_, k]) + os.urandom(8))
                        for k, group in enumerate(to * 2)
                    ]
                    answers = await me.send(frames)
                    for frame, group, answer in zip(frames, to * 2, answers, strict=True):
                        if not isinstance(answer, wire.Accepted):
                            refused.append(answer)  # checked last: first what was accepted
                            continue
                        for d in group:
                            sent_to[d.index].add(frame.recipients[0].envelopes[0].payload)
                reading.cancel()

        async with contextlib.AsyncExitStack() as connections:
            reading = []
            for reader in readers:
                reader.ws = await connections.enter_async_context(
                    logged_in(reader.url, reader.client)
                )
                reading.append(asyncio.create_task(reader.read()))
            await asyncio.gather(*(send(10 + i, *sender) for i, sender in enumerate(senders)))
            for reader in readers:
                await eventually(
                    lambda r=reader: {p for _, p in r.got} >= sent_to[r.index],
                    timeout=10,
                    message=f"{reader.client.username} gets every accepted message",
                )
        for reader in readers:
            seqs = [s for s, _ in reader.got]
            assert seqs == sorted(set(seqs)), f"{reader.client.username}: out of queue order"
        assert not refused, f"fan-outs refused: {refused!r}"
        assert all(len(sent_to[reader.index]) == 40 * 2 * 3 for reader in readers)
    finally:
        await accounts.close()
        for process, _ in (slow, fast):
            await stop_node_process(process)
        await running.stop()
