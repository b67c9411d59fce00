"""Restore benchmark (ARCHITECTURE.md "Benchmarks"): a new device restores 10,000 and 100,000 stored
messages from a real relay (its own process) with the recovery code.

Reports, per size:
- **first page**: from calling ``restore()`` (verify the epoch chain, open the grant, join the
  device list with a new epoch, list the threads) to the newest page stored on the device, and
  the page fetch alone;
- **restore rate**: messages fetched, decrypted and stored per second while loading everything;
- **baseline**: a bare loop over the *same* sealed items — AES-256-GCM decrypt and one SQLite
  insert each into a plain SQLite table without secondary indexes, keys computed before the clock
  starts — and our rate as a ratio of it, by wall time and by this process's CPU time (the relay
  runs in its own process; CPU time barely moves with what else the machine runs);
- **same-work baseline**: the bare loop doing what the protocol and the profile require of any
  implementation — derive each (epoch, thread)'s key (one HMAC) and set up AES-GCM with it
  once, then per item decrypt, unpad and decode the record — and inserting into a database like
  the profile's (SQLCipher when the profile is, plus the same search index filled once per
  page). It shows how much of the gap is work the bare loop leaves out rather than overhead of
  the client.

Each size is measured twice in the same run: the restoring device's profile encrypted at rest
(SQLCipher, as every profile is) and plain SQLite, to show what the encryption costs.

Each size and profile is restored ``--rounds`` times (3) by new devices, each restore followed
by both baselines; the table gives medians, and each ratio's lowest and highest value.

    python tests/benchmarks/bench_restore.py            # 10,000 and 100,000
    python tests/benchmarks/bench_restore.py 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

import msgspec
import sqlcipher3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.core import login
from client.core.at_rest import KeyPlace
from client.core.client import AriadneClient
from client.core.events import HistoryLoaded
from client.demo import relay_process
from shared.boxes import GCM_NONCE
from shared.mailbox import SavedMessage, epoch_mailbox_key, item_ad, thread_key
from shared.padding import unpad
from tests.conftest import FAST, PASSWORD, seed_history

_record = msgspec.msgpack.Decoder(SavedMessage)


async def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def sealed_items(relay_db: Path, username: str) -> list[tuple[bytes, bytes, int, int, bytes]]:
    db = sqlite3.connect(relay_db)
    rows = db.execute(
        "SELECT thread_id, message_id, ts, epoch, sealed FROM mailbox WHERE username = ?",
        (username,),
    ).fetchall()
    db.close()
    return rows


def baseline(rows, username: str, root_of, count: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Bare AES-GCM decrypt + SQLite insert over the same sealed items; returns (items per wall
    second, items per CPU second)."""
    keys = {}
    prepared = []
    for thread_id, message_id, ts, epoch, sealed in rows:
        if epoch not in keys:
            keys[epoch] = epoch_mailbox_key(root_of(epoch), username, epoch)
        key = thread_key(keys[epoch], thread_id)
        prepared.append(
            (AESGCM(key), sealed, item_ad(username, thread_id, message_id, epoch), message_id, ts)
        )
    out = sqlite3.connect(Path(tempfile.mkdtemp()) / "bare.sqlite3")
    out.execute("PRAGMA journal_mode=WAL")
    out.execute("PRAGMA synchronous=NORMAL")
    out.execute("CREATE TABLE m (message_id BLOB PRIMARY KEY, ts INTEGER, body BLOB)")
    start, cpu = time.perf_counter(), time.process_time()
    for i, (aead, sealed, ad, message_id, ts) in enumerate(prepared):
        plain = aead.decrypt(sealed[1 : 1 + GCM_NONCE], sealed[1 + GCM_NONCE :], ad)
        out.execute("INSERT INTO m VALUES (?, ?, ?)", (message_id, ts, plain))
        if i % 500 == 499:
            out.commit()
    out.commit()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(prepared) >= count
    return len(prepared) / elapsed, len(prepared) / cpu


