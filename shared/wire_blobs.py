"""Frames of attachments (PROTOCOL.md §11): a blob reserved, uploaded in chunks that resume where
the relay's copy ends, fetched by capability and released. The relay holds ciphertext only; the
key and the capability travel end to end inside the message. Gathered with the other areas in
:mod:`shared.wire`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.device_list import Key32, Username
from shared.wire_frame import Frame, Ok, Rid
from shared.wire_messaging import MAX_RECIPIENT_USERS

__all__ = [
    "BLOBS_REPLIES",
    "BLOB_FRAME",
    "BlobChunk",
    "BlobId",
    "BlobOffset",
    "BlobProgress",
    "FetchBlob",
    "ReleaseBlob",
    "StartUpload",
    "UploadChunk",
    "UploadSlot",
]


# Blob bytes per upload or download frame: with the frame's few other fields, well within
# MAX_FRAME_BYTES.
BLOB_FRAME = 256 * 1024
BlobId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
BlobOffset = Annotated[int, msgspec.Meta(ge=0, lt=2**40)]


class StartUpload(Frame, tag="start_upload", frozen=True):
    """Reserve a blob of ``size`` ciphertext bytes. The relay hands it out only to the uploader's
    account and to ``readers``, and only to a device showing the capability whose SHA-256 is
    ``capability_hash`` (the capability itself travels end to end inside the message)."""

    rid: Rid
    size: BlobOffset
    capability_hash: Key32
    readers: Annotated[list[Username], msgspec.Meta(max_length=MAX_RECIPIENT_USERS)]


class UploadChunk(Frame, tag="upload_chunk", frozen=True):
    """Blob bytes at ``offset``. An offset that is not where the relay's copy ends is not
    written: the answer says where it ends, and the upload resumes from there."""

    rid: Rid
    blob_id: BlobId
    offset: BlobOffset
    data: Annotated[bytes, msgspec.Meta(max_length=BLOB_FRAME)]


class FetchBlob(Frame, tag="fetch_blob", frozen=True):
    rid: Rid
    blob_id: BlobId
    capability: Key32
    offset: BlobOffset
    length: Annotated[int, msgspec.Meta(ge=1, le=BLOB_FRAME)]


class ReleaseBlob(Frame, tag="release_blob", frozen=True):
    """This account no longer needs the blob (the upload was abandoned, or the message deleted).
    The relay deletes a blob once no account needs it, or an abandoned upload at once."""

    rid: Rid
    blob_id: BlobId
    capability: Key32


class UploadSlot(Frame, tag="upload_slot", frozen=True):
    rid: Rid
    blob_id: BlobId


class BlobProgress(Frame, tag="blob_progress", frozen=True):
    """How many bytes of the blob the relay holds, committed."""

    rid: Rid
    blob_id: BlobId
    received: BlobOffset


class BlobChunk(Frame, tag="blob_chunk", frozen=True):
    rid: Rid
    blob_id: BlobId
    offset: BlobOffset
    data: Annotated[bytes, msgspec.Meta(max_length=BLOB_FRAME)]


# What the relay answers to each of these requests when it takes it (gathered in
# ``shared.wire.REPLIES``).
BLOBS_REPLIES: dict[type[Frame], tuple[type[Frame], ...]] = {
    StartUpload: (UploadSlot,),
    UploadChunk: (BlobProgress,),
    FetchBlob: (BlobChunk,),
    ReleaseBlob: (Ok,),
}
