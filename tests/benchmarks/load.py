"""Load test of the relay: N simulated devices on real websocket connections to real relay
processes (``ariadne-relay``, one or two nodes, SQLite or PostgreSQL), each logging in by
signature, sending, receiving and acknowledging. Bounded and self-stopping.

    python tests/benchmarks/load.py --devices 1000 --backend sqlite --nodes 1
    python tests/benchmarks/load.py --devices 1000 --backend postgres --nodes 2

The accounts are written straight into the store before the nodes start (one device each, a
device list naming it: the relay's checks of signed lists are not what this measures); device
``2k`` and ``2k+1`` talk to each other. The payload is 300 opaque bytes whose first eight are
the send time. Phases: all devices connect and sit idle (the relays' resident memory before and
after gives memory per idle connection); then ``--senders`` devices each keep ``--window``
fan-outs in flight for ``--seconds``. Reported: delivered messages per second, p50/p99 delivery
latency (send to arrival of the push), and the CPU each process used, to say which ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import websockets

sys.path.insert(0, str(Path(__file__).parents[2]))

from relay.store import RelayStore
from relay.store_pg import PgRelayStore
from shared import wire
from shared.auth import sign_login
from shared.identity import SigningKey, device_id_for

PAYLOAD = 300


def _rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds of the test's PostgreSQL: the postmaster and its children (the backends)."""
    if postmaster is None:
        return 0.0
    total = _cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == postmaster:
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def _accounts(n: int) -> list[tuple[str, str, SigningKey]]:
    keys = [SigningKey.generate() for _ in range(n)]
    return [(f"user{i}", device_id_for(k.public), k) for i, k in enumerate(keys)]


def _rows(accounts: list[tuple[str, str, SigningKey]]) -> tuple[list[tuple], list[tuple]]:
    now = int(time.time())
    users = [(u, "unused", b"\0" * 32, now) for u, _, _ in accounts]
    devices = [(d, u, "load", k.public, b"\0" * 32, now, now) for u, d, k in accounts]
    return users, devices


def seed_sqlite(path: Path, accounts: list[tuple[str, str, SigningKey]]) -> None:
    RelayStore(path).close()  # the schema
    users, devices = _rows(accounts)
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?)", users)
        db.executemany(
            "INSERT INTO devices (device_id, username, name, sign_public, storage_key,"
            " registered_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
            devices,
        )
        db.executemany("INSERT INTO list_members VALUES (?, ?)", [(u, d) for u, d, _ in accounts])
        db.executemany(
            "INSERT INTO device_lists VALUES (?, 1, x'00')", [(u,) for u, _, _ in accounts]
        )


async def seed_postgres(uri: str, accounts: list[tuple[str, str, SigningKey]]) -> None:
    PgRelayStore(uri).close()  # the schema
    users, devices = _rows(accounts)
    conn = await asyncpg.connect(uri)
    await conn.copy_records_to_table("accounts", records=users)
    await conn.copy_records_to_table(
        "devices",
        records=devices,
        columns=[
            "device_id",
            "username",
            "name",
            "sign_public",
            "storage_key",
            "registered_at",
            "last_seen",
        ],
    )
    await conn.copy_records_to_table("list_members", records=[(u, d) for u, d, _ in accounts])
    await conn.copy_records_to_table(
        "device_lists", records=[(u, 1, b"\0") for u, _, _ in accounts]
    )
    await conn.close()


async def start_node(
    data_dir: Path, database: str | None
) -> tuple[asyncio.subprocess.Process, int]:
    args = [sys.executable, "-m", "relay", "--port", "0", "--data-dir", str(data_dir)]
    args += ["--log-level", "WARNING", "--vault-dir", str(data_dir.parent / "vault")]
    if database:
        args += ["--database", database]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    return process, int(line.rsplit(":", 1)[1])


