"""Relay benchmark (ARCHITECTURE.md "Benchmarks"): forwarding throughput against a bare websockets
forwarder measured in the same run, end-to-end latency through real clients, and the client's CPU
cost to send one message to a user with three devices.

    python tests/benchmarks/bench_relay.py [--seconds 10] [--rounds 5] [--compare DIR]
    python tests/benchmarks/bench_relay.py --forwarding-only    # the forwarding rounds alone

Both servers run as their own processes (one core each at most); the load generator runs here.
Ratios, not absolute numbers, are what compare across machines. Throughput on a busy machine
swings with everything else that runs, so the servers take turns for several rounds (the median
and the worst round are reported) and each server process's own CPU time per forwarded envelope
is measured too (``/proc/<pid>/stat``): a process's CPU time per unit of work barely depends on
how much of the machine others take, unlike its rate. Two baselines: the bare forwarder, and the
same forwarder receiving one small acknowledgement frame per frame it delivers, as the relay's
devices acknowledge each delivery (frames a forwarder without storage would not need, but the
relay's protocol does). ``--compare DIR`` adds, in every round, the
relay of another checkout (``git archive main | tar -x -C DIR``), so old and new code are
measured in the same session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import msgspec
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).parents[2]))

from client.core.client import AriadneClient
from client.core.events import MessageReceived
from client.core.link import LOCAL_RELAY
from relay.store import RelayStore
from shared import wire
from shared.auth import sign_login
from shared.boxes import StorageKey
from shared.device_list import DeviceEntry, first_device_list, list_hash
from shared.envelope import Text, encode_payload, new_message_id
from shared.epoch import AccountSecrets, EpochMember, open_epoch
from shared.identity import SigningKey, device_id_for
from tests.conftest import approve

FAN_OUT = 3
PAYLOAD = os.urandom(220)  # about the size of a padded short text envelope
WINDOW = 16  # fan-outs in flight per sending connection
WINDOWS = 5


# ---------------------------------------------------------------- the baseline: a bare forwarder


class Forward(msgspec.Struct):
    to: list[str]
    payload: bytes


async def bare_forwarder() -> None:
    """Decode a small msgspec frame naming the targets and forward the payload to each (a text
    frame is a device's acknowledgement, read and dropped)."""
    peers: dict[str, object] = {}
    decoder = msgspec.msgpack.Decoder(Forward)

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        name = await ws.recv()
        peers[name] = ws
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                if isinstance(data, str):
                    continue
                frame = decoder.decode(data)
                for target in frame.to:
                    with contextlib.suppress(ConnectionClosed):
                        await peers[target].send(frame.payload)  # type: ignore[attr-defined]
                await ws.send(b"ok")

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()


# ---------------------------------------------------------------- load generation


class Measured(NamedTuple):
    rate: float  # envelopes delivered per second, the median of the measuring windows
    cpu_per_envelope: float  # the server process's CPU seconds per envelope delivered


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_process(
    *args: str, source: Path = Path(__file__).parents[2]
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=source
    )
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode().strip()
    return process, line


async def drive(
    url_of_device,
    login,
    make_send,
    parse_delivered,
    ack,
    devices: int,  # type: ignore[no-untyped-def]
    seconds: float,
    server_pid: int,
) -> Measured:
    """Every device sends fan-outs to FAN_OUT others and reads what it is sent; returns the median
    over WINDOWS measuring windows of the envelopes delivered per second, and the server's CPU
    time per envelope delivered over all of them."""
    delivered = 0
    measuring = False
    stop = asyncio.Event()
    sockets = []
    for i in range(devices):
        ws = await connect(url_of_device(i), compression=None, max_queue=None)
        await login(ws, i)
        sockets.append(ws)

    async def run(i: int, ws) -> None:  # type: ignore[no-untyped-def]
        nonlocal delivered
        credit = asyncio.Semaphore(WINDOW)
        targets = [(i + k) % devices for k in range(1, FAN_OUT + 1)]

        async def reader() -> None:
            nonlocal delivered
            with contextlib.suppress(ConnectionClosed):
                await read_all()

        async def read_all() -> None:
            nonlocal delivered
            async for data in ws:
                seqs = parse_delivered(data)
                if seqs is None:
                    credit.release()
                    continue
                if measuring:
                    delivered += len(seqs)
                await ack(ws, seqs)  # once per frame, as the real client acks per batch

        task = asyncio.create_task(reader())
        while not stop.is_set():
            await credit.acquire()
            await ws.send(make_send(i, targets))
        task.cancel()

    runners = [asyncio.create_task(run(i, ws)) for i, ws in enumerate(sockets)]
    await asyncio.sleep(1.0)  # warm up
    rates = []
    cpu, counted = 0.0, 0
    for _ in range(WINDOWS):  # the median of a few windows: this machine's load varies
        delivered = 0
        measuring = True
        start, cpu_start = time.perf_counter(), cpu_seconds(server_pid)
        await asyncio.sleep(seconds / WINDOWS)
        measuring = False
        rates.append(delivered / (time.perf_counter() - start))
        cpu += cpu_seconds(server_pid) - cpu_start
        counted += delivered
    rate = statistics.median(rates)
    stop.set()
    for ws in sockets:
        await ws.close()
    for runner in runners:
        runner.cancel()
    return Measured(rate, cpu / max(counted, 1))


async def bare_rate(devices: int, seconds: float, acks: bool = False) -> Measured:
    """The bare forwarder; with ``acks`` every device also answers each frame it is sent with a
    small frame, as a device acknowledges each Deliver to the relay (the second baseline: the
    same frames in and out as the relay's protocol, without storing anything)."""
    process, port = await start_process(__file__, "--forwarder")
    encoder = msgspec.msgpack.Encoder()
    try:

        async def login(ws, i):  # type: ignore[no-untyped-def]
            await ws.send(f"d{i}")

        return await drive(
            lambda i: f"ws://127.0.0.1:{port}",
            login,
            lambda i, targets: encoder.encode(Forward([f"d{t}" for t in targets], PAYLOAD)),
            lambda data: None if data == b"ok" else [0],
            (lambda ws, seqs: ws.send("ack")) if acks else (lambda ws, seqs: asyncio.sleep(0)),
            devices,
            seconds,
            process.pid,
        )
    finally:
        process.terminate()
        await process.wait()


async def register(url: str, count: int) -> list[tuple[str, str, SigningKey]]:
    """Accounts with one listed device each, created over the wire protocol."""
    made = []
    for i in range(count):
        key, amk, storage = SigningKey.generate(), SigningKey.generate(), StorageKey.generate()
        username, device_id = f"user{i}", device_id_for(key.public)
        async with connect(url, compression=None) as ws:
            challenge = wire.decode_relay_frame(await ws.recv())
            await ws.send(
                wire.encode(
                    wire.CreateAccount(
                        rid=1,
                        username=username,
                        password="benchmark password",
                        device=wire.DeviceRegistration(
                            device_id=device_id,
                            name="d",
                            sign_public=key.public,
                            storage_key=storage.public,
                        ),
                        amk_public=amk.public,
                        signature=sign_login(key, challenge.nonce, username, device_id),
                    )
                )
            )
            assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Welcome)
            signed = first_device_list(
                amk,
                username,
                DeviceEntry(
                    device_id=device_id,
                    name="d",
                    sign_public=key.public,
                    identity_key=os.urandom(32),
                    storage_key=storage.public,
                    added_at=0,
                ),
                key,
            )
            epoch = open_epoch(
                amk,
                username,
                previous=None,
                members=[EpochMember(member_id=device_id, storage_key=storage.public)],
                device_list_hash=list_hash(signed),
                secrets=AccountSecrets(amk_seed=amk.seed, thread_key=os.urandom(32)),
            )
            upload = wire.EpochUpload(
                signed_head=epoch.signed_head,
                prev_root_box=epoch.prev_root_box,
                account_box=epoch.account_box,
                grants=[wire.Grant(member_id=m, sealed=g) for m, g in epoch.grants.items()],
            )
            await ws.send(
                wire.encode(wire.PublishDeviceList(rid=2, signed_list=signed, epoch=upload))
            )
            assert isinstance(wire.decode_relay_frame(await ws.recv()), wire.Ok)
        made.append((username, device_id, key))
    return made


