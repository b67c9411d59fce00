"""The streaming attachment encryption (shared.attachment): round trips at chunk boundaries,
padded sizes, and every way a hostile relay could alter a blob."""

from __future__ import annotations

import hashlib
import os

import msgspec
import pytest

from shared.attachment import (
    CHUNK,
    MAX_ATTACHMENT,
    MAX_BLOB,
    MIN_PADDED,
    TAG,
    AttachmentError,
    AttachmentPointer,
    Decryptor,
    Encryptor,
    TamperedBlob,
    blob_size,
    decode_pointer,
    encode_pointer,
    padded_size,
)
from shared.envelope import AttachmentMessage, Origin, decode_payload, encode_payload


def encrypt(data: bytes, key: bytes | None = None, piece: int = 10_000) -> tuple[bytes, bytes]:
    key = key or os.urandom(32)
    enc = Encryptor(key, len(data))
    out = [enc.update(data[i : i + piece]) for i in range(0, len(data), piece)]
    out.append(enc.finish())
    return key, b"".join(out) + enc.digest


def pointer_for(data: bytes, key: bytes, blob: bytes, **changes: object) -> AttachmentPointer:
    fields: dict[str, object] = {
        "blob_id": bytes(16),
        "capability": bytes(32),
        "key": key,
        "digest": hashlib.sha256(blob).digest(),
        "blob_size": len(blob),
        "size": len(data),
        "content_type": "application/octet-stream",
        "name": "f.bin",
    }
    fields.update(changes)
    return AttachmentPointer(**fields)  # type: ignore[arg-type]


def sealed(data: bytes) -> tuple[AttachmentPointer, bytes]:
    key, out = encrypt(data)
    blob, digest = out[:-32], out[-32:]
    assert hashlib.sha256(blob).digest() == digest
    return pointer_for(data, key, blob), blob


def decrypt(pointer: AttachmentPointer, blob: bytes, piece: int = 7_777) -> bytes:
    dec = Decryptor(pointer)
    out = [dec.update(blob[i : i + piece]) for i in range(0, len(blob), piece)]
    out.append(dec.finish())
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200_001])
def test_round_trip_at_every_boundary(size: int) -> None:
    data = os.urandom(size)
    pointer, blob = sealed(data)
    assert len(blob) == blob_size(size) == pointer.blob_size
    assert decrypt(pointer, blob) == data
    assert decrypt(pointer, blob, piece=1 << 20) == data


def test_the_relay_learns_a_bucket_not_the_size() -> None:
    assert padded_size(1) == padded_size(MIN_PADDED) == MIN_PADDED
    sizes = range(5_000_000, 5_100_000, 997)
    buckets = {blob_size(s) for s in sizes}
    assert len(buckets) < len(list(sizes)) / 10
    assert all(padded_size(s) >= s and padded_size(s) <= s * 1.12 + MIN_PADDED for s in sizes)


def test_a_fresh_key_gives_an_unrelated_blob() -> None:
    data = os.urandom(5000)
    _, one = sealed(data)
    _, two = sealed(data)
    assert one != two


def test_a_flipped_bit_fails() -> None:
    pointer, blob = sealed(os.urandom(3 * CHUNK))
    flipped = bytearray(blob)
    flipped[CHUNK + 5] ^= 1
    with pytest.raises(TamperedBlob, match="authenticate"):
        decrypt(pointer, bytes(flipped))


def test_a_truncated_blob_fails_even_at_a_chunk_boundary() -> None:
    pointer, blob = sealed(os.urandom(3 * CHUNK))
    for cut in (len(blob) - 1, 2 * (CHUNK + TAG), CHUNK + TAG):
        with pytest.raises(TamperedBlob, match="shorter"):
            decrypt(pointer, blob[:cut])


