"""Regenerates the conversation's screenshots from the real app, through a real relay: the main
window (avatars, names, the verified badge, ticks), the message menu and its Info panel, search,
the composer at its length limit, a send the relay refused, and a chat with an unknown user —
each ``screenshot-<screen>-light.png`` and ``-dark.png``.

QT_QPA_PLATFORM=offscreen python assets/screenshots_conversation.py [light|dark]
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
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from assets.screenshots import each_theme, settle  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from client.gui.search_panel import MESSAGE_ROLE  # noqa: E402
from relay.handlers import HANDLERS  # noqa: E402
from relay.server import start_relay  # noqa: E402
from relay.session import Reject  # noqa: E402
from shared import wire  # noqa: E402
from shared.envelope import MAX_TEXT  # noqa: E402

CONVERSATION = [
    ("alice", "Hi Bob! Are we still on for Saturday?"),
    ("bob", "Yes! I'll bring the map of the harbour."),
    ("alice", "Great. I marked your safety number as verified — see the badge up there."),
    ("bob", "Right-click a message for Copy and Info: exact times, and which devices read it."),
    ("alice", "And Ctrl+F searches everything, right here on the device."),
]


def overlay(window: QWidget, popup: QWidget, at: QPoint, path: Path) -> None:
    """The window with a popup (a menu is a window of its own) drawn where it opened."""
    canvas = QPixmap(window.grab())
    painter = QPainter(canvas)
    painter.drawPixmap(window.mapFromGlobal(at), popup.grab())
    painter.end()
    canvas.save(str(path))


async def main(theme: str) -> None:
    def shot(screen: str) -> Path:
        return HERE / f"screenshot-{screen}-{theme}.png"

    root = Path(tempfile.mkdtemp(prefix="ariadne-shots-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    made = {}
    for username, device in (("alice", "Desktop"), ("bob", "Desktop"), ("carol", "Laptop")):
        made[username] = await AriadneClient.create_account(
            root / username, url, username, "password1", device, backoff=LOCAL_RELAY
        )
    alice, bob, carol = made["alice"], made["bob"], made["carol"]
    bob_phone = await AriadneClient.add_device(
        root / "bob-phone", url, "bob", "password1", "Phone", backoff=LOCAL_RELAY
    )
    await bob_phone.offer_pairing()
    await bob.pairing_code(bob_phone.device_id)
    await bob_phone.confirm_pairing()
    await bob.approve_device(bob_phone.device_id)
    await settle(lambda: bob_phone.is_member, timeout=20)
    await carol.send_text("alice", "Dinner on Friday at the harbour?")
    await settle(lambda: len(alice.messages("carol")) == 1)
    users = {"alice": alice, "bob": bob}
    for sender, text in CONVERSATION:
        peer = "bob" if sender == "alice" else "alice"
        await users[sender].send_text(peer, text)
        await settle(
            lambda p=peer, s=sender, t=text: [m.body for m in users[p].messages(s)][-1:] == [t]
        )
    alice.mark_verified("bob")
    alice.conversations.set_own_name("Alice Martin")
    bob.conversations.set_own_name("Bob Okafor")
    await settle(lambda: alice.conversations.display_name("bob") == "Bob Okafor")

    bob_window = ChatWindow(bob)
    bob_window.resize(700, 540)
    bob_window.show()
    bob_window.open_conversation("alice")
    window = ChatWindow(alice)
    window.resize(760, 560)
    window.show()
    window.open_conversation("bob")
    bob_window.activateWindow()
    await settle(
        lambda: all(
            m.status.value == "read" for m in alice.messages("bob") if m.sender_user == "alice"
        )
    )
    window.activateWindow()
    await asyncio.sleep(0.3)  # the last status repaints; this is a picture, not a test
    window.grab().save(str(shot("conversation")))

    # The message menu on Bob's second message, then its Info (Alice's last one: per device).
    row = 3
    rect = window.view.visualRect(window.model.index(row))
    menu = window.message_menu(row)
    at = window.view.viewport().mapToGlobal(rect.center())
    menu.popup(at)
    await asyncio.sleep(0.2)
    overlay(window, menu, at, shot("message-menu"))
    menu.close()
    last = window.model.rowCount() - 1
    info_menu = window.message_menu(last)
    next(a for a in info_menu.actions() if a.text() == "Info").trigger()
    panel = window.panel
    panel.resize(460, panel.sizeHint().height())
    await asyncio.sleep(0.2)
    panel.grab().save(str(shot("message-info")))
    window.close_panels()

    # Search.
    window.open_search()
    window.search.field.setText("harbour")
    window.search.search()
    window.jump_to(window.search.results.item(1).data(MESSAGE_ROLE))
    await asyncio.sleep(0.3)
    window.grab().save(str(shot("search")))
    window.close_panels()

    # The composer past the length limit: kept, with the way out.
    window.composer.setPlainText("A long report. " * (MAX_TEXT // 14))
    await asyncio.sleep(0.2)
    window.grab().save(str(shot("composer-limit")))
    window.composer.clear()

    # A send the relay refused: why, and a click to retry.
    async def refuse(session, frame):  # type: ignore[no-untyped-def]
        raise Reject(wire.ErrorCode.INTERNAL_ERROR, "")

    forward = HANDLERS[wire.Send]
    HANDLERS[wire.Send] = refuse
    window.open_conversation("bob")
    window.send("This one the relay refused.")
    await settle(lambda: alice.messages("bob")[-1].status.value == "failed")
    HANDLERS[wire.Send] = forward
    await asyncio.sleep(0.3)
    window.grab().save(str(shot("send-failed")))

    # A chat with a username nobody has.
    window.new_chat.setText("bobb")
    window.finder.start()
    await settle(lambda: "no user" in window.new_chat_note.text())
    await asyncio.sleep(0.1)
    window.grab().save(str(shot("unknown-user")))

    for each in (window, bob_window):
        each.close()
    for client in (alice, bob, bob_phone, carol):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
