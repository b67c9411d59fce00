"""Controls on attachment bubbles in real windows against a real relay: the message menu offers
Reply, the reactions, Edit (of the caption) and Unsend on an attachment as on a text, and each
works on the other user's device; an unsent attachment leaves no thumbnail, file or blob."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from client.core.events import MessageStatus
from client.gui.control_actions import EditDialog
from shared.attachment import decode_pointer
from tests.gui.test_attachments import bubble_text, newest_attachment, pair, photo, row_of
from tests.gui.test_controls import labels, trigger


def test_reply_react_edit_the_caption_and_unsend_an_attachment_from_the_menu(
    qtbot, harness, tmp_path
):
    alice, bob, alice_window, bob_window, _opened = pair(qtbot, harness)
    alice_window.attachments.stage(photo(tmp_path / "harbour.jpg"))
    qtbot.keyClicks(alice_window.composer, "the harbour")
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: newest_attachment(bob_window) is not None, timeout=10_000)
    message_id = newest_attachment(bob_window)
    qtbot.waitUntil(lambda: newest_attachment(alice_window) == message_id, timeout=10_000)

    theirs = bob_window.message_menu(row_of(bob_window, message_id))
    assert {"Reply", "React 👍", "Delete for me"} <= set(labels(theirs))
    trigger(theirs, "React 👍")
    qtbot.waitUntil(lambda: alice.controls.reactions(message_id) == {"bob": "👍"}, timeout=10_000)
    trigger(bob_window.message_menu(row_of(bob_window, message_id)), "Reply")
    bob_window.send("lovely")
    qtbot.waitUntil(lambda: len(alice.messages("bob")) == 2, timeout=10_000)
    reply = alice.messages("bob")[-1]
    assert alice.controls.quote(reply.message_id) == (message_id, "alice", "the harbour")

    mine = alice_window.message_menu(row_of(alice_window, message_id))
    assert {"Reply", "React 👍", "Edit…", "Unsend"} <= set(labels(mine))
    trigger(mine, "Edit…")
    dialog = alice_window.panel
    assert isinstance(dialog, EditDialog)
    dialog.text.setText("the harbour at dawn")
    dialog.accept()
    qtbot.waitUntil(lambda: bob.message(message_id).body == "the harbour at dawn", timeout=10_000)
    assert "the harbour at dawn" in bubble_text(bob_window, message_id)
    assert bob.attachments.get(message_id).thumbnail  # the file is untouched by an edit

    path = harness.run(bob.attachments.download(message_id))
    pointer = bob._store.attachment(message_id).pointer
    trigger(alice_window.message_menu(row_of(alice_window, message_id)), "Unsend")
    qtbot.waitUntil(lambda: bob.message(message_id).status is MessageStatus.UNSENT, timeout=10_000)
    qtbot.waitUntil(lambda: bob.attachments.get(message_id) is None, timeout=10_000)
    unsent = bob_window.model.message_at(row_of(bob_window, message_id))
    assert bob_window.bubbles._lines(unsent)[0] == "alice unsent a message"
    assert newest_attachment(bob_window) is None  # no thumbnail
    qtbot.waitUntil(lambda: not Path(path).exists(), timeout=10_000)
    blob = harness.relay.store.blob_dir / decode_pointer(pointer).blob_id.hex()
    qtbot.waitUntil(lambda: not blob.exists(), timeout=10_000)