def test_a_truncated_blob_with_a_matching_pointer_fails_on_the_final_flag() -> None:
    """A relay that cuts the blob at a chunk and also knew the sizes (the pointer is the
    sender's, so it cannot): the last chunk it keeps was not sealed as final."""
    data = os.urandom(CHUNK * 3)
    pointer, blob = sealed(data)
    two = 2 * (CHUNK + TAG)
    shorter = pointer_for(
        data[: 2 * CHUNK], pointer.key, blob[:two], size=2 * CHUNK - 1, blob_size=two
    )
    assert shorter.blob_size == blob_size(shorter.size)
    with pytest.raises(TamperedBlob, match="chunk 1 does not authenticate"):
        decrypt(shorter, blob[:two])


def test_reordered_chunks_fail() -> None:
    pointer, blob = sealed(os.urandom(3 * CHUNK))
    size = CHUNK + TAG
    chunks = [blob[i : i + size] for i in range(0, len(blob), size)]
    swapped = chunks[1] + chunks[0] + b"".join(chunks[2:])
    with pytest.raises(TamperedBlob, match="chunk 0"):
        decrypt(pointer, swapped)


def test_a_chunk_spliced_from_another_attachment_fails() -> None:
    pointer, blob = sealed(os.urandom(3 * CHUNK))
    _, other = sealed(os.urandom(3 * CHUNK))
    size = CHUNK + TAG
    spliced = blob[:size] + other[size : 2 * size] + blob[2 * size :]
    with pytest.raises(TamperedBlob, match="chunk 1"):
        decrypt(pointer, spliced)


def test_appended_bytes_fail() -> None:
    pointer, blob = sealed(os.urandom(1000))
    with pytest.raises(TamperedBlob, match="longer"):
        decrypt(pointer, blob + b"\x00")


def test_another_blob_under_the_same_key_fails_on_the_digest() -> None:
    """The relay swaps in a blob that decrypts (the same key sealed it) but is not the one this
    message names: only the digest tells them apart."""
    data = os.urandom(3000)
    key, out = encrypt(data)
    _, other = encrypt(os.urandom(3000), key=key)
    pointer = pointer_for(data, key, out[:-32])
    with pytest.raises(TamperedBlob, match="digest"):
        decrypt(pointer, other[:-32])


def test_sizes_beyond_the_limit_or_in_disagreement_are_refused() -> None:
    pointer, _ = sealed(b"x")
    huge = msgspec.structs.replace(pointer, size=MAX_ATTACHMENT + 1, blob_size=MAX_BLOB + 99)
    with pytest.raises(AttachmentError, match="more than the 100 MB"):
        Decryptor(huge)
    with pytest.raises(AttachmentError, match="do not agree"):
        Decryptor(msgspec.structs.replace(pointer, blob_size=pointer.blob_size + CHUNK))
    with pytest.raises(AttachmentError):
        Encryptor(os.urandom(32), MAX_ATTACHMENT + 1)


def test_the_encryptor_holds_the_sender_to_the_declared_size() -> None:
    enc = Encryptor(os.urandom(32), 10)
    with pytest.raises(AttachmentError, match="more bytes"):
        enc.update(bytes(11))
    enc = Encryptor(os.urandom(32), 10)
    enc.update(bytes(9))
    with pytest.raises(AttachmentError, match="fewer bytes"):
        enc.finish()


def test_the_pointer_travels_inside_the_payload() -> None:
    pointer, _ = sealed(b"hello")
    pointer = msgspec.structs.replace(pointer, thumbnail=b"\xff\xd8" + bytes(30_000))
    message = AttachmentMessage(
        origin=Origin(user="alice", device="0" * 16, counter=1),
        message_id=bytes(16),
        peer="bob",
        sent_at=1,
        body="caption " * 490,
        attachment=pointer,
    )
    encoded = encode_payload(message)
    assert len(encoded) < 60_000 - 16  # one envelope, even with the largest thumbnail
    assert decode_payload(encoded) == message
    assert decode_pointer(encode_pointer(pointer)) == pointer