def same_work_baseline(rows, username: str, root_of, encrypt: bool) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The bare loop with the work any restore must do (a key and AES-GCM set-up per epoch and
    thread; per item decrypt, unpad, decode) into a table with the profile's indexes and search
    index, SQLCipher if the profile is; returns (items per wall second, items per CPU second)."""
    keys = {epoch: epoch_mailbox_key(root_of(epoch), username, epoch) for *_, epoch, _ in rows}
    boxes = {}
    out = sqlcipher3.connect(Path(tempfile.mkdtemp()) / "bare.sqlite3")
    if encrypt:
        out.execute(f"PRAGMA key = \"x'{os.urandom(32).hex()}'\"")
    out.execute("PRAGMA journal_mode=WAL")
    out.execute("PRAGMA synchronous=NORMAL")
    out.executescript(
        "CREATE TABLE m (message_id BLOB PRIMARY KEY, thread TEXT, sender TEXT, device TEXT,"
        " sent_at INTEGER, ts INTEGER, body TEXT, status TEXT);"
        "CREATE INDEX m_in_order ON m(thread, coalesce(ts, 9223372036854775807), message_id);"
        "CREATE INDEX m_by_status ON m(thread, status);"
        "CREATE VIRTUAL TABLE s USING fts5(body, content='m', content_rowid='rowid');"
    )
    start, cpu = time.perf_counter(), time.process_time()
    for page in range(0, len(rows), 500):
        last = out.execute("SELECT coalesce(max(rowid), 0) FROM m").fetchone()[0]
        records = []
        for thread_id, message_id, _ts, epoch, sealed in rows[page : page + 500]:
            aead = boxes.get((epoch, thread_id))
            if aead is None:
                aead = boxes[(epoch, thread_id)] = AESGCM(thread_key(keys[epoch], thread_id))
            plain = aead.decrypt(
                sealed[1 : 1 + GCM_NONCE],
                sealed[1 + GCM_NONCE :],
                item_ad(username, thread_id, message_id, epoch),
            )
            r = _record.decode(unpad(plain))
            records.append(
                (
                    message_id,
                    r.thread,
                    r.sender_user,
                    r.sender_device,
                    r.sent_at,
                    r.server_ts,
                    r.body,
                    "read",
                )
            )
        out.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
        out.execute("INSERT INTO s(rowid, body) SELECT rowid, body FROM m WHERE rowid > ?", (last,))
        out.commit()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(rows) / elapsed, len(rows) / cpu


async def measure(
    url: str, relay_dir: Path, count: int, root: Path, encrypt: bool, rounds: int
) -> dict[str, float]:
    """``rounds`` new devices restore the same history, each measured with both baselines
    right after it; returns the median of each figure and of each ratio, and the ratios'
    lowest and highest values."""
    user = f"user{count}{'c' if encrypt else 'p'}"
    alice = await AriadneClient.create_account(
        root / f"{user}-a", url, user, PASSWORD, "Desktop", backoff=FAST
    )
    peer = await AriadneClient.create_account(
        root / f"{user}-b", url, f"peer{user}", PASSWORD, "Desktop", backoff=FAST
    )
    await wait_for(lambda: alice.is_member and peer.is_member)
    code = await alice.setup_recovery()
    seed_history(alice, peer.username, peer.device_id, count, 1_700_000_000_000_000)
    await alice.wait_saved(timeout=600)
    runs = []
    for r in range(rounds):
        folder = root / f"{user}-new{r}"
        run = await restore_once(url, folder, user, code, peer.username, count, encrypt)
        # Read only now: held during the restore, the rows would be objects the garbage
        # collector walks, which the app does not have.
        rows = sealed_items(relay_dir / "relay.sqlite3", user)
        bare, bare_cpu = baseline(rows, user, alice.epochs.root, count)
        same, same_cpu = same_work_baseline(rows, user, alice.epochs.root, encrypt)
        del rows
        runs.append(
            run
            | {"bare": bare, "same": same}
            | {
                "ratio": run["rate"] / bare,
                "cpu ratio": run["cpu_rate"] / bare_cpu,
                "same ratio": run["rate"] / same,
                "same cpu ratio": run["cpu_rate"] / same_cpu,
            }
        )
    for client in (alice, peer):
        await client.close()
    result = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    for key in RATIOS:
        result[f"{key} low"] = min(run[key] for run in runs)
        result[f"{key} high"] = max(run[key] for run in runs)
    return result


RATIOS = ("ratio", "cpu ratio", "same ratio", "same cpu ratio")


async def restore_once(
    url: str, folder: Path, user: str, code: str, thread: str, count: int, encrypt: bool
) -> dict[str, float]:
    # AriadneClient.add_device, with the choice of an encrypted or a plain profile:
    store = login.new_profile(folder, url, user, "New laptop", "add", False, encrypt=encrypt)
    device = await AriadneClient._register(folder, store, PASSWORD, FAST, 30)
    assert device.database_key_place is (KeyPlace.FILE if encrypt else KeyPlace.NONE)
    first_page: list[float] = []
    device.add_listener(
        lambda e: (
            first_page.append(time.perf_counter())
            if isinstance(e, HistoryLoaded) and not first_page
            else None
        )
    )
    start = time.perf_counter()
    await device.restore(code=code)
    to_first_page = first_page[0] - start
    # The page fetch alone, on a second fresh cursor of the same thread:
    cursor = device.mailbox.cursor(thread)
    device._store.set_mailbox_cursor(cursor._replace(loaded=0, oldest=None, done=False))
    t = time.perf_counter()
    await device.load_older(thread)
    page_alone = time.perf_counter() - t
    device._store.set_mailbox_cursor(cursor)

    start, cpu = time.perf_counter(), time.process_time()
    loaded = await device.backfill()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert loaded and len(device.messages(thread)) == count
    await device.close()
    return {
        "first": to_first_page,
        "page": page_alone,
        "rate": (loaded + 100) / elapsed,
        "cpu_rate": (loaded + 100) / cpu,
    }


async def main(sizes: list[int], rounds: int) -> None:
    print(f"load average {os.getloadavg()[0]:.1f} at the start; medians of {rounds} rounds")
    root = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    async with relay_process(root / "relay") as url:
        results = {
            (n, encrypt): await measure(url, root / "relay", n, root, encrypt, rounds)
            for n in sizes
            for encrypt in (True, False)
        }
    print(
        f"{'messages':>9} | {'profile':>9} | {'restore() to first page':>24} | "
        f"{'page fetch':>10} | {'restore msg/s':>13} | {'bare AES-GCM+SQLite msg/s':>25} | "
        f"{'ratio (low-high)':>16} | {'CPU ratio (low-high)':>20} | {'same-work msg/s':>15} | "
        f"{'ratio':>5} | {'CPU ratio':>9}"
    )
    for (n, encrypt), r in results.items():
        print(
            f"{n:>9,} | {'SQLCipher' if encrypt else 'plain':>9} | {r['first'] * 1000:>21.1f} ms"
            f" | {r['page'] * 1000:>7.1f} ms | {r['rate']:>13,.0f} | {r['bare']:>25,.0f} | "
            f"{_spread(r, 'ratio'):>16} | {_spread(r, 'cpu ratio'):>20} | "
            f"{r['same']:>15,.0f} | {r['same ratio']:>5.2f} | {r['same cpu ratio']:>9.2f}"
        )
    print("SQLCipher / plain:")
    for n in sizes:
        on, off = results[(n, True)], results[(n, False)]
        print(
            f"{n:>9,} | first page ×{on['first'] / off['first']:.2f} | page fetch "
            f"×{on['page'] / off['page']:.2f} | restore rate ×{on['rate'] / off['rate']:.2f}"
        )


def _spread(result: dict[str, float], key: str) -> str:
    return f"{result[key]:.2f} ({result[key + ' low']:.2f}-{result[key + ' high']:.2f})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3, help="restores per size and profile")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.rounds))
