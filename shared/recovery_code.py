"""Recovery codes and virtual devices (Labyrinth §"Recovery codes" and §"Virtual devices").

A recovery code is 40 characters from an alphabet without look-alikes
(``ACDEFHJKLMNPQRSTUVWXYZ0123456789``, 5 bits each): a version character, an identifier
character (which code this is, for the user: it changes when the code is rotated), 34 random
characters (170 bits) and 4 check characters (20 bits of SHA-256 over the rest).

The check characters detect typos. A code that fails the check is corrected where possible: every
single-character substitution and every swap of neighbours that passes the check is a
*candidate*; the caller keeps the candidate whose virtual device really opens its grant, so a
correction is confirmed cryptographically, never guessed.

The code deterministically derives a **virtual device**: an X25519 storage key that receives
every epoch's grant, and an Ed25519 key whose signature over the AMK (the *endorsement*, kept in
every epoch head) lets the holder of the code recognise the right account key. The code and
these keys are never stored on any device.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from shared.boxes import StorageKey, derive
from shared.errors import ProtocolError
from shared.identity import SigningKey, device_id_for, verify

ALPHABET = "ACDEFHJKLMNPQRSTUVWXYZ0123456789"
LENGTH = 40
VERSION = "A"
_RANDOM = 34
_CHECK = 4
_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "B": "8", "G": "6", "-": None, " ": None})
_ENDORSE_DOMAIN = b"ariadne/virtual-device-endorses-amk/v1"
_PROOF_DOMAIN = b"ariadne/virtual-device-membership/v1"


class InvalidRecoveryCode(ProtocolError):
    """The text is not a recovery code, or has more typos than can be corrected."""


def _check(body: str) -> str:
    digest = int.from_bytes(
        hashlib.sha256(b"ariadne/recovery-code/v1\x00" + body.encode()).digest()[:4], "big"
    )
    bits = digest >> (32 - 5 * _CHECK)
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(_CHECK)))


def generate(identifier: int = 0) -> str:
    body = VERSION + ALPHABET[identifier % 32]
    body += "".join(ALPHABET[b & 31] for b in os.urandom(_RANDOM))
    return body + _check(body)


def normalize(text: str) -> str:
    return text.upper().translate(_LOOK_ALIKES).replace("\n", "").replace("\t", "")


def is_valid(code: str) -> bool:
    return (
        len(code) == LENGTH
        and code[0] == VERSION
        and all(c in ALPHABET for c in code)
        and _check(code[:-_CHECK]) == code[-_CHECK:]
    )


def candidates(text: str) -> list[str]:
    """The codes the user may have meant: the text itself if it checks, else every code one
    substitution or one neighbour swap away that checks. Raises :class:`InvalidRecoveryCode` if
    there are none."""
    code = normalize(text)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        raise InvalidRecoveryCode(
            f"a recovery code has {LENGTH} characters from {ALPHABET}; this has {len(code)}"
        )
    if is_valid(code):
        return [code]
    found = []
    for i in range(LENGTH):
        for c in ALPHABET:
            if c != code[i] and is_valid(variant := code[:i] + c + code[i + 1 :]):
                found.append(variant)
        if i + 1 < LENGTH and is_valid(swap := code[:i] + code[i + 1] + code[i] + code[i + 2 :]):
            found.append(swap)
    if not found:
        raise InvalidRecoveryCode("this recovery code is mistyped in more than one place")
    return found


def groups(code: str) -> str:
    """For display: ten groups of four."""
    return " ".join(code[i : i + 4] for i in range(0, LENGTH, 4))


@dataclass(frozen=True)
class VirtualDevice:
    member_id: str
    storage: StorageKey
    signing: SigningKey

    def endorse(self, amk_public: bytes) -> bytes:
        return self.signing.sign(_ENDORSE_DOMAIN, amk_public)

    def endorses(self, amk_public: bytes, endorsement: bytes) -> bool:
        return verify(self.signing.public, endorsement, _ENDORSE_DOMAIN, amk_public)

    def membership_proof(self, username: str, device_id: str) -> bytes:
        """Shown to the relay by ``device_id`` to fetch this virtual device's grants."""
        return self.signing.sign(_PROOF_DOMAIN, f"{username}\x00{device_id}".encode())


def check_membership_proof(sign_public: bytes, proof: bytes, username: str, device_id: str) -> bool:
    return verify(sign_public, proof, _PROOF_DOMAIN, f"{username}\x00{device_id}".encode())


def virtual_device(code: str) -> VirtualDevice:
    """The virtual device a (valid, normalised) code stands for."""
    secret = code.encode()
    storage = StorageKey(derive(secret, b"ariadne/virtual-device/storage/v1"))
    signing = SigningKey(derive(secret, b"ariadne/virtual-device/signing/v1"))
    return VirtualDevice(device_id_for(signing.public), storage, signing)
