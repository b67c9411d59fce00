"""A relay that does not know this device (it lost its data, or says so) is shown as that, with
Retry, and the window never suggests deleting anything."""

from __future__ import annotations

import shutil

from client.gui.chat_window import ChatWindow
from tests.conftest import PASSWORD


def test_a_relay_that_lost_the_device_is_shown_with_retry_and_no_deletion(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "kept"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()

    harness.relay.store.forget_device(alice.device_id)  # the relay's data for it is gone
    harness.run(harness.relay.store.durable())
    harness.relay.disconnect(alice.device_id, 4000, "forgotten")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert "The relay does not know this device — it may have lost its data" in (
        window.banner.text()
    )
    assert window.banner_button.text() == "Retry"
    assert "delete" not in window.banner.text().lower()
    assert window.connection.text() == "The relay does not know this device"
    assert not alice.removed and window.composer.isEnabled()
    assert [m.body for m in alice.messages("bob")] == ["kept"]

    window.banner_button.click()  # asks again; the relay still does not know it
    qtbot.waitUntil(lambda: alice.link.login_error is None, timeout=10_000)
    qtbot.waitUntil(lambda: alice.unknown_to_relay, timeout=10_000)
    qtbot.waitUntil(lambda: window.banner_button.text() == "Retry", timeout=10_000)
    assert not alice.removed


def test_a_wiped_relay_is_rebuilt_from_the_window(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(bob.send_text("alice", "before the wipe"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 1, timeout=10_000)
    window = ChatWindow(alice)
    qtbot.addWidget(window)
    window.show()
    assert not window.rebuild_button.isVisible()

    harness.stop_relay()
    shutil.rmtree(harness.root / "relay")  # the relay lost everything
    harness.restart_relay()
    qtbot.waitUntil(lambda: window.rebuild_button.isVisible(), timeout=15_000)
    assert "may have lost its data" in window.banner.text()
    dialog = window.show_rebuild()
    qtbot.addWidget(dialog)
    dialog.make.click()
    assert "password" in dialog.note.text()  # asked for, not guessed
    dialog.password.setText(PASSWORD)
    dialog.make.click()
    qtbot.waitUntil(lambda: dialog.isHidden(), timeout=20_000)
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    assert not window.banner.isVisible() and not window.rebuild_button.isVisible()
    assert [m.body for m in alice.messages("bob")] == ["before the wipe"]
