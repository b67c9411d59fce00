"""Nothing typed is lost: the length limit, long pastes, and a draft per conversation that
survives a restart — in real windows against a real relay."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from client.gui.chat_window import ChatWindow
from client.gui.composer import COUNTER_FROM, split_text
from shared.envelope import MAX_TEXT


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def bodies(client, peer) -> list[str]:
    return [m.body for m in client.messages(peer)]


def test_a_message_over_the_limit_is_kept_and_can_go_in_parts(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    assert not window.counter.isVisible()

    near = "word " * int(MAX_TEXT * COUNTER_FROM / 5)
    window.composer.setPlainText(near)
    assert window.counter.isVisible()
    assert f"{len(near):,} / {MAX_TEXT:,}" in window.counter.label.text()
    assert not window.counter.split_button.isVisible()

    # A paste that takes it over the limit goes in whole, and Enter does not send it.
    long_paste = "para " * (MAX_TEXT // 5)
    QGuiApplication.clipboard().setText(long_paste)
    window.composer.moveCursor(window.composer.textCursor().MoveOperation.End)
    qtbot.keyClick(window.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    typed = near + long_paste
    assert window.composer.toPlainText() == typed
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    assert window.composer.toPlainText() == typed
    assert window.model.rowCount() == 0
    qtbot.waitUntil(lambda: not window._pending)
    assert window.statusBar().currentMessage() == ""  # held back here, not refused later
    assert "too many for one message" in window.counter.label.text()
    assert window.counter.split_button.text() == "Send as 2 messages"

    qtbot.mouseClick(window.counter.split_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.composer.toPlainText() == "", timeout=5_000)
    qtbot.waitUntil(lambda: len(bodies(bob, "alice")) == 2, timeout=15_000)
    assert "".join(bodies(bob, "alice")) == typed
    assert all(len(part) <= MAX_TEXT for part in bodies(bob, "alice"))


def test_split_keeps_words_whole_and_loses_nothing():
    text = ("x" * 7 + " ") * 30 + "end"
    parts = split_text(text, 40)
    assert "".join(parts) == text
    assert all(len(p) <= 40 for p in parts)
    assert all(p.endswith(" ") for p in parts[:-1])
    assert split_text("z" * 100, 40) == ["z" * 40, "z" * 40, "z" * 20]


def test_each_conversation_keeps_its_own_draft_across_a_restart(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    harness.account("carol")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.keyClicks(window.composer, "for bob only")
    window.open_conversation("carol")
    assert window.composer.toPlainText() == ""
    qtbot.keyClicks(window.composer, "half a thought for carol")
    window.open_conversation("bob")
    assert window.composer.toPlainText() == "for bob only"
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.composer.toPlainText() == "", timeout=5_000)
    window.open_conversation("carol")
    assert window.composer.toPlainText() == "half a thought for carol"
    window.close()

    again = harness.reopen(alice)
    reopened = open_window(qtbot, again)
    reopened.open_conversation("carol")
    assert reopened.composer.toPlainText() == "half a thought for carol"
    reopened.open_conversation("bob")
    assert reopened.composer.toPlainText() == ""


def test_switching_right_after_enter_keeps_what_was_typed_next(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.account("carol")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.keyClicks(window.composer, "for bob")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    # Before the message is even stored, the user is in another chat, typing.
    window.open_conversation("carol")
    qtbot.keyClicks(window.composer, "for carol")
    qtbot.waitUntil(lambda: bodies(bob, "alice") == ["for bob"], timeout=10_000)
    assert window.composer.toPlainText() == "for carol"
    window.open_conversation("bob")
    assert window.composer.toPlainText() == ""


def test_typing_on_right_after_enter_keeps_only_the_new_text(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    qtbot.keyClicks(window.composer, "one")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.keyClicks(window.composer, " and two")  # before the first is even stored
    qtbot.waitUntil(lambda: bodies(bob, "alice") == ["one"], timeout=10_000)
    assert window.composer.toPlainText() == " and two"
    window.composer.clear()
    qtbot.keyClicks(window.composer, "three")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.keyClick(window.composer, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(window.composer, "four")  # replaced before it was stored
    qtbot.waitUntil(lambda: bodies(bob, "alice") == ["one", "three"], timeout=10_000)
    assert window.composer.toPlainText() == "four"


def test_a_draft_timer_left_running_when_the_client_closes_writes_nothing(qtbot, harness):
    """The client can close under a window still open (a device removed and its data deleted,
    or the app's teardown): the draft's pending save must not write to a closed profile."""
    alice = harness.account("alice")
    harness.account("bob")
    window = open_window(qtbot, alice)
    window.open_conversation("bob")
    window.composer.setPlainText("typed just before the end")
    assert window._draft_timer.isActive()
    harness.run(alice.close())
    qtbot.waitUntil(lambda: not window._draft_timer.isActive(), timeout=5_000)
