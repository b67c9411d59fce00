"""Sending an attachment's file, from the first chunk to the message that carries its pointer,
across dropped connections and restarts of the app (PROTOCOL.md §11 "Uploading").

Everything an upload needs to go on is in the profile from the moment its message is shown
(``client/core/store_uploads.py``): the attachment's key and capability, the relay's blob once
it has one, and the file's chunk digests once it was read. Each upload runs as a task of this
device, not of whoever asked for it:

- the user cancelling it (cancelling :meth:`Uploads.send`, or :meth:`Uploads.follow` for one
  that went on after a restart) stops it for good, at once: in one transaction the message is
  marked cancelled, the upload forgotten (it does not go on at the next start) and its partial
  blob noted for release; no chunk is sent after it, and the relay is told to forget the blob
  when it can be reached (at the next start, if the app closed first);
- the message going (unsent, deleted for me or with its conversation, expired; by this device
  or by a control from another of the account's devices) stops it at once: the transaction
  that removed the message also forgot the upload and noted its partial blob for release (the
  profile's trigger, ``client/core/store_uploads.py``), so nothing of it goes on at the next start
  and the blob is released even if the app closes now; told of the removal, its task stops
  before another chunk and the relay is told to forget the blob;
- the app closing (the client cancelling its tasks) leaves it as it is, shown as sending, and
  :meth:`Uploads.resume` goes on from what the relay holds when the profile is opened again:
  same key, same chunks, so the same ciphertext; nothing the relay holds is sent twice;
- a file that changed, vanished or cannot be read since it was attached fails the message with
  the reason in words (``client/core/upload_source.py``); no chunk of it is sealed, and no
  message pointing at an unfinished blob ever leaves: the message is queued only once the relay
  holds the whole blob, in the transaction that forgets the upload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

from client.core import blob_transfer
from client.core.blob_transfer import RETRY_FIRST, Progress, retrying
from client.core.context import ClientContext
from client.core.events import (
    DeliveryUpdated,
    Event,
    MessagesChanged,
    MessagesRemoved,
    MessageStatus,
    StoredMessage,
)
from client.core.port import Offline, RelayError, RelayPort
from client.core.store_attachments import FileState
from client.core.store_uploads import PendingUpload
from client.core.upload_source import UNREADABLE, SourceChanged, SourceFile
from shared import wire
from shared.attachment import AttachmentError, AttachmentPointer, blob_size, encode_pointer
from shared.envelope import AttachmentMessage, encode_payload
from shared.wire import ErrorCode

REMOVED = "This message was removed"
UNREACHABLE = "The relay could not be reached"
INTERRUPTED = "The app was closed before it was sent — attach the file again"


class AttachmentFailed(Exception):
    """An upload or download stopped; ``reason`` is for the user."""

    def __init__(self, reason: str, state: FileState) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state


def refusal_text(exc: RelayError) -> str:
    if exc.code is ErrorCode.BLOB_QUOTA:
        return "Your attachments use all the space the relay allows — delete some and try again"
    if exc.code is ErrorCode.BLOB_TOO_LARGE:
        return "The relay does not take a file this large"
    if exc.code is ErrorCode.NO_BLOB:
        return "The relay no longer has this file"
    return f"The relay refused the file ({exc.code})"


class UploadProgress(NamedTuple):
    """A running upload, for its bubble: the file's size, and once the relay said how much of
    the blob it holds, that and the blob's size."""

    size: int
    sent: tuple[int, int] | None


