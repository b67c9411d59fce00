"""A contact's open window shows a device change when it happens, not with the next message."""

from __future__ import annotations

from client.gui.chat_window import ChatWindow


def test_a_contacts_window_shows_a_new_device_when_it_is_added(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(alice.send_text("bob", "hi"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    window = ChatWindow(bob)
    qtbot.addWidget(window)
    window.show()
    window.open_conversation("alice")
    harness.second_device(alice, "Laptop")  # no message follows

    def bodies() -> list[str]:
        model = window.model
        return [model.message_at(row).body for row in range(model.rowCount())] if model else []

    qtbot.waitUntil(lambda: bodies()[-1:] == ["alice added a device 'Laptop'"], timeout=10_000)
    assert bodies() == ["hi", "alice added a device 'Laptop'"]
