"""Regenerates the screenshots in this folder from the real app, through a real relay: every
screen twice, ``screenshot-<screen>-light.png`` and ``screenshot-<screen>-dark.png``.

QT_QPA_PLATFORM=offscreen python assets/screenshots.py [light|dark]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

import qasync  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget  # noqa: E402

from client.core.client import AriadneClient  # noqa: E402
from client.core.events import MessageStatus, StoredMessage  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from client.gui.pairing_dialog import ApprovalDialog  # noqa: E402
from client.gui.recovery_dialog import RecoveryCodeDialog, RestoreDialog  # noqa: E402
from client.gui.style import apply_style  # noqa: E402
from relay.server import start_relay  # noqa: E402
from shared.envelope import new_message_id  # noqa: E402

CONVERSATION = [
    ("alice", "Hi Bob! Are we still on for Saturday?"),
    ("bob", "Yes! I'll bring the map."),
    (
        "alice",
        "Great. Everything we write is end-to-end encrypted: the relay only ever holds ciphertext.",
    ),
    ("bob", "Even the relay's operator can't read it. Open 'What the relay sees' to check."),
    ("alice", "Shown in both our windows, in the same order, with delivery ticks."),
]


def each_theme(main: Callable[[str], Awaitable[None]]) -> None:
    """Run ``main(theme)`` for each theme named on the command line (light and dark if none),
    in one application whose event loop outlives each run's windows."""
    app = QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)  # each run closes its windows; the loop goes on
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        for theme in sys.argv[1:] or ["light", "dark"]:
            apply_style(app, dark=theme == "dark")
            loop.run_until_complete(main(theme))


