"""Attachment handlers: uploading a blob in chunks, fetching it with its capability, releasing it
(PROTOCOL.md §11 "Attachments").

The relay never sees what a blob holds: it stores opaque ciphertext and hands it out only to a
member device of an account that holds a reference (the uploader's, or a reader the uploader
named) and that shows the capability from the end-to-end encrypted message. An unknown blob, a
wrong capability and an account without a reference get the same answer, so a guess learns
nothing. Uploads resume where the relay's committed copy ends.
"""

from __future__ import annotations

import hashlib
import os
import time

from relay.session import Handler, Reject, Session
from relay.store_blobs import BlobRow
from shared import wire
from shared.attachment import MAX_BLOB
from shared.wire import ErrorCode


def _expire(session: Session, now: int) -> None:
    limits = session.limits
    session.store.expire_blobs(now - limits.unfinished_upload_seconds, now - limits.blob_seconds)


async def start_upload(session: Session, frame: wire.StartUpload) -> wire.Frame:
    session.require_member()
    store, username = session.store, session.username
    if frame.size > MAX_BLOB:
        raise Reject(ErrorCode.BLOB_TOO_LARGE, f"a blob has at most {MAX_BLOB} bytes")
    now = int(time.time())
    _expire(session, now)
    quota = session.limits.blob_bytes
    if store.owned_blob_bytes(username) + frame.size > quota:
        raise Reject(ErrorCode.BLOB_QUOTA, f"attachments may hold {quota} bytes per account")
    blob_id = os.urandom(16)
    store.create_blob(
        BlobRow(blob_id, username, frame.size, 0, frame.capability_hash, now), frame.readers
    )
    await store.durable()
    return wire.UploadSlot(rid=frame.rid, blob_id=blob_id)


async def upload_chunk(session: Session, frame: wire.UploadChunk) -> wire.Frame:
    session.require_member()
    store = session.store
    blob = store.blob(frame.blob_id)
    if blob is None or blob.owner != session.username:
        raise Reject(ErrorCode.NO_BLOB)
    if frame.offset == blob.received and frame.data:
        if blob.received + len(frame.data) > blob.size:
            raise Reject(ErrorCode.BAD_REQUEST, "more bytes than the blob's size")
        store.write_blob(blob.blob_id, frame.offset, frame.data)
        await store.durable()
        blob = blob._replace(received=frame.offset + len(frame.data))
    return wire.BlobProgress(rid=frame.rid, blob_id=blob.blob_id, received=blob.received)


def _readable(session: Session, blob_id: bytes, capability: bytes) -> BlobRow:
    session.require_member()
    store = session.store
    blob = store.blob(blob_id)
    if (
        blob is None
        or hashlib.sha256(capability).digest() != blob.capability_hash
        or not store.blob_readable_by(blob_id, session.username)
    ):
        raise Reject(ErrorCode.NO_BLOB)
    return blob


async def fetch_blob(session: Session, frame: wire.FetchBlob) -> wire.Frame:
    blob = _readable(session, frame.blob_id, frame.capability)
    if not blob.complete:
        raise Reject(ErrorCode.NO_BLOB, "the upload is not finished")
    if frame.offset > blob.size:
        raise Reject(ErrorCode.BAD_REQUEST, "beyond the blob's end")
    data = session.store.read_blob(blob.blob_id, frame.offset, frame.length)
    return wire.BlobChunk(rid=frame.rid, blob_id=blob.blob_id, offset=frame.offset, data=data)


async def release_blob(session: Session, frame: wire.ReleaseBlob) -> wire.Frame:
    blob = _readable(session, frame.blob_id, frame.capability)
    if blob.owner == session.username and not blob.complete:
        session.store.delete_blob(blob.blob_id)  # an abandoned upload: nobody else has it
    else:
        session.store.release_blob(blob.blob_id, session.username)
    await session.store.durable()
    return wire.Ok(rid=frame.rid)


HANDLERS: dict[type, Handler] = {
    wire.StartUpload: start_upload,
    wire.UploadChunk: upload_chunk,
    wire.FetchBlob: fetch_blob,
    wire.ReleaseBlob: release_blob,
}
