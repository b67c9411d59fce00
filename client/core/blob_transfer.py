"""Moving an attachment's blob over the relay connection (PROTOCOL.md §11): the encrypted
upload that resumes where the relay's copy ends, the download that resumes from the ciphertext
already on disk, and the decryption that puts the file in place only once it verified.

Memory stays bounded whatever the file's size: the file is read (64 KiB at a time, each piece
checked against what it was when attached: ``client/core/upload_source.py``), encrypted and
uploaded one 256 KiB frame at a time; a download goes to a ciphertext file first, then through
the decryptor into a temporary file that becomes the attachment only once the whole blob has
verified.
:class:`client.core.attachments.Attachments` decides what the states and the user see.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from client.core.port import Offline, RelayPort
from client.core.upload_source import SourceFile
from shared import wire
from shared.attachment import (
    AttachmentError,
    AttachmentPointer,
    Decryptor,
    Encryptor,
    TamperedBlob,
    blob_size,
)

DOWNLOAD_WINDOW = 4  # FetchBlob requests in flight: round trips overlap
RETRIES = 8  # reconnections an upload or download waits through before it gives up
RETRY_FIRST = 0.25  # seconds before the first retry, doubling

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
_T = TypeVar("_T")


async def retrying(call: Callable[[], Awaitable[_T]]) -> _T:
    """``call()``, again after each dropped connection (up to :data:`RETRIES`, backing off)."""
    attempts = 0
    while True:
        try:
            return await call()
        except Offline:
            attempts += 1
            if attempts > RETRIES:
                raise
            await asyncio.sleep(RETRY_FIRST * 2 ** min(attempts, 5))


async def start_upload(port: RelayPort, size: int, capability: bytes, peer: str) -> bytes:
    """Ask the relay for a blob of ``size``'s padded size that ``peer``'s account may fetch."""
    slot = await port.request(
        lambda rid: wire.StartUpload(
            rid=rid,
            size=blob_size(size),
            capability_hash=hashlib.sha256(capability).digest(),
            readers=[peer],
        ),
        expect=wire.UploadSlot,
    )
    return slot.blob_id


async def upload(
    port: RelayPort,
    blob_id: bytes,
    source: SourceFile,
    key: bytes,
    progress: Progress | None,
) -> bytes:
    """Stream the encrypted file to the relay; after a dropped connection (or a restart of the
    app), ask where the relay's copy ends and go on from there. Returns the ciphertext's digest.
    Raises :class:`~client.core.upload_source.SourceChanged` before sealing any chunk of the
    file that is not what it was when it was attached."""
    return await retrying(lambda: _upload_from_relay_offset(port, blob_id, source, key, progress))


async def _upload_from_relay_offset(
    port: RelayPort,
    blob_id: bytes,
    source: SourceFile,
    key: bytes,
    progress: Progress | None,
) -> bytes:
    total = blob_size(source.size)
    where = await port.request(
        lambda rid: wire.UploadChunk(rid=rid, blob_id=blob_id, offset=0, data=b""),
        expect=wire.BlobProgress,
    )
    relay_has = where.received
    if progress is not None:
        progress(min(relay_has, total), total)
    # Encryption is deterministic under this key: encrypt from the start, skip what the
    # relay has (cheap next to sending it again) and send the rest. Every chunk of the file is
    # checked against what it was when attached before it is sealed (SourceFile.pieces).
    encryptor = Encryptor(key, source.size)
    produced = 0
    pending = bytearray()
    with contextlib.closing(source.pieces()) as pieces:
        finished = False
        while not finished:
            piece = next(pieces, None)
            pending += encryptor.update(piece) if piece is not None else encryptor.finish()
            finished = piece is None
            while len(pending) >= wire.BLOB_FRAME or (finished and pending):
                data = bytes(pending[: wire.BLOB_FRAME])
                del pending[: wire.BLOB_FRAME]
                start, produced = produced, produced + len(data)
                if produced <= relay_has:
                    continue
                offset = max(start, relay_has)
                part = data[offset - start :]
                answer = await port.request(
                    functools.partial(_chunk, blob_id, offset, part), expect=wire.BlobProgress
                )
                if answer.received != produced:
                    raise Offline()  # the relay's copy moved: ask again where it ends
                relay_has = produced
                if progress is not None:
                    progress(relay_has, total)
    if relay_has != total:
        raise AttachmentError("the encrypted file is not the declared size")
    return encryptor.digest


def _chunk(blob_id: bytes, offset: int, data: bytes, rid: int) -> wire.UploadChunk:
    return wire.UploadChunk(rid=rid, blob_id=blob_id, offset=offset, data=data)


async def fetch(
    port: RelayPort, pointer: AttachmentPointer, blob: Path, progress: Progress | None
) -> None:
    """Download the ciphertext into ``blob``, from the bytes it already holds."""
    total = pointer.blob_size
    have = blob.stat().st_size if blob.exists() else 0
    if have > total:
        blob.unlink()
        have = 0

    async def fetch_one(offset: int) -> wire.BlobChunk:
        return await port.request(
            lambda rid: wire.FetchBlob(
                rid=rid,
                blob_id=pointer.blob_id,
                capability=pointer.capability,
                offset=offset,
                length=min(wire.BLOB_FRAME, total - offset),
            ),
            expect=wire.BlobChunk,
        )

    with blob.open("ab") as file:
        while have < total:
            offsets = range(
                have, min(total, have + DOWNLOAD_WINDOW * wire.BLOB_FRAME), wire.BLOB_FRAME
            )
            chunks = await asyncio.gather(*(fetch_one(o) for o in offsets))
            for offset, chunk in zip(offsets, chunks, strict=True):
                if chunk.offset != offset or len(chunk.data) != min(
                    wire.BLOB_FRAME, total - offset
                ):
                    raise TamperedBlob("the relay's blob is not the sender's length")
                file.write(chunk.data)
                have += len(chunk.data)
            file.flush()
            if progress is not None:
                progress(have, total)


def decrypt_into(pointer: AttachmentPointer, blob: Path, final: Path) -> None:
    """Decrypt ``blob`` into a temporary file beside ``final`` and move it into place only once
    every chunk and the digest verified (raises :class:`TamperedBlob` otherwise)."""
    partial = final.with_name(final.name + ".partial")
    decryptor = Decryptor(pointer)
    try:
        with blob.open("rb") as source, partial.open("wb") as out:
            while piece := source.read(wire.BLOB_FRAME):
                out.write(decryptor.update(piece))
            out.write(decryptor.finish())
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