async def settle(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def side_by_side(widgets: list[QWidget | QPixmap], path: Path) -> None:
    shots = [w if isinstance(w, QPixmap) else w.grab() for w in widgets]
    canvas = QPixmap(
        sum(s.width() for s in shots) + 12 * (len(shots) - 1), max(s.height() for s in shots)
    )
    canvas.fill(QApplication.palette().window().color())
    painter = QPainter(canvas)
    x = 0
    for shot in shots:
        painter.drawPixmap(x, 0, shot)
        x += shot.width() + 12
    painter.end()
    canvas.save(str(path))


async def main(theme: str) -> None:
    def shot(screen: str) -> Path:
        return HERE / f"screenshot-{screen}-{theme}.png"

    root = Path(tempfile.mkdtemp(prefix="ariadne-shots-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    alice = await AriadneClient.create_account(
        root / "a", url, "alice", "password1", "Alice's desktop", backoff=LOCAL_RELAY
    )
    bob = await AriadneClient.create_account(
        root / "b", url, "bob", "password1", "Bob's desktop", backoff=LOCAL_RELAY
    )
    users = {"alice": alice, "bob": bob}
    for sender, text in CONVERSATION:
        peer = "bob" if sender == "alice" else "alice"
        await users[sender].send_text(peer, text)
        await settle(
            lambda p=peer, s=sender, t=text: (
                len(users[p].messages(s)) >= 1 and users[p].messages(s)[-1].body == t
            )
        )
    windows = [ChatWindow(alice), ChatWindow(bob)]
    for window, peer in zip(windows, ["bob", "alice"], strict=True):
        window.resize(640, 520)
        window.show()
        window.open_conversation(peer)
    await settle(
        lambda: all(
            m.status.value == "read" for m in alice.messages("bob") if m.sender_user == "alice"
        )
    )
    await asyncio.sleep(0.3)  # let the last status repaint; this is a picture, not a test
    side_by_side(windows, shot("chat"))

    view = windows[0].show_server_view()
    view.resize(980, 360)
    await settle(view.loaded.is_set)
    view.grab().save(str(shot("server-view")))
    panel = windows[0].show_contact()
    panel.resize(420, 560)
    await asyncio.sleep(0.1)
    panel.grab().save(str(shot("safety-number")))

    # The recovery code, shown once (with a PIN).
    dialog = RecoveryCodeDialog(alice)
    dialog.show()
    dialog.pin.setText("2468")
    dialog.pin_again.setText("2468")
    dialog.make.click()
    await settle(lambda: dialog.code != "", timeout=20)
    await asyncio.sleep(0.1)
    dialog.grab().save(str(shot("recovery-code")))
    dialog.close()

    # A new laptop: a wrong PIN first, then the code; its window fills page by page.
    older = alice.messages("bob")[0].server_ts - 10_000_000
    seed = [
        StoredMessage(
            message_id=new_message_id(now_ms=older // 1000 + i),
            thread="bob",
            sender_user="bob" if i % 2 else "alice",
            sender_device=bob.device_id if i % 2 else alice.device_id,
            sent_at=older // 1000 + i,
            server_ts=older + i * 1000,
            body=f"Earlier message {i}",
            status=MessageStatus.READ,
        )
        for i in range(3000)
    ]
    alice._store.insert_messages(seed)
    alice._store.save_later(m.message_id for m in seed)
    alice._store.commit()
    await alice.wait_saved(timeout=60)
    laptop = await AriadneClient.add_device(
        root / "l", url, "alice", "password1", "Alice's laptop", backoff=LOCAL_RELAY
    )
    restore = RestoreDialog(laptop)
    restore.resize(560, restore.sizeHint().height())
    restore.show()
    restore.pin.setText("1111")
    restore.with_pin.click()
    await settle(lambda: "Wrong PIN" in restore.status.text(), timeout=20)
    await asyncio.sleep(0.1)
    restore_shot = restore.grab()
    restore.code.setText(dialog.code)
    restore.with_code.click()
    await settle(lambda: laptop.is_member and restore.isHidden(), timeout=20)
    laptop_window = ChatWindow(laptop)
    laptop_window.resize(640, 520)
    laptop_window.show()
    await laptop.load_older("bob")
    await settle(lambda: "Restoring history" in laptop_window.progress.text())
    await asyncio.sleep(0.2)
    side_by_side([restore_shot, laptop_window], shot("restore"))

    # Approving a tablet: both screens show the same code.
    tablet = await AriadneClient.add_device(
        root / "t", url, "alice", "password1", "Alice's tablet", backoff=LOCAL_RELAY
    )
    waiting = RestoreDialog(tablet)
    waiting.resize(560, waiting.sizeHint().height() + 60)  # room for the code to come
    waiting.show()
    # The desktop and the laptop are both asked; the first to answer runs the exchange, the
    # other is told it is busy.
    approvers = [windows[0], laptop_window]
    await settle(lambda: all(tablet.device_id in w.approvals for w in approvers), timeout=20)
    dialogs = [w.approvals[tablet.device_id] for w in approvers]
    for dialog_ in dialogs:
        dialog_.resize(440, 300)
    await settle(
        lambda: any(d.approve.isEnabled() for d in dialogs) and waiting.pairing_code.text() != "",
        timeout=20,
    )
    approval = next(d for d in dialogs if d.approve.isEnabled())
    busy = next(d for d in dialogs if d is not approval)
    await settle(lambda: "Another of your devices" in busy.status.text(), timeout=20)
    await asyncio.sleep(0.2)
    side_by_side([approval, waiting], shot("approval"))
    waiting.confirm.click()
    approval.approve.click()
    await settle(lambda: tablet.is_member, timeout=20)
    # A request already answered: what a late dialog says.
    late = ApprovalDialog(
        alice, tablet.device_id, "Alice's tablet", busy.fingerprint, busy.asked_at
    )
    late.resize(440, 300)
    late.show()
    await settle(lambda: "already answered" in late.status.text(), timeout=20)
    await asyncio.sleep(0.1)
    side_by_side([busy, late], shot("approval-busy-closed"))
    for dialog_ in (busy, late):
        dialog_.close()

    # Revoking the tablet: the desktop's device list, the tablet's window.
    tablet_window = ChatWindow(tablet)
    tablet_window.resize(640, 420)
    tablet_window.show()
    panel = windows[0].show_own_devices()
    await asyncio.sleep(0.3)
    # The confirmation is modal: open it from the event loop, picture it, cancel it.
    asked = asyncio.Event()

    def picture_and_cancel() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        box.grab().save(str(shot("remove-confirm")))
        box.button(QMessageBox.StandardButton.Cancel).click()
        asked.set()

    QTimer.singleShot(0, lambda: panel.ask_remove(tablet.device_id, "Alice's tablet"))
    QTimer.singleShot(600, picture_and_cancel)
    await asked.wait()
    panel.ask_remove(tablet.device_id, "Alice's tablet", confirm=False)
    await settle(lambda: tablet.removed and tablet_window.banner.isVisible(), timeout=20)
    await asyncio.sleep(0.3)
    side_by_side([panel, tablet_window], shot("revoked"))
    for widget in (tablet_window, panel):
        widget.close()

    # On the laptop, who changed the account's devices.
    laptop_window.open_conversation("bob")
    await settle(
        lambda: any("removed a device" in m.body for m in laptop.messages("bob") if m.system)
    )
    laptop_window.view.scrollToBottom()
    await asyncio.sleep(0.3)
    laptop_window.grab().save(str(shot("device-lines")))
    laptop_window.close()

    # A relay that reorders bob's messages to carol: carol's window says so.
    carol = await AriadneClient.create_account(
        root / "c", url, "carol", "password1", "Carol's desktop", backoff=LOCAL_RELAY
    )
    await carol.send_text("bob", "Hi Bob, it's Carol.")
    await settle(lambda: len(bob.messages("carol")) == 1)
    # (Bob's receipt first, so that carol's queue holds his three messages and nothing else.)
    await settle(lambda: carol.messages("bob")[-1].status is MessageStatus.DELIVERED)
    await carol.close()
    sent = ["First: the tickets are booked.", "Second: the train leaves at 9.", "Third: see you!"]
    for text in sent:
        await bob.send_text("carol", text)
    db = relay.store._db
    await settle(lambda: len(queued(db, carol.device_id)) == len(sent), timeout=20)
    rows = queued(db, carol.device_id)
    for (seq, _), (_, ts) in zip(rows, reversed(rows), strict=True):
        db.execute("UPDATE queue SET server_ts = ? WHERE seq = ?", (ts, seq))
    db.commit()
    carol = await AriadneClient.open(root / "c", relay_url=url, backoff=LOCAL_RELAY)
    carol_window = ChatWindow(carol)
    carol_window.resize(640, 420)
    carol_window.show()
    carol_window.open_conversation("bob")
    await settle(
        lambda: any("out of order" in m.body for m in carol.messages("bob") if m.system),
        timeout=20,
    )
    await asyncio.sleep(0.3)
    carol_window.view.scrollToBottom()
    await asyncio.sleep(0.1)
    carol_window.grab().save(str(shot("out-of-order")))
    # The relay loses carol's device (its data lost, or so it says): she keeps everything, the
    # window says the relay does not know this device and offers Retry, never deletion.
    relay.store.forget_device(carol.device_id)
    await relay.store.durable()
    relay.disconnect(carol.device_id, 4000, "forgotten")
    await settle(lambda: carol.unknown_to_relay and carol_window.banner.isVisible(), timeout=20)
    await asyncio.sleep(0.3)
    carol_window.grab().save(str(shot("unknown-device")))
    rebuild = carol_window.show_rebuild()  # what Re-create the account… opens
    await asyncio.sleep(0.3)
    rebuild.grab().save(str(shot("rebuild")))
    rebuild.close()
    carol_window.close()

    for window in windows:
        window.close()
    for client in (alice, bob, laptop, tablet, carol):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


def queued(db, device_id: str) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """A device's queue on the relay, in arrival order: (seq, server_ts)."""
    return db.execute(
        "SELECT seq, server_ts FROM queue WHERE device_id = ? ORDER BY seq", (device_id,)
    ).fetchall()


if __name__ == "__main__":
    each_theme(main)
