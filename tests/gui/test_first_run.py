"""The first run of ``ariadne --profile DIR`` as a user goes through it, in real windows: create
an account → the recovery code is offered → the chat window; then a second profile of the same
account → the new device's dialog → restore with that code → the window loads the history."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication

from client.gui.account_dialog import AccountDialog
from client.gui.app import single
from client.gui.chat_window import ChatWindow
from client.gui.recovery_dialog import RecoveryCodeDialog, RestoreDialog
from tests.conftest import PASSWORD, seed_history


def shown(kind):
    widgets = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    return widgets[0] if widgets else None


def test_first_run_creates_an_account_offers_the_code_then_a_new_device_restores(qtbot, harness):
    bob = harness.account("bob")
    run = asyncio.ensure_future(single(harness.root / "alice", harness.url))
    qtbot.waitUntil(lambda: shown(AccountDialog) is not None, timeout=10_000)
    account = shown(AccountDialog)
    account.username.setText("alice")
    account.password.setText(PASSWORD)
    account.create.click()
    qtbot.waitUntil(lambda: shown(RecoveryCodeDialog) is not None, timeout=15_000)
    offer = shown(RecoveryCodeDialog)
    offer.make.click()
    qtbot.waitUntil(lambda: offer.code != "", timeout=15_000)
    code = offer.code
    offer.done_button.click()
    qtbot.waitUntil(lambda: shown(ChatWindow) is not None, timeout=10_000)
    window = shown(ChatWindow)
    alice = window.client
    harness.run(alice.send_text("bob", "hello from the first run"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: alice.messages("bob")[-1].server_ts is not None, timeout=10_000)
    seed_history(alice, "bob", bob.device_id, 1200, alice.messages("bob")[-1].server_ts)
    harness.run(alice.wait_saved(), timeout=60)
    window.close()
    qtbot.waitUntil(run.done, timeout=10_000)
    assert run.result() == 0

    run = asyncio.ensure_future(single(harness.root / "alice-laptop", harness.url))
    qtbot.waitUntil(lambda: shown(AccountDialog) is not None, timeout=10_000)
    account = shown(AccountDialog)
    account.username.setText("alice")
    account.password.setText(PASSWORD)
    account.device.setText("Laptop")
    account.login.click()
    qtbot.waitUntil(lambda: shown(RestoreDialog) is not None, timeout=15_000)
    shown(RestoreDialog).reject()  # "Not now": the window opens, the device still pending
    qtbot.waitUntil(lambda: shown(ChatWindow) is not None, timeout=10_000)
    shown(ChatWindow).close()
    qtbot.waitUntil(run.done, timeout=10_000)
    run = asyncio.ensure_future(single(harness.root / "alice-laptop", harness.url))
    qtbot.waitUntil(lambda: shown(RestoreDialog) is not None, timeout=15_000)  # offered again
    restore = shown(RestoreDialog)
    restore.code.setText(code)
    restore.with_code.click()
    qtbot.waitUntil(lambda: shown(ChatWindow) is not None, timeout=15_000)
    window = shown(ChatWindow)
    laptop = window.client
    qtbot.waitUntil(
        lambda: "History restored: 1,201 messages" in window.progress.text(), timeout=30_000
    )
    assert len(laptop.messages("bob")) == 1201
    window.close()
    qtbot.waitUntil(run.done, timeout=10_000)
    assert run.result() == 0
