"""GUI test harness: real windows (offscreen), a qasync loop that pytest-qt drives, a real relay.

Tests stay synchronous. Coroutines are scheduled on the qasync loop and awaited with
``qtbot.waitUntil`` (a coroutine that itself called waitUntil would deadlock the loop).
"""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

qasync = pytest.importorskip("qasync")

from client.core.client import AriadneClient  # noqa: E402
from relay.server import start_relay  # noqa: E402
from tests.conftest import FAST, PASSWORD, approve  # noqa: E402


@pytest.fixture
def qloop(qapp):
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    yield loop
    asyncio.events._set_running_loop(None)
    # Closing shuts down the loop's executor threads (asyncio.to_thread runs Argon2 there);
    # a QThread still running at interpreter exit aborts the whole test run.
    loop.close()
    asyncio.set_event_loop(None)
    gc.collect()


class Harness:
    def __init__(self, qtbot, loop, root: Path) -> None:
        self.qtbot = qtbot
        self.loop = loop
        self.root = root
        self.clients: list[AriadneClient] = []
        self.relay = None
        self.server = None
        self.url = ""

    def run(self, coroutine, timeout: float = 20.0):
        future = asyncio.ensure_future(coroutine)
        self.qtbot.waitUntil(future.done, timeout=int(timeout * 1000))
        return future.result()

    def start_relay(self) -> None:
        self.relay, self.server = self.run(start_relay("127.0.0.1", 0, self.root / "relay"))
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def account(self, username: str, device: str = "Desktop") -> AriadneClient:
        client = self.run(
            AriadneClient.create_account(
                self.root / f"{username}-{device}",
                self.url,
                username,
                PASSWORD,
                device,
                backoff=FAST,
            )
        )
        self.clients.append(client)
        self.qtbot.waitUntil(lambda: client.is_member, timeout=10_000)
        return client

    def second_device(self, first: AriadneClient, device: str) -> AriadneClient:
        client = self.run(
            AriadneClient.add_device(
                self.root / f"{first.username}-{device}",
                self.url,
                first.username,
                PASSWORD,
                device,
                backoff=FAST,
            )
        )
        self.clients.append(client)
        self.run(approve(first, client))
        self.qtbot.waitUntil(lambda: client.is_member, timeout=10_000)
        return client

    def stop_relay(self) -> None:
        self.server.close()
        self.run(self.server.wait_closed())
        self.relay.close()
        # Its background tasks (the counters' log) end on this loop, not when it is closed.
        self.run(asyncio.gather(*self.relay.background, return_exceptions=True))
        self.server = self.relay = None

    def restart_relay(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.relay, self.server = self.run(start_relay("127.0.0.1", port, self.root / "relay"))

    def reopen(self, client: AriadneClient) -> AriadneClient:
        self.run(client.close())
        self.clients.remove(client)
        again = self.run(AriadneClient.open(client.profile_dir, backoff=FAST))
        self.clients.append(again)
        return again

    def close(self) -> None:
        for client in self.clients:
            self.run(client.close())
        if self.server is not None:
            self.stop_relay()


@pytest.fixture
def harness(qtbot, qloop, tmp_path):
    made = Harness(qtbot, qloop, tmp_path)
    made.start_relay()
    yield made
    made.close()
