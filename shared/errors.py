"""The exception tree of the protocol layer.

Callers catch :class:`ProtocolError` at the network edge; the subclasses say what went wrong in a
way the user interface can turn into a state ("couldn't decrypt", "device list refused").
"""


class ProtocolError(Exception):
    """Base class of every error raised by ``shared``."""


class WireError(ProtocolError):
    """Bytes from the network or from storage do not decode to the expected, versioned record.

    (older msgspec releases report some invalid UTF-8 as ``UnicodeDecodeError``: every decode
    goes through ``shared.codec.decode_strict``, which turns both into one error.)"""


class VerificationError(ProtocolError):
    """A signature, hash chain or version check failed: the data may be forged or rolled back."""


class DecryptionError(ProtocolError):
    """A ciphertext could not be decrypted or authenticated."""


class DuplicateMessage(DecryptionError):
    """The ciphertext was already decrypted once (a replay or an at-least-once redelivery)."""