class Device:
    def __init__(self, username: str, device_id: str, key: SigningKey, peer: tuple[str, str]):
        self.username, self.device_id, self.key, self.peer = username, device_id, key, peer
        self.ws: websockets.ClientConnection | None = None
        self.latencies: list[float] = []
        self.in_flight = asyncio.Semaphore(1)
        self.rid = 0

    async def connect(self, url: str) -> None:
        self.ws = await websockets.connect(
            url, max_size=wire.MAX_FRAME_BYTES, compression=None, open_timeout=120
        )
        challenge = wire.decode_relay_frame(await self.ws.recv())
        assert isinstance(challenge, wire.Challenge), challenge
        signature = sign_login(self.key, challenge.nonce, self.username, self.device_id)
        await self.ws.send(
            wire.encode(
                wire.Resume(
                    rid=0, username=self.username, device_id=self.device_id, signature=signature
                )
            )
        )
        welcome = wire.decode_relay_frame(await self.ws.recv())
        assert isinstance(welcome, wire.Welcome), welcome

    async def read(self) -> None:
        assert self.ws is not None
        async for data in self.ws:
            frame = wire.decode_relay_frame(data)
            if isinstance(frame, wire.Deliver):
                now = time.perf_counter_ns()
                for e in frame.envelopes:
                    self.latencies.append((now - int.from_bytes(e.payload[:8])) / 1e6)
                await self.ws.send(wire.encode(wire.Ack(seqs=[e.seq for e in frame.envelopes])))
            elif isinstance(frame, wire.Accepted | wire.Error):
                self.in_flight.release()

    async def send_until(self, deadline: float) -> int:
        assert self.ws is not None
        sent = 0
        while time.monotonic() < deadline:
            await self.in_flight.acquire()
            self.rid += 1
            payload = time.perf_counter_ns().to_bytes(8) + os.urandom(PAYLOAD - 8)
            frame = wire.Send(
                rid=self.rid,
                send_id=os.urandom(16),
                recipients=[
                    wire.RecipientEnvelopes(
                        username=self.peer[0],
                        envelopes=[wire.Envelope(device_id=self.peer[1], payload=payload)],
                    )
                ],
            )
            await self.ws.send(wire.encode(frame))
            sent += 1
        return sent


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="ariadne-load-"))
    accounts = _accounts(args.devices)
    database = None
    server = None
    if args.backend == "postgres":
        import pgserver

        os.chmod(work, 0o755)
        server = pgserver.get_server(work / "pg", cleanup_mode="stop")
        database = server.get_uri()
        await seed_postgres(database, accounts)
    else:
        (work / "node0").mkdir()
        seed_sqlite(work / "node0" / "relay.sqlite3", accounts)
    nodes = [await start_node(work / f"node{i}", database) for i in range(args.nodes)]
    try:
        await measure(args, accounts, nodes, server.get_pid() if server else None)
    finally:
        for process, _ in nodes:
            process.terminate()
            await process.wait()
        if server is not None:
            server.cleanup()


async def measure(
    args: argparse.Namespace,
    accounts: list[tuple[str, str, SigningKey]],
    nodes: list[tuple[asyncio.subprocess.Process, int]],
    postmaster: int | None,
) -> None:
    rss_before = sum(_rss_kib(p.pid) for p, _ in nodes)
    devices = [Device(u, d, k, accounts[i ^ 1][:2]) for i, (u, d, k) in enumerate(accounts)]
    started = time.monotonic()
    # Logins in waves below the relay's limit of connections logging in from one address.
    wave = 15
    for start in range(0, len(devices), wave):
        await asyncio.gather(
            *(
                device.connect(f"ws://127.0.0.1:{nodes[i % len(nodes)][1]}")
                for i, device in enumerate(devices[start : start + wave], start)
            )
        )
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(1)
    rss_idle = sum(_rss_kib(p.pid) for p, _ in nodes)
    readers = [asyncio.create_task(device.read()) for device in devices]
    cpu = {p.pid: _cpu_seconds(p.pid) for p, _ in nodes}
    own_cpu, pg_cpu = time.process_time(), _postgres_cpu(postmaster)
    t0 = time.monotonic()
    senders = devices[: args.senders]
    for device in senders:
        device.in_flight = asyncio.Semaphore(args.window)
    sent = sum(await asyncio.gather(*(d.send_until(t0 + args.seconds) for d in senders)))
    await asyncio.sleep(2)  # the last ones arrive
    elapsed = time.monotonic() - t0
    latencies = sorted(x for d in devices for x in d.latencies)
    for task in readers:
        task.cancel()
    relay_cpu = sum(_cpu_seconds(pid) - before for pid, before in cpu.items())
    pg_used = _postgres_cpu(postmaster) - pg_cpu
    print(
        f"backend={args.backend} nodes={args.nodes} devices={args.devices}"
        f" senders={args.senders} window={args.window}"
    )
    print(f"  connect: {connect_seconds:.1f} s for {len(devices)} logins")
    print(f"  memory per idle connection: {(rss_idle - rss_before) / len(devices):.1f} KiB")
    print(f"  sent {sent}, delivered {len(latencies)} in {elapsed:.1f} s:")
    print(f"  {len(latencies) / elapsed:.0f} msgs/s delivered")
    if latencies:
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  CPU over the run: relay nodes {relay_cpu / elapsed:.2f} cores,"
        f" PostgreSQL {pg_used / elapsed:.2f}, load generator"
        f" {(time.process_time() - own_cpu) / elapsed:.2f} (of {os.cpu_count()})"
    )
    if latencies:
        per = 1e6 / len(latencies)
        print(
            f"  CPU per delivered message: relay {relay_cpu * per:.0f} µs,"
            f" PostgreSQL {pg_used * per:.0f} µs (a projection's basis: it does not depend on"
            " how much of the machine other work took)"
        )
    for device in devices:
        if device.ws is not None:
            await device.ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--window", type=int, default=4, help="fan-outs in flight per sender")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.backend == "sqlite" and args.nodes != 1:
        parser.error("SQLite is one node")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
