"""The AMK-signed device list (PROTOCOL.md §2).

A user's device list says which devices are "the ends" of that user's conversations. It is signed
by the account master key (AMK); versions only go up and each list names the hash of the one it
replaces. Clients encrypt only to devices on a list whose signature they verified against the AMK
they pinned on first contact, so the relay can neither add a device nor roll a list back.

Every list also names its **author** and carries the author's signature: a device of the list it
replaces (the first list: its only device), or the recovery code that list names (a device
restoring with the code). The AMK alone is not enough, because every full member holds it and a
removed device keeps it: without the author rule a removed device could sign itself back on.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec

from shared.codec import decode_strict
from shared.errors import VerificationError, WireError
from shared.identity import SigningKey, device_id_for, verify

_DOMAIN = b"ariadne/device-list/v2"
_AUTHOR_DOMAIN = b"ariadne/device-list-author/v2"
MAX_DEVICES = 64
MAX_LIST_BYTES = 32 * 1024

Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")]
DeviceName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
DeviceId = Annotated[str, msgspec.Meta(min_length=16, max_length=16, pattern=r"^[0-9a-f]+$")]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]  # Ed25519


class DeviceEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    name: DeviceName
    sign_public: Key32
    identity_key: Key32  # the device's X3DH identity key (Curve25519)
    storage_key: Key32  # the device's epoch-storage key (X25519, shared.epoch)
    added_at: int


class DeviceList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    username: Username
    version: Annotated[int, msgspec.Meta(ge=1)]
    prev_hash: bytes  # hash of the signed list this one replaces; empty for version 1
    amk_public: Key32
    devices: Annotated[tuple[DeviceEntry, ...], msgspec.Meta(max_length=MAX_DEVICES)]
    author: DeviceId  # the device (or the recovery code's virtual device) that made this change
    # The signing key of the current recovery code's virtual device: it may author the next list
    # (a device restoring with the code is on no list yet). None while there is no code.
    recovery_key: Key32 | None = None
    v: int = 2

    def entry(self, device_id: str) -> DeviceEntry | None:
        return next((d for d in self.devices if d.device_id == device_id), None)

    @property
    def device_ids(self) -> frozenset[str]:
        return frozenset(d.device_id for d in self.devices)


class SignedDeviceList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: Annotated[bytes, msgspec.Meta(max_length=MAX_LIST_BYTES)]
    signature: Signature  # by the AMK
    author_signature: Signature


_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(DeviceList)
_signed_decoder = msgspec.msgpack.Decoder(SignedDeviceList)


def sign_device_list(amk: SigningKey, author: SigningKey, device_list: DeviceList) -> bytes:
    """Encode ``device_list`` and sign it with the AMK and its author's key; returns the bytes
    that travel and are stored."""
    if device_list.amk_public != amk.public:
        raise ValueError("device list names a different AMK")
    body = _encoder.encode(device_list)
    return _encoder.encode(
        SignedDeviceList(
            body=body,
            signature=amk.sign(_DOMAIN, body),
            author_signature=author.sign(_AUTHOR_DOMAIN, body),
        )
    )


def _decode(signed: bytes) -> tuple[SignedDeviceList, DeviceList]:
    outer = decode_strict(_signed_decoder, signed, "device list")
    return outer, decode_strict(_body_decoder, outer.body, "device list")


def list_hash(signed: bytes) -> bytes:
    return hashlib.sha256(b"ariadne/device-list-hash/v1\x00" + signed).digest()


def open_device_list(signed: bytes, username: str, pinned_amk: bytes | None) -> DeviceList:
    """Decode and verify a signed list for ``username``.

    ``pinned_amk`` is the AMK public key this device trusts for the user (None on first contact,
    when the caller pins the key the list names). Raises :class:`VerificationError` on any
    mismatch and :class:`WireError` if the bytes are malformed.
    """
    outer, inner = _decode(signed)
    if inner.v != 2:
        raise WireError(f"unsupported device list version {inner.v}")
    if inner.username != username:
        raise VerificationError("device list is for another user")
    if pinned_amk is not None and inner.amk_public != pinned_amk:
        raise VerificationError("device list is signed by a different account key")
    if not verify(inner.amk_public, outer.signature, _DOMAIN, outer.body):
        raise VerificationError("device list signature is invalid")
    ids = [d.device_id for d in inner.devices]
    if len(set(ids)) != len(ids):
        raise VerificationError("device list repeats a device")
    for entry in inner.devices:
        if device_id_for(entry.sign_public) != entry.device_id:
            raise VerificationError("device id does not match its signing key")
    if (inner.version == 1) != (inner.prev_hash == b""):
        raise VerificationError("device list chain start is inconsistent")
    if inner.version == 1:
        # The first list has no predecessor: its author is its only device.
        if len(inner.devices) != 1 or inner.devices[0].device_id != inner.author:
            raise VerificationError("the first device list is not made by its only device")
        _check_author(outer, inner.devices[0].sign_public)
    return inner


def _check_author(outer: SignedDeviceList, sign_public: bytes) -> None:
    if not verify(sign_public, outer.author_signature, _AUTHOR_DOMAIN, outer.body):
        raise VerificationError("device list author's signature is invalid")


def check_author(previous: DeviceList, new: DeviceList, new_signed: bytes) -> None:
    """Check that ``new``'s author may change ``previous``: a device on it, or the recovery code
    it names, and that the author signed ``new``. Raises :class:`VerificationError`."""
    entry = previous.entry(new.author)
    if entry is not None:
        author_key = entry.sign_public
    elif previous.recovery_key is not None and device_id_for(previous.recovery_key) == new.author:
        author_key = previous.recovery_key
    else:
        raise VerificationError(
            f"device list version {new.version} is made by {new.author},"
            " which is not on the list it replaces"
        )
    _check_author(_decode(new_signed)[0], author_key)


def check_successor(
    current: DeviceList | None, current_signed: bytes | None, new: DeviceList, new_signed: bytes
) -> bool:
    """Decide whether ``new`` may replace ``current``.

    Returns True if ``new`` is newer, False if it is the very same list. Raises
    :class:`VerificationError` for a rollback, a fork at the same version, a broken chain, or an
    author who is not on ``current`` (or its recovery code). A list more than one version newer
    is judged against ``current``, the newest list this side holds: its author must be there.
    """
    if current is None or current_signed is None:
        return True
    if new.version < current.version:
        raise VerificationError(
            f"device list rolled back from version {current.version} to {new.version}"
        )
    if new.version == current.version:
        if new_signed != current_signed:
            raise VerificationError("two different device lists with the same version")
        return False
    if new.version == current.version + 1 and new.prev_hash != list_hash(current_signed):
        raise VerificationError("device list does not chain to the previous one")
    check_author(current, new, new_signed)
    return True


def next_device_list(
    amk: SigningKey,
    author: SigningKey,
    current: DeviceList,
    current_signed: bytes,
    *,
    add: DeviceEntry | None = None,
    remove: str | None = None,
    recovery_key: bytes | None = None,
) -> bytes:
    """Sign the successor of ``current`` with one device added or removed, or naming a new
    recovery code's key (else the current one is kept), made by ``author``: a device on
    ``current``, or its recovery code's virtual device."""
    devices = [d for d in current.devices if d.device_id != remove]
    if add is not None:
        if current.entry(add.device_id) is not None:
            raise ValueError("device already listed")
        devices.append(add)
    successor = DeviceList(
        username=current.username,
        version=current.version + 1,
        prev_hash=list_hash(current_signed),
        amk_public=current.amk_public,
        devices=tuple(devices),
        author=device_id_for(author.public),
        recovery_key=recovery_key or current.recovery_key,
    )
    return sign_device_list(amk, author, successor)


def first_device_list(
    amk: SigningKey, username: str, first: DeviceEntry, first_key: SigningKey
) -> bytes:
    return sign_device_list(
        amk,
        first_key,
        DeviceList(
            username=username,
            version=1,
            prev_hash=b"",
            amk_public=amk.public,
            devices=(first,),
            author=first.device_id,
        ),
    )
