"""Regenerates the group-chat screenshots from the real app, through a real relay:
``screenshot-group-chat-*.png`` (Alice, Bob and Carol in one group), ``screenshot-group-members-*``
(the member list with the admin actions) and ``screenshot-new-group-*`` (picking members).

QT_QPA_PLATFORM=offscreen python assets/screenshots_groups.py [light|dark]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


from assets.screenshots import each_theme, settle, side_by_side  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from relay.server import start_relay  # noqa: E402

GROUP = [
    ("alice", "Who is in for the crag on Saturday?"),
    ("bob", "Me! I can drive, three seats free."),
    ("carol", "In. I'll bring the second rope."),
    ("alice", "Great — one message, encrypted once with my sender key, for all five devices."),
]


async def main(theme: str) -> None:
    def shot(screen: str) -> Path:
        return HERE / f"screenshot-{screen}-{theme}.png"

    root = Path(tempfile.mkdtemp(prefix="ariadne-group-shots-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    users = {
        name: await AriadneClient.create_account(
            root / name, url, name, "password1", f"{name.title()}'s desktop", backoff=LOCAL_RELAY
        )
        for name in ("alice", "bob", "carol", "dave")
    }
    alice = users["alice"]
    state = await alice.groups.create("Weekend climb", ["bob", "carol"])
    thread = state.thread
    for name in ("bob", "carol"):
        await settle(lambda n=name: users[n].groups.state(thread) is not None)
    await alice.groups.promote(thread, ["bob"])
    for sender, text in GROUP:
        await users[sender].send_text(thread, text)
        await settle(
            lambda t=text: all(
                any(m.body == t for m in users[n].messages(thread))
                for n in ("alice", "bob", "carol")
            )
        )
    windows = [ChatWindow(users[name]) for name in ("alice", "bob", "carol")]
    for window in windows:
        window.resize(520, 560)
        window.show()
        window.open_conversation(thread)
    await asyncio.sleep(0.5)  # let statuses repaint; this is a picture, not a test
    side_by_side(windows, shot("group-chat"))

    panel = windows[0].show_contact()
    assert panel is not None
    panel.resize(380, 480)
    panel.members.setCurrentRow(2)
    await asyncio.sleep(0.1)
    panel.grab().save(str(shot("group-members")))
    panel.close()

    dialog = windows[0].show_new_group()
    dialog.name.setText("Book club")
    for name in ("bob", "dave"):
        dialog.other.setText(name)
        dialog._add_other()
    dialog.resize(360, 420)
    await asyncio.sleep(0.1)
    dialog.grab().save(str(shot("new-group")))
    dialog.close()

    for window in windows:
        window.close()
    for client in users.values():
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
