"""Attachments in the chat window: attaching (button, drag and drop, pasting an image), the
preview before sending, transfers with progress and cancel, opening and saving, and the states
the core decided (PROTOCOL.md §11). How a bubble shows one, and the limits on decoding images,
are in :mod:`client.gui.attachment_bubbles`.

A file that did not verify is never opened or saved: the core deleted it, and its bubble says so.
"""

from __future__ import annotations

import asyncio
import mimetypes
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPoint, QSize, Qt, QUrl
from PySide6.QtGui import (
    QDesktopServices,
    QDropEvent,
    QImage,
    QImageReader,
    QKeyEvent,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from client.core.attachments import Attachment, AttachmentFailed
from client.core.events import AttachmentChanged, Event
from client.core.store_attachments import FileState
from client.gui.attachment_bubbles import (
    decode_thumbnail,
    human_size,
    make_thumbnail,
)

if TYPE_CHECKING:
    from client.gui.chat_window import ChatWindow


class Transfer(QWidget):
    """One upload or download: what it is, a progress bar, and Cancel."""

    def __init__(self, label: str, cancel: Callable[[], None]) -> None:
        super().__init__()
        self.label = QLabel(label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(cancel)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)

    def progress(self, done: int, total: int) -> None:
        self.bar.setValue(int(1000 * done / total) if total else 1000)


class AttachmentBar(QWidget):
    """Above the composer: the Attach button, the staged file's preview with Send and Remove,
    the transfers in progress, and the last problem, in words."""

    def __init__(self) -> None:
        super().__init__()
        self.attach_button = QPushButton("Attach…")
        self.preview = QLabel()
        self.preview.setFixedSize(QSize(96, 96))
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.staged_label = QLabel("")
        self.staged_label.setWordWrap(True)
        self.send_button = QPushButton("Send file")
        self.remove_button = QPushButton("Remove")
        self.staged = QWidget()
        staged_row = QHBoxLayout(self.staged)
        staged_row.setContentsMargins(0, 0, 0, 0)
        staged_row.addWidget(self.preview)
        staged_row.addWidget(self.staged_label, 1)
        staged_row.addWidget(self.send_button)
        staged_row.addWidget(self.remove_button)
        self.staged.setVisible(False)
        self.problem = QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setObjectName("attachmentProblem")
        self.problem.setStyleSheet("QLabel#attachmentProblem { color: #d93025; }")
        self.problem.setVisible(False)
        self.transfers = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.attach_button)
        top.addWidget(self.problem, 1)
        top.addStretch()
        layout.addLayout(top)
        layout.addWidget(self.staged)
        layout.addLayout(self.transfers)

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))