async def relay_rate(
    devices: int, seconds: float, source: Path = Path(__file__).parents[2]
) -> Measured:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    process, line = await start_process(
        "-m",
        "relay",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "WARNING",
        source=source,
    )
    url = line.rsplit(" ", 1)[1]
    try:
        accounts = await register(url, devices)
        decoder = msgspec.msgpack.Decoder(wire.RelayFrame)

        async def login(ws, i):  # type: ignore[no-untyped-def]
            username, device_id, key = accounts[i]
            challenge = decoder.decode(await ws.recv())
            await ws.send(
                wire.encode(
                    wire.Resume(
                        rid=0,
                        username=username,
                        device_id=device_id,
                        signature=sign_login(key, challenge.nonce, username, device_id),
                    )
                )
            )
            assert isinstance(decoder.decode(await ws.recv()), wire.Welcome)

        def make_send(i, targets):  # type: ignore[no-untyped-def]
            return wire.encode(
                wire.Send(
                    rid=1,
                    send_id=new_message_id(),
                    recipients=[
                        wire.RecipientEnvelopes(
                            username=accounts[t][0],
                            envelopes=[wire.Envelope(device_id=accounts[t][1], payload=PAYLOAD)],
                        )
                        for t in targets
                    ],
                )
            )

        def parse(data):  # type: ignore[no-untyped-def]
            frame = decoder.decode(data)
            if isinstance(frame, wire.Deliver):
                return [e.seq for e in frame.envelopes]
            assert isinstance(frame, wire.Accepted), frame
            return None

        async def ack(ws, seqs):  # type: ignore[no-untyped-def]
            await ws.send(wire.encode(wire.Ack(seqs=seqs)))

        return await drive(
            lambda i: url, login, make_send, parse, ack, devices, seconds, process.pid
        )
    finally:
        process.terminate()
        await process.wait()


