"""Expiry benchmark: 10,000 disappearing messages of the open conversation expire at once while
the chat window shows it. A 1 ms Qt timer records the longest gap the event loop leaves between
its ticks (the window cannot paint or take input meanwhile). Compared, in the same run, with the
loop idle (the baseline) and with all 10,000 deleted in one transaction (what chunking avoids);
the target is under 50 ms.

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/bench_expiry.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parents[2]))

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from client.core import clock as clock_module
from client.core import login
from client.core.client import AriadneClient
from client.core.events import MessageStatus, StoredMessage
from client.gui.chat_window import ChatWindow
from shared.envelope import new_message_id

COUNT = 10_000


class Gaps:
    """The longest time between two ticks of a 1 ms timer."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer(interval=1)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.longest = time.perf_counter(), 0.0
        self.timer.start()


async def measure(count: int, chunk: int | None, expire: bool) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-expiry-"))
    store = login.new_profile(
        root, "ws://127.0.0.1:9", "alice", "Desktop", "done", with_amk=True, encrypt=True
    )
    now = clock_module.system_ms()
    for i in range(count):
        message_id = new_message_id(now_ms=now - count + i)
        store.insert_message(
            StoredMessage(
                message_id=message_id,
                thread="bob",
                sender_user="bob" if i % 2 else "alice",
                sender_device="0" * 16,
                sent_at=now - count + i,
                server_ts=(now - count + i) * 1000,
                body=f"fleeting {i}",
                status=MessageStatus.READ,
            )
        )
        store.set_expiry(message_id, "bob", now + 60_000)
    store.commit()
    client = AriadneClient(root, store)  # not started: no relay; the expiry loop runs below
    if chunk is not None:
        client.control_sync.chunk = chunk
    window = ChatWindow(client)
    window.resize(760, 600)
    window.show()
    window.open_conversation("bob")
    await asyncio.sleep(0.2)
    gaps = Gaps()
    gaps.start()
    if expire:
        client.context.clock.set_local(lambda: clock_module.system_ms() + 120_000)
    task = asyncio.create_task(client.control_sync.run())
    deadline = time.perf_counter() + 60
    while (expire and window.model.rowCount()) or (
        not expire and time.perf_counter() < deadline - 59
    ):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    gaps.timer.stop()
    task.cancel()
    assert not expire or not client.messages("bob"), "everything expired"
    window.close()
    store.close()
    return gaps.longest * 1000


async def main() -> None:
    await measure(100, None, True)  # warm-up
    idle = await measure(COUNT, None, False)
    chunked = await measure(COUNT, None, True)
    at_once = await measure(COUNT, COUNT, True)
    print(f"{'10,000 messages, open conversation':38} {'longest stall (ms)':>20} {'ratio':>7}")
    print(f"{'idle window (baseline)':38} {idle:>20.1f} {1.0:>7.1f}")
    print(f"{'expiring, 100 per transaction':38} {chunked:>20.1f} {chunked / idle:>7.1f}")
    print(f"{'expiring, all in one transaction':38} {at_once:>20.1f} {at_once / idle:>7.1f}")


if __name__ == "__main__":
    app = QApplication(sys.argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(main())
