"""Deleting a message from its menu while its file uploads, in a real chat window against a real
relay: its bubble and its progress with Cancel go at once, while the relay still holds the chunk
in flight; no chunk goes after it, nothing is shown as a problem (the user removed it), and the
relay forgets the partial blob."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt

from relay.handlers import HANDLERS
from shared import wire
from tests.e2e.test_attachments import write
from tests.gui.test_attachments import newest_attachment, pair, row_of
from tests.gui.test_message_menu import trigger


def test_a_message_deleted_while_its_file_uploads_takes_its_progress_and_blob_with_it(
    qtbot, harness, tmp_path, monkeypatch
):
    alice, _bob, alice_window, bob_window, _ = pair(qtbot, harness)
    source = write(tmp_path / "holiday.mov", 12 * wire.BLOB_FRAME)
    written: list[int] = []
    held = asyncio.Event()
    upload = HANDLERS[wire.UploadChunk]

    async def holding(session, frame):  # type: ignore[no-untyped-def]
        if frame.data:
            written.append(len(frame.data))
            if len(written) == 2:
                await held.wait()  # the second chunk: neither committed nor answered yet
        return await upload(session, frame)

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, holding)
    close = harness.close

    def releasing() -> None:
        held.set()
        close()

    monkeypatch.setattr(harness, "close", releasing)
    alice_window.attachments.stage(source)
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(written) == 2, timeout=10_000)
    message_id = newest_attachment(alice_window)
    transfers = alice_window.attachments.transfers
    assert len(transfers) == 1

    trigger(alice_window.message_menu(row_of(alice_window, message_id)), "Delete for me")
    qtbot.waitUntil(lambda: not transfers, timeout=10_000)  # the chunk is still held
    assert alice_window.model.row_of(message_id) is None
    assert alice_window.attachments.bar.problem.isHidden()
    assert not alice.attachments.uploading()

    held.set()
    blobs = harness.relay.store.blob_dir
    qtbot.waitUntil(lambda: not any(blobs.iterdir()), timeout=10_000)  # the relay forgot it
    qtbot.waitUntil(lambda: not alice._store.abandoned_blobs(), timeout=10_000)
    assert len(written) == 2, "no chunk went after the deletion"
    assert newest_attachment(bob_window) is None
