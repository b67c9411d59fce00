"""GUI benchmark (ARCHITECTURE.md "Benchmarks"): a conversation of 100,000 stored messages
against one of 100, in the same run. Reports the time from opening to the first painted screen,
the longest event-loop stall while scrolling all the way to the top (and the longest of Python's
garbage collections meanwhile), a full-text search (FTS5) and the jump to a result far back, and
the process's resident memory; each with the profile encrypted at rest (SQLCipher, as every
profile is) and plain, to show what the encryption costs.

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/bench_gui.py
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parents[2]))

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from client.core import login
from client.core.client import AriadneClient
from client.core.events import MessageStatus, StoredMessage
from client.gui.chat_window import ChatWindow
from shared.envelope import new_message_id


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class FirstPaint(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.at is None:
            self.at = time.perf_counter()
        return False


class Collections:
    """The longest of Python's garbage collections while it is registered (gc.callbacks)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0

    def note(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._start)


def measure(count: int, app: QApplication, encrypt: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-gui-{count}-"))
    store = login.new_profile(
        root, "ws://127.0.0.1:9", "alice", "Desktop", "done", with_amk=True, encrypt=encrypt
    )
    base = 1_700_000_000_000_000
    for i in range(count):
        sender = "alice" if i % 3 else "bob"
        store.insert_message(
            StoredMessage(
                message_id=new_message_id(now_ms=base // 1000 + i),
                thread="bob",
                sender_user=sender,
                sender_device="0" * 16,
                sent_at=base // 1000 + i,
                server_ts=base + i * 1000,
                body=f"message {i} " + "lorem ipsum " * (i % 7),
                status=MessageStatus.DELIVERED if sender == "alice" else MessageStatus.READ,
            )
        )
    store.commit()
    # The garbage of filling the profile and of the previous measurement's window is collected
    # before the window opens: Python's full collection would otherwise land in a scroll step
    # of this window (up to 80 ms here) at a moment set by the setup, not by the window. The
    # collections during the scroll are still counted (the row "garbage collection").
    gc.collect()
    # The client is not started: no relay, no network tasks; the window reads the profile.
    client = AriadneClient(root, store)
    before = rss_mib()

    start = time.perf_counter()
    window = ChatWindow(client)
    painted = FirstPaint()
    window.view.viewport().installEventFilter(painted)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    while painted.at is None:
        app.processEvents()
    first_paint = painted.at - start

    bar = window.view.verticalScrollBar()
    collections = Collections()
    gc.callbacks.append(collections.note)
    step_times: list[float] = []
    step_cpu: list[float] = []  # this thread's CPU time: what other processes' load leaves out
    while True:
        step, cpu = time.perf_counter(), time.thread_time()
        bar.setValue(0)
        app.processEvents()
        step_times.append(time.perf_counter() - step)
        step_cpu.append(time.thread_time() - cpu)
        if not window.model.can_fetch_older() and bar.value() == 0:
            break
    loaded = window.model.rowCount()
    gc.callbacks.remove(collections.note)

    # Search (the profile's FTS5 index) and a jump to a result far back, each to its painted
    # screen: what the window added since the first version of this benchmark.
    window.search.field.setText("message 4")
    step = time.perf_counter()
    window.search.search()
    app.processEvents()
    search_time = time.perf_counter() - step
    oldest = window.search.results.item(window.search.results.count() - 1)
    window.view.scrollToBottom()
    app.processEvents()
    step = time.perf_counter()
    window.search._choose(oldest)
    app.processEvents()
    jump_time = time.perf_counter() - step
    window.close()
    store.close()
    return {
        "first_paint_ms": first_paint * 1000,
        "longest_stall_ms": max(step_times) * 1000,
        "longest_cpu_ms": max(step_cpu) * 1000,
        "median_step_ms": statistics.median(step_times) * 1000,
        "p99_step_ms": sorted(step_times)[int(0.99 * (len(step_times) - 1))] * 1000,
        "search_ms": search_time * 1000,
        "jump_ms": jump_time * 1000,
        "gc_ms": collections.longest * 1000,
        "steps": len(step_times),
        "loaded": loaded,
        "rss_mib": rss_mib(),
        "rss_growth": rss_mib() - before,
    }


ROWS = [
    ("first_paint_ms", "open → first paint (ms)"),
    ("median_step_ms", "median scroll step (ms)"),
    ("p99_step_ms", "99th percentile step (ms)"),
    ("longest_stall_ms", "longest stall scrolling (ms)"),
    ("longest_cpu_ms", "longest step, CPU only (ms)"),
    ("gc_ms", "garbage collection (ms)"),  # Python's longest, during the scroll
    ("search_ms", "search 'message 4' (ms)"),
    ("jump_ms", "jump to a result far back (ms)"),
    ("rss_growth", "memory for the window (MiB)"),
]


def main(app: QApplication) -> None:
    measure(100, app, False)  # warm-up: the first window pays for Qt's and the fonts' start
    runs = {
        encrypt: (measure(100, app, encrypt), measure(100_000, app, encrypt))
        for encrypt in (True, False)
    }
    for encrypt, (small, large) in runs.items():
        print(f"profile: {'SQLCipher' if encrypt else 'plain SQLite'}")
        print(f"{'':28} {'100 messages':>14} {'100,000 messages':>18} {'ratio':>7}")
        for key, label in ROWS:
            ratio = f"{large[key] / small[key]:.1f}" if small[key] >= 0.05 else "—"
            print(f"{label:28} {small[key]:>14.1f} {large[key]:>18.1f} {ratio:>7}")
        print(
            f"scrolled to the top of 100,000 in {large['steps']} steps, "
            f"{large['loaded']:,} rows loaded page by page; process RSS {large['rss_mib']:.0f} MiB"
        )
    print("SQLCipher / plain, 100,000 messages:")
    for key, label in ROWS[:5]:
        on, off = runs[True][1][key], runs[False][1][key]
        print(f"{label:28} ×{on / max(off, 1e-9):.2f}")


if __name__ == "__main__":
    main(QApplication(sys.argv))
