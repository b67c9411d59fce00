"""Attachments in real chat windows through a real relay: attach by button, drop and paste, the
preview, thumbnails in bubbles, progress and cancel, open and save, and every bad input —
tampered, truncated and wrong-digest blobs, an oversized declared size, decompression bombs —
as a state the user reads, with the window still working."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import msgspec
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QFileDialog

from client.core.store_attachments import FileState
from client.gui.attachment_bubbles import STATE_TEXT, decode_thumbnail, make_thumbnail
from client.gui.chat_window import ChatWindow
from relay.handlers import HANDLERS
from shared import wire
from shared.attachment import decode_pointer
from tests.e2e.test_attachments import _forged


def open_window(qtbot, client) -> ChatWindow:
    window = ChatWindow(client)
    qtbot.addWidget(window)
    window.show()
    return window


def chat_with(qtbot, window: ChatWindow, peer: str) -> None:
    qtbot.keyClicks(window.new_chat, peer)
    qtbot.keyClick(window.new_chat, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.model is not None and window.model.thread == peer)


def photo(path: Path, width: int = 1600, height: int = 1200) -> Path:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("#3a7bd5"))
    for x in range(0, width, 50):
        for y in range(0, height, 50):
            image.setPixelColor(x, y, QColor("#ffcc00"))
    assert image.save(str(path), "JPEG", 90)
    return path


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header for a huge greyscale image whose pixels compress to almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compressobj(9)
    row = bytes(width + 1)
    pixels = b"".join(rows.compress(row) for _ in range(height)) + rows.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def row_of(window: ChatWindow, message_id: bytes) -> int:
    row = window.model.row_of(message_id)
    assert row is not None
    return row


def click(qtbot, window: ChatWindow, message_id: bytes) -> None:
    index = window.model.index(row_of(window, message_id))
    window.view.scrollTo(index)
    rect = window.view.visualRect(index)
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def bubble_text(window: ChatWindow, message_id: bytes) -> str:
    message = window.model.message_at(row_of(window, message_id))
    return window.attachments.delegate._lines(message)[0]


def newest_attachment(window: ChatWindow) -> bytes | None:
    model = window.model
    for row in reversed(range(model.rowCount() if model else 0)):
        message_id = model.message_at(row).message_id
        if window.client.attachments.get(message_id) is not None:
            return message_id
    return None


def pair(qtbot, harness):  # type: ignore[no-untyped-def]
    alice, bob = harness.account("alice"), harness.account("bob")
    alice_window, bob_window = open_window(qtbot, alice), open_window(qtbot, bob)
    chat_with(qtbot, alice_window, "bob")
    chat_with(qtbot, bob_window, "alice")
    opened: list[Path] = []
    bob_window.attachments.opener = opened.append
    return alice, bob, alice_window, bob_window, opened


def test_attach_preview_send_thumbnail_download_open_and_save(
    qtbot, harness, tmp_path, monkeypatch
):
    _alice, bob, alice_window, bob_window, opened = pair(qtbot, harness)
    source = photo(tmp_path / "harbour.jpg")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(source), ""))
    qtbot.mouseClick(alice_window.attachments.bar.attach_button, Qt.MouseButton.LeftButton)
    bar = alice_window.attachments.bar
    assert bar.staged.isVisible() and "harbour.jpg" in bar.staged_label.text()
    assert not bar.preview.pixmap().isNull()  # the preview before sending
    qtbot.keyClicks(alice_window.composer, "the harbour at dawn")
    qtbot.mouseClick(bar.send_button, Qt.MouseButton.LeftButton)
    assert not bar.staged.isVisible()

    qtbot.waitUntil(lambda: newest_attachment(bob_window) is not None, timeout=10_000)
    message_id = newest_attachment(bob_window)
    found = bob.attachments.get(message_id)
    assert found.state is FileState.REMOTE and found.is_image and found.thumbnail
    assert bob_window.attachments.delegate.thumbnail(found) is not None  # shown at once
    assert "the harbour at dawn" in bubble_text(bob_window, message_id)
    assert STATE_TEXT[FileState.REMOTE] in bubble_text(bob_window, message_id)

    click(qtbot, bob_window, message_id)  # download
    qtbot.waitUntil(
        lambda: bob.attachments.get(message_id).state is FileState.READY, timeout=10_000
    )
    assert not opened
    click(qtbot, bob_window, message_id)  # open
    assert opened == [bob.attachments.get(message_id).path]
    assert opened[0].read_bytes() == source.read_bytes()
    target = tmp_path / "saved.jpg"
    bob_window.attachments.save_as = lambda name: str(target)
    bob_window.attachments.save(bob.attachments.get(message_id))
    assert target.read_bytes() == source.read_bytes()


def test_drop_and_paste_stage_a_file(qtbot, harness, tmp_path):
    alice = harness.account("alice")
    harness.account("bob")
    window = open_window(qtbot, alice)
    chat_with(qtbot, window, "bob")
    document = tmp_path / "notes.txt"
    document.write_text("plans")
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(document))])
    centre = window.view.viewport().rect().center()
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for event in (
        QDragEnterEvent(centre, Qt.DropAction.CopyAction, data, buttons, keys),
        QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, data, buttons, keys),
    ):
        QApplication.sendEvent(window.view.viewport(), event)
        assert event.isAccepted()
    assert window.attachments.staged_path == document
    assert "notes.txt" in window.attachments.bar.staged_label.text()
    window.attachments.clear_staged()

    image = QImage(300, 200, QImage.Format.Format_RGB32)
    image.fill(QColor("#aa3355"))
    QApplication.clipboard().setImage(image)
    window.composer.setFocus()
    qtbot.keyClick(window.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.attachments.staged_path.name == "pasted-1.png"
    assert not window.attachments.bar.preview.pixmap().isNull()
    assert window.composer.toPlainText() == ""
    QApplication.clipboard().setText("just text")
    qtbot.keyClick(window.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.composer.toPlainText() == "just text"  # text pastes as text


def test_an_upload_shows_progress_and_cancel_stops_it(qtbot, harness, tmp_path, monkeypatch):
    alice, _bob, alice_window, bob_window, _ = pair(qtbot, harness)
    big = tmp_path / "video.mp4"
    big.write_bytes(bytes(3 * 1024 * 1024))
    gate = asyncio.Event()
    upload = HANDLERS[wire.UploadChunk]

    async def slow(session, frame):  # type: ignore[no-untyped-def]
        if frame.offset > 0:
            await gate.wait()  # a slow relay: the user has time to cancel
        return await upload(session, frame)

    monkeypatch.setitem(HANDLERS, wire.UploadChunk, slow)
    alice_window.attachments.stage(big)
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    transfers = alice_window.attachments.transfers
    qtbot.waitUntil(
        lambda: transfers and next(iter(transfers.values()))[1].bar.value() > 0, timeout=10_000
    )
    ((_, transfer),) = transfers.values()
    assert transfer.isVisible()
    qtbot.mouseClick(transfer.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not transfers, timeout=10_000)
    gate.set()
    message_id = newest_attachment(alice_window)
    assert alice.attachments.get(message_id).state is FileState.CANCELLED
    assert STATE_TEXT[FileState.CANCELLED] in bubble_text(alice_window, message_id)
    blobs = harness.relay.store.blob_dir
    qtbot.waitUntil(lambda: not any(blobs.iterdir()), timeout=10_000)  # the relay forgot it
    assert newest_attachment(bob_window) is None  # the message never left


def _sent(qtbot, harness, tmp_path, alice_window, bob_window):  # type: ignore[no-untyped-def]
    source = tmp_path / "contract.pdf"
    source.write_bytes(b"%PDF-1.4 " + bytes(200_000))
    alice_window.attachments.stage(source)
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: newest_attachment(bob_window) is not None, timeout=10_000)
    return newest_attachment(bob_window)


def _blob(harness, bob, message_id: bytes) -> Path:  # type: ignore[no-untyped-def]
    pointer = decode_pointer(bob._store.attachment(message_id).pointer)
    return harness.relay.store.blob_dir / pointer.blob_id.hex()


def _refused(qtbot, bob_window, opened, message_id: bytes) -> None:  # type: ignore[no-untyped-def]
    click(qtbot, bob_window, message_id)
    qtbot.waitUntil(
        lambda: bob_window.client.attachments.get(message_id).state is FileState.TAMPERED,
        timeout=10_000,
    )
    qtbot.waitUntil(
        lambda: "Couldn't verify this file" in bob_window.attachments.bar.problem.text()
    )
    assert "Couldn't verify this file" in bubble_text(bob_window, message_id)
    click(qtbot, bob_window, message_id)  # clicking again opens nothing
    assert not opened
    assert not any((bob_window.client.profile_dir / "attachments").iterdir())


def test_a_tampered_blob_says_so_and_is_never_opened(qtbot, harness, tmp_path):
    _alice, bob, alice_window, bob_window, opened = pair(qtbot, harness)
    message_id = _sent(qtbot, harness, tmp_path, alice_window, bob_window)
    blob = _blob(harness, bob, message_id)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0x40
    blob.write_bytes(bytes(data))
    _refused(qtbot, bob_window, opened, message_id)


def test_a_truncated_blob_says_so(qtbot, harness, tmp_path):
    _alice, bob, alice_window, bob_window, opened = pair(qtbot, harness)
    message_id = _sent(qtbot, harness, tmp_path, alice_window, bob_window)
    blob = _blob(harness, bob, message_id)
    blob.write_bytes(blob.read_bytes()[:-5000])
    _refused(qtbot, bob_window, opened, message_id)


def test_a_wrong_digest_an_oversized_size_and_a_bomb_thumbnail_each_give_a_state(
    qtbot, harness, tmp_path
):
    alice, bob, alice_window, bob_window, opened = pair(qtbot, harness)
    genuine_id = _sent(qtbot, harness, tmp_path, alice_window, bob_window)
    genuine = decode_pointer(alice._store.attachment(genuine_id).pointer)
    bomb = png_bomb(5000, 5000)
    assert len(bomb) < 32 * 1024
    wrong_digest = harness.run(
        _forged(alice, "bob", msgspec.structs.replace(genuine, digest=bytes(32)))
    )
    oversized = harness.run(_forged(alice, "bob", msgspec.structs.replace(genuine, size=10**9)))
    bombed = harness.run(
        _forged(
            alice,
            "bob",
            msgspec.structs.replace(genuine, content_type="image/png", thumbnail=bomb),
        )
    )
    qtbot.waitUntil(lambda: bob.attachments.get(bombed) is not None, timeout=10_000)
    qtbot.waitUntil(lambda: bob_window.model.row_of(bombed) is not None, timeout=10_000)
    assert "the preview could not be shown" in bubble_text(bob_window, bombed)
    assert "more than the 100 MB" in bubble_text(bob_window, oversized)
    click(qtbot, bob_window, oversized)  # nothing to download: the state stays
    assert bob.attachments.get(oversized).state is FileState.INVALID
    _refused(qtbot, bob_window, opened, wrong_digest)
    # The window still works: the genuine one downloads and opens.
    click(qtbot, bob_window, genuine_id)
    qtbot.waitUntil(
        lambda: bob.attachments.get(genuine_id).state is FileState.READY, timeout=10_000
    )
    click(qtbot, bob_window, genuine_id)
    assert opened == [bob.attachments.get(genuine_id).path]


def test_images_are_decoded_only_within_limits(qtbot, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30_000, 30_000))
    assert make_thumbnail(bomb) is None  # refused from its header, before any pixel
    assert decode_thumbnail(png_bomb(5000, 5000)) is None
    assert decode_thumbnail(b"\xff\xd8 not a jpeg") is None
    made = make_thumbnail(photo(tmp_path / "big.jpg", 4000, 3000))
    assert made is not None and len(made) <= 30 * 1024
    shown = decode_thumbnail(made)
    assert shown is not None and max(shown.width(), shown.height()) <= 200


def test_a_local_bomb_is_sent_as_a_file_without_a_preview(qtbot, harness, tmp_path):
    _alice, bob, alice_window, bob_window, _ = pair(qtbot, harness)
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_bomb(30_000, 30_000))
    alice_window.attachments.stage(bomb)
    assert "Can't preview this image" in alice_window.attachments.bar.staged_label.text()
    qtbot.mouseClick(alice_window.attachments.bar.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: newest_attachment(bob_window) is not None, timeout=10_000)
    assert bob.attachments.get(newest_attachment(bob_window)).thumbnail is None
