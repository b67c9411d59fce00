"""Start-up as a newcomer meets it: the first window says what Ariadne and the relay are, the
relay address has a default and is checked, and a relay that is not running is reported at once
(not after half a minute of "Connecting…"), with nothing made on disk."""

from __future__ import annotations

import asyncio
import socket
from typing import TypeVar

from PySide6.QtWidgets import QApplication

from client.core.relay_address import DEFAULT_RELAY_URL
from client.core.storage import ProfileStore
from client.gui.account_dialog import AccountDialog
from client.gui.app import single
from client.gui.chat_window import ChatWindow
from client.gui.recovery_dialog import RecoveryCodeDialog
from tests.conftest import PASSWORD

T = TypeVar("T")


def _shown(kind: type[T]) -> T | None:
    widgets = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind)]
    return next((w for w in widgets if w.isVisible()), None)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_window(qtbot, harness, name: str) -> tuple[AccountDialog, asyncio.Future[int]]:
    run = asyncio.ensure_future(single(harness.root / name, None))
    qtbot.waitUntil(lambda: _shown(AccountDialog) is not None, timeout=10_000)
    dialog = _shown(AccountDialog)
    assert dialog is not None
    dialog.username.setText("alice")
    dialog.password.setText(PASSWORD)
    return dialog, run


def test_the_first_window_explains_ariadne_and_the_relay_with_a_default(qtbot, harness):
    dialog, run = _first_window(qtbot, harness, "alice")
    assert dialog.relay.text() == DEFAULT_RELAY_URL
    intro = dialog.intro.text()
    assert "end-to-end encrypted messenger" in intro
    assert "relay" in intro and "ariadne demo" in intro
    dialog.reject()
    qtbot.waitUntil(run.done, timeout=10_000)


def test_a_relay_that_is_not_running_is_reported_within_two_seconds(qtbot, harness):
    dialog, run = _first_window(qtbot, harness, "alice")
    url = f"ws://127.0.0.1:{_closed_port()}"
    dialog.relay.setText(url)
    dialog.create.click()
    qtbot.waitUntil(lambda: "No relay is running" in dialog.error.text(), timeout=2_000)
    assert url in dialog.error.text() and "ariadne demo" in dialog.error.text()
    assert dialog.create.isEnabled()  # what was typed stays; try again with another address
    assert dialog.username.text() == "alice"
    assert not ProfileStore.exists(harness.root / "alice")

    dialog.relay.setText(harness.url)  # the right address: the account is made
    dialog.create.click()
    qtbot.waitUntil(lambda: _shown(RecoveryCodeDialog) is not None, timeout=15_000)
    assert ProfileStore.exists(harness.root / "alice")
    _shown(RecoveryCodeDialog).reject()  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: _shown(ChatWindow) is not None, timeout=10_000)
    _shown(ChatWindow).close()  # type: ignore[union-attr]
    qtbot.waitUntil(run.done, timeout=15_000)


def test_a_malformed_relay_address_is_explained_before_anything_is_tried(qtbot, harness):
    dialog, run = _first_window(qtbot, harness, "alice")
    for typed, says in [
        ("http://127.0.0.1:8765", "starts with ws:// or wss://"),
        ("ws://127.0.0.1:99999", "a port from 1 to 65535"),
        ("ws://", "is not a relay address"),
        ("", "Enter the relay's address"),
    ]:
        dialog.relay.setText(typed)
        dialog.create.click()
        assert says in dialog.error.text(), typed
        assert dialog.create.isEnabled()
    assert not ProfileStore.exists(harness.root / "alice")
    dialog.reject()
    qtbot.waitUntil(run.done, timeout=10_000)
