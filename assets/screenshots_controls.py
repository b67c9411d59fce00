"""Regenerates the screenshots of the message controls from the real app, through a real relay:
the message menu, a reply with its quote, reactions with counts, an edited message and its
versions, an unsent message, the disappearing-messages timer and its line, and a conversation
after "Delete for me" — each ``screenshot-controls-<screen>-<theme>.png``, light and dark.

QT_QPA_PLATFORM=offscreen python assets/screenshots_controls.py [light|dark]
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

from PySide6.QtCore import QPoint  # noqa: E402

from assets.screenshots import each_theme  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from relay.server import start_relay  # noqa: E402

sys.path.insert(0, str(HERE))
from screenshots import settle, side_by_side  # noqa: E402


def trigger(menu, label: str) -> None:  # type: ignore[no-untyped-def]
    """The action called ``label``, or one in a submenu called by its first word ("React 👍")."""
    for action in menu.actions():
        if action.text() == label:
            action.trigger()
            return
        title, _, rest = label.partition(" ")
        if action.menu() is not None and action.text() == title:
            trigger(action.menu(), rest)
            return
    raise LookupError(label)


def row(window: ChatWindow, body: str) -> int:
    model = window.model
    assert model is not None
    return next(r for r in range(model.rowCount()) if model.message_at(r).body == body)


async def main(theme: str) -> None:
    def shot(screen: str) -> Path:
        return HERE / f"screenshot-controls-{screen}-{theme}.png"

    root = Path(tempfile.mkdtemp(prefix="ariadne-shots-controls-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    alice = await AriadneClient.create_account(
        root / "a", url, "alice", "password1", "Alice's desktop", backoff=LOCAL_RELAY
    )
    bob = await AriadneClient.create_account(
        root / "b", url, "bob", "password1", "Bob's desktop", backoff=LOCAL_RELAY
    )
    windows = [ChatWindow(alice), ChatWindow(bob)]
    for window, peer in zip(windows, ["bob", "alice"], strict=True):
        window.resize(640, 560)
        window.show()
        window.open_conversation(peer)
    a, b = windows

    a.send("Shall we hike on Saturday?")
    await settle(lambda: len(bob.messages("alice")) == 1)
    b.send("Yes! Which trail?")
    await settle(lambda: len(alice.messages("bob")) == 2)
    a.send("The ridge one, 12 km")
    await settle(lambda: len(bob.messages("alice")) == 3)
    a.send("I sent the wrong address, sorry")
    await settle(lambda: len(bob.messages("alice")) == 4)

    # The menu of one of alice's own messages, in her window.
    menu = a.message_menu(row(a, "The ridge one, 12 km"))
    assert menu is not None
    menu.popup(a.mapToGlobal(QPoint(80, 120)))
    await asyncio.sleep(0.2)
    # ... and its reactions, a submenu.
    react = next(action.menu() for action in menu.actions() if action.text() == "React")
    react.popup(a.mapToGlobal(QPoint(200, 120)))
    await asyncio.sleep(0.2)
    side_by_side([a.grab(), menu.grab(), react.grab()], shot("menu"))
    react.close()
    menu.close()

    # A reply, reactions, an edit, an unsend.
    trigger(a.message_menu(row(a, "Yes! Which trail?")), "Reply")
    await asyncio.sleep(0.1)
    a.grab().save(str(shot("replying")))
    a.send("Let's meet at 9 at the car park")
    await settle(lambda: len(bob.messages("alice")) == 5)
    trigger(b.message_menu(row(b, "Shall we hike on Saturday?")), "React 👍")
    trigger(a.message_menu(row(a, "Yes! Which trail?")), "React ❤️")
    trigger(b.message_menu(row(b, "Let's meet at 9 at the car park")), "React 👍")
    trigger(a.message_menu(row(a, "Let's meet at 9 at the car park")), "React 👍")
    trigger(a.message_menu(row(a, "The ridge one, 12 km")), "Edit…")
    edit = a.panel
    edit.text.setText("The ridge one, 14 km")  # type: ignore[union-attr]
    edit.grab().save(str(shot("edit")))  # type: ignore[union-attr]
    edit.accept()  # type: ignore[union-attr]
    trigger(a.message_menu(row(a, "I sent the wrong address, sorry")), "Unsend")
    await settle(lambda: bob.controls.edited(alice.messages("bob")[2].message_id))
    await settle(lambda: any(m.status.value == "unsent" for m in bob.messages("alice")))
    await settle(lambda: len(bob.controls.reactions(alice.messages("bob")[-1].message_id)) == 2)
    await asyncio.sleep(0.3)
    side_by_side(windows, shot("chat"))
    trigger(a.message_menu(row(a, "The ridge one, 14 km")), "Versions")
    versions = a.panel
    versions.resize(320, 120)  # type: ignore[union-attr]
    await asyncio.sleep(0.1)
    versions.grab().save(str(shot("versions")))  # type: ignore[union-attr]

    # The timer, set from bob's header.
    timer = b.controls.timer
    timer.setCurrentIndex(timer.findData(86_400))
    timer.activated.emit(timer.currentIndex())
    await settle(lambda: alice.controls.timer("bob") == 86_400)
    a.send("This one disappears after a day")
    await settle(lambda: len(bob.messages("alice")) == 7)
    await asyncio.sleep(0.3)
    for window in windows:
        window.view.scrollToBottom()
    side_by_side(windows, shot("timer"))

    # Delete for me: gone from alice's window only.
    trigger(a.message_menu(row(a, "Yes! Which trail?")), "Delete for me")
    await asyncio.sleep(0.3)
    side_by_side(windows, shot("deleted"))

    for window in windows:
        window.close()
    for client in (alice, bob):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
