"""Regenerates the screenshots of the application shell from the real app, through a real relay:
the first window, an empty main window (what to do, the recovery reminder), settings, linking a
new device, an approval as a panel beside the new device's screen, the remove question and a
removed device. Each twice, ``screenshot-<screen>-light.png`` and ``-dark.png``.

QT_QPA_PLATFORM=offscreen python assets/screenshots_shell.py [light|dark]
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
sys.path.insert(0, str(HERE))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402
from screenshots import settle, side_by_side  # noqa: E402

from assets.screenshots import each_theme  # noqa: E402
from client.core.client import AriadneClient  # noqa: E402
from client.core.link import LOCAL_RELAY  # noqa: E402
from client.gui.account_dialog import AccountDialog  # noqa: E402
from client.gui.chat_window import ChatWindow  # noqa: E402
from client.gui.recovery_dialog import RestoreDialog  # noqa: E402
from relay.server import start_relay  # noqa: E402


async def main(theme: str) -> None:
    def shot(screen: str) -> str:
        return str(HERE / f"screenshot-{screen}-{theme}.png")

    async def pause() -> None:
        await asyncio.sleep(0.3)  # let the last change repaint; this is a picture, not a test

    root = Path(tempfile.mkdtemp(prefix="ariadne-shots-"))
    relay, server = await start_relay("127.0.0.1", 0, root / "relay")
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    welcome = AccountDialog(root / "new")
    welcome.resize(520, welcome.sizeHint().height())
    welcome.show()
    welcome.username.setText("alice")
    welcome.password.setText("password1")
    welcome.relay.setText("ws://127.0.0.1:9")  # nothing listens there
    welcome.create.click()
    await settle(lambda: "No relay" in welcome.error.text())
    welcome.resize(520, welcome.sizeHint().height())
    await pause()
    welcome.grab().save(shot("welcome"))
    welcome.close()

    alice = await AriadneClient.create_account(
        root / "a", url, "alice", "password1", "Alice's desktop", backoff=LOCAL_RELAY
    )
    desktop = ChatWindow(alice)
    desktop.resize(760, 520)
    desktop.show()
    await pause()
    desktop.grab().save(shot("empty"))

    desktop.resize(900, 520)
    desktop.show_settings()
    await pause()
    desktop.grab().save(shot("settings"))
    desktop.panels.close_top()

    devices = desktop.show_own_devices()
    devices.link_button.click()
    await pause()
    desktop.grab().save(shot("link-device"))

    laptop = await AriadneClient.add_device(
        root / "l", url, "alice", "password1", "Alice's laptop", backoff=LOCAL_RELAY
    )
    waiting = RestoreDialog(laptop)
    waiting.resize(520, waiting.sizeHint().height() + 60)
    waiting.show()
    await settle(lambda: laptop.device_id in desktop.approvals, timeout=20)
    approval = desktop.approvals[laptop.device_id]
    await settle(lambda: approval.approve.isEnabled() and waiting.pairing_code.text() != "")
    await pause()
    side_by_side([desktop, waiting], HERE / f"screenshot-approval-panel-{theme}.png")
    waiting.confirm.click()
    approval.approve.click()
    await settle(lambda: laptop.is_member, timeout=20)
    waiting.close()

    laptop_window = ChatWindow(laptop)
    laptop_window.resize(640, 420)
    laptop_window.show()
    laptop_window.open_conversation("alice")
    devices = desktop.show_own_devices()
    asked = asyncio.Event()

    def picture_and_cancel() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        box.grab().save(shot("remove-confirm"))
        box.button(QMessageBox.StandardButton.Cancel).click()
        asked.set()

    QTimer.singleShot(0, lambda: devices.ask_remove(laptop.device_id, "Alice's laptop"))
    QTimer.singleShot(600, picture_and_cancel)
    await asked.wait()
    devices.ask_remove(laptop.device_id, "Alice's laptop", confirm=False)
    await settle(lambda: laptop.removed and laptop_window.banner.isVisible(), timeout=20)
    await pause()
    laptop_window.grab().save(shot("removed-composer"))

    for window in (laptop_window, desktop):
        window.close()
    for client in (alice, laptop):
        await client.close()
    server.close()
    await server.wait_closed()
    relay.close()


if __name__ == "__main__":
    each_theme(main)
