"""The relay's limits as the user sees them, in real windows: a message held back by a full
queue says why on its bubble (and goes out later), a full mailbox shows a status line, and a
throttled login says how long to wait."""

from __future__ import annotations

import re

from client.core.client import MAILBOX_FULL_TEXT
from client.core.events import MessageStatus
from client.gui.account_dialog import AccountDialog
from client.gui.chat_window import ChatWindow
from relay.server import Limits, start_relay
from tests.conftest import PASSWORD


def with_limits(harness, limits: Limits) -> None:
    """Restart the harness's relay (same port, same data) with ``limits``."""
    port = int(harness.url.rsplit(":", 1)[1])
    harness.stop_relay()
    harness.relay, harness.server = harness.run(
        start_relay("127.0.0.1", port, harness.root / "relay", limits)
    )


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def bubble_meta(window: ChatWindow) -> list[str]:
    """The small line under each bubble, as the delegate paints it."""
    delegate = window.view.itemDelegate()
    model = window.model
    return [delegate._lines(model.message_at(row))[1] for row in range(model.rowCount())]


def test_a_message_held_by_a_full_queue_says_why_on_its_bubble_then_goes(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    with_limits(harness, Limits(queue_bytes=2000))
    window = open_window(qtbot, alice)
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    harness.run(alice.send_text("bob", "hello"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    harness.run(bob.close())  # bob's device is off; reopen() starts it again
    window.open_conversation("bob")
    for i in range(15):
        harness.run(alice.send_text("bob", f"while bob is away {i}"))
    waiting = "bob's device has too many waiting messages — try later"
    qtbot.waitUntil(lambda: any(waiting in meta for meta in bubble_meta(window)), timeout=20_000)
    assert "not sent" not in " ".join(bubble_meta(window))
    bob = harness.reopen(bob)
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 16, timeout=60_000)
    qtbot.waitUntil(
        lambda: all(m.status is not MessageStatus.SENDING for m in alice.messages("bob")),
        timeout=10_000,
    )
    assert not any(waiting in meta for meta in bubble_meta(window))


def test_a_full_mailbox_shows_a_status_line(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    with_limits(harness, Limits(mailbox_bytes=300))
    window = open_window(qtbot, alice)
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    assert window.relay_limit.text() == ""
    for i in range(6):
        harness.run(alice.send_text("bob", f"message {i}"))
    qtbot.waitUntil(lambda: window.relay_limit.text() == MAILBOX_FULL_TEXT, timeout=20_000)


def test_a_throttled_login_says_how_long_to_wait(qtbot, harness):
    harness.account("alice")
    with_limits(
        harness,
        Limits(free_login_failures_per_account=1, login_wait_first=60.0),
    )
    dialog = AccountDialog(harness.root / "laptop", harness.url)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.username.setText("alice")
    dialog.device.setText("Laptop")
    for _ in range(2):
        dialog.password.setText("not the password")
        dialog.login.click()
        qtbot.waitUntil(lambda: dialog.login.isEnabled(), timeout=15_000)
        assert dialog.error.text() == "Wrong username or password."
    dialog.password.setText(PASSWORD)
    dialog.login.click()
    qtbot.waitUntil(lambda: dialog.login.isEnabled(), timeout=15_000)
    shown = re.fullmatch(r"Too many attempts — try again in (\d+) s", dialog.error.text())
    assert shown is not None and 50 <= int(shown.group(1)) <= 60


def test_too_many_waiting_devices_says_what_to_do(qtbot, harness):
    harness.account("alice")
    with_limits(harness, Limits(pending_devices=0))
    dialog = AccountDialog(harness.root / "laptop", harness.url)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.username.setText("alice")
    dialog.password.setText(PASSWORD)
    dialog.login.click()
    qtbot.waitUntil(lambda: dialog.login.isEnabled(), timeout=15_000)
    assert dialog.error.text().startswith("Too many new devices of this account wait for approval")
