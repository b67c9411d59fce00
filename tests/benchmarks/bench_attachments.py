"""Attachment benchmark (ARCHITECTURE.md "Benchmarks"): a file sent from alice to bob through a
real relay (its own process), for 1 MB and 100 MB.

Reports, per size:
- **end to end**: encrypt + upload on alice's device, then download + verify + decrypt on bob's,
  in MB/s of the file (``send_file`` until the message is accepted, then ``download``); every
  byte is compared at the end;
- **baseline**: bare AES-256-GCM over the same bytes in the same run (one ``encrypt`` and one
  ``decrypt`` call over the whole buffer, in memory), and our rate as a ratio of it;
- **memory**: the peak of Python allocations (tracemalloc) while the two devices stream the
  file, and the process's resident-set growth (VmHWM, reset before each size). The clients run
  in this process; the relay in its own.

    python tests/benchmarks/bench_attachments.py          # 1 MB and 100 MB
    python tests/benchmarks/bench_attachments.py 100
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.core.client import AriadneClient
from client.demo import relay_process
from tests.conftest import FAST, PASSWORD

MB = 1_000_000


def high_water_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reset_high_water() -> None:
    # Writing 5 to clear_refs resets the peak resident set size (Linux 4.0+).
    Path("/proc/self/clear_refs").write_text("5")


def bare_aes_gcm(path: Path) -> float:
    data = path.read_bytes()
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    start = time.perf_counter()
    sealed = aead.encrypt(nonce, data, None)
    assert aead.decrypt(nonce, sealed, None) == data
    return len(data) / MB / (time.perf_counter() - start)


async def wait_for(predicate, timeout: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def digest(path: Path) -> bytes:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").digest()


async def one_size(alice: AriadneClient, bob: AriadneClient, folder: Path, size: int) -> None:
    source = folder / f"file-{size}.bin"
    with source.open("wb") as file:
        for start in range(0, size, 1 << 20):
            file.write(os.urandom(min(1 << 20, size - start)))

    reset_high_water()
    before = high_water_kib()
    tracemalloc.start()
    start = time.perf_counter()
    sent = await alice.attachments.send_file("bob", source)
    await wait_for(lambda: alice._store.message(sent.message_id).server_ts is not None)
    uploaded = time.perf_counter()
    await wait_for(lambda: bob.attachments.get(sent.message_id) is not None)
    path = await bob.attachments.download(sent.message_id)
    finished = time.perf_counter()
    elapsed = finished - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grown = high_water_kib() - before
    assert digest(path) == digest(source), "the file differs"

    ours = size / MB / elapsed
    bare = bare_aes_gcm(source)
    print(
        f"{size / MB:>6.0f} MB  end to end {ours:7.1f} MB/s"
        f" (upload {uploaded - start:5.2f} s, download {finished - uploaded:5.2f} s)"
        f" | bare AES-GCM {bare:7.1f} MB/s | ratio {ours / bare:5.3f}"
        f" | peak Python allocations {peak / 2**20:6.2f} MiB | RSS growth {grown / 1024:6.1f} MiB"
    )
    source.unlink()
    path.unlink()


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with relay_process(root / "relay") as url:
            alice = await AriadneClient.create_account(
                root / "alice", url, "alice", PASSWORD, "Desktop", backoff=FAST
            )
            bob = await AriadneClient.create_account(
                root / "bob", url, "bob", PASSWORD, "Desktop", backoff=FAST
            )
            await wait_for(lambda: alice.is_member and bob.is_member)
            try:
                for size in sizes:
                    await one_size(alice, bob, root, size)
            finally:
                await alice.close()
                await bob.close()


if __name__ == "__main__":
    asked = [int(arg) * MB for arg in sys.argv[1:]] or [1 * MB, 100 * MB]
    asyncio.run(main(asked))
