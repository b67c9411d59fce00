"""A relay that does not know this device (it lost its data, or says so) is shown as that, with
Retry, and the window never suggests deleting anything."""

from __future__ import annotations

from client.gui.chat_window import ChatWindow


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
