"""Revocation benchmark (ARCHITECTURE.md "Benchmarks"): the cost of removing a device — a new signed
device list, a new epoch (fresh entropy, one HPKE grant per remaining member, the boxes) and its
distribution — for an account with 100 and with 100,000 stored messages, and with 2 and 10
devices. The relay runs in its own process.

Reported per case (median of 5 removals; between removals a device is approved again, untimed):
- *publish*: ``remove_device()`` until the relay has committed the new list and epoch;
- *distributed*: until every remaining device has opened its grant of the new epoch.

    python tests/benchmarks/bench_revocation.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from client.core.client import AriadneClient
from client.demo import relay_process
from tests.conftest import FAST, PASSWORD, approve, seed_history

ROUNDS = 5


async def wait_for(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.002)


async def measure(url: str, root: Path, history: int, devices: int) -> tuple[float, float]:
    user = f"u{history}x{devices}"
    first = await AriadneClient.create_account(root / user, url, user, PASSWORD, "d0", backoff=FAST)
    peer = await AriadneClient.create_account(
        root / f"{user}-peer", url, f"p{history}x{devices}", PASSWORD, "d", backoff=FAST
    )
    await wait_for(lambda: first.is_member and peer.is_member)
    await first.setup_recovery()
    seed_history(first, peer.username, peer.device_id, history, 1_700_000_000_000_000)
    await first.wait_saved(timeout=600)
    clients = [first, peer]

    async def add(n: int) -> AriadneClient:
        device = await AriadneClient.add_device(
            root / f"{user}-{n}", url, user, PASSWORD, f"d{n}", backoff=FAST
        )
        clients.append(device)
        await approve(first, device)
        await wait_for(lambda: device.epochs.latest() is not None)
        return device

    members = [await add(n) for n in range(1, devices)]
    publish, distributed = [], []
    for n in range(ROUNDS):
        doomed = members.pop()
        remaining = [first, *members]
        start = time.perf_counter()
        await first.remove_device(doomed.device_id)
        publish.append(time.perf_counter() - start)
        seq = first.epochs.latest_seq()
        await wait_for(
            lambda s=seq, r=remaining: all(
                d.epochs.latest_seq() == s and d.epochs.latest() is not None for d in r
            )
        )
        distributed.append(time.perf_counter() - start)
        members.append(await add(devices + n))
    for client in clients:
        await client.close()
    return statistics.median(publish), statistics.median(distributed)


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-revocation-"))
    results = {}
    async with relay_process(root / "relay") as url:
        for devices in (2, 10):
            for history in (100, 100_000):
                results[history, devices] = await measure(url, root, history, devices)
    print(f"{'devices':>7} | {'stored messages':>15} | {'publish':>9} | {'distributed':>11}")
    for (history, devices), (publish, distributed) in results.items():
        print(
            f"{devices:>7} | {history:>15,} | {publish * 1000:>6.1f} ms |"
            f" {distributed * 1000:>8.1f} ms"
        )
    for devices in (2, 10):
        small, large = results[100, devices], results[100_000, devices]
        print(
            f"{devices} devices, 100,000 vs 100 messages: publish ×{large[0] / small[0]:.2f},"
            f" distributed ×{large[1] / small[1]:.2f}"
        )
    for history in (100, 100_000):
        two, ten = results[history, 2], results[history, 10]
        print(
            f"{history:,} messages, 10 vs 2 devices: publish ×{ten[0] / two[0]:.2f},"
            f" distributed ×{ten[1] / two[1]:.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
