"""How an attachment looks: thumbnails made and decoded within limits, and the bubble that
shows one (PROTOCOL.md §11).

Images are decoded only with limits: :func:`read_image` refuses anything larger than
:data:`MAX_PIXELS` before decoding a pixel, Qt's allocation limit guards the rest, and large
images are decoded scaled. So a decompression bomb gives "can't preview this image", never a
stalled or crashed window. A bubble shows only the small thumbnail the sender made (inside the
encrypted message), never the full image it received.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QIODevice,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    Qt,
    QTimer,
)
from PySide6.QtGui import QImage, QImageReader, QPainter, QPixmap
from PySide6.QtWidgets import QStyleOptionViewItem

from client.core.attachments import Attachment
from client.core.events import StoredMessage
from client.core.store_attachments import FileState
from client.gui.bubble_measures import PAD, BubbleSize, Metrics
from client.gui.bubbles import BubbleDelegate, separator
from client.gui.conversation_model import MessageRole

THUMB_SIDE = 320  # the longest side of a thumbnail the sender makes
THUMB_BYTES = 30 * 1024  # under the protocol's 32 KiB
SHOWN_SIDE = 200  # the longest side a bubble shows
MAX_PIXELS = 80_000_000  # beyond this an image is not decoded at all (a bomb, or absurd)
ALLOCATION_MB = 256  # Qt's own decoding limit, a second guard
THUMB_MAX_PIXELS = 1024 * 1024  # a received thumbnail larger than this is refused
RETRY_HINT = " — click to retry"  # what a failed text's bubble says (client.gui.bubbles)

STATE_TEXT = {
    FileState.UPLOADING: "Uploading…",
    FileState.CANCELLED: "Not sent (cancelled)",
    FileState.REMOTE: "Click to download",
    FileState.DOWNLOADING: "Downloading…",
    FileState.READY: "Click to open · right-click to save",
    FileState.TAMPERED: "⚠ Couldn't verify this file — it was deleted, not opened",
    FileState.INVALID: "⚠ Can't be downloaded",
    FileState.GONE: "The relay no longer has this file",
    FileState.FAILED: "Not sent",
}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


def read_image(reader: QImageReader, fit: int, max_pixels: int) -> QImage | None:
    """Decode with limits: the header's size is checked before any pixel is decoded, Qt's
    allocation limit guards the rest, and large images are decoded scaled where the format
    allows it. None for anything that is not a sane image."""
    reader.setAllocationLimit(ALLOCATION_MB)
    size = reader.size()
    if not size.isValid() or size.width() * size.height() > max_pixels:
        return None
    if max(size.width(), size.height()) > fit:
        reader.setScaledSize(size.scaled(fit, fit, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


def make_thumbnail(path: Path) -> bytes | None:
    """A JPEG of the image at ``path`` small enough to travel inside the message, or None when
    it is not an image Qt decodes within the limits."""
    image = read_image(QImageReader(str(path)), THUMB_SIDE, MAX_PIXELS)
    if image is None:
        return None
    for quality in (75, 55, 35):
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "JPEG", quality)
        if data.size() <= THUMB_BYTES:
            return bytes(data.data())
        image = image.scaled(
            image.width() * 3 // 4, image.height() * 3 // 4, Qt.AspectRatioMode.KeepAspectRatio
        )
    return None


def decode_thumbnail(data: bytes) -> QImage | None:
    """A received thumbnail, decoded with strict limits (it is untrusted)."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    return read_image(QImageReader(buffer), SHOWN_SIDE, THUMB_MAX_PIXELS)


