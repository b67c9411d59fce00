""" "Read" is sent only when the window is the active one, the conversation is open and the message
was scrolled into view — real windows, a real relay."""

from __future__ import annotations

from client.core.events import MessageStatus
from client.gui.chat_window import ChatWindow


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def statuses(client, peer) -> list[MessageStatus]:
    return [m.status for m in client.messages(peer) if m.sender_user == client.username]


def settle(harness, qtbot, bob, alice) -> None:
    """Bob's receipts leave through his outbox in order: once a later message of his reached
    Alice, any "read" his window had sent before it has reached her too."""
    before = len(alice.messages("bob"))
    harness.run(bob.send_text("alice", "(later)"))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == before + 1, timeout=10_000)


def test_a_window_behind_another_or_minimised_does_not_read(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    bob_window = open_window(qtbot, bob)
    bob_window.open_conversation("alice")
    alice_window = open_window(qtbot, alice)
    alice_window.open_conversation("bob")
    alice_window.activateWindow()
    qtbot.waitUntil(alice_window.isActiveWindow)

    alice_window.send("first")
    qtbot.waitUntil(lambda: bob_window.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: statuses(alice, "bob") == [MessageStatus.DELIVERED], timeout=10_000)
    settle(harness, qtbot, bob, alice)
    # Bob's window shows it, but behind Alice's: not read.
    assert statuses(alice, "bob") == [MessageStatus.DELIVERED]
    assert bob.unread_count("alice") == 1

    bob_window.showMinimized()
    alice_window.send("second")
    qtbot.waitUntil(lambda: bob.unread_count("alice") == 2, timeout=10_000)
    settle(harness, qtbot, bob, alice)
    assert bob.unread_count("alice") == 2

    # Restored and clicked into: both are read.
    bob_window.showNormal()
    bob_window.activateWindow()
    qtbot.waitUntil(lambda: bob.unread_count("alice") == 0, timeout=10_000)
    qtbot.waitUntil(
        lambda: statuses(alice, "bob") == [MessageStatus.READ, MessageStatus.READ], timeout=10_000
    )


def test_only_what_was_scrolled_into_view_is_read(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    for i in range(40):
        harness.run(alice.send_text("bob", f"line {i}\nsecond line\nthird line"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 40, timeout=20_000)
    other = open_window(qtbot, alice)
    bob_window = open_window(qtbot, bob)
    bob_window.resize(600, 400)
    bob_window.open_conversation("alice")
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    bob_window.view.scrollToTop()

    bob_window.activateWindow()
    qtbot.waitUntil(lambda: 0 < bob.unread_count("alice") < 40, timeout=10_000)
    unread = bob.unread_count("alice")
    read = [m.body.split("\n")[0] for m in bob.messages("alice") if m.status is MessageStatus.READ]
    assert read[0] == "line 0" and len(read) == 40 - unread
    assert all(m.startswith("line ") and int(m[5:]) < 15 for m in read)

    bob_window.view.scrollToBottom()
    qtbot.waitUntil(lambda: bob.unread_count("alice") == 0, timeout=10_000)
