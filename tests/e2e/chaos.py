"""The chaos harness: a relay and three devices, each in its own process, killed with SIGKILL at
random seeded moments and at chosen code points while they write to each other; then drained
and checked.

Alice's desktop and laptop write to Bob and Bob writes to Alice, ``messages`` each. Meanwhile,
every ``kill_every`` seconds (seeded) the relay or one device is SIGKILLed and started again, and
each process's test-only fault hook (``device_process.py``, ``relay_process.py``) kills it at code
points with a small chance: a device before an Ack, before a Send, after the relay's Accepted; the
relay before a group commit and after a fan-out's commit before answering. When every device has
stored all it writes (or ``seconds`` have passed) the chaos stops; everything restarts without
faults and the run drains until the three devices agree, at most ``drain_seconds``.

The check: every device holds every message once, all three in the same order, each sender's
messages in the order it wrote them, none undecryptable, and every status final (a device's own
messages delivered, nothing still sending).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from client.core.client import AriadneClient
from tests.conftest import FAST, PASSWORD, approve, eventually
from tests.e2e.processes import DeviceProcess, RelayProcess


@dataclass(frozen=True)
class ChaosPlan:
    seed: int = 1
    messages: int = 15  # written by each of the three devices
    pause: float = 0.3  # seconds between a device's messages, at most (seeded)
    seconds: float = 30.0  # the chaos phase at most
    kill_every: tuple[float, float] = (0.4, 1.6)
    device_faults: str = "before_ack=0.02,before_send=0.02,after_accepted=0.02"
    relay_faults: str = "before_commit=0.01,after_commit=0.01"
    drain_seconds: float = 60.0


@dataclass
class ChaosResult:
    kills: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    chaos_seconds: float = 0.0
    drain_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Device:
    label: str
    user: str
    peer: str
    device_id: str
    process: DeviceProcess


async def _accounts(root: Path, url: str) -> list[AriadneClient]:
    alice = await AriadneClient.create_account(
        root / "alice-desktop", url, "alice", PASSWORD, "Desktop", backoff=FAST
    )
    bob = await AriadneClient.create_account(
        root / "bob", url, "bob", PASSWORD, "Desktop", backoff=FAST
    )
    laptop = await AriadneClient.add_device(
        root / "alice-laptop", url, "alice", PASSWORD, "Laptop", backoff=FAST
    )
    await approve(alice, laptop)
    await eventually(lambda: alice.is_member and bob.is_member and laptop.is_member)
    return [alice, laptop, bob]


def check(plan: ChaosPlan, devices: list[_Device], reports: list[dict]) -> list[str]:
    """What is wrong with the three devices' conversations (nothing, once drained)."""
    problems: list[str] = []
    expected = {f"{d.label} {i}" for d in devices for i in range(plan.messages)}
    orders = []
    for device, report in zip(devices, reports, strict=True):
        rows = report.get(device.peer, [])
        bodies = [row[3] for row in rows]
        counts = Counter(bodies)
        if twice := sorted(b for b, n in counts.items() if n > 1):
            problems.append(f"{device.label} shows twice: {twice[:5]}")
        if missing := sorted(expected - set(bodies)):
            problems.append(f"{device.label} misses {len(missing)}: {missing[:5]}")
        if extra := sorted(set(bodies) - expected):
            problems.append(f"{device.label} shows what nobody wrote: {extra[:5]}")
        for writer in devices:
            mine = [int(b.rsplit(" ", 1)[1]) for b in bodies if b.startswith(writer.label + " ")]
            if mine != sorted(mine):
                problems.append(f"{device.label} shows {writer.label}'s messages out of order")
        for _message_id, _user, sender_device, body, status in rows:
            if status in ("sending", "failed", "undecryptable"):
                problems.append(f"{device.label}: {body!r} is {status}")
            elif sender_device == device.device_id and status not in ("delivered", "read"):
                problems.append(f"{device.label}: its own {body!r} is still {status}")
        orders.append([row[0] for row in rows])
    if any(order != orders[0] for order in orders):
        problems.append("the devices show the conversation in different orders")
    return problems


async def run_chaos(root: Path, plan: ChaosPlan) -> ChaosResult:
    chance = random.Random(plan.seed)
    result = ChaosResult(messages=3 * plan.messages)
    relay = RelayProcess(root / "relay")
    await relay.start()
    devices: list[_Device] = []
    try:
        made = await _accounts(root, relay.url)
        for client, peer in zip(made, ["bob", "bob", "alice"], strict=True):
            label = client.profile_dir.name
            args = ["--send-to", peer, "--label", label, "--count", str(plan.messages)]
            args += ["--pause", str(plan.pause)]
            process = DeviceProcess(client.profile_dir, args)
            devices.append(_Device(label, client.username, peer, client.device_id, process))
            await client.close()

        def seed() -> int:
            return chance.randrange(1 << 30)

        for device in devices:
            await device.process.start(plan.device_faults, seed())
        await relay.stop()
        await relay.start(plan.relay_faults, seed())

        started = time.monotonic()
        next_kill = started + chance.uniform(*plan.kill_every)
        victims: list[int] = []
        while time.monotonic() - started < plan.seconds and not all(
            d.process.done for d in devices
        ):
            await asyncio.sleep(0.05)
            if relay.died:
                result.kills["relay at a code point"] += 1
                await relay.start(plan.relay_faults, seed())
            for device in devices:
                if device.process.died:
                    result.kills["device at a code point"] += 1
                    await device.process.kill()
                    await device.process.start(plan.device_faults, seed())
            if time.monotonic() < next_kill:
                continue
            next_kill = time.monotonic() + chance.uniform(*plan.kill_every)
            if not victims:
                # Each of the relay and the devices once per round, in a seeded order: random,
                # yet every four kills hit the relay once and the devices three times, however
                # few kills a busy machine leaves time for.
                victims = list(range(len(devices) + 1))
                chance.shuffle(victims)
            victim = victims.pop()
            if victim == len(devices):
                result.kills["relay at random"] += 1
                await relay.kill()
                await relay.start(plan.relay_faults, seed())
            else:
                result.kills["device at random"] += 1
                process = devices[victim].process
                await process.kill()
                await process.start(plan.device_faults, seed())
        result.chaos_seconds = time.monotonic() - started

        # Drain: everything again, without faults, until the devices agree.
        await relay.kill()
        for device in devices:
            await device.process.kill()
        await relay.start()
        for device in devices:
            device.process.done = False
            await device.process.start()
        drained = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            reports = [await d.process.report() for d in devices]
            result.problems = check(plan, devices, reports)
            if not result.problems and all(d.process.done for d in devices):
                break
            if time.monotonic() - drained > plan.drain_seconds:
                break
        result.drain_seconds = time.monotonic() - drained
        return result
    finally:
        for device in devices:
            await device.process.stop()
        await relay.stop()
