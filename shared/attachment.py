"""Encrypted attachments: the streaming encryption of a file, its padded size, and the pointer
that travels inside the end-to-end encrypted message (PROTOCOL.md §11 "Attachments").

**Encryption.** Each attachment gets a fresh random 256-bit key. The plaintext, padded with zeros
to a PADMÉ bucket, is cut into 64 KiB chunks; chunk ``i`` of ``n`` is sealed with AES-256-GCM
under the nonce ``0⁷ ‖ i (32-bit big-endian) ‖ last`` where ``last`` is 1 for the final chunk
only (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015). The nonce prefix
may be constant because no key is used for two attachments. So a reordered chunk (wrong
counter), a truncated blob (no chunk with the final flag where the pointer says the blob ends),
a blob spliced from another attachment (another key), or one with bytes appended all fail.
The SHA-256 digest of the whole ciphertext is in the pointer too, so the relay cannot hand one
recipient a different blob than another even with the key.

**Sizes.** The relay sees only the ciphertext's length, a function of the padded size: a PADMÉ
bucket (at most 12% above the real size, at least :data:`MIN_PADDED`), never the real size.

**Bounded memory.** :class:`Encryptor` and :class:`Decryptor` take any number of bytes at a
time and hold at most one chunk, so a 100 MB file streams through a few hundred KiB.

Everything here is pure: callers do the I/O.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.codec import decode_strict
from shared.device_list import Key32
from shared.errors import DecryptionError, ProtocolError
from shared.padding import padme_length

CHUNK = 64 * 1024
TAG = 16
MAX_ATTACHMENT = 100 * 1024 * 1024
MIN_PADDED = 1024
MAX_THUMBNAIL = 32 * 1024
MAX_NAME = 255
_AAD = b"ariadne/attachment/v1"

BlobId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]


class AttachmentError(ProtocolError):
    """An attachment pointer that cannot be honoured (a size beyond the limit, sizes that do not
    agree): refused before anything is downloaded."""


class TamperedBlob(DecryptionError):
    """The blob is not the one the sender encrypted: a chunk fails to authenticate, chunks are
    missing, reordered or extra, or the digest differs. Nothing of it may be shown."""


def padded_size(size: int) -> int:
    """The plaintext length after padding: a PADMÉ bucket, at least :data:`MIN_PADDED`."""
    return padme_length(max(size, MIN_PADDED))


def chunk_count(padded: int) -> int:
    return -(-padded // CHUNK)


def blob_size(size: int) -> int:
    """The ciphertext length of an attachment of ``size`` bytes: what the relay stores."""
    padded = padded_size(size)
    return padded + TAG * chunk_count(padded)


MAX_BLOB = blob_size(MAX_ATTACHMENT)


def _nonce(index: int, last: bool) -> bytes:
    return bytes(7) + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class AttachmentPointer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a message carries for one attachment, end-to-end encrypted: where the blob is, the
    capability that lets the relay hand it out, how to open and check it, and what to show
    before it is downloaded (name, type, size, a small thumbnail made by the sender)."""

    blob_id: BlobId
    capability: Key32
    key: Key32
    digest: Key32  # SHA-256 of the ciphertext
    blob_size: Annotated[int, msgspec.Meta(ge=0, lt=2**40)]
    size: Annotated[int, msgspec.Meta(ge=0, lt=2**40)]
    content_type: Annotated[str, msgspec.Meta(max_length=100)]
    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
    thumbnail: Annotated[bytes, msgspec.Meta(max_length=MAX_THUMBNAIL)] | None = None

    def check(self) -> None:
        """Refuse a pointer whose sizes are beyond the limit or disagree: the user sees why
        instead of a download that could never verify."""
        if self.size > MAX_ATTACHMENT:
            raise AttachmentError(
                f"the sender declares {self.size:,} bytes, more than the "
                f"{MAX_ATTACHMENT // (1024 * 1024)} MB an attachment may have"
            )
        if self.blob_size != blob_size(self.size):
            raise AttachmentError("the declared sizes do not agree")


