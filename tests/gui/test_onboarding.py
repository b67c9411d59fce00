"""What a new user is told: an empty pane says what to do, a skipped recovery code is asked
about again later (and never offered as "new" before there is one), and nothing users read
speaks the protocol's language."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import msgspec
from PySide6.QtWidgets import QApplication

from client.core.preferences import REMINDER_DELAY
from client.gui.account_dialog import AccountDialog
from client.gui.app import single
from client.gui.chat_window import ChatWindow
from client.gui.onboarding import NO_CONVERSATION
from client.gui.recovery_dialog import RecoveryCodeDialog
from tests.conftest import PASSWORD

GUI = Path(__file__).parents[2] / "client" / "gui"
PROTOCOL_WORDS = ("epoch", "ratchet", "x3dh", "amk", "virtual device", "nonce")


def _user_strings(path: Path) -> list[str]:
    """Every string literal of a GUI module but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_protocol_words_in_what_users_read():
    found = [
        (path.name, text)
        for path in sorted(GUI.glob("*.py"))
        for text in _user_strings(path)
        if any(word in text.lower() for word in PROTOCOL_WORDS)
    ]
    assert found == []


def test_the_empty_pane_says_what_to_do(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    hint = window.onboarding.hint
    assert hint.isVisible() and hint.text() == NO_CONVERSATION
    window.new_chat.setText("bob")
    window.new_chat.returnPressed.emit()  # the relay is asked whether bob exists first
    qtbot.waitUntil(lambda: "No messages with bob yet" in hint.text(), timeout=10_000)
    assert hint.isVisible()
    harness.run(bob.send_text("alice", "hi"))
    qtbot.waitUntil(lambda: not hint.isVisible(), timeout=10_000)
    assert window.model is not None and window.model.rowCount() >= 1


def test_a_new_account_without_a_code_is_reminded_and_can_wait(qtbot, harness):
    alice = harness.account("alice")  # made without a recovery code
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    assert window.recovery_action.text() == "Set up a recovery code…"  # not "New"
    assert window.onboarding.reminder.isVisible()
    window.onboarding.later.click()
    assert not window.onboarding.reminder.isVisible()
    assert alice.preferences.recovery_reminder_at >= time.time() + REMINDER_DELAY - 60
    again = ChatWindow(alice)  # the next start, within the day: not asked again
    qtbot.addWidget(again)
    again.show()
    assert not again.onboarding.reminder.isVisible()

    alice.set_preferences(msgspec.structs.replace(alice.preferences, recovery_reminder_at=1))
    later = ChatWindow(alice)  # a day later: asked again
    qtbot.addWidget(later)
    later.show()
    assert later.onboarding.reminder.isVisible()
    later.onboarding.set_up.click()
    panel = later.panels.top
    assert isinstance(panel, RecoveryCodeDialog) and panel.window() is later
    panel.make.click()
    qtbot.waitUntil(lambda: panel.code != "", timeout=15_000)
    panel.done_button.click()
    qtbot.waitUntil(lambda: not later.onboarding.reminder.isVisible(), timeout=5_000)
    assert later.recovery_action.text() == "New recovery code…"


def test_skipping_the_code_at_the_first_run_asks_again_a_day_later(qtbot, harness):
    run = asyncio.ensure_future(single(harness.root / "carol", harness.url))

    def shown(kind):  # type: ignore[no-untyped-def]
        widgets = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind)]
        return next((w for w in widgets if w.isVisible()), None)

    qtbot.waitUntil(lambda: shown(AccountDialog) is not None, timeout=10_000)
    account = shown(AccountDialog)
    account.username.setText("carol")
    account.password.setText(PASSWORD)
    account.create.click()
    qtbot.waitUntil(lambda: shown(RecoveryCodeDialog) is not None, timeout=15_000)
    shown(RecoveryCodeDialog).later.click()
    qtbot.waitUntil(lambda: shown(ChatWindow) is not None, timeout=10_000)
    window = shown(ChatWindow)
    assert not window.onboarding.reminder.isVisible()  # just said "Later": not now
    reminder_at = window.client.preferences.recovery_reminder_at
    assert time.time() + REMINDER_DELAY - 60 <= reminder_at <= time.time() + REMINDER_DELAY
    window.close()
    qtbot.waitUntil(run.done, timeout=10_000)
