"""Starting the desktop client: one profile (``ariadne``) or the two-window ``ariadne demo``.

asyncio runs inside the Qt event loop (qasync). The application does not quit when the last window
closes (that would stop the loop under pending work); it quits when its main coroutine ends.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import qasync
from PySide6.QtCore import QPoint
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox, QWidget

from client.core.at_rest import ProfileLocked
from client.core.client import AriadneClient
from client.core.link import INTERACTIVE
from client.core.profile_lock import ProfileInUse, hold
from client.core.relay_address import DEFAULT_RELAY_URL
from client.core.storage import ProfileStore
from client.demo import DEMO_PASSWORD, relay_process
from client.gui.chat_window import ChatWindow
from client.gui.lifecycle import run_with_signals, until_closed
from client.gui.style import apply_style


def run_qt(main: Callable[[], Awaitable[int]]) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    app.setQuitOnLastWindowClosed(False)
    app.setApplicationName("Ariadne")
    apply_style(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return run_with_signals(loop, main)


async def _until_closed(windows: Sequence[QMainWindow], lifetime: float | None) -> None:
    """Until every window is closed; each device's window stops its device as soon as it closes
    (no client runs on without a window). A window of no device (the hostile demo's relay
    operator) just closes."""
    stopping: list[asyncio.Future[None]] = []

    def stop_device(window: QMainWindow) -> None:
        if isinstance(window, ChatWindow):
            stopping.append(asyncio.ensure_future(window.client.close()))

    await until_closed(windows, lifetime, stop_device)
    if stopping:
        await asyncio.gather(*stopping)


async def _open_or_create(profile: Path, url: str, username: str, device: str) -> AriadneClient:
    if ProfileStore.exists(profile):
        return await AriadneClient.open(profile, relay_url=url, backoff=INTERACTIVE)
    return await AriadneClient.create_account(
        profile, url, username, DEMO_PASSWORD, device, backoff=INTERACTIVE
    )


class LaptopStep:
    """The demo's third device: Alice's laptop, logged in with her password, so pending. Its
    dialog asks for approval (Alice's desktop pops up the request with the same code); once the
    user confirmed the code on it and approved on the desktop, its window opens and loads the
    history. Removing it from "My devices" on the desktop shows what revocation looks like. A
    removed laptop is replaced on the next run."""

    def __init__(self, profile: Path, url: str) -> None:
        self.profile = profile
        self.url = url
        self.client: AriadneClient | None = None
        self.dialog: QWidget | None = None
        self.window: ChatWindow | None = None
        self._stopping: list[asyncio.Future[None]] = []  # closing the window stops the laptop

    async def start(self) -> None:
        from client.gui.recovery_dialog import RestoreDialog

        if ProfileStore.exists(self.profile):
            client = await AriadneClient.open(self.profile, relay_url=self.url, backoff=INTERACTIVE)
            if not client.removed:
                self.client = client
                self._open_window()
                return
            await client.delete_local_data()
        self.client = await AriadneClient.add_device(
            self.profile, self.url, "alice", DEMO_PASSWORD, "Alice's laptop", backoff=INTERACTIVE
        )
        dialog = RestoreDialog(self.client)
        dialog.accepted.connect(self._open_window)
        self.dialog = dialog
        dialog.show()
        print(
            "laptop: waiting for approval — Alice's desktop shows the request and a code;"
            " if both screens match, press 'The codes match' on the laptop and approve",
            flush=True,
        )

    def _open_window(self) -> None:
        assert self.client is not None
        self.window = ChatWindow(self.client, restoring=True)
        self.window.closed.connect(self._stop_device)
        self.window.resize(640, 520)
        self.window.show()
        if self.client.has_history_to_load():
            self.window.start_backfill()
        print(f"window: {self.window.windowTitle()}", flush=True)
        print(
            "laptop: to revoke it, open 'My devices' on Alice's desktop and press Remove",
            flush=True,
        )

    def _stop_device(self) -> None:
        if self.client is not None:
            self._stopping.append(asyncio.ensure_future(self.client.close()))

    async def close(self) -> None:
        for widget in (self.dialog, self.window):
            if widget is not None:
                widget.close()
        if self.client is not None:
            await self.client.close()


async def demo(
    data_dir: Path,
    lifetime: float | None = None,
    laptop: bool = False,
    on_ready: Callable[[list[ChatWindow], LaptopStep | None], None] | None = None,
) -> int:
    """A relay on a free port, Alice and Bob (created once, reused after), side by side; with
    ``laptop``, Alice's laptop too, to walk through approving and then revoking a device."""
    try:
        held = hold(data_dir)  # one demo per folder: a second would start a second relay on it
    except ProfileInUse as error:
        which = f" (process {error.owner})" if error.owner else ""
        print(
            f"ariadne demo: {data_dir} is in use by another ariadne demo{which}: use its "
            "windows, or close it first.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    with held:
        return await _demo(data_dir, lifetime, laptop, on_ready)


async def _demo(
    data_dir: Path,
    lifetime: float | None,
    laptop: bool,
    on_ready: Callable[[list[ChatWindow], LaptopStep | None], None] | None,
) -> int:
    async with relay_process(data_dir / "relay") as url:
        print(f"relay: {url} (data in {data_dir})", flush=True)
        alice = await _open_or_create(data_dir / "alice", url, "alice", "Alice's desktop")
        bob = await _open_or_create(data_dir / "bob", url, "bob", "Bob's desktop")
        windows = [ChatWindow(alice), ChatWindow(bob)]
        windows[0].open_conversation("bob")
        windows[1].open_conversation("alice")
        screen = QGuiApplication.primaryScreen().availableGeometry()
        width = min(760, screen.width() // 2)
        for i, window in enumerate(windows):
            window.resize(width, min(620, screen.height()))
            window.move(screen.left() + i * width, screen.top())
            window.show()
            print(f"window: {window.windowTitle()}", flush=True)
        step = None
        if laptop:
            step = LaptopStep(data_dir / "alice-laptop", url)
            await step.start()
            if step.dialog is not None:
                # Over the right of Bob's window: Alice's shows the approval beside her
                # conversation, and may grow to the right for it.
                corner = windows[1].frameGeometry().topRight()
                step.dialog.move(corner + QPoint(-step.dialog.frameGeometry().width() - 20, 60))
        if on_ready is not None:
            on_ready(windows, step)
        await _until_closed(windows, lifetime)
        for window in windows:
            window.close()
        if step is not None:
            await step.close()
        for client in (alice, bob):
            await client.close()
    print("demo: closed cleanly", flush=True)
    return 0


async def _first_steps(client: AriadneClient) -> None:
    """Right after registering: a new account is offered its recovery code; a new device of an
    existing account is offered to restore its history (or waits for approval)."""
    from client.gui.onboarding import remind_later
    from client.gui.recovery_dialog import RecoveryCodeDialog, RestoreDialog

    dialog = RecoveryCodeDialog(client) if client.holds_account_key else RestoreDialog(client)
    finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda code: finished.done() or finished.set_result(code))
    dialog.show()
    await finished
    if client.holds_account_key and not client.has_recovery_code:
        remind_later(client)  # skipped: the window asks again later, not now


async def _cannot_open(profile: Path, error: ProfileLocked) -> int:
    """The profile's database does not open (its key is gone or wrong): say so, change nothing."""
    print(f"ariadne: {profile}: {error}", file=sys.stderr, flush=True)
    box = QMessageBox(QMessageBox.Icon.Critical, "Ariadne — this profile cannot be opened", "")
    box.setText(f"{error}\n\nProfile: {profile}")
    finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    box.finished.connect(lambda code: finished.done() or finished.set_result(code))
    box.show()
    await finished
    return 1


async def single(profile: Path, relay_url: str | None, lifetime: float | None = None) -> int:
    from client.gui.account_dialog import AccountDialog
    from client.gui.settings_panel import apply_preferences

    new_device = not ProfileStore.exists(profile)
    if not new_device:
        try:
            client = await AriadneClient.open(profile, relay_url=relay_url, backoff=INTERACTIVE)
        except ProfileLocked as error:
            return await _cannot_open(profile, error)
        pending = not (client.is_member or client.holds_account_key or client.removed)
        if pending:
            # Closed while still pending: offer to restore (or to be approved) again.
            new_device = True
            await _first_steps(client)
    else:
        dialog = AccountDialog(profile, relay_url or DEFAULT_RELAY_URL)
        dialog.show()
        client = await dialog.result_client()
        if client is None:
            return 1
        await _first_steps(client)
    apply_preferences(client.preferences)
    window = ChatWindow(client, restoring=new_device)
    window.show()
    print(f"window: {window.windowTitle()}", flush=True)
    if client.has_history_to_load():
        window.start_backfill()
    await _until_closed([window], lifetime)
    await client.close()
    return 0
