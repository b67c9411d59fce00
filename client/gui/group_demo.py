"""``ariadne demo --group``: a relay on a free port and three windows, Alice, Bob and Carol, open
on one group chat ("Weekend climb", made by Alice on the first run and reused after), with a few
messages so that every part of a group shows: system lines, the sender's name above each bubble,
and the member list behind "Members"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QGuiApplication

from client.core.client import AriadneClient
from client.demo import relay_process
from client.gui.app import _open_or_create, _until_closed
from client.gui.chat_window import ChatWindow

GROUP_NAME = "Weekend climb"
OPENING = [
    ("alice", "Who is in for the crag on Saturday?"),
    ("bob", "Me! I can drive, three seats free."),
    ("carol", "In. I'll bring the second rope."),
]
READY_SECONDS = 30.0


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo group did not get ready: {what}")
        await asyncio.sleep(0.05)


async def _the_group(clients: dict[str, AriadneClient]) -> str:
    """The demo's group thread, made on the first run (with its opening lines) and reused."""
    alice = clients["alice"]
    existing = [g for g in alice.groups.all() if g.name == GROUP_NAME]
    if existing:
        return existing[0].thread
    state = await alice.groups.create(GROUP_NAME, ["bob", "carol"])
    for client in clients.values():
        await _until(lambda c=client: c.groups.state(state.thread) is not None, "membership")
    for user, text in OPENING:
        await clients[user].send_text(state.thread, text)
        await _until(
            lambda t=text: all(
                any(m.body == t for m in c.messages(state.thread)) for c in clients.values()
            ),
            "opening messages",
        )
    return state.thread


async def group_demo(
    data_dir: Path,
    lifetime: float | None = None,
    on_ready: Callable[[list[ChatWindow]], None] | None = None,
) -> int:
    async with relay_process(data_dir / "relay") as url:
        print(f"relay: {url} (data in {data_dir})", flush=True)
        clients = {
            user: await _open_or_create(data_dir / user, url, user, f"{user.title()}'s desktop")
            for user in ("alice", "bob", "carol")
        }
        for client in clients.values():
            await client.wait_online()
        thread = await _the_group(clients)
        for user, client in clients.items():
            state = client.groups.state(thread)
            members = ", ".join(state.members) if state is not None else "not yet known"
            print(f"group on {user}'s desktop: {GROUP_NAME} ({members})", flush=True)
        windows = [ChatWindow(client) for client in clients.values()]
        screen = QGuiApplication.primaryScreen().availableGeometry()
        width = min(640, screen.width() // 3)
        for i, window in enumerate(windows):
            window.open_conversation(thread)
            window.resize(width, min(620, screen.height()))
            window.move(screen.left() + i * width, screen.top())
            window.show()
            print(f"window: {window.windowTitle()}", flush=True)
        if on_ready is not None:
            on_ready(windows)
        await _until_closed(windows, lifetime)
        for window in windows:
            window.close()
        for client in clients.values():
            await client.close()
    print("demo: closed cleanly", flush=True)
    return 0
