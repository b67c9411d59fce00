"""An upload in a real chat window when the app is closed half-way: closing the window does not
cancel it, and after the profile is opened again its bubble shows it sending, with how far the
relay's copy got, until the message leaves; the window shows it as a fresh upload, with its
progress and Cancel, and Cancel stops it for good (real relay, real windows)."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from client.core.events import MessageStatus
from client.core.store_attachments import FileState
from client.gui.attachment_bubbles import RETRY_HINT, STATE_TEXT
from relay.handlers import HANDLERS
from shared import wire
from shared.attachment import blob_size
from tests.e2e.test_attachments import digest, write
from tests.gui.test_attachments import (
    bubble_text,
    chat_with,
    newest_attachment,
    open_window,
    pair,
    row_of,
)
from tests.gui.test_message_menu import labels, trigger

HELD_AT = (4, 6)  # the relay stops answering after these many chunks (the app closes at 4)


def _releasing(close, held):  # type: ignore[no-untyped-def]
    def releasing() -> None:
        for event in held.values():
            event.set()
        close()

    return releasing


def test_an_upload_goes_on_after_the_app_was_closed_and_its_bubble_shows_it(
    qtbot, harness, tmp_path, monkeypatch
):
    alice, _bob, alice_window, bob_window, _ = pair(qtbot, harness)
    source = write(tmp_path / "holiday.mov", 12 * wire.BLOB_FRAME)
    written: list[int] = []
    held = {count: asyncio.Event() for count in HELD_AT}
    upload = HANDLERS[wire.UploadChunk]

    async def holding(session, frame):  # type: ignore[no-untyped-def]
        reply = await upload(session, frame)
        if frame.data:
            written.append(len(frame.data))
            if len(written) in held:
                await held[len(written)].wait()
        return reply

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, holding)
    # However the test ends, the relay's held answers go, so that it can stop.
    monkeypatch.setattr(harness, "close", _releasing(harness.close, held))
    alice_window.attachments.stage(source)
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(written) == HELD_AT[0], timeout=10_000)
    message_id = newest_attachment(alice_window)
    alice_window.close()  # the app quits: its windows close first, then its devices
    assert alice.attachments.get(message_id).state is FileState.UPLOADING, "not cancelled"
    alice = harness.reopen(alice)
    held[HELD_AT[0]].set()

    window = open_window(qtbot, alice)
    chat_with(qtbot, window, "bob")
    qtbot.waitUntil(lambda: len(written) == HELD_AT[1], timeout=10_000)
    qtbot.waitUntil(lambda: "%" in bubble_text(window, message_id), timeout=10_000)
    sent, total = alice.attachments.get(message_id).progress
    # The relay holds six chunks, the sixth not yet acknowledged: it went on from the fourth.
    assert sent == (HELD_AT[1] - 1) * wire.BLOB_FRAME
    text = bubble_text(window, message_id)
    assert f"{STATE_TEXT[FileState.UPLOADING]} {100 * sent // total}%" in text
    assert "holiday.mov · 3.1 MB" in text
    assert window.model.message_at(window.model.rowCount() - 1).status is MessageStatus.SENDING

    held[HELD_AT[1]].set()
    qtbot.waitUntil(lambda: newest_attachment(bob_window) is not None, timeout=20_000)
    received = newest_attachment(bob_window)
    path = harness.run(bob_window.client.attachments.download(received))
    assert digest(path) == digest(source)
    assert sum(written) == blob_size(12 * wire.BLOB_FRAME), "nothing was sent twice"
    qtbot.waitUntil(lambda: STATE_TEXT[FileState.READY] in bubble_text(window, message_id))


def test_an_upload_that_went_on_after_a_restart_shows_cancel_and_cancel_stops_it(
    qtbot, harness, tmp_path, monkeypatch
):
    alice, _bob, alice_window, bob_window, _ = pair(qtbot, harness)
    source = write(tmp_path / "holiday.mov", 12 * wire.BLOB_FRAME)
    written: list[int] = []
    held = {count: asyncio.Event() for count in HELD_AT}
    upload = HANDLERS[wire.UploadChunk]

    async def holding(session, frame):  # type: ignore[no-untyped-def]
        reply = await upload(session, frame)
        if frame.data:
            written.append(len(frame.data))
            if len(written) in held:
                await held[len(written)].wait()
        return reply

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, holding)
    monkeypatch.setattr(harness, "close", _releasing(harness.close, held))
    alice_window.attachments.stage(source)
    alice_window.composer.setPlainText("Dawn")
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(written) == HELD_AT[0], timeout=10_000)
    message_id = newest_attachment(alice_window)
    alice_window.close()
    alice = harness.reopen(alice)
    held[HELD_AT[0]].set()

    closed = open_window(qtbot, alice)
    ((_, followed),) = closed.attachments.transfers.values()
    qtbot.waitUntil(lambda: followed.bar.value() > 0, timeout=10_000)
    closed.close()  # as a fresh one, it is not cancelled by the window closing
    window = open_window(qtbot, alice)
    # Shown from the moment the window is, as a fresh upload: its name, progress and Cancel.
    transfers = window.attachments.transfers
    ((_, transfer),) = transfers.values()
    assert transfer.isVisible() and transfer.cancel_button.isVisible()
    assert transfer.label.text() == "Sending holiday.mov"
    chat_with(qtbot, window, "bob")
    qtbot.waitUntil(lambda: len(written) == HELD_AT[1], timeout=10_000)  # one in flight
    acknowledged = (HELD_AT[1] - 1) * wire.BLOB_FRAME
    total = blob_size(12 * wire.BLOB_FRAME)
    qtbot.waitUntil(lambda: transfer.bar.value() == 1000 * acknowledged // total, timeout=10_000)
    window.composer.setPlainText("half-typed")

    qtbot.mouseClick(transfer.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not transfers, timeout=10_000)
    shown = window.model.message_at(row_of(window, message_id))
    text, meta = window.attachments.delegate._lines(shown)
    assert STATE_TEXT[FileState.CANCELLED] in text and "Dawn" in text  # the caption is kept
    assert "⚠ Not sent" in meta and RETRY_HINT not in meta  # as a cancelled fresh upload
    assert window.composer.toPlainText() == "half-typed"
    menu = labels(window.message_menu(row_of(window, message_id)))
    assert "Copy" in menu and "Retry sending" not in menu  # (a file goes again when attached)
    trigger(window.message_menu(row_of(window, message_id)), "Copy")
    assert QApplication.clipboard().text() == "Dawn"
    assert window.attachments.bar.problem.isHidden()  # a cancel is not a problem
    held[HELD_AT[1]].set()
    qtbot.waitUntil(lambda: not alice.attachments.uploading(), timeout=10_000)
    blobs = harness.relay.store.blob_dir
    qtbot.waitUntil(lambda: not any(blobs.iterdir()), timeout=10_000)  # the relay forgot it
    assert len(written) == HELD_AT[1], "no chunk went after the cancel"

    window.close()
    alice = harness.reopen(alice)
    window = open_window(qtbot, alice)
    chat_with(qtbot, window, "bob")
    assert not window.attachments.transfers and not alice.attachments.uploading()
    assert STATE_TEXT[FileState.CANCELLED] in bubble_text(window, message_id)
    assert "Dawn" in bubble_text(window, message_id)
    assert newest_attachment(bob_window) is None and len(written) == HELD_AT[1]
