"""Attachments on this device: sending a file (encrypt and upload as a stream, then the message
that carries its pointer) and fetching one (download, verify, decrypt into the profile) —
PROTOCOL.md §11.

This module owns the states the user sees; the bytes move in ``client/core/blob_transfer.py``,
with bounded memory whatever the file's size, resuming after a dropped connection. A blob that
does not verify is deleted and its state says so; its plaintext is never where the user could
open it. A message that is removed (unsent, deleted, expired) takes its attachment's files and
this account's reference to the blob with it (``client/core/attachment_release.py``).

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
from dataclasses import dataclass
from pathlib import Path

from client.core import blob_transfer
from client.core.blob_transfer import Progress, retrying
from client.core.context import ClientContext
from client.core.directory import Directory
from client.core.events import AttachmentChanged, MessageQueued, MessageStatus, StoredMessage
from client.core.outbox import SendBlocked
from client.core.port import Offline, RelayError
from client.core.store_attachments import AttachmentRow, FileState
from shared import wire
from shared.attachment import (
    MAX_ATTACHMENT,
    AttachmentError,
    AttachmentPointer,
    TamperedBlob,
    blob_size,
    decode_pointer,
    encode_pointer,
)
from shared.controls import expires_at
from shared.envelope import MAX_CAPTION, AttachmentMessage, encode_payload, new_message_id
from shared.errors import ProtocolError
from shared.wire import ErrorCode

log = logging.getLogger("ariadne.client.attachments")

COULD_NOT_VERIFY = "Couldn't verify this file"
REMOVED = "This message was removed"


class AttachmentFailed(Exception):
    """An upload or download stopped; ``reason`` is for the user."""

    def __init__(self, reason: str, state: FileState) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state


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


def _refusal_text(exc: RelayError) -> str:
    if exc.code is ErrorCode.BLOB_QUOTA:
        return "Your attachments use all the space the relay allows — delete some and try again"
    if exc.code is ErrorCode.BLOB_TOO_LARGE:
        return "The relay does not take a file this large"
    if exc.code is ErrorCode.NO_BLOB:
        return "The relay no longer has this file"
    return f"The relay refused the file ({exc.code})"


class Attachments:
    def __init__(self, ctx: ClientContext, directory: Directory, folder: Path) -> None:
        self._ctx = ctx
        self._directory = directory
        self.folder = folder

    # ------------------------------------------------------------------ reading

    def get(self, message_id: bytes) -> Attachment | None:
        row = self._ctx.store.attachment(message_id)
        return None if row is None else _shown(row)

    def get_many(self, message_ids: list[bytes]) -> dict[bytes, Attachment | None]:
        """Each of ``message_ids`` with its attachment, or None (one read for a page)."""
        rows = self._ctx.store.attachments_of(message_ids)
        return {m: (_shown(rows[m]) if m in rows else None) for m in message_ids}

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
        upload, the relay forgets the blob and the message never leaves. Raises
        :class:`AttachmentFailed` if the upload cannot finish."""
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
        with store.transaction():
            store.insert_message(message)
            if expires is not None:
                store.set_expiry(message_id, peer, expires)
            store.put_attachment(AttachmentRow(message_id, b"", FileState.UPLOADING, str(path), ""))
        ctx.emit(MessageQueued(message))
        key, capability = os.urandom(32), os.urandom(32)
        blob_id: bytes | None = None
        try:
            blob_id = await retrying(
                lambda: blob_transfer.start_upload(ctx.port, size, capability, peer)
            )
            digest = await blob_transfer.upload(ctx.port, blob_id, path, size, key, progress)
        except asyncio.CancelledError:
            self._abandon(message_id, blob_id, capability, FileState.CANCELLED, "")
            raise
        except (RelayError, Offline, AttachmentError, OSError) as exc:
            reason = (
                _refusal_text(exc)
                if isinstance(exc, RelayError)
                else "The relay could not be reached"
                if isinstance(exc, Offline)
                else "The file changed or could not be read while it was sent"
            )
            self._abandon(message_id, blob_id, capability, FileState.FAILED, reason)
            raise AttachmentFailed(reason, FileState.FAILED) from None
        if store.attachment(message_id) is None:
            # Unsent or deleted while it uploaded: it never leaves, and the relay forgets it.
            self._abandon(message_id, blob_id, capability, FileState.CANCELLED, "")
            raise AttachmentFailed(REMOVED, FileState.CANCELLED)
        pointer = AttachmentPointer(
            blob_id=blob_id,
            capability=capability,
            key=key,
            digest=digest,
            blob_size=blob_size(size),
            size=size,
            content_type=content_type,
            name=safe_name(path.name),
            thumbnail=thumbnail,
        )
        with store.transaction():
            origin = ctx.origin()
            payload = AttachmentMessage(
                origin=origin,
                message_id=message_id,
                peer=peer,
                sent_at=message.sent_at,
                body=caption,
                attachment=pointer,
                expires_at=expires,
            )
            store.set_attachment(
                message_id, FileState.READY, path=str(path), pointer=encode_pointer(pointer)
            )
            store.record_sender_order(message_id, peer, ctx.username, ctx.device_id, origin.counter)
            store.enqueue([peer, ctx.username], encode_payload(payload), message_id)
        self._changed(message_id)
        ctx.outbox_wake.set()
        return message

    def _abandon(
        self,
        message_id: bytes,
        blob_id: bytes | None,
        capability: bytes,
        state: FileState,
        reason: str,
    ) -> None:
        """The message never leaves: mark it, and let the relay forget the partial blob."""
        with self._ctx.store.transaction():
            self._ctx.store.set_attachment(message_id, state, detail=reason)
            self._ctx.store.set_status(message_id, MessageStatus.FAILED)
        self._changed(message_id)
        if blob_id is not None:

            async def release() -> None:
                with contextlib.suppress(RelayError, Offline):
                    await self._ctx.port.request(
                        lambda rid: wire.ReleaseBlob(
                            rid=rid, blob_id=blob_id, capability=capability
                        ),
                        expect=wire.Ok,
                    )

            self._ctx.in_background(release())

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
            self._set(message_id, FileState.GONE, detail=_refusal_text(exc))
            raise AttachmentFailed(_refusal_text(exc), FileState.GONE) from None
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


def _shown(row: AttachmentRow) -> Attachment:
    """What the window shows of an attachment row (a pointer that does not decode shows as a
    file of unknown name)."""
    pointer: AttachmentPointer | None = None
    with contextlib.suppress(ProtocolError):
        pointer = decode_pointer(row.pointer) if row.pointer else None
    path = Path(row.path) if row.path else None
    if pointer is None:
        name = path.name if path else "attachment"
        return Attachment(row.message_id, row.state, name, "", 0, None, path, row.detail)
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
