"""Attachments on this device: sending a file (encrypt and upload as a stream, then the message
that carries its pointer) and fetching one (download, verify, decrypt into the profile) —
PROTOCOL.md §11.

This module owns the states the user sees; the bytes move in ``client/core/blob_transfer.py``,
with bounded memory whatever the file's size, resuming after a dropped connection; an upload
goes on after the app was closed and opened again (``client/core/attachment_upload.py``). A
blob that does not verify is deleted and its state says so; its plaintext is never where the
user could open it. A message that is removed (unsent, deleted, expired) takes its
attachment's files and this account's reference to the blob with it
(``client/core/attachment_release.py``).

The pointer arrives in a message (inbox) or a restored mailbox item (mailbox): :func:`received`
files it as ``REMOTE``, or ``INVALID`` with the reason when the pointer itself is refused. Its
thumbnail is shown at once; the file is fetched on demand (:meth:`Attachments.download`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.core import blob_transfer
from client.core.attachment_upload import (
    REMOVED,
    AttachmentFailed,
    UploadProgress,
    Uploads,
    refusal_text,
)
from client.core.blob_transfer import Progress, retrying
from client.core.context import ClientContext
from client.core.directory import Directory
from client.core.events import AttachmentChanged, MessageQueued, MessageStatus, StoredMessage
from client.core.fan_out import SendBlocked
from client.core.port import Offline, RelayError
from client.core.store_attachments import AttachmentRow, FileState
from client.core.store_uploads import PendingUpload
from shared import wire
from shared.attachment import (
    MAX_ATTACHMENT,
    AttachmentError,
    AttachmentPointer,
    TamperedBlob,
    decode_pointer,
)
from shared.controls import expires_at
from shared.envelope import MAX_CAPTION, new_message_id
from shared.errors import ProtocolError

log = logging.getLogger("ariadne.client.attachments")

COULD_NOT_VERIFY = "Couldn't verify this file"


@dataclass(frozen=True)
class Attachment:
    """What the GUI shows of an attachment: from the sender's pointer and this device's state."""

    message_id: bytes
    state: FileState
    name: str
    content_type: str
    size: int
    thumbnail: bytes | None
    path: Path | None
    detail: str
    # While it uploads: the bytes the relay holds and the blob's size, once the relay said.
    progress: tuple[int, int] | None = None

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


def received(message_id: bytes, pointer: bytes) -> AttachmentRow:
    """The row for a pointer that arrived in a message or a restored mailbox item."""
    try:
        decode_pointer(pointer).check()
    except AttachmentError as exc:
        return AttachmentRow(message_id, pointer, FileState.INVALID, None, str(exc))
    except ProtocolError:
        return AttachmentRow(
            message_id,
            pointer,
            FileState.INVALID,
            None,
            "the attachment's description is malformed",
        )
    return AttachmentRow(message_id, pointer, FileState.REMOTE, None, "")


def safe_name(name: str) -> str:
    """A file name the sender chose, made harmless: no folders, no hidden or empty names."""
    base = re.sub(r"[\x00-\x1f/\\:]", "_", name).strip(" .")
    return base[:120] or "attachment"


class Attachments:
    def __init__(self, ctx: ClientContext, directory: Directory, folder: Path) -> None:
        self._ctx = ctx
        self._directory = directory
        self.folder = folder
        self.uploads = Uploads(ctx, self._changed, safe_name)

    # ------------------------------------------------------------------ reading

    def get(self, message_id: bytes) -> Attachment | None:
        row = self._ctx.store.attachment(message_id)
        return None if row is None else _shown(row, self.uploads.progress.get(message_id))

    def get_many(self, message_ids: list[bytes]) -> dict[bytes, Attachment | None]:
        """Each of ``message_ids`` with its attachment, or None (one read for a page)."""
        rows = self._ctx.store.attachments_of(message_ids)
        progress = self.uploads.progress
        return {m: (_shown(rows[m], progress.get(m)) if m in rows else None) for m in message_ids}

    def _changed(self, message_id: bytes) -> None:
        message = self._ctx.store.message(message_id)
        self._ctx.emit(AttachmentChanged(message_id, message.thread if message else ""))

    def _set(self, message_id: bytes, state: FileState, **fields: object) -> None:
        with self._ctx.store.transaction():
            self._ctx.store.set_attachment(message_id, state, **fields)  # type: ignore[arg-type]
        self._changed(message_id)

    # ------------------------------------------------------------------ sending

    async def send_file(
        self,
        peer: str,
        path: Path,
        *,
        caption: str = "",
        content_type: str = "application/octet-stream",
        thumbnail: bytes | None = None,
        progress: Progress | None = None,
    ) -> StoredMessage:
        """Encrypt and upload ``path``, then send the message that carries it. The message is
        shown (``MessageQueued``) as soon as the upload starts; cancelling the task stops the
        upload, the relay forgets the blob and the message never leaves. If the app closes
        first, the upload goes on when the profile is opened again (:meth:`resume_uploads`).
        Raises :class:`AttachmentFailed` if the upload cannot finish."""
        if self._directory.key_changed(peer):
            raise SendBlocked(f"{peer}'s safety number changed: acknowledge it to send again")
        size = path.stat().st_size
        if size > MAX_ATTACHMENT:
            raise ValueError(f"a file may have at most {MAX_ATTACHMENT // (1024 * 1024)} MB")
        if len(caption) > MAX_CAPTION:
            raise ValueError(f"a caption has at most {MAX_CAPTION} characters")
        ctx, store = self._ctx, self._ctx.store
        message = StoredMessage(
            message_id=new_message_id(),
            thread=peer,
            sender_user=ctx.username,
            sender_device=ctx.device_id,
            sent_at=ctx.clock.now_ms(),  # the relay's time, as for a text (disappearing messages)
            server_ts=None,
            body=caption,
            status=MessageStatus.SENDING,
        )
        message_id = message.message_id
        timer = store.timer(peer)
        expires = expires_at(message.sent_at, timer.seconds) if timer else None
        upload = PendingUpload(
            message_id=message_id,
            peer=peer,
            source=str(path),
            size=size,
            chunk_digests=None,
            key=os.urandom(32),
            capability=os.urandom(32),
            blob_id=None,
            content_type=content_type,
            thumbnail=thumbnail,
            expires_at=expires,
        )
        with store.transaction():
            store.insert_message(message)
            if expires is not None:
                store.set_expiry(message_id, peer, expires)
            store.put_attachment(AttachmentRow(message_id, b"", FileState.UPLOADING, str(path), ""))
            store.put_upload(upload)  # what the upload needs to go on after a restart
        ctx.emit(MessageQueued(message))
        return await self.uploads.send(message_id, progress)

    def resume_uploads(self) -> None:
        """Go on with the uploads this device had not finished when it was closed."""
        self.uploads.resume()

    def uploading(self) -> list[Attachment]:
        """The attachments uploading now (sent now, or going on after a restart); not one whose
        message was removed meanwhile (its upload is stopping)."""
        found = self.get_many(self.uploads.running())
        return [attachment for attachment in found.values() if attachment is not None]

    def follow_upload(
        self, message_id: bytes, progress: Progress | None = None
    ) -> Coroutine[Any, Any, StoredMessage]:
        """Follow an upload of :meth:`uploading` as :meth:`send_file` does: its progress from
        where it is now; cancelling this cancels it for good (the message is marked cancelled
        and never leaves, the relay forgets the blob, it does not go on at the next start).
        Awaited, returns the message once queued or raises :class:`AttachmentFailed`."""
        return self.uploads.follow(message_id, progress)

    # ------------------------------------------------------------------ fetching

    async def download(self, message_id: bytes, progress: Progress | None = None) -> Path:
        """Fetch, verify and decrypt the attachment into the profile; returns its path. Raises
        :class:`AttachmentFailed` with the state it left (``TAMPERED``: the blob did not
        verify and is deleted; ``GONE``, ``INVALID``, or ``REMOTE`` when offline)."""
        row = self._ctx.store.attachment(message_id)
        if row is None:
            raise LookupError("no attachment for this message")
        if row.state is FileState.READY and row.path and Path(row.path).exists():
            return Path(row.path)
        if row.state is FileState.INVALID:
            raise AttachmentFailed(row.detail, FileState.INVALID)
        pointer = decode_pointer(row.pointer)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        blob = self.folder / f"{message_id.hex()}.blob"
        self._set(message_id, FileState.DOWNLOADING)
        final = self.folder / f"{message_id.hex()[:12]}-{safe_name(pointer.name)}"
        try:
            await retrying(lambda: blob_transfer.fetch(self._ctx.port, pointer, blob, progress))
            await asyncio.to_thread(blob_transfer.decrypt_into, pointer, blob, final)
        except TamperedBlob as exc:
            log.info("an attachment did not verify: %s", exc)
            blob.unlink(missing_ok=True)
            self._set(message_id, FileState.TAMPERED, detail=COULD_NOT_VERIFY)
            raise AttachmentFailed(COULD_NOT_VERIFY, FileState.TAMPERED) from None
        except RelayError as exc:
            self._set(message_id, FileState.GONE, detail=refusal_text(exc))
            raise AttachmentFailed(refusal_text(exc), FileState.GONE) from None
        except (Offline, asyncio.CancelledError):
            # What came is kept: the next download resumes from it (unless the message went).
            if self._ctx.store.attachment(message_id) is None:
                blob.unlink(missing_ok=True)
            self._set(message_id, FileState.REMOTE)
            raise
        except OSError:
            if self._ctx.store.attachment(message_id) is not None:
                raise
            # Removed meanwhile: its release deleted the ciphertext under the download.
        blob.unlink(missing_ok=True)
        if self._ctx.store.attachment(message_id) is None:
            # Removed while it downloaded: nothing of it stays in the profile.
            final.unlink(missing_ok=True)
            raise AttachmentFailed(REMOVED, FileState.GONE)
        self._set(message_id, FileState.READY, path=str(final))
        return final

    async def release(self, message_id: bytes) -> None:
        """Forget an attachment here and tell the relay this account no longer needs it (the
        blob goes once no account does). Raises ``Offline`` or ``RelayError``."""
        row = self._ctx.store.attachment(message_id)
        if row is None or not row.pointer:
            return
        pointer = decode_pointer(row.pointer)
        await self._ctx.port.request(
            lambda rid: wire.ReleaseBlob(
                rid=rid, blob_id=pointer.blob_id, capability=pointer.capability
            ),
            expect=wire.Ok,
        )
        if row.path and Path(row.path).parent == self.folder:
            Path(row.path).unlink(missing_ok=True)
        self._set(message_id, FileState.GONE, detail="Deleted")


def _shown(row: AttachmentRow, upload: UploadProgress | None = None) -> Attachment:
    """What the window shows of an attachment row (a pointer that does not decode shows as a
    file of unknown name; one still uploading, with its size and progress)."""
    pointer: AttachmentPointer | None = None
    with contextlib.suppress(ProtocolError):
        pointer = decode_pointer(row.pointer) if row.pointer else None
    path = Path(row.path) if row.path else None
    if pointer is None:
        name = path.name if path else "attachment"
        size, progress = upload if upload is not None else (0, None)
        return Attachment(
            row.message_id, row.state, name, "", size, None, path, row.detail, progress
        )
    return Attachment(
        row.message_id,
        row.state,
        safe_name(pointer.name),
        pointer.content_type,
        pointer.size,
        pointer.thumbnail,
        path,
        row.detail,
    )