class AttachmentController(QObject):
    """Wires attachments into a :class:`ChatWindow`: the delegate, the bar, drops and pastes on
    the conversation and the composer, clicks on bubbles, and the core's attachment events."""

    def __init__(self, window: ChatWindow) -> None:
        super().__init__(window)
        self.window = window
        self.client = window.client
        self.bar = AttachmentBar()
        self.delegate = window.bubbles  # the window's bubbles draw attachments (attachment_bubbles)
        self.opener: Callable[[Path], None] = lambda path: QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(path))
        )
        self.save_as: Callable[[str], str] = lambda name: QFileDialog.getSaveFileName(
            window, "Save attachment", name
        )[0]
        self.staged_path: Path | None = None
        self.staged_thumbnail: bytes | None = None
        self.transfers: dict[bytes | str, tuple[asyncio.Future[object], Transfer]] = {}
        self._pasted = Path(tempfile.mkdtemp(prefix="ariadne-paste-"))
        self.bar.attach_button.clicked.connect(self.choose_file)
        self.bar.send_button.clicked.connect(self.send_staged)
        self.bar.remove_button.clicked.connect(self.clear_staged)
        for target in (window.view, window.view.viewport(), window.composer):
            target.setAcceptDrops(True)
            target.installEventFilter(self)
        self.bar.attach_button.setEnabled(window.composer.isEnabled())
        window.view.clicked.connect(self._clicked)
        window.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        window.view.customContextMenuRequested.connect(self._menu)
        self.client.add_listener(self._on_event)
        window.closed.connect(self._closed)
        for uploading in self.client.attachments.uploading():
            self.follow_upload(uploading)  # went on after a restart, or sent from another window

    # ------------------------------------------------------------------ attaching

    def choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self.window, "Attach a file")
        if name:
            self.stage(Path(name))

    def stage(self, path: Path) -> None:
        """Show the file (and an image's preview) above the composer, ready to send."""
        if self.window.model is None:
            self.bar.show_problem("Open a conversation first")
            return
        if self.client.removed:
            self.bar.show_problem("This device was removed: it can no longer send")
            return
        try:
            size = path.stat().st_size
        except OSError:
            self.bar.show_problem(f"Can't read {path.name}")
            return
        self.staged_path = path
        self.staged_thumbnail = None
        kind = mimetypes.guess_type(path.name)[0] or ""
        text = f"{path.name} · {human_size(size)}"
        self.bar.preview.clear()
        if kind.startswith("image/") or QImageReader.imageFormat(str(path)):
            self.staged_thumbnail = make_thumbnail(path)
            if self.staged_thumbnail is None:
                text += "\nCan't preview this image: it is sent as a file"
            else:
                preview = QPixmap.fromImage(decode_thumbnail(self.staged_thumbnail) or QImage())
                self.bar.preview.setPixmap(
                    preview.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio)
                )
        self.bar.staged_label.setText(text)
        self.bar.staged.setVisible(True)
        self.bar.show_problem("")

    def clear_staged(self) -> None:
        self.staged_path = self.staged_thumbnail = None
        self.bar.staged.setVisible(False)

    def paste_image(self) -> bool:
        """An image on the clipboard becomes a staged PNG; False when there is none."""
        image = QApplication.clipboard().image()
        if image.isNull():
            return False
        path = self._pasted / f"pasted-{len(list(self._pasted.iterdir())) + 1}.png"
        image.save(str(path), "PNG")
        self.stage(path)
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Files dropped on the conversation or the composer are staged; Paste in the composer
        stages an image on the clipboard (text pastes as usual)."""
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            drop = cast(QDropEvent, event)
            urls = [u for u in drop.mimeData().urls() if u.isLocalFile()]
            if not urls:
                return False
            if kind == QEvent.Type.Drop:
                self.stage(Path(urls[0].toLocalFile()))
            drop.acceptProposedAction()
            return True
        if kind == QEvent.Type.EnabledChange and watched is self.window.composer:
            # Attaching is writing: possible exactly when the composer is (a conversation is
            # open, and this device was not removed).
            self.bar.attach_button.setEnabled(self.window.composer.isEnabled())
            return False
        if kind == QEvent.Type.KeyPress and watched is self.window.composer:
            key = cast(QKeyEvent, event)
            return key.matches(QKeySequence.StandardKey.Paste) and self.paste_image()
        return False

    # ------------------------------------------------------------------ sending

    def send_staged(self) -> None:
        model, path = self.window.model, self.staged_path
        if model is None or path is None:
            return
        thumbnail = self.staged_thumbnail
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        caption = self.window.composer.toPlainText().strip()
        self.window.composer.clear()
        self.clear_staged()
        key = f"upload:{path}"
        transfer = Transfer(f"Sending {path.name}", lambda: self.cancel(key))
        future = asyncio.ensure_future(
            self.client.attachments.send_file(
                model.thread,
                path,
                caption=caption,
                content_type=kind,
                thumbnail=thumbnail,
                progress=transfer.progress,
            )
        )
        self._track(key, future, transfer)

    def follow_upload(self, uploading: Attachment) -> None:
        """An upload this window did not start (one that went on after the app was opened
        again) shown as one it sent: its progress from where the relay's copy is, and Cancel."""
        key = f"upload:{uploading.message_id.hex()}"  # not bytes: the window closing leaves it
        transfer = Transfer(f"Sending {uploading.name}", lambda: self.cancel(key))
        future = asyncio.ensure_future(
            self.client.attachments.follow_upload(uploading.message_id, transfer.progress)
        )
        self._track(key, future, transfer)

    # ------------------------------------------------------------------ fetching

    def _clicked(self, index: QModelIndex) -> None:
        message = self.window.model.message_at(index.row()) if self.window.model else None
        found = self.client.attachments.get(message.message_id) if message else None
        if found is None:
            return
        if found.state is FileState.READY and found.path is not None:
            self.opener(found.path)
        elif found.state is FileState.REMOTE:
            self.download(found.message_id, then_open=False)

    def download(self, message_id: bytes, then_open: bool = False) -> None:
        if message_id in self.transfers:
            return
        found = self.client.attachments.get(message_id)
        name = found.name if found else "file"
        transfer = Transfer(f"Downloading {name}", lambda: self.cancel(message_id))
        future = asyncio.ensure_future(
            self.client.attachments.download(message_id, progress=transfer.progress)
        )
        if then_open:
            future.add_done_callback(
                lambda f: (
                    self.opener(f.result()) if not f.cancelled() and not f.exception() else None
                )
            )
        self._track(message_id, future, transfer)

    def _menu(self, point: QPoint) -> None:
        index = self.window.view.indexAt(point)
        if not index.isValid() or self.window.model is None:
            return
        found = self.client.attachments.get(self.window.model.message_at(index.row()).message_id)
        if found is None:
            return
        menu = QMenu(self.window)
        if found.state is FileState.READY and found.path is not None:
            path = found.path
            menu.addAction("Open", lambda: self.opener(path))
            menu.addAction("Save as…", lambda: self.save(found))
        elif found.state is FileState.REMOTE:
            menu.addAction("Download", lambda: self.download(found.message_id))
        if not menu.isEmpty():
            menu.popup(self.window.view.viewport().mapToGlobal(point))

    def save(self, found: Attachment) -> None:
        """Copy a verified file where the user chooses; nothing else is ever saved."""
        if found.state is not FileState.READY or found.path is None:
            return
        target = self.save_as(found.name)
        if target:
            shutil.copyfile(found.path, target)

    # ------------------------------------------------------------------ transfers

    def _track(self, key: bytes | str, future: asyncio.Future[object], transfer: Transfer) -> None:
        self.transfers[key] = (future, transfer)
        self.bar.transfers.addWidget(transfer)
        future.add_done_callback(lambda f: self._finished(key, f))

    def cancel(self, key: bytes | str) -> None:
        if key in self.transfers:
            self.transfers[key][0].cancel()

    def _finished(self, key: bytes | str, future: asyncio.Future[object]) -> None:
        _, transfer = self.transfers.pop(key, (None, None))
        if transfer is not None:
            self.bar.transfers.removeWidget(transfer)
            transfer.deleteLater()
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, AttachmentFailed) and error.state is FileState.CANCELLED:
            return  # its message went (deleted, unsent, expired): the bubble went with it
        if isinstance(error, AttachmentFailed):
            self.bar.show_problem(error.reason)
        elif error is not None:
            self.bar.show_problem(f"That did not work: {error}")

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AttachmentChanged) and self.window.model is not None:
            self.delegate.forget_attachment(event.message_id)
            self.window.model.refresh(event.message_id)
            self.window.view.viewport().update()

    def _closed(self) -> None:
        self.client.remove_listener(self._on_event)
        for key, (future, _) in list(self.transfers.items()):
            if isinstance(key, bytes):  # a download; an upload goes on (after a restart too)
                future.cancel()
        shutil.rmtree(self._pasted, ignore_errors=True)