class AttachmentDelegate(BubbleDelegate):
    """A bubble that carries an attachment: the sender's thumbnail on top (if any), then the
    file's name, size and state, then the caption."""

    def __init__(
        self,
        own_username: str,
        note: Callable[[bytes], str | None],
        failure: Callable[[bytes], str | None],
        attachment: Callable[[bytes], Attachment | None],
        attachments: Callable[[list[bytes]], dict[bytes, Attachment | None]] | None = None,
    ) -> None:
        super().__init__(own_username, note, failure)
        self.attachment = attachment
        self.attachments = attachments  # a page's at once
        # Read for a page of rows being measured, kept until the event loop turns: a layout
        # pass then asks the database once, not once per row, and nothing kept can go stale
        # (a change to an attachment also drops its entry at once: forget_attachment).
        self._batch: dict[bytes, Attachment | None] = {}
        self._thumbs: dict[bytes, QPixmap | None] = {}
        # The attachment of the row being measured or painted: read once for all its parts.
        self._measuring: tuple[bytes, Attachment | None] | None = None

    def thumbnail(self, found: Attachment) -> QPixmap | None:
        if found.message_id not in self._thumbs:
            if len(self._thumbs) > 500:
                self._thumbs.clear()
            image = decode_thumbnail(found.thumbnail) if found.thumbnail else None
            self._thumbs[found.message_id] = QPixmap.fromImage(image) if image else None
        return self._thumbs[found.message_id]

    def primed(self, message: StoredMessage) -> bool:
        return super().primed(message) and (
            self.attachments is None or message.message_id in self._batch
        )

    def prime(self, messages: list[StoredMessage]) -> None:
        super().prime(messages)
        if self.attachments is None:
            return
        if not self._batch:
            QTimer.singleShot(0, self._batch.clear)
        self._batch.update(self.attachments([m.message_id for m in messages]))

    def forget_attachment(self, message_id: bytes) -> None:
        self._batch.pop(message_id, None)

    def _read(self, message_id: bytes) -> Attachment | None:
        if message_id in self._batch:
            return self._batch[message_id]
        return self.attachment(message_id)

    def _attachment_of(self, message: StoredMessage) -> Attachment | None:
        if self._measuring is not None and self._measuring[0] == message.message_id:
            return self._measuring[1]
        return self._read(message.message_id)

    def _lines(self, message: StoredMessage) -> tuple[str, str]:
        body, meta = super()._lines(message)
        found = self._attachment_of(message)
        if found is None:
            return body, meta
        state = STATE_TEXT[found.state]
        if found.detail and found.state in (FileState.INVALID, FileState.FAILED):
            state = f"{state}: {found.detail}"
        if found.state is FileState.UPLOADING and found.progress is not None:
            sent, total = found.progress
            state = f"{state} {100 * sent // max(total, 1)}%"
        if found.state in (FileState.FAILED, FileState.CANCELLED):
            # Sent again by attaching the file again: a click does not retry it.
            meta = meta.replace(RETRY_HINT, "")
        if found.thumbnail and self.thumbnail(found) is None:
            state = f"{state} (the preview could not be shown)"
        size = f" · {human_size(found.size)}" if found.size else ""  # unknown: never uploaded
        line = f"📎 {found.name}{size}\n{state}"
        return (f"{line}\n{body}" if body else line), meta

    def _size(self, view_width: int, fonts: Metrics, message: StoredMessage) -> BubbleSize:
        """The plain bubble, made room in for the thumbnail above the text."""
        # One read of the attachment for the whole measurement (the text lines need it too).
        found = self._attachment_of(message)
        outer, self._measuring = self._measuring, (message.message_id, found)
        try:
            size = super()._size(view_width, fonts, message)
        finally:
            self._measuring = outer
        pixmap = self.thumbnail(found) if found is not None else None
        if pixmap is None:
            return size
        extra = pixmap.height() + PAD
        return size._replace(
            width=max(size.width, pixmap.width() + 2 * PAD), height=size.height + extra, above=extra
        )

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        message: StoredMessage = index.data(MessageRole)
        # One read of the attachment for the whole row (the text, its measure, the thumbnail).
        found = None if message.system else self._read(message.message_id)
        self._measuring = (message.message_id, found)
        try:
            super().paint(painter, option, index)
            pixmap = self.thumbnail(found) if found is not None else None
            if pixmap is None:
                return
            # Where the bubble is: below the day label, if the row has one (as BubbleDelegate).
            shifted = QStyleOptionViewItem(option)
            top = option.rect.top()
            if separator(index, message, self._date) is not None:
                top += self._line_height(option)
            shifted.rect = QRect(
                option.rect.left(), top, option.rect.width(), option.rect.bottom() - top
            )
            bubble, _, _ = self._geometry(shifted, message)
        finally:
            self._measuring = None
        painter.drawPixmap(bubble.left() + PAD, bubble.top() + PAD, pixmap)