_encoder = msgspec.msgpack.Encoder()
_pointer_decoder = msgspec.msgpack.Decoder(AttachmentPointer)


def encode_pointer(pointer: AttachmentPointer) -> bytes:
    return _encoder.encode(pointer)


def decode_pointer(data: bytes) -> AttachmentPointer:
    return decode_strict(_pointer_decoder, data, "attachment pointer")


class Encryptor:
    """Encrypt ``size`` bytes fed in any pieces; :meth:`update` returns the ciphertext ready so
    far, :meth:`finish` the rest, after which :attr:`digest` is the ciphertext's SHA-256."""

    def __init__(self, key: bytes, size: int) -> None:
        if not 0 <= size <= MAX_ATTACHMENT:
            raise AttachmentError(f"an attachment has at most {MAX_ATTACHMENT:,} bytes")
        self._aead = AESGCM(key)
        self._size = size
        self._padded = padded_size(size)
        self._chunks = chunk_count(self._padded)
        self._index = 0
        self._fed = 0
        self._pending = bytearray()
        self._hash = hashlib.sha256()
        self.digest = b""

    def _seal(self, plain: bytes) -> bytes:
        last = self._index == self._chunks - 1
        sealed = self._aead.encrypt(_nonce(self._index, last), plain, _AAD)
        self._index += 1
        self._hash.update(sealed)
        return sealed

    def update(self, data: bytes) -> bytes:
        self._fed += len(data)
        if self._fed > self._size:
            raise AttachmentError("more bytes than the declared size")
        self._pending += data
        out = []
        # Keep the last full chunk back until finish(): it may be the final one.
        while len(self._pending) > CHUNK:
            out.append(self._seal(bytes(self._pending[:CHUNK])))
            del self._pending[:CHUNK]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._fed != self._size:
            raise AttachmentError("fewer bytes than the declared size")
        out = []
        remaining = self._padded - (self._index * CHUNK)
        self._pending += bytes(remaining - len(self._pending))
        while self._pending:
            out.append(self._seal(bytes(self._pending[:CHUNK])))
            del self._pending[:CHUNK]
        self.digest = self._hash.digest()
        return b"".join(out)


class Decryptor:
    """Check and decrypt a blob fed in any pieces against its pointer. :meth:`update` returns
    the plaintext of every chunk that authenticated (padding cut off); :meth:`finish` raises
    :class:`TamperedBlob` unless the whole blob came, in order, with the pointer's digest. A
    caller keeps what ``update`` returned aside (a temporary file) until ``finish`` succeeds."""

    def __init__(self, pointer: AttachmentPointer) -> None:
        pointer.check()
        self._pointer = pointer
        self._aead = AESGCM(pointer.key)
        self._chunks = chunk_count(padded_size(pointer.size))
        self._index = 0
        self._received = 0
        self._written = 0
        self._pending = bytearray()
        self._hash = hashlib.sha256()

    @property
    def received(self) -> int:
        return self._received

    def _open(self, sealed: bytes) -> bytes:
        last = self._index == self._chunks - 1
        try:
            plain = self._aead.decrypt(_nonce(self._index, last), sealed, _AAD)
        except InvalidTag:
            raise TamperedBlob(f"chunk {self._index} does not authenticate") from None
        self._index += 1
        keep = min(len(plain), self._pointer.size - self._written)
        self._written += keep
        return plain[:keep]

    def update(self, data: bytes) -> bytes:
        self._received += len(data)
        if self._received > self._pointer.blob_size:
            raise TamperedBlob("the blob is longer than the sender's")
        self._hash.update(data)
        self._pending += data
        out = []
        while len(self._pending) > CHUNK + TAG:
            out.append(self._open(bytes(self._pending[: CHUNK + TAG])))
            del self._pending[: CHUNK + TAG]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._received != self._pointer.blob_size:
            raise TamperedBlob("the blob is shorter than the sender's")
        out = self._open(bytes(self._pending)) if self._pending else b""
        self._pending.clear()
        if self._hash.digest() != self._pointer.digest:
            raise TamperedBlob("the blob's digest is not the sender's")
        return out
