"""Controls from a real window's message menu and header, against a real relay: reply (and the
quote's jump to the original), react and change or remove it, edit (with its versions), unsend,
delete for me, the disappearing-messages timer and delete conversation — each seen on the other
user's device."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from client.core.client import AriadneClient
from client.core.events import MessageStatus
from client.gui.chat_window import ChatWindow
from client.gui.control_actions import EditDialog, VersionsPanel
from client.gui.conversation_model import PAGE
from tests.conftest import FAST, PASSWORD
from tests.gui.test_message_menu import labels, trigger


def open_window(qtbot, client, peer: str) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    window.open_conversation(peer)
    return window


def row_of(window: ChatWindow, body: str) -> int:
    model = window.model
    return next(r for r in range(model.rowCount()) if model.message_at(r).body == body)


def test_react_edit_unsend_and_delete_from_the_menu(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice, "bob")
    window.send("Lunch at one?")
    window.send("Or two?")
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 2, timeout=10_000)
    first = window.model.message_at(row_of(window, "Lunch at one?")).message_id
    second = window.model.message_at(row_of(window, "Or two?")).message_id

    menu = window.message_menu(row_of(window, "Lunch at one?"))
    assert {"Reply", "React 👍", "Edit…", "Unsend", "Delete for me"} <= set(labels(menu))
    trigger(menu, "React 👍")
    qtbot.waitUntil(lambda: bob.controls.reactions(first) == {"alice": "👍"}, timeout=10_000)
    assert window.bubbles._lines(window.model.message_at(row_of(window, "Lunch at one?")))[
        1
    ].endswith("👍 1")
    trigger(window.message_menu(row_of(window, "Lunch at one?")), "React ❤️")
    qtbot.waitUntil(lambda: bob.controls.reactions(first) == {"alice": "❤️"}, timeout=10_000)
    trigger(window.message_menu(row_of(window, "Lunch at one?")), "React Remove mine")
    qtbot.waitUntil(lambda: bob.controls.reactions(first) == {}, timeout=10_000)

    trigger(window.message_menu(row_of(window, "Lunch at one?")), "Edit…")
    dialog = window.panel
    assert isinstance(dialog, EditDialog)
    dialog.text.setText("Lunch at half past one?")
    dialog.accept()
    qtbot.waitUntil(lambda: bob.message(first).body == "Lunch at half past one?", timeout=10_000)
    row = row_of(window, "Lunch at half past one?")
    assert "edited" in window.bubbles._lines(window.model.message_at(row))[1]
    trigger(window.message_menu(row), "Versions")
    assert window.panel.rows == ["1. Lunch at one?", "2. Lunch at half past one?"]
    assert isinstance(window.panel, VersionsPanel)

    trigger(window.message_menu(row_of(window, "Or two?")), "Unsend")
    qtbot.waitUntil(lambda: bob.message(second).status is MessageStatus.UNSENT, timeout=10_000)
    unsent = window.model.row_of(second)
    assert window.bubbles._lines(window.model.message_at(unsent))[0] == "alice unsent a message"
    assert "Unsend" not in labels(window.message_menu(unsent))

    trigger(window.message_menu(row_of(window, "Lunch at half past one?")), "Delete for me")
    qtbot.waitUntil(lambda: window.model.row_of(first) is None, timeout=10_000)
    assert bob.message(first) is not None  # for alice only


def test_reply_quotes_and_jumps_to_an_original_pages_back(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice, "bob")
    window.send("the original")
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    original = window.model.message_at(0).message_id
    trigger(window.message_menu(0), "Reply")
    assert window.controls.reply_bar.isVisibleTo(window)
    window.send("the reply")
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 2, timeout=10_000)
    reply = bob.messages("alice")[-1]
    assert bob.controls.quote(reply.message_id) == (original, "alice", "the original")
    for n in range(PAGE + 20):  # push the original out of the window's first page
        harness.run(bob.send_text("alice", f"filler {n}"))
    # Seventy sends and their deliveries: slow on two busy cores, so a generous deadline.
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == PAGE + 22, timeout=90_000)
    harness.run(bob.send_text("alice", "a late reply", reply_to=original))
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == PAGE + 23, timeout=10_000)
    window.close()
    window = open_window(qtbot, alice, "bob")  # a fresh window: the newest page only
    assert window.model.row_of(original) is None  # not loaded
    late = window.model.row_of(alice.messages("bob")[-1].message_id)
    assert window.bubbles._lines(window.model.message_at(late))[0].startswith("↪ alice: the orig")
    window._on_bubble_clicked(window.model.index(late))
    assert window.model.row_of(original) is not None
    assert window.view.currentIndex().row() == window.model.row_of(original)


def test_timer_in_the_header_and_delete_conversation(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice, "bob")
    window.send("before the timer")
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    timer = window.controls.timer
    timer.setCurrentIndex(timer.findData(86_400))
    timer.activated.emit(timer.currentIndex())
    qtbot.waitUntil(lambda: bob.controls.timer("alice") == 86_400, timeout=10_000)
    line = "alice set disappearing messages to 24 hours"
    qtbot.waitUntil(lambda: any(m.body == line for m in bob.messages("alice")), timeout=10_000)
    assert any(window.model.message_at(r).body == line for r in range(window.model.rowCount()))
    bob.controls.set_timer("alice", 300)
    qtbot.waitUntil(lambda: timer.currentData() == 300, timeout=10_000)

    window.controls.delete_action.trigger()
    box = window.controls.confirm
    assert box is not None and "bob keeps their copy" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.model.rowCount() == 3  # asked first; cancelled, nothing changed
    window.controls.delete_action.trigger()
    window.controls.confirm.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: window.model.rowCount() == 0, timeout=10_000)
    assert alice.messages("bob") == []
    assert len(bob.messages("alice")) == 3  # bob keeps his copy


def test_a_quote_whose_original_is_only_in_the_mailbox_loads_it_and_jumps(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    code = harness.run(alice.setup_recovery())
    original = harness.run(alice.send_text("bob", "the original, long ago"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    for n in range(PAGE + 20):
        harness.run(bob.send_text("alice", f"filler {n}"))
    harness.run(bob.send_text("alice", "a late reply", reply_to=original.message_id))
    # Seventy sends and their deliveries: slow on two busy cores, so a generous deadline.
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == PAGE + 22, timeout=90_000)
    harness.run(alice.wait_saved())
    laptop = harness.run(
        AriadneClient.add_device(
            harness.root / "alice-restored",
            harness.url,
            "alice",
            PASSWORD,
            "Restored",
            backoff=FAST,
        )
    )
    harness.clients.append(laptop)
    harness.run(laptop.restore(code=code))  # the newest page of each conversation only
    assert laptop.message(original.message_id) is None
    window = open_window(qtbot, laptop, "bob")
    reply = laptop.messages("bob")[-1]
    late = window.model.row_of(reply.message_id)
    quote = window.bubbles._lines(window.model.message_at(late))[0]
    assert quote.startswith("↪ an earlier message")  # not on this device yet
    window._on_bubble_clicked(window.model.index(late))
    qtbot.waitUntil(lambda: window.model.row_of(original.message_id) is not None, timeout=20_000)
    assert window.view.currentIndex().row() == window.model.row_of(original.message_id)
    # The reply's bubble (its quote line kept with its measured height) now quotes it.
    assert window.bubbles._lines(reply)[0].startswith("↪ alice: the original")
