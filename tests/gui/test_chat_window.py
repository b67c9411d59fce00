"""Real chat windows, driven like a user would, through a real relay."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from client.core.events import MessageStatus
from client.gui.chat_window import ChatWindow


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def shown(window: ChatWindow) -> list[tuple[str, str]]:
    model = window.model
    if model is None:
        return []
    return [
        (model.message_at(r).sender_user, model.message_at(r).body) for r in range(model.rowCount())
    ]


def test_alice_types_enter_and_bobs_window_shows_it_delivered(qtbot, harness):
    alice = harness.account("alice")
    alice_laptop = harness.second_device(alice, "Laptop")
    bob = harness.account("bob")
    alice_window = open_window(qtbot, alice)
    bob_window = open_window(qtbot, bob)
    laptop_window = open_window(qtbot, alice_laptop)
    qtbot.waitUntil(lambda: alice_window.connection.text() == "Online", timeout=10_000)

    qtbot.keyClicks(alice_window.new_chat, "bob")
    qtbot.keyClick(alice_window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: alice_window.model is not None, timeout=10_000)
    qtbot.keyClicks(alice_window.composer, "Hello Bob, from a real window")
    qtbot.keyClick(alice_window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: alice_window.composer.toPlainText() == "", timeout=5_000)

    qtbot.waitUntil(lambda: bob_window.threads.count() == 1, timeout=10_000)
    bob_window.threads.setCurrentRow(0)
    qtbot.waitUntil(
        lambda: shown(bob_window) == [("alice", "Hello Bob, from a real window")], timeout=10_000
    )
    qtbot.waitUntil(
        lambda: alice_window.model.message_at(0).status is MessageStatus.DELIVERED, timeout=10_000
    )
    # Alice's other device shows her own message too.
    qtbot.waitUntil(lambda: laptop_window.threads.count() == 1, timeout=10_000)
    laptop_window.threads.setCurrentRow(0)
    qtbot.waitUntil(
        lambda: shown(laptop_window) == [("alice", "Hello Bob, from a real window")], timeout=10_000
    )
    # Bob brings his window to the front, open on the conversation: he has read it, and both of
    # Alice's devices show "read".
    bob_window.activateWindow()
    qtbot.waitUntil(
        lambda: alice_window.model.message_at(0).status is MessageStatus.READ, timeout=10_000
    )
    qtbot.waitUntil(
        lambda: laptop_window.model.message_at(0).status is MessageStatus.READ, timeout=10_000
    )


def test_shift_enter_adds_a_line_instead_of_sending(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    window = open_window(qtbot, alice)
    qtbot.keyClicks(window.new_chat, "bob")
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.model is not None, timeout=10_000)
    qtbot.keyClicks(window.composer, "first line")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer, "second line")
    assert window.composer.toPlainText() == "first line\nsecond line"
    assert window.model.rowCount() == 0
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: shown(window) == [("alice", "first line\nsecond line")], timeout=5_000)


def test_read_state_reaches_the_sender_and_the_readers_other_device(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    bob_phone = harness.second_device(bob, "Phone")
    harness.run(alice.send_text("bob", "did you read this?"))
    qtbot.waitUntil(lambda: bob_phone.unread_count("alice") == 1, timeout=10_000)
    phone_window = ChatWindow(bob_phone)  # never shown: the phone stays in Bob's pocket
    qtbot.addWidget(phone_window)
    assert bob_phone.unread_count("alice") == 1
    assert "(1)" in phone_window.threads.item(0).text()

    bob_window = open_window(qtbot, bob)  # Bob looks at the conversation on his desktop
    qtbot.waitUntil(lambda: shown(bob_window) == [("alice", "did you read this?")], timeout=10_000)
    sent = alice.messages("bob")[0]
    qtbot.waitUntil(
        lambda: alice._store.message(sent.message_id).status is MessageStatus.READ, timeout=10_000
    )
    qtbot.waitUntil(lambda: bob_phone.unread_count("alice") == 0, timeout=10_000)
    qtbot.waitUntil(lambda: "(1)" not in phone_window.threads.item(0).text(), timeout=10_000)


def test_server_view_shows_the_envelopes_and_none_of_the_texts(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    texts = ["meet at the north gate", "bring the red thread", "don't tell the minotaur"]
    for text in texts:
        harness.run(alice.send_text("bob", text))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 3, timeout=10_000)
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.mouseClick(window.server_button, Qt.MouseButton.LeftButton)
    view = window.server_view
    qtbot.addWidget(view)
    qtbot.waitUntil(view.loaded.is_set, timeout=10_000)
    rows = view.table.rowCount()
    assert rows >= 3 + 1  # three messages to bob's device, and bob's receipts back to alice
    cells = " ".join(view.cell_texts())
    assert bob.device_id in cells and alice.device_id in cells
    for text in texts:
        assert text not in cells
        assert text.encode().hex(" ")[:20] not in cells
    harness.run(alice.send_text("bob", "one more"))  # the view refreshes on demand
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 4, timeout=10_000)
    view.refresh()
    qtbot.waitUntil(view.loaded.is_set, timeout=10_000)
    assert view.table.rowCount() > rows


def test_safety_number_matches_on_both_sides_and_lists_devices(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    laptop = harness.second_device(bob, "Laptop")
    harness.run(alice.send_text("bob", "hi"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    alice_window, bob_window = open_window(qtbot, alice), open_window(qtbot, bob)
    alice_window.open_conversation("bob")
    bob_window.open_conversation("alice")
    alice_panel = alice_window.show_contact()
    bob_panel = bob_window.show_contact()
    qtbot.addWidget(alice_panel)
    qtbot.addWidget(bob_panel)
    assert len(alice_panel.groups) == 12 and alice_panel.groups == bob_panel.groups
    listed = [alice_panel.devices.item(i).text() for i in range(alice_panel.devices.count())]
    assert any(laptop.device_id in row and row.startswith("Laptop") for row in listed)
    assert alice_panel.verify.text() == "Mark as verified" and not alice.is_verified("bob")
    alice_panel.verify.click()
    assert alice.is_verified("bob") and alice_panel.verify.text().startswith("Verified")
    own = bob_window.show_own_devices()
    qtbot.addWidget(own)
    assert list(own.remove_buttons) == [laptop.device_id]  # every device but this one
    labels = {label.objectName(): label for label in own.findChildren(QLabel) if label.objectName()}
    assert set(labels) == {bob.device_id, laptop.device_id}
    qtbot.waitUntil(lambda: "last seen" in labels[laptop.device_id].text(), timeout=10_000)


def test_reopened_profile_shows_history_and_what_arrived_meanwhile(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(alice.send_text("bob", "before closing"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    bob_window = open_window(qtbot, bob)
    bob_window.close()
    harness.run(bob.close())
    harness.run(alice.send_text("bob", "while you were away"))
    bob = harness.reopen(bob)
    bob_window = open_window(qtbot, bob)
    qtbot.waitUntil(
        lambda: (
            shown(bob_window) == [("alice", "before closing"), ("alice", "while you were away")]
        ),
        timeout=10_000,
    )


def test_offline_window_keeps_the_typed_message_and_delivers_it_later(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    harness.stop_relay()
    qtbot.waitUntil(
        lambda: window.connection.text().startswith("Relay unreachable"), timeout=10_000
    )
    qtbot.keyClicks(window.composer, "sent while offline")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5_000)
    assert window.model.message_at(0).status is MessageStatus.SENDING
    harness.restart_relay()
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=15_000)
    qtbot.waitUntil(
        lambda: [m.body for m in bob.messages("alice")] == ["sent while offline"], timeout=15_000
    )
    qtbot.waitUntil(
        lambda: window.model.message_at(0).status is MessageStatus.DELIVERED, timeout=10_000
    )


def test_a_chat_with_a_user_that_does_not_exist_is_refused_up_front(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    window = open_window(qtbot, alice)
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    qtbot.keyClicks(window.new_chat, "bobb")
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "no user “bobb”" in window.new_chat_note.text(), timeout=10_000)
    assert window.new_chat_note.isVisible()
    assert window.new_chat.text() == "bobb"  # kept, to correct
    assert window.model is None and window.threads.count() == 0
    assert not window.composer.isEnabled()

    qtbot.keyClick(window.new_chat, Qt.Key.Key_Backspace)
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.model is not None, timeout=10_000)
    assert window.model.thread == "bob" and not window.new_chat_note.isVisible()
    assert window.composer.isEnabled()


def test_a_chat_cannot_start_unchecked_while_the_relay_is_away(qtbot, harness):
    alice = harness.account("alice")
    window = open_window(qtbot, alice)
    qtbot.waitUntil(lambda: window.connection.text() == "Online", timeout=10_000)
    harness.stop_relay()
    qtbot.waitUntil(lambda: window.connection.text() != "Online", timeout=10_000)
    qtbot.keyClicks(window.new_chat, "bob")
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: "Could not check bob now" in window.new_chat_note.text(), timeout=10_000
    )
    assert window.new_chat.text() == "bob" and window.model is None
