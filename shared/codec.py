"""Strict decoding of MessagePack with one error for every way it can fail.

msgspec reports bad input as ``msgspec.DecodeError``; some of its releases that pyproject allows
reported invalid UTF-8 as ``UnicodeDecodeError`` instead. Callers want one protocol error that
says what was being decoded: ``WireError`` for what came from the network or storage,
``DecryptionError`` for what was inside an authenticated box (a malformed plaintext means a broken
or hostile sender, reported like any other box that does not open).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from shared.errors import ProtocolError, WireError

T = TypeVar("T")


def decode_strict(
    decoder: msgspec.msgpack.Decoder[T],
    data: bytes,
    what: str,
    error: type[ProtocolError] = WireError,
) -> T:
    """``decoder.decode(data)``, raising ``error("malformed <what>: …")`` on any bad input."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise error(f"malformed {what}: {exc}") from None