# ---------------------------------------------------------------- the cost of a durable commit


def commit_rates(seconds: float, batch: int) -> dict[str, float]:
    """Envelopes per second through the relay store's queue, committed every ``batch``
    envelopes, with ``synchronous=NORMAL`` (survives a crash of the process) and ``FULL`` (the
    relay's setting: survives a power loss), in alternating windows of the same run."""
    rates: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as root:
        store = RelayStore(Path(root) / "relay.sqlite3")
        rows = [("device", "alice", "sender", 1, PAYLOAD)] * batch
        for _window in range(WINDOWS):
            for mode, measured in rates.items():
                store._db.execute(f"PRAGMA synchronous={mode}")
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds / (2 * WINDOWS):
                    store.enqueue(rows)
                    store._commit_now()
                    count += batch
                measured.append(count / (time.perf_counter() - start))
                store._db.execute("DELETE FROM queue")
                store._commit_now()
        store.close()
    return {mode: statistics.median(measured) for mode, measured in rates.items()}


# ---------------------------------------------------------------- latency and client CPU


async def client_figures(messages: int = 200) -> tuple[list[float], float]:
    root = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    process, line = await start_process(
        "-m", "relay", "--port", "0", "--data-dir", str(root / "relay"), "--log-level", "WARNING"
    )
    url = line.rsplit(" ", 1)[1]
    clients = []
    try:
        alice = await AriadneClient.create_account(
            root / "a", url, "alice", "password1", "A", backoff=LOCAL_RELAY
        )
        bob = await AriadneClient.create_account(
            root / "b", url, "bob", "password1", "B1", backoff=LOCAL_RELAY
        )
        clients += [alice, bob]
        arrived: dict[bytes, asyncio.Event] = {}
        bob.add_listener(
            lambda e: (
                arrived.setdefault(e.message.message_id, asyncio.Event()).set()
                if isinstance(e, MessageReceived)
                else None
            )
        )
        await alice.send_text("bob", "warm up")  # the session exists before measuring
        while len(bob.messages("alice")) < 1:
            await asyncio.sleep(0.01)
        latencies = []
        for i in range(messages):
            start = time.perf_counter()
            sent = await alice.send_text("bob", f"latency probe {i}")
            await arrived.setdefault(sent.message_id, asyncio.Event()).wait()
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.005)  # light load: let receipts settle between probes

        for n in (2, 3):
            extra = await AriadneClient.add_device(
                root / f"b{n}", url, "bob", "password1", f"B{n}", backoff=LOCAL_RELAY
            )
            clients.append(extra)
            await approve(bob, extra)
        await alice.send_text("bob", "sessions with all three of bob's devices")
        while len(clients[-1].messages("alice")) < 1:
            await asyncio.sleep(0.01)

        # CPU to encrypt one message to bob's three devices and store it (no network).
        targets = list(alice.directory.known("bob").devices)
        rounds = 500
        cpu = time.process_time()
        for i in range(rounds):
            origin = alice.context.origin()  # the counter, and its place in the sender's order
            text = Text(
                origin=origin, message_id=new_message_id(), peer="bob", sent_at=0, body=f"cpu {i}"
            )
            alice._store.record_sender_order(
                text.message_id, "bob", "alice", alice.device_id, origin.counter
            )
            await alice.outbox.encrypt_to("bob", targets, encode_payload(text))
            alice._store.enqueue(["bob"], b"x", None)
            alice._store.commit()
        per_message = (time.process_time() - cpu) / rounds
        return latencies, per_message
    finally:
        for client in clients:
            await client.close()
        process.terminate()
        await process.wait()