class Uploads:
    def __init__(
        self, ctx: ClientContext, changed: Callable[[bytes], None], name: Callable[[str], str]
    ) -> None:
        self._ctx = ctx
        self._changed = changed  # the attachment's bubble has something new to show
        self._name = name  # the file name the pointer carries
        self.progress: dict[bytes, UploadProgress] = {}  # of each running upload
        self._jobs: dict[bytes, asyncio.Task[StoredMessage]] = {}
        self._followers: dict[bytes, list[Progress]] = {}  # who is shown each one's progress
        self._releasing: asyncio.Task[None] | None = None
        self._removed: set[bytes] = set()  # uploads stopped because their message went
        ctx.listeners.append(self._noticed)

    async def send(self, message_id: bytes, progress: Progress | None) -> StoredMessage:
        """Run the upload recorded for ``message_id`` and queue its message; cancelling this
        cancels the upload for good. Raises :class:`AttachmentFailed`."""
        job = self._start(message_id, resumed=False)
        return await self._followed(message_id, job, progress)

    def running(self) -> list[bytes]:
        """The uploads under way, fresh or gone on with after a restart, oldest first."""
        return list(self._jobs)

    def follow(
        self, message_id: bytes, progress: Progress | None
    ) -> Coroutine[Any, Any, StoredMessage]:
        """Follow an upload under way (one of :meth:`running`) as its sender does: its progress
        goes to ``progress`` from where it is now, awaiting this returns its queued message or
        raises :class:`AttachmentFailed`, and cancelling it cancels the upload for good."""
        return self._followed(message_id, self._jobs[message_id], progress)

    async def _followed(
        self, message_id: bytes, job: asyncio.Task[StoredMessage], progress: Progress | None
    ) -> StoredMessage:
        if progress is not None:
            self._followers.setdefault(message_id, []).append(progress)
            shown = self.progress.get(message_id)
            if shown is not None and shown.sent is not None:
                progress(*shown.sent)  # the relay's copy, if it said already
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # The caller gave up. (When the client closes, the upload itself was cancelled
            # first and is done: it stays for the next start.)
            if not job.done():
                self.cancel(message_id)
            raise

    def cancel(self, message_id: bytes) -> None:
        """Give the upload up for good, at once: the message is marked cancelled, the upload
        forgotten and its partial blob noted for release, in one transaction (whatever happens
        next, it does not go on at the next start); then its task stops before another chunk."""
        upload = self._ctx.store.pending_upload(message_id)
        if upload is not None:
            self._abandon(message_id, upload.blob_id, upload.capability, FileState.CANCELLED, "")
        job = self._jobs.get(message_id)
        if job is not None:
            job.cancel()

    def resume(self) -> None:
        """Go on with every upload this device had not finished when it was closed (each once
        the relay is reachable), and release the blobs of those it gave up."""
        store = self._ctx.store
        with store.transaction():
            for message_id in store.uploads_without_record():
                store.set_attachment(message_id, FileState.FAILED, detail=INTERRUPTED)
                store.set_status(message_id, MessageStatus.FAILED)
        for upload in store.pending_uploads():
            if upload.message_id not in self._jobs:
                self._start(upload.message_id, resumed=True)
        self._release_abandoned()

    def _noticed(self, event: Event) -> None:
        """A message removed or unsent (by the user, another device or expiry) took its upload
        with it (the profile forgot the upload and noted its blob in that transaction): stop the
        upload's task before another chunk, and let the relay forget the blob."""
        if not isinstance(event, (MessagesRemoved, MessagesChanged)):
            return
        store = self._ctx.store
        gone = [
            message_id
            for message_id in event.message_ids
            if message_id in self._jobs and store.pending_upload(message_id) is None
        ]
        for message_id in gone:
            self._removed.add(message_id)
            self._jobs[message_id].cancel()
        if gone:
            self._release_abandoned()

    def _start(self, message_id: bytes, *, resumed: bool) -> asyncio.Task[StoredMessage]:
        job = asyncio.create_task(self._run(message_id, resumed))
        self._jobs[message_id] = job
        self._ctx.background.add(job)  # cancelled when the client closes

        def ended(task: asyncio.Task[StoredMessage]) -> None:
            self._ctx.background.discard(task)
            self._jobs.pop(message_id, None)
            self._removed.discard(message_id)
            self._followers.pop(message_id, None)
            self.progress.pop(message_id, None)
            if not task.cancelled():
                task.exception()  # a resumed upload's failure is in its state, not a log

        job.add_done_callback(ended)
        return job

    async def _run(self, message_id: bytes, resumed: bool) -> StoredMessage:
        try:
            return await self._upload(message_id, resumed)
        except asyncio.CancelledError:
            if message_id not in self._removed:
                raise  # the user cancelled it, or the client closes
            # Stopped because its message went: whoever follows it is told so, as a failure.
            raise AttachmentFailed(REMOVED, FileState.CANCELLED) from None

    async def _upload(self, message_id: bytes, resumed: bool) -> StoredMessage:
        ctx, store = self._ctx, self._ctx.store
        upload = store.pending_upload(message_id)
        if upload is None:
            raise AttachmentFailed(REMOVED, FileState.CANCELLED)
        self.progress[message_id] = UploadProgress(upload.size, None)
        blob_id = upload.blob_id
        shown = -1

        def report(done: int, total: int) -> None:
            nonlocal shown
            self.progress[message_id] = UploadProgress(upload.size, (done, total))
            for follower in self._followers.get(message_id, ()):
                follower(done, total)
            if (percent := 100 * done // max(total, 1)) != shown:
                shown = percent
                self._changed(message_id)

        try:
            source = await self._source(upload)  # a file gone is shown at once, even offline
            if resumed:
                await ctx.port.online.wait()
            if blob_id is None:
                blob_id = await self._new_blob(upload)
            try:
                digest = await blob_transfer.upload(ctx.port, blob_id, source, upload.key, report)
            except RelayError as exc:
                if exc.code is not ErrorCode.NO_BLOB:
                    raise
                # The relay no longer holds the unfinished blob (it expired while the app was
                # closed): the same ciphertext again, into a new one.
                blob_id = await self._new_blob(upload)
                digest = await blob_transfer.upload(ctx.port, blob_id, source, upload.key, report)
        except (SourceChanged, RelayError, Offline, AttachmentError, OSError) as exc:
            reason = (
                exc.reason
                if isinstance(exc, SourceChanged)
                else refusal_text(exc)
                if isinstance(exc, RelayError)
                else UNREACHABLE
                if isinstance(exc, Offline)
                else UNREADABLE
            )
            self._abandon(message_id, blob_id, upload.capability, FileState.FAILED, reason)
            raise AttachmentFailed(reason, FileState.FAILED) from None
        message = store.message(message_id)
        if message is None or store.attachment(message_id) is None:
            # Unsent or deleted while it uploaded: it never leaves, and the relay forgets it.
            self._abandon(message_id, blob_id, upload.capability, FileState.CANCELLED, "")
            raise AttachmentFailed(REMOVED, FileState.CANCELLED)
        self._queue(message, upload, blob_id, digest)
        return message

    async def _source(self, upload: PendingUpload) -> SourceFile:
        """The file as it was attached: read once now if it never was (nothing was sent yet)."""
        path = Path(upload.source)
        if upload.chunk_digests is not None:
            source = SourceFile(path, upload.size, upload.chunk_digests)
            source.check_size()
            return source
        source = await asyncio.to_thread(SourceFile.fingerprint, path, upload.size)
        with self._ctx.store.transaction():
            self._ctx.store.set_upload_digests(upload.message_id, source.chunk_digests)
        return source

    async def _new_blob(self, upload: PendingUpload) -> bytes:
        """A blob on the relay for this upload, recorded before any chunk goes into it."""
        asking = asyncio.ensure_future(
            retrying(
                lambda: blob_transfer.start_upload(
                    self._ctx.port, upload.size, upload.capability, upload.peer
                )
            )
        )
        self._ctx.background.add(asking)  # cancelled when the client closes
        asking.add_done_callback(self._ctx.background.discard)
        try:
            blob_id = await asyncio.shield(asking)
        except asyncio.CancelledError:
            # Cancelled while the relay was asked: a blob it gives anyway is released.
            asking.add_done_callback(lambda given: self._unused_blob(given, upload.capability))
            raise
        with self._ctx.store.transaction():
            self._ctx.store.set_upload_blob(upload.message_id, blob_id)
        return blob_id

    def _queue(
        self, message: StoredMessage, upload: PendingUpload, blob_id: bytes, digest: bytes
    ) -> None:
        """The relay holds the whole blob: queue the message that carries its pointer, and
        forget the upload, in one transaction."""
        ctx, store, message_id = self._ctx, self._ctx.store, message.message_id
        pointer = AttachmentPointer(
            blob_id=blob_id,
            capability=upload.capability,
            key=upload.key,
            digest=digest,
            blob_size=blob_size(upload.size),
            size=upload.size,
            content_type=upload.content_type,
            name=self._name(Path(upload.source).name),
            thumbnail=upload.thumbnail,
        )
        with store.transaction():
            origin = ctx.origin()
            payload = AttachmentMessage(
                origin=origin,
                message_id=message_id,
                peer=upload.peer,
                sent_at=message.sent_at,
                body=message.body,
                attachment=pointer,
                expires_at=upload.expires_at,
            )
            store.set_attachment(
                message_id, FileState.READY, path=upload.source, pointer=encode_pointer(pointer)
            )
            store.record_sender_order(
                message_id, upload.peer, ctx.username, ctx.device_id, origin.counter
            )
            store.enqueue([upload.peer, ctx.username], encode_payload(payload), message_id)
            store.drop_upload(message_id)
        self._changed(message_id)
        ctx.outbox_wake.set()

    def _abandon(
        self,
        message_id: bytes,
        blob_id: bytes | None,
        capability: bytes,
        state: FileState,
        reason: str,
    ) -> None:
        """The message never leaves: mark it, forget the upload and note its partial blob for
        release, in one transaction; then let the relay forget the blob."""
        store = self._ctx.store
        with store.transaction():
            row = store.attachment(message_id)
            path = row.path if row is not None else None  # its bubble still names the file
            store.set_attachment(message_id, state, path=path, detail=reason)
            store.set_status(message_id, MessageStatus.FAILED)
            store.drop_upload(message_id)
            if blob_id is not None:
                store.abandon_blob(blob_id, capability)
        self.progress.pop(message_id, None)
        self._changed(message_id)
        message = store.message(message_id)
        if message is not None:  # its bubble says "not sent", as a text's that failed
            self._ctx.emit(DeliveryUpdated(message_id, message.thread, MessageStatus.FAILED, None))
        if blob_id is not None:
            self._release_abandoned()

    def _unused_blob(self, given: asyncio.Future[bytes], capability: bytes) -> None:
        if given.cancelled() or given.exception() is not None:
            return  # no blob (or the client closed: the relay's answer did not reach it)
        with self._ctx.store.transaction():
            self._ctx.store.abandon_blob(given.result(), capability)
        self._release_abandoned()

    def _release_abandoned(self) -> None:
        """Tell the relay to forget each blob noted for release, once it can be reached (one
        task at a time: a blob noted meanwhile is found by the running one)."""
        if self._releasing is None or self._releasing.done():
            self._releasing = asyncio.create_task(self._releases())
            self._ctx.background.add(self._releasing)  # cancelled when the client closes
            self._releasing.add_done_callback(self._ended_releasing)

    def _ended_releasing(self, task: asyncio.Task[None]) -> None:
        self._ctx.background.discard(task)
        if not task.cancelled():
            task.exception()  # refused or unreachable: the blob waits for the next start

    async def _releases(self) -> None:
        store, port = self._ctx.store, self._ctx.port
        while abandoned := store.abandoned_blobs():
            await port.online.wait()
            try:
                for blob_id, capability in abandoned:
                    await _release_blob(port, blob_id, capability)
                    with store.transaction():
                        store.forget_abandoned_blob(blob_id)
            except Offline:
                await asyncio.sleep(RETRY_FIRST)  # the connection dropped: again once it is back


async def _release_blob(port: RelayPort, blob_id: bytes, capability: bytes) -> None:
    """``ReleaseBlob``; ``no_blob`` counts as done (released by an answer the app did not see
    before it closed, or expired)."""
    try:
        await port.request(
            lambda rid: wire.ReleaseBlob(rid=rid, blob_id=blob_id, capability=capability),
            expect=wire.Ok,
        )
    except RelayError as exc:
        if exc.code is not ErrorCode.NO_BLOB:
            raise
