"""PADMÉ padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
Communication with PURBs", PETS 2019).

A payload of length L is padded to a length that reveals only O(log log L) bits, with at most
12% overhead. The padding is ISO/IEC 7816-4: a 0x80 byte then zeros, so it is unambiguous.
"""

from __future__ import annotations

from shared.errors import WireError


def padme_length(length: int) -> int:
    """The PADMÉ padded size for a payload of ``length`` bytes (``length`` >= 1)."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    mantissa_bits = exponent.bit_length()
    zero_bits = exponent - mantissa_bits
    mask = (1 << zero_bits) - 1
    return (length + mask) & ~mask


def pad(data: bytes) -> bytes:
    marked = len(data) + 1
    return data + b"\x80" + bytes(padme_length(marked) - marked)


def unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end or end[-1] != 0x80:
        raise WireError("bad padding")
    return end[:-1]