async def forwarding(seconds: float, rounds: int, compare: Path | None) -> None:
    print(
        f"Relay forwarding, fan-out {FAN_OUT}, median of {WINDOWS} windows over {seconds:.0f} s"
        f" per server and round, {rounds} rounds, servers in turn ({os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f} at the start)"
    )
    servers = {"Ariadne relay": Path(__file__).parents[2]}
    if compare is not None:
        servers[f"relay of {compare}"] = compare
    for devices in (20, 200):
        results: dict[str, list[Measured]] = {"bare": [], "bare + acks": []}
        for name in servers:
            results[name] = []
        for _round in range(rounds):
            results["bare"].append(await bare_rate(devices, seconds))
            results["bare + acks"].append(await bare_rate(devices, seconds, acks=True))
            for name, source in servers.items():
                results[name].append(await relay_rate(devices, seconds, source))
        print(f"\n{devices} devices, per round: env/s (server CPU µs per envelope delivered)")
        for name, measured in results.items():
            cells = " ".join(f"{m.rate:>8,.0f} ({m.cpu_per_envelope * 1e6:5.1f})" for m in measured)
            print(f"{name:>24}: {cells}")
        print(f"{'ratio':>44} {'median':>7} {'worst':>7}   rounds")
        for baseline in ("bare", "bare + acks"):
            for name in servers:
                pairs = list(zip(results[name], results[baseline], strict=True))
                by_rate = [m.rate / b.rate for m, b in pairs]
                by_cpu = [b.cpu_per_envelope / m.cpu_per_envelope for m, b in pairs]
                for label, ratios in (("throughput", by_rate), ("CPU per envelope", by_cpu)):
                    print(
                        f"{name + ' / ' + baseline + ', ' + label:>44}"
                        f" {statistics.median(ratios):>7.2f} {min(ratios):>7.2f}"
                        f"   {' '.join(f'{r:.2f}' for r in ratios)}"
                    )
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")


async def main(seconds: float, rounds: int, compare: Path | None) -> None:
    await forwarding(seconds, rounds, compare)
    print(
        f"\nDurable commits (the relay store's queue, {seconds:.0f} s, alternating windows):"
        f" NORMAL = survives a crash, FULL = survives a power loss (the relay's setting)"
    )
    print(f"{'commit every':>13} {'NORMAL':>13} {'FULL':>13} {'ratio':>7}")
    for batch in (1, 10, 100):
        rates = commit_rates(seconds, batch)
        print(
            f"{batch:>9} env {rates['NORMAL']:>9,.0f}/s {rates['FULL']:>9,.0f}/s"
            f" {rates['FULL'] / rates['NORMAL']:>7.2f}"
        )
    latencies, cpu = await client_figures()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"\nEnd-to-end latency (real clients, send_text -> received on bob's device), "
        f"light load: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    print(
        f"Client CPU to encrypt a message to 3 devices and store it: {cpu * 1000:.2f} ms "
        f"(target < 2 ms)"
    )


if __name__ == "__main__":
    if "--forwarder" in sys.argv:
        asyncio.run(bare_forwarder())
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--compare", type=Path, default=None)
        parser.add_argument("--forwarding-only", action="store_true")
        args = parser.parse_args()
        if args.forwarding_only:
            asyncio.run(forwarding(args.seconds, args.rounds, args.compare))
        else:
            asyncio.run(main(args.seconds, args.rounds, args.compare))
