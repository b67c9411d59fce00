"""The file an upload reads, held to what it was when the user attached it.

Encryption is deterministic under an attachment's key (chunk ``i`` always gets nonce ``i``,
``shared.attachment``), which is what lets an upload go on where the relay's copy ends, even
after the app was closed. It is also why the file must not change under it: chunk ``i`` of a
changed file sealed under the same key and nonce would hand the relay two ciphertexts under one
nonce (AES-GCM then leaks the XOR of the plaintexts and its authentication key), and a blob
spliced from two versions of the file would never verify for the recipient.

So the file is read once before any byte leaves (:meth:`SourceFile.fingerprint`: a SHA-256 per
64 KiB chunk, kept in the profile), and every later read checks each chunk against it *before*
it reaches the encryptor (:meth:`SourceFile.pieces`). A file that changed, vanished or cannot be
read raises :class:`SourceChanged` with the words the user sees; nothing of it is sealed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.attachment import CHUNK

CHANGED = "The file changed since it was attached — couldn't send"
GONE = "The file is gone — couldn't send"
UNREADABLE = "The file can no longer be read — couldn't send"
_DIGEST = 32


class SourceChanged(Exception):
    """The file is not what was attached (changed, gone, unreadable); ``reason`` is for the
    user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SourceFile:
    path: Path
    size: int
    chunk_digests: bytes  # SHA-256 of each CHUNK of the file, in order

    @classmethod
    def fingerprint(cls, path: Path, size: int) -> SourceFile:
        """Read the whole file once (blocking: run it in a thread) and note each chunk's
        digest. Raises :class:`SourceChanged` if it is no longer ``size`` bytes."""
        digests = bytearray()
        with _opened(path) as file:
            for length in _chunk_lengths(size):
                piece = file.read(length)
                if len(piece) != length:
                    raise SourceChanged(CHANGED)
                digests += hashlib.sha256(piece).digest()
            if file.read(1):
                raise SourceChanged(CHANGED)
        return cls(path, size, bytes(digests))

    def check_size(self) -> None:
        """Raise :class:`SourceChanged` at once if the file is gone or not its size any more
        (before the relay is asked anything: a slow relay does not delay what the user sees).
        A change that keeps the size is found as the file is read (:meth:`pieces`)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise SourceChanged(GONE) from None
        except OSError:
            raise SourceChanged(UNREADABLE) from None
        if size != self.size:
            raise SourceChanged(CHANGED)

    def pieces(self) -> Generator[bytes, None, None]:
        """The file, a chunk at a time, each checked against its digest before it is given
        out; raises :class:`SourceChanged` at the first that differs (or a missing file)."""
        with _opened(self.path) as file:
            for index, length in enumerate(_chunk_lengths(self.size)):
                piece = file.read(length)
                expected = self.chunk_digests[index * _DIGEST : (index + 1) * _DIGEST]
                if hashlib.sha256(piece).digest() != expected:  # a short piece too
                    raise SourceChanged(CHANGED)
                yield piece


def _chunk_lengths(size: int) -> Iterator[int]:
    for start in range(0, size, CHUNK):
        yield min(CHUNK, size - start)


def _opened(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SourceChanged(GONE) from None
    except OSError:
        raise SourceChanged(UNREADABLE) from None
