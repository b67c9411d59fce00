"""What a user sees besides messages: system lines, "couldn't decrypt", day separators, and the
first-run account dialog."""

from __future__ import annotations

from PySide6.QtCore import Qt

from client.core.events import MessageStatus
from client.gui.account_dialog import AccountDialog
from client.gui.bubbles import separator
from client.gui.chat_window import ChatWindow
from client.gui.conversation_model import ConversationModel
from tests.conftest import PASSWORD


def open_window(qtbot, client, peer):
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    window.open_conversation(peer)
    return window


def bodies(window):
    model = window.model
    return [model.data(model.index(r)) for r in range(model.rowCount())]


def test_device_changes_appear_as_system_lines_for_the_user_and_contacts(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(alice.send_text("bob", "hi"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    alice_window = open_window(qtbot, alice, "bob")
    bob_window = open_window(qtbot, bob, "alice")
    harness.second_device(bob, "Laptop")
    qtbot.waitUntil(lambda: "You added a device 'Laptop'" in bodies(bob_window), timeout=10_000)
    harness.run(alice.send_text("bob", "hello to both your devices"))  # alice learns the list
    qtbot.waitUntil(lambda: "bob added a device 'Laptop'" in bodies(alice_window), timeout=10_000)
    line = next(m for m in alice.messages("bob") if m.system)
    assert line.sender_user == "" and alice.unread_count("bob") == 0


def test_undecryptable_message_is_shown_as_such(qtbot, harness):
    alice = harness.account("alice")
    bob = harness.account("bob")
    harness.run(alice.send_text("bob", "first"))
    qtbot.waitUntil(lambda: len(bob.messages("alice")) == 1, timeout=10_000)
    harness.run(bob.close())
    harness.run(alice.send_text("bob", "this one gets tampered with"))
    db = harness.relay.store._db
    qtbot.waitUntil(
        lambda: (
            db.execute(
                "SELECT count(*) FROM queue WHERE device_id = ?", (bob.device_id,)
            ).fetchone()[0]
            == 1
        ),
        timeout=10_000,
    )
    seq, payload = db.execute(
        "SELECT seq, payload FROM queue WHERE device_id = ?", (bob.device_id,)
    ).fetchone()
    tampered = bytearray(payload)
    tampered[-10] ^= 0x01
    db.execute("UPDATE queue SET payload = ? WHERE seq = ?", (bytes(tampered), seq))
    db.commit()
    bob = harness.reopen(bob)
    window = open_window(qtbot, bob, "alice")
    qtbot.waitUntil(
        lambda: bodies(window) == ["first", "couldn't decrypt this message"], timeout=10_000
    )
    assert window.model.message_at(1).status is MessageStatus.UNDECRYPTABLE


def test_day_separator_above_the_first_message_of_each_day(qtbot, harness):
    alice = harness.account("alice")
    harness.account("bob")
    for text in ("one", "two"):
        harness.run(alice.send_text("bob", text))
    qtbot.waitUntil(lambda: all(m.server_ts for m in alice.messages("bob")), timeout=10_000)
    model = ConversationModel(alice, "bob")
    assert separator(model.index(0)) == "Today"
    assert separator(model.index(1)) is None


def test_account_dialog_creates_an_account_and_reports_a_wrong_password(qtbot, harness):
    dialog = AccountDialog(harness.root / "carol", harness.url)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClicks(dialog.username, "carol")
    qtbot.keyClicks(dialog.password, PASSWORD)
    qtbot.mouseClick(dialog.create, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.result_client().done, timeout=15_000)
    carol = dialog.result_client().result()
    harness.clients.append(carol)
    assert carol.username == "carol"
    qtbot.waitUntil(lambda: carol.is_member, timeout=10_000)

    other = AccountDialog(harness.root / "carol-laptop", harness.url)
    qtbot.addWidget(other)
    other.show()
    qtbot.keyClicks(other.username, "carol")
    qtbot.keyClicks(other.password, "not the password")
    qtbot.mouseClick(other.login, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: other.error.text() == "Wrong username or password.", timeout=15_000)
    assert not other.result_client().done() and other.login.isEnabled()
